"""Parallel clients on one machine: a round's clients train in worker processes forked from this one.

The workers are forked after the run is built, so they share the frozen base's memory pages with this
process (copy-on-write: weights are only read) and pay no start-up. Each takes the next waiting client, so
the round ends when the slowest worker does. Clients are seeded by (seed, round, client), so the results are
those of the sequential fleet with the same threads per process. A client's kept state (optimiser moments,
residuals, personal tensors) stays in this process's store: it travels to the worker with the work and back
with the reply, as safetensors, so checkpoints and resume see it. Nothing is pickled.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import signal
import struct
import tempfile
import weakref
from collections.abc import Mapping, Sequence, Set
from multiprocessing.connection import Connection, wait
from typing import Any

import torch
from safetensors.torch import load as st_load

from fedpeft.client.app import FederatedClient
from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.client.state_store import ClientStateStore
from fedpeft.fleet.base import Delivery, OnReply, Sink, deliver, trim_heap
from fedpeft.fleet.cores import available_cores, concurrent
from fedpeft.model.state import TensorDict
from fedpeft.pipeline import codec

log = logging.getLogger(__name__)


def pack(header: Mapping[str, Any], *blobs: bytes) -> bytes:
    """One frame: a JSON header (with the blobs' lengths) and the blobs.

    Example:
        >>> unpack(pack({"a": 1}, b"xy", b""))
        ({'a': 1, 'blobs': [2, 0]}, [b'xy', b''])
    """
    head = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
    return struct.pack("<I", len(head)) + head + b"".join(blobs)


def unpack(frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
    (size,) = struct.unpack_from("<I", frame)
    header = json.loads(frame[4 : 4 + size])
    blobs, at = [], 4 + size
    for n in header["blobs"]:
        blobs.append(frame[at : at + n])
        at += n
    return header, blobs


def _tensors(blob: bytes) -> TensorDict:
    return dict(st_load(blob)) if blob else {}


def _blob(tensors: TensorDict | None) -> bytes:
    return codec.encode(tensors) if tensors else b""


def _die_with_parent() -> None:
    """Linux: this process gets SIGTERM when its parent dies, even by SIGKILL (no orphaned workers)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _serve(conn: Connection, client: FederatedClient, threads: int, siblings: list[Connection]) -> None:
    """A worker: train each client it is sent, answer with the reply and the client's kept state."""
    _die_with_parent()
    for other in siblings:  # the parent's ends of the other workers' pipes, inherited by the fork
        other.close()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it checkpoints and stops the workers
    torch.set_num_threads(threads)
    scratch = tempfile.TemporaryDirectory(prefix="fedpeft-worker-")  # (removed when the worker ends)
    client.store = ClientStateStore(scratch.name, max_bytes=1 << 62)
    while True:
        try:
            header, blobs = unpack(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if header.get("stop"):
            return
        (payload, state), cid = blobs, header["client_id"]
        if state:
            client.store.put(cid, _tensors(state))
        ins = FitInstruction(header["round"], cid, payload, header["config"])
        try:
            reply = client.fit(ins)
        except Exception as exc:  # reported to the parent as this client's failure; the worker goes on
            log.warning("round %d: client %s failed: %s", ins.round, cid, exc, exc_info=True)
            conn.send_bytes(pack({"client_id": cid, "error": f"client failed: {type(exc).__name__}: {exc}"}))
            client.store.pop(cid)
            continue
        kept = client.store.pop(cid)
        head = {"client_id": cid, "num_examples": reply.num_examples, "metrics": reply.metrics}
        conn.send_bytes(pack(head, reply.payload, _blob(kept)))
        del reply, kept
        trim_heap()


class _Worker:
    conn: Connection

    def __init__(self, client: FederatedClient, threads: int, siblings: Sequence[_Worker] = ()) -> None:
        parent, child = multiprocessing.get_context("fork").Pipe()
        self.process = multiprocessing.get_context("fork").Process(
            target=_serve,
            args=(child, client, threads, [w.conn for w in siblings]),
            daemon=True,
            name="fedpeft-worker",
        )
        self.process.start()
        child.close()
        self.conn = parent

    def stop(self) -> None:
        """Ask the worker to end, then wait for it (killed if it does not end within 5 s)."""
        try:
            self.conn.send_bytes(pack({"stop": True}))
        except OSError:
            pass  # already gone
        self.conn.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()


def _stop_all(workers: list[_Worker]) -> None:
    for w in workers:
        w.stop()


class ProcessFleet:
    """Trains a round's clients in ``workers`` forked processes with ``threads`` torch threads each. A client
    that fails, or whose worker dies, is reported as that client's failure; a dead worker is replaced.

    Example:
        >>> fleet = ProcessFleet(client, workers=2, threads=1)  # doctest: +SKIP
        >>> fleet.fit(1, instructions).replies["c0"].num_examples  # doctest: +SKIP
    """

    def __init__(self, client: FederatedClient, workers: int, threads: int = 1) -> None:
        if client.trainer.device.type != "cpu":
            raise ValueError("clients.workers runs CPU processes; on an accelerator use clients.cohort instead")
        self.client, self.size, self.threads = client, workers, threads
        self.workers: list[_Worker] = []
        self._finalizer = weakref.finalize(self, _stop_all, self.workers)

    def busy(self) -> Set[str]:
        return frozenset()

    def close(self) -> None:
        self._finalizer()

    def fit(
        self, round_: int, instructions: Sequence[FitInstruction], on_reply: OnReply = None, sink: Sink = None
    ) -> Delivery:
        while len(self.workers) < min(self.size, len(instructions)):  # forked once the model is built
            self.workers.append(_Worker(self.client, self.threads, self.workers))
        out, pending = Delivery(), list(instructions)
        # as many at once as this run's share of the cores allows (each keeps its threads, so its numbers)
        idle = self.workers[: concurrent(len(self.workers), self.threads)]
        busy: dict[Any, tuple[_Worker, FitInstruction]] = {}
        try:
            while pending or busy:
                while pending and idle:
                    worker, ins = idle.pop(), pending.pop(0)
                    self._send(worker, ins)
                    busy[worker.conn] = (worker, ins)
                for conn in wait(list(busy)):
                    worker, ins = busy.pop(conn)
                    reply, worker = self._receive(worker, ins)
                    deliver(out, ins.client_id, reply, sink)
                    idle.append(worker)
                    if on_reply is not None:
                        on_reply(ins.client_id)
        except BaseException:  # interrupted: a busy worker's late reply must not reach the next round
            for worker, _ in busy.values():
                worker.stop()
                self.workers[self.workers.index(worker)] = _Worker(self.client, self.threads, self.workers)
            raise
        return out

    def _send(self, worker: _Worker, ins: FitInstruction) -> None:
        """(A worker that died while idle: the error surfaces as this client's failure in ``_receive``.)"""
        state = self.client.store.get(ins.client_id)
        header = {"round": ins.round, "client_id": ins.client_id, "config": dict(ins.config)}
        try:
            worker.conn.send_bytes(pack(header, ins.payload, _blob(state)))
        except OSError:
            pass

    def _receive(self, worker: _Worker, ins: FitInstruction) -> tuple[FitReply | str, _Worker]:
        """``ins``'s reply (or why there is none) and the worker to give the next client (a fresh one when
        this one died)."""
        try:
            header, (payload, state) = unpack(worker.conn.recv_bytes())
        except (EOFError, OSError):
            worker.stop()
            code = worker.process.exitcode
            log.warning(
                "round %d: the worker of %s died (exit code %s); forking another", ins.round, ins.client_id, code
            )
            fresh = _Worker(self.client, self.threads, [w for w in self.workers if w is not worker])
            self.workers[self.workers.index(worker)] = fresh
            return f"client failed: its worker process died (exit code {code})", fresh
        if header.get("client_id") != ins.client_id:  # (cannot happen: one client at a time per worker)
            raise RuntimeError(f"worker answered for {header.get('client_id')!r}, expected {ins.client_id!r}")
        if "error" in header:
            return str(header["error"]), worker
        if state:
            self.client.store.put(ins.client_id, _tensors(state))
        return FitReply(ins.client_id, payload, int(header["num_examples"]), header["metrics"]), worker

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None


def default_workers(per_round: int, device: str, threads: int | None) -> int:
    """What is fastest here: on the CPU one process per core the run may use (``threads``, default every
    core), at most one per client of a round; one process on an accelerator. Small client batches do not
    spread well over threads (8 x 48 tokens on MiniLM: 1.6x from 2 threads), while processes take a client
    each."""
    if device != "cpu":
        return 1
    return max(1, min(threads or available_cores(), per_round))
