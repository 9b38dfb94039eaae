"""The node worker: one long-lived process per SuperNode and run that keeps fedpeft's client built.

Flower's deployment engine starts a fresh ClientApp process for every message; importing torch and the
model code and rebuilding the client would cost every round seconds before any training. The ClientApp
instead hands each training request to this worker over a Unix socket (owner-only permissions, in a folder
only the node's user can enter) and waits for the answer. Requests and answers are a JSON header plus raw
payload bytes; nothing is pickled. The first request starts the worker; it exits after ``idle`` seconds
without requests. A crashed
worker is started again by the next request (the clients' state is on disk).

Example:
    >>> header, body = ask_worker(place, {"round": 1, "client_id": "c0", ...}, payload)  # doctest: +SKIP
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fedpeft.errors import FedPeftError
from fedpeft.fleet.cores import rebalance
from fedpeft.runtime.flower.node import NodePlace, node_client

FRAME = struct.Struct("!IQ")  # header bytes, payload bytes
MAX_HEADER = 1 << 24


class WorkerError(FedPeftError):
    """The node worker could not be started or reached, or it failed on a request."""


def send(sock: socket.socket, header: dict[str, Any], payload: bytes = b"") -> None:
    head = json.dumps(header).encode()
    sock.sendall(FRAME.pack(len(head), len(payload)) + head + payload)


def _exactly(sock: socket.socket, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise WorkerError(f"the connection closed with {left} of {n} bytes unread")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def receive(sock: socket.socket) -> tuple[dict[str, Any], bytes]:
    n_head, n_payload = FRAME.unpack(_exactly(sock, FRAME.size))
    if n_head > MAX_HEADER:
        raise WorkerError(f"a {n_head}-byte request header is too large")
    return json.loads(_exactly(sock, n_head)), _exactly(sock, n_payload)


def fit_request(header: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
    """Train one client as asked: the reply header (client, examples, metrics) and its update payload, or,
    with ``decoded``, the decoded update as safetensors (float64, by name) for Flower's SecAgg+ to mask."""
    from fedpeft.client.messages import FitInstruction

    start = time.time()
    place = NodePlace(**{**header["place"], "state_dir": Path(header["place"]["state_dir"])})
    client = node_client(header["fedpeft_config"], place)
    rebalance()  # this node's share of the cores, with the runs that started or ended since
    built = time.time()
    reply = client.fit(FitInstruction(int(header["round"]), str(header["client_id"]), payload, header["config"]))
    body = reply.payload
    if header.get("decoded"):
        import torch
        from safetensors.torch import save

        delta = client.uplink.decode(reply.payload, None, sender=reply.client_id)
        body = save({n: delta[n].detach().to(torch.float64).contiguous() for n in sorted(delta)})
    metrics = {**reply.metrics, "build_seconds": built - start}
    return {"client_id": reply.client_id, "num_examples": reply.num_examples, "metrics": metrics}, body


def place_header(place: NodePlace) -> dict[str, Any]:
    return {
        "partition_id": place.partition_id,
        "num_partitions": place.num_partitions,
        "run_id": place.run_id,
        "state_dir": str(place.state_dir),
        "use_worker": place.use_worker,
    }


def ask_worker(
    place: NodePlace, header: dict[str, Any], payload: bytes, start_timeout: float = 300.0
) -> tuple[dict[str, Any], bytes]:
    """Send a request to this node's worker (starting it if none answers); its answer. The header gets
    ``worker_start_seconds``: what starting the worker cost this request (0 when it was up)."""
    path = socket_path(place)
    started = 0.0
    sock = _connect(path)
    if sock is None:
        t0 = time.time()
        sock = _start(place, path, start_timeout)
        started = time.time() - t0
    with sock:
        send(sock, {**header, "place": place_header(place)}, payload)
        answer, body = receive(sock)
    if "error" in answer:
        raise WorkerError(f"node worker: {answer['error']}")
    answer["metrics"]["worker_start_seconds"] = started
    return answer, body


def socket_path(place: NodePlace) -> Path:
    """Where this node's worker listens: a short path (Unix sockets allow about 100 bytes) in a folder only
    this user can enter, named after the node's state folder."""
    folder = Path(tempfile.gettempdir()) / f"fedpeft-{os.getuid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    if folder.stat().st_uid != os.getuid() or folder.stat().st_mode & 0o077:
        raise WorkerError(f"{folder} must belong to this user alone (mode 700): remove it and retry")
    return folder / f"{hashlib.sha256(str(place.state_dir.resolve()).encode()).hexdigest()[:24]}.sock"


def stop_worker(place: NodePlace) -> bool:
    """Ask this node's worker to exit; False if none was running."""
    sock = _connect(socket_path(place))
    if sock is None:
        return False
    try:
        with sock:
            send(sock, {"stop": True})
            receive(sock)
    except (ConnectionError, WorkerError):  # it was already leaving (connected just before it closed)
        return False
    return True


def _connect(path: Path) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(str(path))
        return sock
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None


def _start(place: NodePlace, path: Path, timeout: float) -> socket.socket:
    """Start the worker unless another request is starting it (a lock file decides), and connect."""
    place.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = place.state_dir / "worker.log"
    with open(place.state_dir / "worker.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        sock = _connect(path)
        if sock is not None:
            return sock
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "fedpeft.runtime.flower.worker", str(path)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            sock = _connect(path)
            if sock is not None:
                return sock
            if proc.poll() is not None:
                break
            time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    raise WorkerError(f"the node worker did not start (exit {proc.poll()}); {log} ends:\n{tail}")


def serve(path: Path, idle: float) -> None:
    """Answer requests on ``path`` one at a time until ``idle`` seconds pass without one."""
    import torch  # noqa: F401  (paid once, here, not by every request)

    from fedpeft import build  # noqa: F401

    tmp = path.with_name(path.name + f".{os.getpid()}")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(tmp))
    os.chmod(tmp, 0o600)
    server.listen()
    os.replace(tmp, path)  # only a listening socket ever appears under the name
    server.settimeout(idle)
    try:
        while True:
            try:
                conn, _ = server.accept()
            except TimeoutError:
                return
            with conn:
                conn.settimeout(None)
                header, payload = receive(conn)
                if header.get("stop"):
                    with contextlib.suppress(FileNotFoundError):
                        path.unlink()  # first: no one connects to a worker that is leaving
                    send(conn, {"stopped": os.getpid()})
                    return
                try:
                    answer, body = fit_request(header, payload)
                except Exception as exc:  # the ClientApp reports it; the worker lives on
                    answer, body = {"error": f"{type(exc).__name__}: {exc}"}, b""
                with contextlib.suppress(OSError):  # the asker left: the worker lives on for the next one
                    send(conn, answer, body)
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def main() -> None:
    p = argparse.ArgumentParser(description="fedpeft's node worker for Flower ClientApps (started by them)")
    p.add_argument("socket", type=Path)
    p.add_argument("--idle", type=float, default=600.0, help="seconds without a request before it exits")
    args = p.parse_args()
    serve(args.socket, args.idle)


if __name__ == "__main__":
    main()
