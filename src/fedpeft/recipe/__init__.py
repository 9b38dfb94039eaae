"""The round loop (the recipe): build a run, drive its rounds, report. See ``recipe.loop``."""

from fedpeft.recipe.loop import make_simulator, run_experiment

__all__ = ["make_simulator", "run_experiment"]
