"""A SuperNode's side: fedpeft's client for this node's data partition, built from the config the server sent.

Client k of the config's clients lives on the node holding partition k mod N, so a node can host several
clients. Their own state (optimiser moments, personal tensors, error-feedback residuals) persists on the
node's disk between rounds, under ``state-dir``/run-<run id>/partition-<i>. This module imports no torch:
the built client lives in the node's worker process (``worker.py``) or, with ``worker=false``, in the
ClientApp process itself (rebuilt for every message).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fedpeft.errors import ConfigError

if TYPE_CHECKING:
    from fedpeft.client.app import FederatedClient

DEFAULT_STATE = Path.home() / ".cache" / "fedpeft" / "flower"


@dataclass(frozen=True)
class NodePlace:
    """Which partition a node holds, for which run, and where its clients keep their state."""

    partition_id: int
    num_partitions: int
    run_id: int
    state_dir: Path
    use_worker: bool = True

    @classmethod
    def of(cls, node_config: Mapping[str, Any], run_id: int) -> NodePlace:
        try:
            pid, count = int(node_config["partition-id"]), int(node_config["num-partitions"])
        except KeyError as exc:
            raise ConfigError(
                f"this SuperNode has no {exc} in its node config: start it with "
                "--node-config 'partition-id=I num-partitions=N'"
            ) from None
        root = Path(str(node_config.get("state-dir", DEFAULT_STATE))).expanduser()
        worker = str(node_config.get("worker", "true")).lower() not in ("false", "0", "no")
        return cls(pid, count, run_id, root / f"run-{run_id}" / f"partition-{pid}", worker)


_BUILT: dict[str, FederatedClient] = {}  # per process (a node worker, a Ray actor, or one ClientApp message)


def node_client(config_json: str, place: NodePlace) -> FederatedClient:
    """This node's client for the run's config, built once per process."""
    key = hashlib.sha256(f"{config_json}|{place}".encode()).hexdigest()
    if key not in _BUILT:
        from fedpeft.config.schema import RunConfig

        _BUILT[key] = build_client(RunConfig.model_validate_json(config_json), place)
    return _BUILT[key]


def build_client(cfg: Any, place: NodePlace) -> FederatedClient:
    """fedpeft's client, configured exactly as in the simulator, holding only this partition's clients."""
    from fedpeft import build

    setup = build.build_setup(cfg)
    strategy, _profiles = build.build_server(setup)  # for its client half, as on the server
    mine = list(setup.client_data)[place.partition_id :: place.num_partitions]
    return build.build_client(cfg, setup, strategy, place.state_dir / "client_state", mine, reopen=True)
