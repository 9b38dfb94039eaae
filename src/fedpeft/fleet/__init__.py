"""Fleets: how a round's work reaches the clients and their replies come back (below the round engines).

``LocalFleet`` trains the clients in this process; ``SimulatedParticipation`` adds simulated dropouts,
speeds, deadlines and stragglers around any fleet; ``InProcessSecAgg`` sums a fleet's replies under
fedpeft's secure aggregation. Flower's fleet lives in ``fedpeft.runtime.flower.fleet``.
"""

from fedpeft.fleet.base import Delivery, Fleet, LateReply, SecureFleet, SecureResult
from fedpeft.fleet.local import LocalFleet
from fedpeft.fleet.participation import SimulatedParticipation
from fedpeft.fleet.profiles import ClientProfile, assign_profiles
from fedpeft.fleet.secure import InProcessSecAgg
from fedpeft.fleet.secure_round import SecureAggregation, SecureRound

__all__ = [
    "ClientProfile",
    "Delivery",
    "Fleet",
    "InProcessSecAgg",
    "LateReply",
    "LocalFleet",
    "SecureAggregation",
    "SecureFleet",
    "SecureResult",
    "SecureRound",
    "SimulatedParticipation",
    "assign_profiles",
]
