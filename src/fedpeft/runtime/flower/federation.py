"""A Flower federation on this machine's loopback: a SuperLink and N SuperNodes (each holding its own data
partition), with TLS and SuperNode authentication unless asked otherwise, or Flower's simulation engine
(Ray) with N virtual SuperNodes; fedpeft's Flower app runs on it with ``flwr run``. Every process Flower
starts has its calls home turned off; all of them (found by their FLWR_HOME) are stopped on exit, and a run
counts as done only if Flower's own status says so."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import psutil

from fedpeft.errors import FedPeftError
from fedpeft.runtime.flower.certs import Credentials, make_credentials

APP = Path(__file__).parent / "app"
CONNECTION = "fedpeft"
QUIET = {  # Flower's network calls home, and its dependency installs, off
    "FLWR_TELEMETRY_ENABLED": "0",
    "FLWR_DISABLE_UPDATE_CHECK": "1",
    "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "FLWR_SUPEREXEC_TASK_POLL_INTERVAL": "0.1",
}


class FlowerRunFailed(FedPeftError):
    """A Flower run ended in any status but finished:completed, or never started."""


def flower_env(home: Path) -> dict[str, str]:
    """The environment for Flower's processes: this interpreter's scripts first on PATH, FLWR_HOME, quiet."""
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, **QUIET, "FLWR_HOME": str(home), "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class FlowerRun:
    """How a ``flwr run`` ended: Flower's run id and status, fedpeft's run folder, and the streamed log."""

    run_id: int | None
    status: str
    run_dir: Path | None
    log: str

    @property
    def ok(self) -> bool:
        return self.status == "finished:completed"


class LocalFederation:
    """SuperLink + ``nodes`` SuperNodes on 127.0.0.1, in ``folder`` (certificates, logs, FLWR_HOME).

    Example:
        >>> with LocalFederation(Path("fl"), nodes=2) as fed:  # doctest: +SKIP
        ...     result = fed.run(Path("configs/quickstart.yaml"), ["rounds=2"])
        >>> result.status, result.run_dir  # doctest: +SKIP
        ('finished:completed', PosixPath('runs/quickstart'))
    """

    def __init__(
        self,
        folder: Path,
        nodes: int = 2,
        secure: bool = True,
        start_timeout: float = 60.0,
        engine: Literal["deployment", "simulation"] = "deployment",
    ) -> None:
        self.folder = folder.resolve()
        self.nodes = nodes
        self.engine = engine
        self.secure = secure and engine == "deployment"  # (the simulation engine's SuperLink is local only)
        self.start_timeout = start_timeout
        self.env = flower_env(self.folder / "flwr-home")
        self.procs: list[subprocess.Popen[bytes]] = []
        self.port = 0
        self.creds: Credentials | None = None

    def __enter__(self) -> LocalFederation:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.folder / f"{name}.log", "wb") as log:  # (the child keeps its own copy of the file)
            self.procs.append(
                subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True, cwd=self.folder
                )
            )

    def _flwr(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["flwr", *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.folder
        )

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "flwr-home").mkdir(exist_ok=True)
        self.port = free_port()
        if self.engine == "simulation":  # flwr run starts a local SuperLink with Ray behind it, on our ports
            self.env.update(
                FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=str(self.port), FLWR_LOCAL_CONTROL_API_PORT=str(free_port())
            )
            (self.folder / "flwr-home" / "config.toml").write_text(
                f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\naddress = ":local:"\n\n'
                f"[superlink.{CONNECTION}.options]\nnum-supernodes = {self.nodes}\n\n"
                f"[superlink.{CONNECTION}.options.backend.client-resources]\nnum-cpus = 1\n"
            )
            return
        link = ["flower-superlink", "--port", str(self.port), "--disable-runtime-dependency-installation"]
        connection = f'address = "127.0.0.1:{self.port}"\n'
        if self.secure:
            self.creds = creds = make_credentials(self.folder / "certs", self.nodes, force=True)
            link += [
                "--ssl-ca-certfile",
                str(creds.ca_cert),
                "--ssl-certfile",
                str(creds.server_cert),
                "--ssl-keyfile",
                str(creds.server_key),
                "--enable-supernode-auth",
            ]
            connection += f'root-certificates = "{creds.ca_cert}"\n'
        else:
            link.append("--insecure")
            connection += "insecure = true\n"
        (self.folder / "flwr-home" / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n{connection}'
        )
        self._spawn("superlink", link)
        self._wait_healthy()
        for i in range(self.nodes):
            node = [
                "flower-supernode",
                "--superlink",
                f"127.0.0.1:{self.port}",
                "--port",
                str(free_port()),
                "--node-config",
                f"partition-id={i} num-partitions={self.nodes} state-dir='{self.folder / 'node-state'}'",
            ]
            if self.creds is not None:
                private, public = self.creds.node_keys[i]
                done = self._flwr("supernode", "register", str(public), CONNECTION)
                if done.returncode != 0:
                    raise FlowerRunFailed(f"could not register SuperNode {i}'s key: {done.stdout}{done.stderr}")
                node += ["--root-certificates", str(self.creds.ca_cert), "--auth-supernode-private-key", str(private)]
            else:
                node.append("--insecure")
            self._spawn(f"supernode-{i}", node)

    def _wait_healthy(self) -> None:
        url = f"{'https' if self.secure else 'http'}://127.0.0.1:{self.port}/health"
        context = ssl.create_default_context(cafile=str(self.creds.ca_cert)) if self.creds else None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.procs[0].poll() is not None:
                break
            try:
                with urllib.request.urlopen(url, timeout=2, context=context) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        log = (self.folder / "superlink.log").read_text(errors="replace")[-2000:]
        raise FlowerRunFailed(f"the SuperLink did not come up on 127.0.0.1:{self.port}; its log ends:\n{log}")

    def run(
        self,
        config: Path,
        overrides: Sequence[str] = (),
        timeout: float = 3600.0,
        echo: bool = False,
        run_config: Mapping[str, str | int | float] | None = None,
    ) -> FlowerRun:
        """``flwr run`` fedpeft's app with this fedpeft config; wait for it; read its status from Flower.
        ``run_config`` sets more of the app's run config (e.g. {"round-timeout": 60})."""
        app = self.folder / "app"
        shutil.rmtree(app, ignore_errors=True)
        shutil.copytree(APP, app)
        pairs = {
            "config": str(Path(config).resolve()),
            "overrides": shlex.join(overrides),
            "nodes": self.nodes,
            **(run_config or {}),
        }
        if any('"' in str(v) for v in pairs.values()):  # Flower's --run-config parser cannot escape them
            raise FlowerRunFailed(f"a Flower run config value cannot hold a double quote: {pairs}; use single quotes")
        run_config_text = " ".join(f"{k}={json.dumps(v)}" for k, v in pairs.items())  # TOML values
        proc = subprocess.Popen(
            ["flwr", "run", str(app), CONNECTION, "--stream", "--run-config", run_config_text],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=self.folder,
            start_new_session=True,
        )
        lines: list[str] = []

        def read() -> None:  # (in a thread, so a run that goes silent still meets the timeout)
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if echo:
                    print(line, end="", flush=True)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        _stop(proc)
        reader.join(timeout=5)
        log = "".join(lines)
        found = re.search(r"Successfully started run (\d+)", log)
        run_id = int(found.group(1)) if found else None
        status = "not started" if run_id is None else self.status(run_id)
        if timed_out and run_id is not None:
            self._flwr("stop", str(run_id), CONNECTION)
            status = f"timed out after {timeout:g} s ({status})"
        folder = re.search(r"fedpeft: run '.*' -> (.*)/", log)
        return FlowerRun(run_id, status, Path(folder.group(1)) if folder else None, log)

    def status(self, run_id: int) -> str:
        """Flower's status of a run, e.g. finished:completed or finished:failed (``flwr run`` exits 0 on both)."""
        done = self._flwr("ls", CONNECTION, "--run-id", str(run_id), "--format", "json")
        try:
            runs = json.loads(done.stdout)["runs"]
            return str(runs[0]["status"])
        except (ValueError, KeyError, IndexError):
            return f"unknown (flwr ls: {done.stdout.strip()[:300]} {done.stderr.strip()[:300]})"

    def stop(self) -> None:
        for proc in reversed(self.procs):
            _stop(proc)
        self.procs.clear()
        for proc in self.processes():  # what Flower started detached (the simulation SuperLink, Ray)
            proc.terminate()
        _, alive = psutil.wait_procs(self.processes(), timeout=10)
        for proc in alive:
            proc.kill()

    def processes(self) -> list[psutil.Process]:
        """Every live process of this federation (they all carry its FLWR_HOME), this one excepted."""
        home, me, found = self.env["FLWR_HOME"], os.getpid(), []
        for proc in psutil.process_iter():
            try:
                if proc.pid != me and proc.environ().get("FLWR_HOME") == home:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found


def _stop(proc: subprocess.Popen[Any]) -> None:
    """SIGTERM the process's whole group (Flower's children with it); SIGKILL what is left after 10 s."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
