"""Update transforms one by one: unbiased quantisers, exact sparsifiers, LoRA rank pruning."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.errors import InvalidUpdate
from fedpeft.pipeline.transforms import EncodeContext, Transform, index_spec
from fedpeft.pipeline.transforms.cast import Cast
from fedpeft.pipeline.transforms.lora_rank import LoraRank, component_change
from fedpeft.pipeline.transforms.prune import MagnitudePrune
from fedpeft.pipeline.transforms.quantize import Quantize
from fedpeft.pipeline.transforms.randk import RandomK
from fedpeft.pipeline.transforms.topk import TopK


def spec_of(tensors: dict[str, torch.Tensor]) -> dict:
    return {n: (tuple(t.shape), t.dtype) for n, t in tensors.items()}


def round_trip(t: Transform, tensors: dict[str, torch.Tensor], seed: int = 0, reference=None) -> dict:  # type: ignore[no-untyped-def]
    parts = t.encode(dict(tensors), EncodeContext(seed, reference or {}))
    wire = t.wire_spec(spec_of(tensors))
    assert spec_of(parts) == wire  # the receiver predicts every part's name, shape and dtype
    back = t.decode(parts, spec_of(tensors), seed)
    assert spec_of(back) == spec_of(tensors)
    return back


@settings(max_examples=30, deadline=None)
@given(
    bits=st.sampled_from([8, 4, 2]),
    block=st.sampled_from([None, 3, 16]),
    n=st.integers(1, 40),
    rounding=st.sampled_from(["stochastic", "dithered"]),
    seed=st.integers(0, 10_000),
)
def test_quantisers_are_unbiased_in_expectation(bits: int, block: int | None, n: int, rounding: str, seed: int) -> None:
    torch.manual_seed(seed)
    x = torch.randn(n) * 10 ** torch.empty(n).uniform_(-3, 0)
    q = Quantize(bits, block, rounding)
    draws = torch.stack([round_trip(q, {"w": x}, seed=s)["w"] for s in range(400)])
    scale = q.encode({"w": x}, EncodeContext(0))["w#s"].float()
    step = scale.repeat_interleave(block or n)[:n]
    # each draw is within one step of x (half a step when dithered), and the mean tends to x
    assert bool(((draws - x).abs() <= step * (0.5 if rounding == "dithered" else 1) * (1 + 1e-5) + 1e-9).all())
    assert bool(((draws.mean(0) - x).abs() <= 5 * step / (2 * math.sqrt(400)) + 1e-7).all())


def test_quantiser_sizes_and_dtypes() -> None:
    x = torch.randn(3, 33, generator=torch.Generator().manual_seed(0))  # (not the global stream: test order)
    parts8 = Quantize(8, 64).encode({"w": x}, EncodeContext(0))
    parts4 = Quantize(4, 64).encode({"w": x}, EncodeContext(0))
    parts2 = Quantize(2, 64).encode({"w": x}, EncodeContext(0))
    assert parts8["w#q"].shape == (99,) and parts8["w#q"].dtype == torch.int8
    assert parts4["w#q"].shape == (50,) and parts4["w#q"].dtype == torch.uint8  # two values per byte
    assert parts2["w#q"].shape == (25,) and parts2["w#q"].dtype == torch.uint8  # four values per byte
    assert parts4["w#s"].shape == (2,) and parts4["w#s"].dtype == torch.bfloat16
    assert int(parts8["w#q"].abs().max()) >= 126  # the largest value uses the full range (scale rounded up)


def test_dithering_has_a_third_of_stochastic_roundings_worst_variance() -> None:
    x = torch.tensor([1.0, 0.5, -0.5, 0.5])  # scale 1/1 for ternary: 0.5 is the worst case for stochastic rounding
    for rounding, variance in (("stochastic", 0.25), ("dithered", 1 / 12)):
        q = Quantize(2, None, rounding)
        draws = torch.stack([round_trip(q, {"w": x}, seed=s)["w"] for s in range(4000)])
        step = float(q.encode({"w": x}, EncodeContext(0))["w#s"].float())
        assert float(draws[:, 1].var()) == pytest.approx(variance * step**2, rel=0.1)


def test_zero_tensor_quantises_to_zero() -> None:
    assert torch.equal(round_trip(Quantize(4, 8), {"w": torch.zeros(10)})["w"], torch.zeros(10))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_casts_are_exact_on_representable_values_and_saturate(dtype: torch.dtype) -> None:
    x = torch.tensor([0.5, -2.0, 1e6, 3.0])
    back = round_trip(Cast(dtype), {"w": x})["w"]
    assert back.dtype == torch.float32 and back[[0, 1, 3]].tolist() == [0.5, -2.0, 3.0]
    assert math.isfinite(float(back[2]))  # fp16 clamps at 65504 instead of overflowing to inf


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 3000), density=st.floats(0.001, 1.0), seed=st.integers(0, 1000))
def test_topk_keeps_exactly_the_largest_entries(n: int, density: float, seed: int) -> None:
    torch.manual_seed(seed)
    x = torch.randn(n)
    back = round_trip(TopK(density), {"w": x})["w"]
    k = min(n, max(1, math.ceil(density * n)))
    kept = back != 0
    assert int(kept.sum()) == k
    assert torch.equal(back[kept], x[kept])  # kept values are exact
    if k < n:
        assert float(x[kept].abs().min()) >= float(x[~kept].abs().max())


def test_index_format_is_the_smallest() -> None:
    assert index_spec(10_000, 10)[0] == "i"  # 20 bytes of int16 beat a 1,250-byte bitmask
    assert index_spec(10_000, 5_000)[0] == "m"  # 1,250 bytes of bitmask beat 10,000 bytes of int16
    assert index_spec(100_000, 10)[1][1] == torch.int32  # int16 cannot address 100,000 entries


def test_random_k_positions_come_from_the_seed() -> None:
    x = torch.arange(1.0, 101.0)
    t = RandomK(0.1, rescale=False)
    parts = t.encode({"w": x}, EncodeContext(seed=7))
    assert list(parts) == ["w#v"]  # only values travel
    back = t.decode(parts, spec_of({"w": x}), seed=7)["w"]
    assert int((back != 0).sum()) == 10 and torch.equal(back[back != 0], x[back != 0])
    other = t.decode(parts, spec_of({"w": x}), seed=8)["w"]
    assert not torch.equal(back, other)  # another seed puts the values elsewhere


def test_random_k_with_rescale_is_unbiased() -> None:
    x = torch.randn(50)
    t = RandomK(0.2, rescale=True)
    mean = torch.stack([round_trip(t, {"w": x}, seed=s)["w"] for s in range(3000)]).mean(0)
    assert float((mean - x).abs().max()) < 0.35 * float(x.abs().max())
    assert float((mean - x).abs().mean()) < 0.1 * float(x.abs().mean())


def test_prune_drops_the_smallest_fraction() -> None:
    x = torch.tensor([0.1, -5.0, 0.2, 3.0, -0.05, 1.0, 0.0, 2.0])
    back = round_trip(MagnitudePrune(0.5), {"w": x})["w"]
    assert back.tolist() == [0.0, -5.0, 0.0, 3.0, 0.0, 1.0, 0.0, 2.0]
    assert MagnitudePrune.feedback is False and TopK.feedback is True


def lora_update(r: int = 6) -> tuple[dict, dict]:
    torch.manual_seed(0)
    names = {"b": "m.lora_B.default.weight", "a": "m.lora_A.default.weight"}
    start = {names["b"]: torch.randn(5, r), names["a"]: torch.randn(r, 7)}
    update = {names["b"]: torch.randn(5, r) * 0.01, names["a"]: torch.randn(r, 7) * 0.01, "head": torch.randn(3)}
    if r > 4:
        update[names["b"]][:, 4] *= 300  # component 4 changes most, then 1
        update[names["a"]][1] *= 100
    return start, update


def test_component_change_is_the_norm_of_each_components_product_change() -> None:
    start, update = lora_update()
    b, a = "m.lora_B.default.weight", "m.lora_A.default.weight"
    got = component_change(update[b], update[a], start[b], start[a])
    for i in range(6):
        b1, a1 = start[b][:, i] + update[b][:, i], start[a][i] + update[a][i]
        want = torch.linalg.norm(torch.outer(b1, a1) - torch.outer(start[b][:, i], start[a][i]))
        assert torch.isclose(got[i].float(), want, rtol=1e-4)


def test_lora_rank_sends_the_strongest_components_and_zeros_the_rest() -> None:
    start, update = lora_update()
    b, a = "m.lora_B.default.weight", "m.lora_A.default.weight"
    t = LoraRank(keep=2)
    parts = t.encode(dict(update), EncodeContext(0, start))
    assert parts[f"{b}#k"].tolist() == [1, 4] and parts[f"{b}#r"].shape == (5, 2) and parts[f"{a}#r"].shape == (2, 7)
    back = round_trip(t, update, reference=start)
    assert torch.equal(back[b][:, [1, 4]], update[b][:, [1, 4]]) and torch.equal(back[a][[1, 4]], update[a][[1, 4]])
    assert float(back[b][:, [0, 2, 3, 5]].abs().sum()) == 0.0 and torch.equal(back["head"], update["head"])


def test_lora_rank_leaves_low_rank_layers_alone() -> None:
    _, update = lora_update(r=2)
    assert LoraRank(keep=4).wire_spec(spec_of(update)) == spec_of(update)


@pytest.mark.parametrize(
    "t, parts, match",
    [
        (TopK(0.004), {"w#v": torch.ones(4), "w#i": torch.tensor([3, 1, 2, 0], dtype=torch.int16)}, "increasing"),
        (TopK(0.004), {"w#v": torch.ones(4), "w#i": torch.tensor([0, 1, 2, 1000], dtype=torch.int16)}, "within"),
        (TopK(0.9), {"w#v": torch.ones(9), "w#m": torch.tensor([255, 0], dtype=torch.uint8)}, "bitmask marks 8"),
    ],
    ids=["unsorted", "out-of-range", "bitmask-count"],
)
def test_inconsistent_sparse_parts_are_refused(t: Transform, parts: dict, match: str) -> None:
    n = 1000 if "w#i" in parts else 9
    with pytest.raises(InvalidUpdate, match=match):
        t.decode(parts, {"w": ((n,), torch.float32)}, seed=0)


def test_bad_lora_rank_indices_are_refused() -> None:
    start, update = lora_update()
    b = "m.lora_B.default.weight"
    t = LoraRank(keep=2)
    parts = t.encode(dict(update), EncodeContext(0, start))
    parts[f"{b}#k"] = torch.tensor([4, 4], dtype=torch.int16)
    with pytest.raises(InvalidUpdate, match="kept rank components"):
        t.decode(parts, spec_of(update), seed=0)
