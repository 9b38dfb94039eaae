"""Streaming aggregation: updates folded as they arrive give the numbers of keeping them all, hold no reply."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.fleet import LocalFleet
from fedpeft.runtime.simulator import InOrder
from fedpeft.strategy import STRATEGIES, FedAvg
from fedpeft.strategy.base import ClientUpdate, Collect, MeanFold, weighted_mean
from fedpeft.wrappers.client_dp import ClientLevelDP, DPSum
from fedpeft.wrappers.robust import NormBound, RobustAggregation

from .test_simulator import make_sim  # type: ignore[import-not-found]


class Holding(LocalFleet):
    """The same clients, but every reply is kept until the round ends (a fleet without a sink)."""

    def fit(self, round_, instructions, on_reply=None, sink=None):  # type: ignore[no-untyped-def, override]
        return super().fit(round_, instructions, on_reply, None)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 500), st.lists(st.floats(-1e3, 1e3, width=32), min_size=3, max_size=3)),
        min_size=1,
        max_size=12,
    )
)
def test_folding_one_by_one_is_the_weighted_mean_bit_for_bit(rows: list[tuple[int, list[float]]]) -> None:
    updates = [ClientUpdate(f"c{i}", {"w": torch.tensor(v)}, n) for i, (n, v) in enumerate(rows)]
    fold = MeanFold(None, 1)
    for u in updates:
        fold.add(u)
    streamed = updates[0].delta["w"] if len(updates) == 1 else fold.mean()["w"]
    assert torch.equal(streamed, weighted_mean(updates)["w"])
    weights = np.array([n for n, _ in rows], dtype=np.float64)
    exact = (weights[:, None] * np.array([v for _, v in rows], dtype=np.float64)).sum(0) / weights.sum()
    np.testing.assert_allclose(streamed.numpy(), exact, rtol=1e-5, atol=1e-3)


def test_a_streamed_round_equals_a_held_one_and_keeps_no_reply(tmp_path) -> None:  # type: ignore[no-untyped-def]
    streamed, _ = make_sim(tmp_path / "a", per_round=4)
    held, _ = make_sim(tmp_path / "b", per_round=4)
    held.fleet = Holding(held.fleet.client)
    seen = {}
    fit = streamed.fleet.fit

    def spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen["delivery"] = fit(*args, **kwargs)
        return seen["delivery"]

    streamed.fleet.fit = spy  # type: ignore[method-assign]
    for r in (1, 2, 3):
        a, b = streamed.run_round(r), held.run_round(r)
        assert a.accepted == b.accepted and a.bytes_up == b.bytes_up
        assert not seen["delivery"].replies and len(seen["delivery"].consumed) == 4  # nothing held to the end
    for name, value in held.global_state.items():
        assert torch.equal(streamed.global_state[name], value)


def test_in_order_takes_outcomes_in_the_sampled_order_whatever_the_arrival() -> None:
    taken: list[str] = []
    sink = InOrder(["a", "b", "c", "d"], lambda cid, reply: taken.append(cid))
    for cid in ("c", "a", "d"):
        sink(cid, None)
    assert taken == ["a"]
    sink("b", "failed")
    assert taken == ["a", "b", "c", "d"]


def test_which_strategies_fold_and_which_say_they_need_every_update() -> None:
    folding = {"fedavg", "fedavgm", "fedadam", "fedyogi", "fedadagrad", "fedprox", "fedsa_lora", "ffa_lora"}
    model = torch.nn.Linear(2, 2)
    for name in STRATEGIES.names():
        spec = STRATEGIES.get(name)
        strategy = spec.build(spec.config(name=name), 4, model)
        assert strategy.streams == (name in folding), name
    fedavg = FedAvg(per_round=2)
    assert isinstance(NormBound(fedavg, 1.0).accumulator(1), MeanFold)
    assert isinstance(RobustAggregation(fedavg, lambda u, n: {}).accumulator(1), Collect)
    dp = ClientLevelDP(fedavg, clip=1.0, noise_multiplier=0.5, mode="central", num_clients=100, delta=1e-4)
    assert isinstance(dp.accumulator(1), DPSum)


def test_clients_that_receive_the_same_bytes_share_one_payload(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim, _ = make_sim(tmp_path, per_round=4)
    seen: list = []
    fit = sim.fleet.fit

    def spy(round_, instructions, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen.extend(instructions)
        return fit(round_, instructions, *args, **kwargs)

    sim.fleet.fit = spy  # type: ignore[method-assign]
    outcome = sim.run_round(1)
    assert len(seen) == 4 and all(ins.payload is seen[0].payload for ins in seen)  # one copy held, not four
    assert outcome.bytes_down == 4 * len(seen[0].payload)  # every client is still counted as receiving it
