"""Prefix tuning (Li and Liang, 2021) through peft: trained key/value prefixes for every attention layer."""

from fedpeft.methods.prefix.config import PrefixTuningMethod
from fedpeft.methods.prefix.method import PREFIX

__all__ = ["PREFIX", "PrefixTuningMethod"]
