"""LoRA (and its rsLoRA / DoRA flags) through the peft library; saved in the Hugging Face PEFT format."""

from fedpeft.methods.lora.config import LoraMethod
from fedpeft.methods.lora.method import LORA

__all__ = ["LORA", "LoraMethod"]
