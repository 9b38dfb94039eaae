"""The update pipeline end to end: packed payloads, exact byte counts, error feedback, refusals."""

import json
import math
import pickle
import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from fedpeft.config.compression import CompressionConfig
from fedpeft.errors import InvalidUpdate
from fedpeft.pipeline import codec
from fedpeft.pipeline.compression import UpdatePipeline, packed_spec
from fedpeft.pipeline.transforms.quantize import Quantize
from fedpeft.pipeline.transforms.topk import TopK

B, A = "layer.lora_B.default.weight", "layer.lora_A.default.weight"
PIPELINES = {
    "fp16": [{"name": "fp16"}],
    "int8": [{"name": "int8"}],
    "int4-tensor": [{"name": "int4", "block": None}],
    "int2-dithered": [{"name": "int2", "block": 16, "rounding": "dithered"}],
    "topk+int8": [{"name": "topk", "density": 0.1}, {"name": "int8"}],
    "randk+bf16": [{"name": "randk", "density": 0.2}, {"name": "bf16"}],
    "prune+int4": [{"name": "prune", "amount": 0.7}, {"name": "int4", "block": 32}],
    "lora_rank+topk+int4": [{"name": "lora_rank", "keep": 2}, {"name": "topk", "density": 0.3}, {"name": "int4"}],
}


def pipeline(name: str, feedback: bool | None = None) -> UpdatePipeline:
    cfg = CompressionConfig.model_validate({"uplink": PIPELINES[name], "error_feedback": feedback})
    return UpdatePipeline.from_config(cfg.uplink, cfg.feedback)


def update(seed: int = 0, rows: int = 40) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return {B: torch.randn(rows, 6) * 0.01, A: torch.randn(6, 30) * 0.01, "head.bias": torch.randn(3)}


def spec_of(tensors: dict) -> dict:
    return {n: (tuple(t.shape), t.dtype) for n, t in tensors.items()}


def header_bytes(payload: bytes) -> int:
    return 8 + struct.unpack("<Q", payload[:8])[0]


@pytest.mark.parametrize("name", list(PIPELINES))
def test_round_trip_and_byte_count_is_the_payload_length(name: str) -> None:
    pipe = pipeline(name, feedback=False)
    u = {**update(), **{f"norm{i}.weight": torch.randn(20) for i in range(10)}}
    payload, residual = pipe.encode(u, seed=3, reference=update(1))
    assert residual is None
    back = pipe.decode(payload, spec_of(u), sender="c1")
    assert spec_of(back) == spec_of(u)
    assert float(torch.linalg.norm(back[B] - u[B])) < float(torch.linalg.norm(u[B]))  # lossy, not wrong
    # the payload is exactly the header plus the packed entries the receiver predicts from the spec
    wire = packed_spec(pipe.specs(spec_of(u))[-1])
    data = sum(math.prod(s) * torch.empty((), dtype=d).element_size() for s, d in wire.values())
    assert len(payload) == header_bytes(payload) + data
    assert len(wire) < len(u) <= len(pipe.specs(spec_of(u))[-1])  # one entry per (suffix, dtype), not per part


def test_compressed_payload_is_much_smaller() -> None:
    u = update(rows=400)
    plain = len(codec.encode(u))
    assert len(pipeline("fp16").encode(u)[0]) < 0.6 * plain
    assert len(pipeline("int4-tensor").encode(u)[0]) < 0.2 * plain
    assert len(pipeline("lora_rank+topk+int4", feedback=False).encode(u, reference=update(1, 400))[0]) < 0.1 * plain


def test_empty_pipeline_is_plain_safetensors() -> None:
    u = update()
    payload, _ = UpdatePipeline().encode(u)
    assert payload == codec.encode(u)
    assert all(torch.equal(UpdatePipeline().decode(payload, spec_of(u))[n], u[n]) for n in u)


@settings(max_examples=20, deadline=None)
@given(density=st.floats(0.01, 0.5), seed=st.integers(0, 1000), steps=st.integers(5, 60))
def test_error_feedback_loses_nothing_and_its_residual_stays_bounded(density: float, seed: int, steps: int) -> None:
    pipe = UpdatePipeline([TopK(density)], error_feedback=True)
    gen = torch.Generator().manual_seed(seed)
    residual: dict = {}
    sent_sum = torch.zeros(200)
    true_sum = torch.zeros(200)
    delta = math.ceil(density * 200) / 200  # top-k keeps at least this fraction of the energy
    bound = math.sqrt(1 - delta) / (1 - math.sqrt(1 - delta))  # sup ||e|| / sup ||g|| (Stich et al., 2018)
    for t in range(steps):
        g = torch.randn(200, generator=gen)
        g = g / g.norm()  # ||g|| = 1
        payload, residual = pipe.encode({"w": g}, seed=t, residual=residual)
        sent_sum += pipe.decode(payload, {"w": ((200,), torch.float32)})["w"]
        true_sum += g
        assert float(residual["w"].norm()) <= bound + 1e-5
    # everything the client computed was either sent or is still in its residual
    assert torch.allclose(sent_sum + residual["w"], true_sum, atol=1e-4)


