"""The round loop (the recipe): build a run, drive its rounds, report. See ``recipe.loop``."""

from fedpeft.recipe.loop import run_experiment
from fedpeft.recipe.simulation import Simulation, make_simulator

__all__ = ["Simulation", "make_simulator", "run_experiment"]
