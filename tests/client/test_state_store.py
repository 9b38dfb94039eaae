from pathlib import Path

import torch

from fedpeft.client.state_store import ClientStateStore


def test_store_spills_least_recently_used_and_reads_back(tmp_path: Path) -> None:
    store = ClientStateStore(tmp_path, max_bytes=2 * 40)  # room for two clients of 10 float32
    for i in range(4):
        store.put(f"c{i}", {"m": torch.full((10,), float(i))})
    assert len(store) == 4 and store.bytes_in_memory <= 80
    assert len(list(tmp_path.glob("*.safetensors"))) == 2
    for i in range(4):
        assert store.get(f"c{i}")["m"].tolist() == [float(i)] * 10
    assert store.get("unknown") is None


def test_put_replaces_a_spilled_client(tmp_path: Path) -> None:
    store = ClientStateStore(tmp_path, max_bytes=0)
    store.put("x/y odd id", {"m": torch.zeros(2)})
    store.put("x/y odd id", {"m": torch.ones(2)})
    assert store.get("x/y odd id")["m"].tolist() == [1.0, 1.0]
    assert not list(tmp_path.glob("*.tmp"))


def test_a_reopened_store_finds_what_an_earlier_process_wrote_through(tmp_path) -> None:
    first = ClientStateStore(tmp_path, max_bytes=0, reopen=True)
    first.put("c1", {"m": torch.arange(3.0)})
    later = ClientStateStore(tmp_path, max_bytes=0, reopen=True)  # (a new ClientApp process on the node)
    assert "c1" in later and later.get("c1")["m"].tolist() == [0.0, 1.0, 2.0]
    assert "c2" not in later and later.get("c2") is None
    assert "c1" not in ClientStateStore(tmp_path)  # a simulator's store never adopts stale files
