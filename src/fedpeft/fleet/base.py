"""What a fleet is: it delivers a round's fit instructions to the clients and brings back what they sent.

The engine (``fedpeft.runtime.simulator``) decides who trains, encodes what they receive and validates what
they send; a fleet only delivers. A plain fleet (``LocalFleet``, Flower's) answers every instruction with a
reply or the reason none came. Decorators add what only a simulation has (``SimulatedParticipation``:
dropouts, a simulated clock, stragglers) or sum the replies securely (``InProcessSecAgg``, Flower's SecAgg+),
which is the ``SecureFleet`` protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.model.lora_factors import Spec
from fedpeft.model.state import TensorDict

OnReply = Callable[[str], None] | None  # called with a client's id once its work is done (progress bars)
Sink = Callable[[str, "FitReply | str | None"], None] | None
"""Takes a client's outcome the moment it is known (its reply, why it failed, or None: it dropped out), so
the engine folds the update and the reply is not held until the round ends (streaming aggregation)."""


def _keep(client_id: str) -> None:
    return None


@dataclass(frozen=True)
class LateReply:
    """A reply that missed its round's deadline and counts in round ``due``, ``staleness`` rounds late, with its
    weight scaled by ``weight_scale``."""

    reply: FitReply
    due: int
    staleness: int
    weight_scale: float


@dataclass
class Delivery:
    """What came back from one round's instructions.

    ``replies`` holds every reply that reached the server this round (stragglers' too: their upload happened)
    or why none came; ``dropped`` the clients that never replied, with the reason; ``stragglers`` the replies
    that missed the deadline, with what becomes of them; ``arrived`` late replies of earlier rounds due now.
    ``clock`` gives each replying client's simulated seconds (None: no simulated clock). ``withdraw`` forgets
    a straggler's reply the engine rejected, so it never arrives later.

    Example:
        >>> d = Delivery({"a": "client failed: oom"}, clock={"a": 2.0, "b": 5.0}, deadline=3.0)
        >>> d.round_seconds(["a"], stragglers_counted=False), d.round_seconds(["a"], stragglers_counted=True)
        (2.0, 3.0)
    """

    replies: dict[str, FitReply | str] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    stragglers: dict[str, str] = field(default_factory=dict)
    arrived: list[LateReply] = field(default_factory=list)
    clock: dict[str, float] | None = None
    deadline: float | None = None
    withdraw: Callable[[str], None] = _keep
    consumed: set[str] = field(default_factory=set)  # clients whose outcome went to the sink instead

    def round_seconds(self, used: Iterable[str], stragglers_counted: bool) -> float | None:
        """The round's time on the simulated clock: the deadline when a straggler missed it, else the slowest
        of the ``used`` clients (None without a simulated clock)."""
        if self.clock is None:
            return None
        if self.deadline is not None and stragglers_counted:
            return self.deadline
        return max((self.clock.get(c, 0.0) for c in used), default=0.0)


@runtime_checkable
class Fleet(Protocol):
    """Delivers instructions and returns the replies. ``busy`` clients cannot take work this round (a late
    reply of theirs is still on its way); ``state_dict`` is what a round checkpoint saves of the fleet. A
    fleet given a ``sink`` may hand it each outcome as it comes (listing the client in ``consumed``) instead
    of returning it; one that cannot simply returns everything."""

    def busy(self) -> Set[str]: ...

    def fit(
        self, round_: int, instructions: Sequence[FitInstruction], on_reply: OnReply = None, sink: Sink = None
    ) -> Delivery: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: Mapping[str, Any]) -> None: ...


@dataclass
class SecureResult:
    """A securely summed round: the survivors' weighted mean (None if the protocol could not finish) and who
    they are (``accepted``). ``metrics`` and ``bytes_up`` cover every client whose masked upload reached the
    server; ``dropped`` / ``rejected`` say why other clients count for nothing; ``failure`` why the protocol
    failed; ``server_seconds`` the wall time of the server's half (key exchange, unmasking)."""

    mean: TensorDict | None
    accepted: list[str]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    bytes_up: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    failure: str | None = None
    simulated_seconds: float | None = None
    server_seconds: float = 0.0


@runtime_checkable
class SecureFleet(Fleet, Protocol):
    """A fleet that sums the clients' updates under secure aggregation itself: the server gets the survivors'
    weighted mean (``weights`` per client, each coordinate of a weight-scaled update clipped to ``bound``;
    ``threshold`` is the share of the round's clients that must survive), never one update. ``protocol``
    names the protocol for the run summary."""

    protocol: str

    def secure_round(
        self,
        instructions: Sequence[FitInstruction],
        weights: Mapping[str, float],
        spec: Spec,
        *,
        bound: float,
        threshold: float,
        on_reply: OnReply = None,
    ) -> SecureResult: ...


def close(fleet: object) -> None:
    """End what ``fleet`` and the fleets it decorates hold open (worker processes)."""
    while fleet is not None:
        end = getattr(fleet, "close", None)
        if callable(end):
            end()
        fleet = getattr(fleet, "fleet", None)


def deliver(out: Delivery, client_id: str, reply: FitReply | str, sink: Sink) -> None:
    """Hand ``reply`` to the sink when there is one, else keep it in ``out``; then give the heap's free
    pages back (the previous client's buffers)."""
    if sink is None:
        out.replies[client_id] = reply
    else:
        sink(client_id, reply)
        out.consumed.add(client_id)
    trim_heap()


def trim_heap() -> None:
    """glibc: give the heap's free pages back to the OS (after a client: its state's many small tensors and
    its payloads leave holes that otherwise stay in the process: 303 against 327 MiB per worker over 200
    clients each). Between clients, not per step: a fixed low mmap threshold instead made every activation
    a fresh mapping, and its page faults took over a third of a training step's CPU time."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc
