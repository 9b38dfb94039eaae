"""Cross-cutting concerns that wrap a strategy or add a step to every client, instead of living in either.

Server side, a wrapper holds a strategy and acts on everything it receives from clients: ``NormBound``,
``RobustAggregation`` (robustness), ``ClientLevelDP`` (clip, noise, accounting). Client side, a mod runs
inside every client's fit after the strategy's own client half: ``ClipAndNoise``, ``Attack``. The build step
(``fedpeft.build``) puts them together in one documented order.
"""
