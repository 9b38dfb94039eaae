"""Per-client state that survives across rounds (optimiser moments, later residuals and personal layers).

Kept in memory up to a byte budget; beyond it the least recently used clients spill to safetensors files.
"""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from safetensors.torch import load_file, save_file

from fedpeft.model.state import TensorDict, nbytes


class ClientStateStore:
    """A dict-like store of tensor dicts keyed by client id, spilling to disk past ``max_bytes``.

    Example:
        >>> import torch, tempfile
        >>> store = ClientStateStore(tempfile.mkdtemp(), max_bytes=0)
        >>> store.put("c1", {"m": torch.ones(3)}); store.get("c1")["m"].tolist()
        [1.0, 1.0, 1.0]
    """

    def __init__(self, spill_dir: str | Path, max_bytes: int = 1 << 30, reopen: bool = False) -> None:
        """``reopen``: states an earlier process wrote to ``spill_dir`` belong to this store (a Flower node's
        clients, whose ClientApp processes come and go; with ``max_bytes=0`` every state is written through)."""
        self.spill_dir = Path(spill_dir)
        self.max_bytes = max_bytes
        self.reopen = reopen
        self._memory: OrderedDict[str, TensorDict] = OrderedDict()
        self._on_disk: set[str] = set()
        self._bytes = 0
        self.changed: set[str] = set()  # clients put since the last ``take_changed`` (for checkpoints)

    def __contains__(self, client_id: str) -> bool:
        return client_id in self._memory or self._stored(client_id)

    def _stored(self, client_id: str) -> bool:
        if self.reopen and client_id not in self._on_disk and self._path(client_id).exists():
            self._on_disk.add(client_id)
        return client_id in self._on_disk

    def __len__(self) -> int:
        return len(self._memory) + len(self._on_disk)

    @property
    def bytes_in_memory(self) -> int:
        return self._bytes

    def get(self, client_id: str) -> TensorDict | None:
        if client_id in self._memory:
            self._memory.move_to_end(client_id)
            return self._memory[client_id]
        if self._stored(client_id):
            return load_file(str(self._path(client_id)))
        return None

    def pop(self, client_id: str) -> TensorDict | None:
        """Remove ``client_id``'s state (from memory and disk) and return it."""
        state = self.get(client_id)
        old = self._memory.pop(client_id, None)
        if old is not None:
            self._bytes -= nbytes(old)
        if client_id in self._on_disk:
            self._on_disk.discard(client_id)
            self._path(client_id).unlink(missing_ok=True)
        self.changed.discard(client_id)
        return state

    def changed_parts(self, part_bytes: int = 64 << 20) -> Iterator[dict[str, TensorDict]]:
        """The states of the clients put since the last call, in parts of about ``part_bytes``, so that a
        checkpoint of many clients never holds all their states at once (spilled ones are read part by part)."""
        ids = sorted(self.changed)
        self.changed.clear()
        part: dict[str, TensorDict] = {}
        size = 0
        for cid in ids:
            part[cid] = self.get(cid) or {}
            size += nbytes(part[cid])
            if size >= part_bytes:
                yield part
                part, size = {}, 0
        if part:
            yield part

    def take_changed(self) -> dict[str, TensorDict]:
        """The states of the clients put since the last call."""
        out = {cid: self.get(cid) or {} for cid in sorted(self.changed)}
        self.changed.clear()
        return out

    def put(self, client_id: str, state: TensorDict) -> None:
        self.changed.add(client_id)
        old = self._memory.pop(client_id, None)
        if old is not None:
            self._bytes -= nbytes(old)
        self._memory[client_id] = state
        self._bytes += nbytes(state)
        self._on_disk.discard(client_id)
        while self._bytes > self.max_bytes and self._memory:
            victim, tensors = self._memory.popitem(last=False)
            self._bytes -= nbytes(tensors)
            self._spill(victim, tensors)

    def _spill(self, client_id: str, tensors: TensorDict) -> None:
        self.spill_dir.mkdir(parents=True, exist_ok=True)
        path = self._path(client_id)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(tmp))
        os.replace(tmp, path)  # atomic: a crash never leaves a half-written state file
        self._on_disk.add(client_id)

    def _path(self, client_id: str) -> Path:
        return self.spill_dir / f"{hashlib.sha1(client_id.encode()).hexdigest()[:20]}.safetensors"
