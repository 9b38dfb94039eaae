"""BitFit (Ben Zaken et al., 2022): only bias terms train."""

from fedpeft.methods.bitfit.config import BitFitMethod
from fedpeft.methods.bitfit.method import BITFIT

__all__ = ["BITFIT", "BitFitMethod"]
