"""A corpus of hostile uplink payloads, fed through a real round for every registered uplink transform (and
the plain pipeline): each must cost its sender's update, recorded with the reason, and nothing else. Nothing
is unpickled and nothing huge is allocated."""

from __future__ import annotations

import json
import pickle
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from fedpeft.client import ClientStateStore, FederatedClient, FitReply, LocalTrainer
from fedpeft.config.compression import CompressionConfig
from fedpeft.config.schema import ClientConfig
from fedpeft.fleet import LocalFleet
from fedpeft.model.state import TrainableState
from fedpeft.pipeline import codec
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.pipeline.transforms import TRANSFORMS
from fedpeft.runtime import Simulator
from fedpeft.strategy import FedAvg

from ..client.test_trainer import data  # type: ignore[import-not-found]

MARKER = Path("/tmp/fedpeft-hostile-pickle-ran")


class TinyLora(nn.Module):
    """A frozen layer with a rank-4 LoRA pair (peft's names) and a head: every transform has work to do."""

    def __init__(self, vocab: int = 8) -> None:
        super().__init__()
        self.vocab = vocab
        self.body = nn.Linear(vocab, 16)
        self.body.requires_grad_(False)
        self.body.lora_A = nn.ModuleDict({"default": nn.Linear(vocab, 4, bias=False)})
        self.body.lora_B = nn.ModuleDict({"default": nn.Linear(4, 16, bias=False)})
        nn.init.normal_(self.body.lora_B["default"].weight, std=0.1)
        self.classifier = nn.Linear(16, 2)

    def forward(self, input_ids, attention_mask, labels=None):  # type: ignore[no-untyped-def]
        x = nn.functional.one_hot(input_ids, self.vocab).float().mul(attention_mask[..., None]).sum(1)
        h = self.body(x) + self.body.lora_B["default"](self.body.lora_A["default"](x))
        logits = self.classifier(torch.relu(h))
        loss = None if labels is None else nn.functional.cross_entropy(logits, labels)
        return type("Out", (), {"loss": loss, "logits": logits})()


class Exploit:
    """Unpickling this would run code (write MARKER): the decoder must never unpickle."""

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (MARKER.write_text, ("unpickled",))


def header(payload: bytes) -> dict:
    (size,) = struct.unpack("<Q", payload[:8])
    return json.loads(payload[8 : 8 + size])


def with_header(payload: bytes, head: dict | str) -> bytes:
    """``payload`` with its JSON header replaced (tensor bytes kept)."""
    (size,) = struct.unpack("<Q", payload[:8])
    text = (head if isinstance(head, str) else json.dumps(head)).encode()
    return struct.pack("<Q", len(text)) + text + payload[8 + size :]


def retensored(payload: bytes, change: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]) -> bytes:
    """``payload`` with its tensors changed, the metadata kept."""
    meta = header(payload).get("__metadata__")
    return st_save(change(dict(st_load(payload))), metadata=meta)


def floats(fill: float) -> Callable[[dict], dict]:
    def change(ts: dict) -> dict:
        hit = {n: torch.full_like(t, fill) if t.is_floating_point() else t for n, t in ts.items()}
        assert any(t.is_floating_point() for t in ts.values())
        return hit

    return change


def first(ts: dict) -> str:
    return sorted(ts)[0]


