import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from fedpeft.errors import InvalidUpdate
from fedpeft.pipeline.codec import decode, encode

SPEC = {"a": ((2, 3), torch.float32), "b": ((4,), torch.float32)}


def good() -> dict[str, torch.Tensor]:
    return {"a": torch.randn(2, 3), "b": torch.randn(4)}


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 6), seed=st.integers(0, 1000))
def test_round_trip_is_exact_and_size_is_the_real_length(rows: int, cols: int, seed: int) -> None:
    torch.manual_seed(seed)
    t = {"w": torch.randn(rows, cols)}
    payload = encode(t)
    back = decode(payload, {"w": ((rows, cols), torch.float32)})
    assert torch.equal(back["w"], t["w"])
    assert len(payload) >= rows * cols * 4  # raw float32 bytes plus a header


@pytest.mark.parametrize(
    "payload, match",
    [
        (encode({"a": torch.zeros(2, 3)}), "wrong keys"),
        (encode({**good(), "evil": torch.zeros(1)}), "wrong keys"),
        (encode({"a": torch.zeros(3, 2), "b": torch.zeros(4)}), "shape"),
        (encode({"a": torch.zeros(2, 3, dtype=torch.float64), "b": torch.zeros(4)}), "dtype"),
        (encode({"a": torch.full((2, 3), float("nan")), "b": torch.zeros(4)}), "NaN"),
        (encode({"a": torch.zeros(2, 3), "b": torch.tensor([0, 0, float("inf"), 0])}), "infinite"),
        (encode(good())[:-5], "not a valid safetensors"),
        (b"\x00" * 3, "not a valid safetensors"),
        (pickle.dumps(good()), "not a valid safetensors"),
    ],
    ids=["missing", "extra", "shape", "dtype", "nan", "inf", "truncated", "tiny", "pickle"],
)
def test_malformed_updates_are_refused(payload: bytes, match: str) -> None:
    with pytest.raises(InvalidUpdate, match=match):
        decode(payload, SPEC, sender="client_7")


def test_oversized_payload_is_refused_before_parsing() -> None:
    with pytest.raises(InvalidUpdate, match="exceeds the limit"):
        decode(encode(good()), SPEC, max_bytes=10)


def test_error_names_the_sender() -> None:
    with pytest.raises(InvalidUpdate, match="^client_7:"):
        decode(b"junk", SPEC, sender="client_7")
