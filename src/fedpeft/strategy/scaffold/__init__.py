"""SCAFFOLD (Karimireddy et al., 2020): control variates against client drift."""

from fedpeft.strategy.scaffold.client import ControlVariates
from fedpeft.strategy.scaffold.config import ScaffoldStrategy
from fedpeft.strategy.scaffold.server import DC, C, Scaffold

__all__ = ["C", "ControlVariates", "DC", "Scaffold", "ScaffoldStrategy"]
