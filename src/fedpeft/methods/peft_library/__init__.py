"""Methods the peft library gives for free, each registered under its own name: LoHa, LoKr, OFT,
FourierFT, HRA (reparameterised) and P-tuning (additive). ``peft.options`` goes to peft's config class."""

from fedpeft.methods.peft_library.config import PeftLibraryMethod
from fedpeft.methods.peft_library.method import LIBRARY

__all__ = ["LIBRARY", "PeftLibraryMethod"]
