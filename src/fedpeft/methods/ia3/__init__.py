"""(IA)^3 (Liu et al., 2022) through peft; saved in the Hugging Face PEFT format."""

from fedpeft.methods.ia3.config import IA3Method
from fedpeft.methods.ia3.method import IA3

__all__ = ["IA3", "IA3Method"]
