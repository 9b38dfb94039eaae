"""The update pipeline: what a client's update becomes on the wire and back."""

from fedpeft.pipeline.codec import Spec, decode, encode

__all__ = ["Spec", "decode", "encode"]
