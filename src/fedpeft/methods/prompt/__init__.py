"""Soft prompt tuning (Lester et al., 2021) through peft: virtual token embeddings prepended to the input."""

from fedpeft.methods.prompt.config import PromptTuningMethod
from fedpeft.methods.prompt.method import PROMPT

__all__ = ["PROMPT", "PromptTuningMethod"]
