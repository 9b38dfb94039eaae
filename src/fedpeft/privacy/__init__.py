"""Differential privacy: client-level DP-FedAvg (clip, noise) and its accounting."""
