from fedpeft.runtime.base import RoundOutcome, Runtime
from fedpeft.runtime.simulator import Simulator

__all__ = ["RoundOutcome", "Runtime", "Simulator"]
