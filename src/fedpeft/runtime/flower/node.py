"""A SuperNode's side: build fedpeft's client for this node's data partition from the config the server sent.

Client k of the config's clients lives on the node holding partition k mod N, so a node can host several
clients. Their own state (optimiser moments, personal tensors) persists on the node's disk between rounds,
under ``state-dir``/run-<run id>/partition-<i>.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flwr.app import Context

from fedpeft.client.app import FederatedClient
from fedpeft.config.schema import RunConfig
from fedpeft.errors import ConfigError

_BUILT: dict[str, FederatedClient] = {}  # per process: the Ray simulation engine keeps its workers alive
DEFAULT_STATE = Path.home() / ".cache" / "fedpeft" / "flower"


def node_client(config_json: str, context: Context) -> FederatedClient:
    """This node's client for the run's config, built once per process."""
    node = context.node_config
    try:
        pid, count = int(node["partition-id"]), int(node["num-partitions"])
    except KeyError as exc:
        raise ConfigError(f"this SuperNode has no {exc} in its node config: start it with "
                          "--node-config 'partition-id=I num-partitions=N'") from None
    key = hashlib.sha256(f"{config_json}|{pid}|{count}|{context.run_id}".encode()).hexdigest()
    if key not in _BUILT:
        root = Path(str(node.get("state-dir", DEFAULT_STATE))).expanduser()
        _BUILT[key] = build_client(RunConfig.model_validate_json(config_json), pid, count,
                                   root / f"run-{context.run_id}" / f"partition-{pid}")
    return _BUILT[key]


def build_client(cfg: RunConfig, partition_id: int, num_partitions: int, state_dir: Path) -> FederatedClient:
    """fedpeft's client, configured exactly as in the simulator, holding only this partition's clients."""
    from fedpeft.experiment import build, make_simulator

    client = make_simulator(build(cfg), state_dir).client  # (from every client's id, as the server does)
    mine = list(client.data)[partition_id::num_partitions]
    client.data = {cid: client.data[cid] for cid in mine}
    return client
