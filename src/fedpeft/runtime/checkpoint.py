"""Round checkpoints: everything a run needs to go on after round r as if it had never stopped.

A checkpoint is one folder ``checkpoint/`` in the run folder holding ``state.json`` (scalars, structure,
the round) and ``tensors.safetensors`` (every tensor), plus one ``clients-<r>.safetensors`` per round with
the client states that round changed. Nothing is pickled. Files are written under temporary names and
renamed, and ``state.json`` (written last) names the round they belong to, so a run killed at any moment
resumes from its last completed round.

Objects take part through ``state_dict()`` / ``load_state_dict()`` (tensors, dicts and lists of tensors,
numbers, strings); ``flatten`` / ``unflatten`` turn that into JSON plus safetensors and back. A checkpoint of
another format (an older fedpeft) is refused with the reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from fedpeft.client.state_store import ClientStateStore
from fedpeft.errors import FedPeftError

FORMAT = "fedpeft-checkpoint/2"  # 2: objects save state_dict(); strategy wrappers nest the inner state


class CheckpointError(FedPeftError):
    """A checkpoint is missing, from another run, or damaged."""


def flatten(value: Any, prefix: str, tensors: dict[str, torch.Tensor]) -> Any:
    """A JSON skeleton of ``value`` whose tensors move to ``tensors`` under path-like keys.

    Example:
        >>> t = {}
        >>> flatten({"m": {"w": torch.ones(2)}, 3: [1.5, "x"]}, "s", t), list(t)
        ({'$d': [['m', {'$d': [['w', {'$t': 's/0/0'}]]}], [3, {'$l': [1.5, 'x']}]]}, ['s/0/0'])
    """
    if isinstance(value, torch.Tensor):
        tensors[prefix] = value.detach().contiguous().clone()
        return {"$t": prefix}
    if isinstance(value, dict):
        return {"$d": [[k, flatten(v, f"{prefix}/{i}", tensors)] for i, (k, v) in enumerate(value.items())]}
    if isinstance(value, (list, tuple)):
        return {"$l": [flatten(v, f"{prefix}/{i}", tensors) for i, v in enumerate(value)]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} at {prefix}")


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(skeleton, dict):
        if "$t" in skeleton:
            return tensors[skeleton["$t"]]
        if "$d" in skeleton:
            return {k: unflatten(v, tensors) for k, v in skeleton["$d"]}
        return [unflatten(v, tensors) for v in skeleton["$l"]]
    return skeleton


def _save_clients(path: Path, clients: Mapping[str, Mapping[str, torch.Tensor]]) -> None:
    ids = sorted(clients)
    flat = {f"{i}/{k}": v.detach().contiguous() for i, cid in enumerate(ids) for k, v in clients[cid].items()}
    save_file(flat, str(path), metadata={"clients": json.dumps(ids)})


def _atomic(path: Path, write: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


class Checkpoint:
    """The checkpoint folder of one run.

    Example:
        >>> import tempfile
        >>> ck = Checkpoint(Path(tempfile.mkdtemp()))
        >>> ck.save(3, {"server": {"w": torch.ones(2)}, "seen": 7}, clients={})
        >>> ck.round, ck.load()["seen"]
        (3, 7)
    """

    def __init__(self, run_path: Path) -> None:
        self.folder = run_path / "checkpoint"

    @property
    def round(self) -> int:
        """The last completed round saved (0: none)."""
        path = self.folder / "state.json"
        return int(json.loads(path.read_text(encoding="utf-8"))["round"]) if path.exists() else 0

    def save(
        self,
        round_: int,
        state: dict[str, Any],
        clients: Mapping[str, Mapping[str, torch.Tensor]] | Iterable[Mapping[str, Mapping[str, torch.Tensor]]],
    ) -> None:
        """Write round ``round_``'s state and the client states it changed (one mapping, or parts of them
        written one file each); ``state.json`` goes last."""
        self.folder.mkdir(parents=True, exist_ok=True)
        parts = [clients] if isinstance(clients, Mapping) else clients
        for n, part in enumerate(parts):
            name = f"clients-{round_}.safetensors" if n == 0 else f"clients-{round_}-{n}.safetensors"
            _atomic(self.folder / name, lambda p, part=part: _save_clients(p, part))
        tensors: dict[str, torch.Tensor] = {}
        skeleton = flatten(state, "s", tensors)
        _atomic(self.folder / "tensors.safetensors", lambda p: save_file(tensors, str(p)))
        body = json.dumps({"format": FORMAT, "round": round_, "state": skeleton})
        _atomic(self.folder / "state.json", lambda p: p.write_text(body, encoding="utf-8"))

    def load(self) -> dict[str, Any]:
        path = self.folder / "state.json"
        if not path.exists():
            raise CheckpointError(
                f"{self.folder}: no checkpoint (the run stopped before its first round ended, "
                "or ran with output.checkpoint: false); start it again without --resume"
            )
        meta = json.loads(path.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path}: not a {FORMAT} checkpoint")
        try:
            tensors = load_file(str(self.folder / "tensors.safetensors"))
            return unflatten(meta["state"], tensors)
        except (OSError, KeyError, ValueError, SafetensorError) as exc:
            raise CheckpointError(f"{self.folder}: damaged checkpoint ({exc})") from None

    def restore_clients(self, store: ClientStateStore) -> None:
        """Put every client state saved up to the checkpoint's round into ``store`` (later rounds win) and
        delete files from rounds after it (a round that was cut off)."""
        last = self.round
        files = sorted(self.folder.glob("clients-*.safetensors"), key=lambda p: int(p.stem.split("-")[1]))
        for path in files:
            if int(path.stem.split("-")[1]) > last:
                path.unlink()
                continue
            with safe_open(str(path), "pt") as f:
                ids = json.loads((f.metadata() or {})["clients"])
                by_client: dict[str, dict[str, torch.Tensor]] = {}
                for key in f.keys():
                    index, name = key.split("/", 1)
                    by_client.setdefault(ids[int(index)], {})[name] = f.get_tensor(key)
            for cid, tensors in by_client.items():
                store.put(cid, tensors)
