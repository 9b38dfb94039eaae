"""The simulator on a tiny MLP: real payloads, dropped bad clients, failed rounds that do not crash."""

import torch

from fedpeft.client import ClientStateStore, FederatedClient, FitInstruction, FitReply, LocalTrainer
from fedpeft.config.schema import ClientConfig
from fedpeft.fleet import LocalFleet
from fedpeft.model.state import TrainableState
from fedpeft.pipeline import codec
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.runtime import Simulator
from fedpeft.strategy import FedAvg

from ..client.test_trainer import BagOfTokens, data  # type: ignore[import-not-found]


def make_sim(
    tmp_path,
    per_round=3,
    min_updates=1,
    client_cls=FederatedClient,
    keep_opt=False,  # type: ignore[no-untyped-def]
    uplink=None,
    downlink=None,
):
    torch.manual_seed(0)
    model = BagOfTokens()
    ts = TrainableState(model)
    clients = {f"c{i}": data(10 + i) for i in range(4)}
    strategy = FedAvg(per_round)
    strategy.initialize(ts.snapshot(), num_clients=len(clients))
    uplink, downlink = uplink or UpdatePipeline(), downlink or UpdatePipeline()
    client = client_cls(
        LocalTrainer(model, ts, ClientConfig(local_steps=2, batch_size=4, keep_optimizer_state=keep_opt)),
        ts,
        clients,
        ClientStateStore(tmp_path),
        seed=0,
        plugins=strategy.client_plugins(),
        uplink=uplink,
        downlink=downlink,
    )
    return Simulator(
        strategy, LocalFleet(client), list(clients), seed=0, min_updates=min_updates, uplink=uplink, downlink=downlink
    ), ts


def test_bytes_are_the_real_payload_lengths(tmp_path) -> None:
    sim, ts = make_sim(tmp_path)
    size = len(codec.encode(ts.snapshot()))
    out = sim.run_round(1)
    assert out.status == "ok" and len(out.accepted) == 3
    assert out.bytes_down == 3 * size and out.bytes_up == 3 * size  # deltas have the same layout


def test_one_client_round_equals_that_clients_local_training(tmp_path) -> None:
    sim, ts = make_sim(tmp_path, per_round=1)
    start = {k: v.clone() for k, v in sim.global_state.items()}
    out = sim.run_round(1)
    (cid,) = out.accepted
    # Replay the same client alone from the same start: the global state must equal its local result.
    ts.load(start)
    reply = sim.fleet.client.fit(FitInstruction(1, cid, codec.encode(start)))
    local = {k: start[k] + v for k, v in codec.decode(reply.payload, sim.fleet.client.spec).items()}
    assert all(torch.allclose(sim.global_state[k], local[k], atol=1e-7) for k in local)


def test_results_do_not_depend_on_client_order(tmp_path) -> None:
    a, _ = make_sim(tmp_path / "a", per_round=4)
    b, _ = make_sim(tmp_path / "b", per_round=4)
    b.client_ids = list(reversed(b.client_ids))
    a.run_round(1)
    b.run_round(1)
    assert all(torch.allclose(a.global_state[k], b.global_state[k], atol=1e-6) for k in a.global_state)


class NaNClient(FederatedClient):
    def fit(self, ins):  # type: ignore[no-untyped-def]
        reply = super().fit(ins)
        if ins.client_id == "c1":
            bad = {k: torch.full_like(v, float("nan")) for k, v in codec.decode(reply.payload, self.spec).items()}
            return FitReply(reply.client_id, codec.encode(bad), reply.num_examples)
        if ins.client_id == "c2":
            raise RuntimeError("device lost")
        return reply


def test_bad_and_crashing_clients_are_dropped_and_the_round_goes_on(tmp_path) -> None:
    sim, _ = make_sim(tmp_path, per_round=4, client_cls=NaNClient)
    out = sim.run_round(1)
    assert out.status == "ok"
    assert sorted(out.accepted) == ["c0", "c3"]
    assert "NaN" in out.rejected["c1"] and "device lost" in out.rejected["c2"]
    assert all(torch.isfinite(v).all() for v in sim.global_state.values())


def test_too_few_updates_fails_the_round_and_keeps_the_state(tmp_path) -> None:
    sim, _ = make_sim(tmp_path, per_round=4, min_updates=3, client_cls=NaNClient)
    before = {k: v.clone() for k, v in sim.global_state.items()}
    out = sim.run_round(1)
    assert out.status == "failed"
    assert all(torch.equal(before[k], sim.global_state[k]) for k in before)


def test_optimizer_state_persists_per_client(tmp_path) -> None:
    sim, _ = make_sim(tmp_path, per_round=4, keep_opt=True)
    sim.run_round(1)
    assert len(sim.fleet.client.store) == 4
    steps = sim.fleet.client.store.get("c0")
    assert any(k.endswith(".step") and float(v) == 2.0 for k, v in steps.items())
    sim.run_round(2)
    assert any(k.endswith(".step") and float(v) == 4.0 for k, v in sim.fleet.client.store.get("c0").items())


class Recording(FederatedClient):
    """Counts the bytes it really received and sent."""

    def fit(self, ins):  # type: ignore[no-untyped-def]
        reply = super().fit(ins)
        self.received = getattr(self, "received", 0) + len(ins.payload)
        self.sent = getattr(self, "sent", 0) + len(reply.payload)
        return reply


def test_compressed_bytes_are_the_real_payload_lengths(tmp_path) -> None:
    from fedpeft.pipeline.transforms.cast import Cast
    from fedpeft.pipeline.transforms.quantize import Quantize
    from fedpeft.pipeline.transforms.topk import TopK

    sim, ts = make_sim(
        tmp_path,
        client_cls=Recording,
        uplink=UpdatePipeline([TopK(0.2), Quantize(8, 16)], error_feedback=True),
        downlink=UpdatePipeline([Cast(torch.float16)]),
    )
    out = sim.run_round(1)
    assert out.status == "ok" and len(out.accepted) == 3
    assert out.bytes_up == sim.fleet.client.sent and out.bytes_down == sim.fleet.client.received  # type: ignore[attr-defined]
    assert sum(c["bytes_up"] for c in out.clients.values()) == out.bytes_up
    assert out.bytes_up < 0.5 * 3 * len(codec.encode(ts.snapshot()))  # a tiny model: headers weigh a lot