BIG = {torch.int16: 32000, torch.uint8: 255}  # positions far out of range, or every bit of a bitmask set
NESTED = "[" * 100_000 + "]" * 100_000
ALL, PIPELINED, INDEXED = "all", "pipelined", "indexed"  # which uplinks an attack applies to
CORPUS: dict[str, tuple[Callable[[bytes], object], str]] = {  # name: (make from the honest payload, applies to)
    "pickle exploit": (lambda p: pickle.dumps(Exploit()), ALL),
    "pickled dict": (lambda p: pickle.dumps({"w": torch.zeros(3)}), ALL),
    "not bytes": (lambda p: p.decode("latin-1"), ALL),
    "empty": (lambda p: b"", ALL),
    "truncated": (lambda p: p[: len(p) // 2], ALL),
    "one byte short": (lambda p: p[:-1], ALL),
    "header length past the end": (lambda p: struct.pack("<Q", 2**63) + p[8:], ALL),
    "huge tensor claimed": (
        lambda p: with_header(p, {"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}}),
        ALL,
    ),
    "malformed JSON header": (lambda p: with_header(p, '{"w": {"dtype": "F32", '), ALL),
    "deeply nested JSON header": (lambda p: with_header(p, NESTED), ALL),
    "deeply nested metadata": (
        lambda p: with_header(p, {**header(p), "__metadata__": {"format": json.loads("[" * 500 + "]" * 500)}}),
        ALL,
    ),
    "nested value beside the tensors": (lambda p: with_header(p, {**header(p), "x": NESTED}), ALL),
    "NaN": (lambda p: retensored(p, floats(float("nan"))), ALL),
    "Inf": (lambda p: retensored(p, floats(float("inf"))), ALL),
    "wrong shape": (lambda p: retensored(p, lambda ts: {**ts, first(ts): ts[first(ts)].reshape(-1)[:-1]}), ALL),
    "wrong dtype": (lambda p: retensored(p, lambda ts: {**ts, first(ts): ts[first(ts)].to(torch.float64)}), ALL),
    "missing key": (lambda p: retensored(p, lambda ts: {n: t for n, t in ts.items() if n != first(ts)}), ALL),
    "extra key": (lambda p: retensored(p, lambda ts: {**ts, "evil": torch.zeros(3)}), ALL),
    "renamed key": (lambda p: retensored(p, lambda ts: {**{"x" + n: t for n, t in ts.items()}}), ALL),
    "huge seed": (lambda p: with_header(p, {**header(p), "__metadata__": {**meta(p), "seed": "9" * 5000}}), PIPELINED),
    "no format": (lambda p: with_header(p, {**header(p), "__metadata__": {"seed": "1"}}), PIPELINED),
    "huge indices": (
        lambda p: retensored(
            p, lambda ts: {n: t.fill_(BIG.get(t.dtype, 0)) if t.dtype in BIG else t for n, t in ts.items()}
        ),
        INDEXED,
    ),
}
INDEX_PARTS = {"topk", "prune", "lora_rank"}  # the transforms that send positions (int16 indices, uint8 bitmasks)


def status_kib(field: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(field + ":"))
    return int(line.split()[1])


def reset_peak_rss() -> int | None:
    """Reset the process's peak RSS (Linux: clear_refs 5) and return the RSS now, in bytes; None if the kernel
    does not allow it (then the memory check is skipped)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return status_kib("VmRSS") * 1024
    except OSError:
        return None


def peak_rss() -> int:
    return status_kib("VmHWM") * 1024


def meta(p: bytes) -> dict:
    return dict(header(p).get("__metadata__") or {})


def uplinks() -> dict[str, list[dict]]:
    """One pipeline per registered uplink transform (lora_rank first, as it must be), and the plain one."""
    out: dict[str, list[dict]] = {"plain": []}
    for name in TRANSFORMS.names():
        out[name] = [{"name": name, "keep": 2}] if name == "lora_rank" else [{"name": name}]
    return out


class Hostile(FederatedClient):
    """Client c1 replaces its honest reply with what ``tamper`` makes of it."""

    tamper: Callable[[FitReply], FitReply] = staticmethod(lambda r: r)

    def fit(self, ins):  # type: ignore[no-untyped-def]
        reply = super().fit(ins)
        return self.tamper(reply) if ins.client_id == "c1" else reply


def payload_swap(make: Callable[[bytes], object]) -> Callable[[FitReply], FitReply]:
    return lambda r: FitReply(r.client_id, make(r.payload), r.num_examples, r.metrics)  # type: ignore[arg-type]


def engine(tmp_path: Path, uplink: list[dict], tamper: Callable[[FitReply], FitReply]) -> Simulator:
    torch.manual_seed(0)
    model = TinyLora()
    ts = TrainableState(model)
    clients = {f"c{i}": data(12) for i in range(3)}
    strategy = FedAvg(3)
    strategy.initialize(ts.snapshot(), num_clients=3)
    pipe = UpdatePipeline.from_config(CompressionConfig.model_validate({"uplink": uplink}).uplink)
    client = Hostile(
        LocalTrainer(model, ts, ClientConfig(local_steps=2, batch_size=4)),
        ts,
        clients,
        ClientStateStore(tmp_path),
        seed=0,
        uplink=pipe,
    )
    client.tamper = tamper  # type: ignore[method-assign]
    return Simulator(strategy, LocalFleet(client), list(clients), seed=0, uplink=pipe)


@pytest.mark.parametrize("attack", list(CORPUS))
@pytest.mark.parametrize("uplink", list(uplinks()))
def test_a_hostile_payload_costs_only_its_senders_update(uplink: str, attack: str, tmp_path: Path) -> None:
    make, applies = CORPUS[attack]
    if (applies == PIPELINED and uplink == "plain") or (applies == INDEXED and uplink not in INDEX_PARTS):
        pytest.skip(f"{uplink} payloads carry no {'pipeline metadata' if applies == PIPELINED else 'indices'}")
    MARKER.unlink(missing_ok=True)
    sim = engine(tmp_path, uplinks()[uplink], payload_swap(make))
    rss = reset_peak_rss()
    out = sim.run_round(1)
    assert out.status == "ok" and sorted(out.accepted) == ["c0", "c2"], out.rejected
    assert "c1" in out.rejected and out.rejected["c1"].startswith("c1: ")
    assert all(torch.isfinite(t).all() for t in sim.global_state.values())
    assert not MARKER.exists()  # nothing was unpickled
    if rss is not None:  # the round's own peak, not the process's: nothing huge was allocated
        assert peak_rss() - rss < 200 * 2**20
    assert sim.run_round(2).status == "ok"  # and the run goes on


def test_honest_payloads_pass_every_pipeline(tmp_path: Path) -> None:
    for name, uplink in uplinks().items():
        out = engine(tmp_path / name, uplink, lambda r: r).run_round(1)
        assert sorted(out.accepted) == ["c0", "c1", "c2"], (name, out.rejected)


def test_a_payload_from_another_pipeline_is_refused(tmp_path: Path) -> None:
    honest = codec.encode({"w": torch.zeros(3)})
    for name, uplink in uplinks().items():
        if name == "plain":
            continue
        other = UpdatePipeline.from_config(CompressionConfig.model_validate({"uplink": [{"name": "int8"}]}).uplink)
        swap = (lambda p: honest) if name == "int8" else (lambda p, o=other: o.encode(dict(st_load(p)))[0])
        out = engine(tmp_path / name, uplink, payload_swap(swap)).run_round(1)
        assert "c1" in out.rejected and out.status == "ok", name


@pytest.mark.parametrize(
    "claim",
    [
        {"num_examples": -5},
        {"num_examples": 2.5},
        {"metrics": {"samples": float("nan")}},
        {"metrics": {"samples": float("inf")}},
        {"metrics": {"rank": float("inf")}},
        {"metrics": {"train_loss": "high"}},
    ],
    ids=["negative count", "fractional count", "NaN samples", "inf samples", "inf rank", "text metric"],
)
def test_a_reply_whose_claims_are_not_sane_costs_only_its_senders_update(claim: dict, tmp_path: Path) -> None:
    """What a reply claims beside its payload (its example count weighs it; its metrics count samples and pick
    its LoRA rank) is checked at the same boundary as the payload."""

    def claiming(reply: FitReply) -> FitReply:
        metrics = {**reply.metrics, **claim.get("metrics", {})}
        return FitReply(reply.client_id, reply.payload, claim.get("num_examples", reply.num_examples), metrics)

    out = engine(tmp_path, [], claiming).run_round(1)
    assert out.status == "ok" and sorted(out.accepted) == ["c0", "c2"] and out.rejected["c1"].startswith("c1: ")
    assert out.samples == 2 * 2 * 4  # the rejected client's claims counted nowhere


def test_secure_rounds_ignore_metrics_that_are_not_finite_numbers() -> None:
    from fedpeft.runtime.simulator import finite

    assert finite({"samples": float("inf"), "loss": float("nan"), "rank": 4, "ok": 0.5, "s": "x", "b": True}) == {
        "rank": 4.0,
        "ok": 0.5,
    }