def test_error_feedback_also_covers_quantisation() -> None:
    pipe = UpdatePipeline([Quantize(4, 16)], error_feedback=True)
    g = torch.linspace(-1, 1, 64)
    payload, residual = pipe.encode({"w": g}, seed=0, residual={})
    back = pipe.decode(payload, {"w": ((64,), torch.float32)})["w"]
    assert residual is not None and torch.allclose(back + residual["w"], g, atol=1e-6)
    assert float(residual["w"].abs().max()) > 0


def test_residual_follows_a_shrinking_lora_rank() -> None:
    pipe = UpdatePipeline([TopK(0.5)], error_feedback=True)
    residual = {B: torch.arange(12.0).reshape(3, 4), A: torch.ones(2, 2)}
    u = {B: torch.zeros(3, 2), A: torch.zeros(3, 3)}  # B's rank fell from 4 to 2; A's shape changed otherwise
    payload, new = pipe.encode(u, residual=residual)
    sent = pipe.decode(payload, spec_of(u))
    assert new is not None and torch.allclose(sent[B] + new[B], residual[B][:, :2])  # leading components kept
    assert float(sent[A].abs().sum() + new[A].abs().sum()) == 0.0  # nothing carried into a new shape


def test_self_describing_payload_needs_no_spec() -> None:
    pipe = UpdatePipeline.from_config(CompressionConfig.model_validate({"downlink": [{"name": "int8"}]}).downlink)
    u = update()
    payload, _ = pipe.encode(u, describe=True)
    back = pipe.decode(payload, None, sender="server")
    assert spec_of(back) == spec_of(u) and torch.allclose(back[B], u[B], atol=float(u[B].abs().max()) / 100)


def tampered(payload: bytes, meta_change: dict | None = None, entry: str | None = None, cut: int = 0) -> bytes:
    """Rewrite a packed payload's metadata or shorten one of its entries, keeping it valid safetensors."""
    size = struct.unpack("<Q", payload[:8])[0]
    header = json.loads(payload[8 : 8 + size])
    tensors = st_load(payload)
    meta = {**header["__metadata__"], **(meta_change or {})}
    if entry is not None:
        tensors[entry] = tensors[entry][:-cut]
    return st_save(tensors, metadata=meta)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: p[:-7], "not a valid safetensors"),
        (lambda p: p[:5], "too short"),
        (lambda p: struct.pack("<Q", 10**9) + p[8:], "runs past the end"),
        (lambda p: pickle.dumps({"w": 1}), "not a valid safetensors"),
        (lambda p: tampered(p, {"pipeline": "fp16"}), "pipeline 'fp16'"),
        (lambda p: tampered(p, {"seed": "x"}), "integer seed"),
        (lambda p: tampered(p, entry="#v#q:int8", cut=3), "shape"),
        (lambda p: codec.encode(update()), "this run expects"),
    ],
    ids=["truncated", "too-short", "header-length", "pickle", "wrong-pipeline", "bad-seed", "wrong-size", "plain"],
)
def test_bad_payloads_are_refused_naming_the_sender(make, match: str) -> None:  # type: ignore[no-untyped-def]
    pipe, u = pipeline("topk+int8", feedback=False), update()
    payload, _ = pipe.encode(u)
    with pytest.raises(InvalidUpdate, match=match) as err:
        pipe.decode(make(payload), spec_of(u), sender="client_9")
    assert "client_9" in str(err.value)


def test_malformed_layout_is_refused() -> None:
    pipe = UpdatePipeline([Quantize(8, 64)])
    payload, _ = pipe.encode(update(), describe=True)
    for layout in ("not json", json.dumps([["w", [-1], "float32"]]), json.dumps([["w", [2], "complex128"]])):
        with pytest.raises(InvalidUpdate, match="layout"):
            pipe.decode(tampered(payload, {"layout": layout}), None, sender="server")


@pytest.mark.parametrize(
    "cfg, match",
    [
        ({"downlink": [{"name": "topk"}]}, "would drop parts of the global model"),
        ({"uplink": [{"name": "int8"}, {"name": "lora_rank"}]}, "put it first"),
        ({"uplink": [{"name": "int3"}]}, "int3"),
        ({"uplink": [{"name": "topk", "density": 0}]}, "greater than 0"),
    ],
)
def test_config_refusals(cfg: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CompressionConfig.model_validate(cfg)
