"""The Flower ServerApp and ClientApp of fedpeft. The ServerApp runs fedpeft's own round loop (strategy,
update pipelines, privacy, ledger, evaluation, report) with a FlowerFleet delivering the work; the ClientApp
runs fedpeft's own FederatedClient on the node's data partition. No algorithm lives here.

Run config (``flwr run ... --run-config``): ``config`` (the fedpeft YAML on the server's machine),
``overrides`` (dotted key=value pairs, space separated), ``nodes`` (SuperNodes to wait for),
``round-timeout`` and ``connect-timeout`` (seconds). Node config (``flower-supernode --node-config``):
``partition-id`` and ``num-partitions``; optional ``state-dir`` (default ~/.cache/fedpeft/flower).
"""

from __future__ import annotations

import shlex
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.clientapp import ClientApp
from flwr.serverapp import Grid, ServerApp

from fedpeft.config.load import load_config
from fedpeft.runtime.flower.fleet import FlowerFleet
from fedpeft.runtime.flower.node import node_client
from fedpeft.runtime.flower.records import read_instruction, reply_record

server_app = ServerApp()
client_app = ClientApp()


@server_app.main()
def serve(grid: Grid, context: Context) -> None:
    from fedpeft.experiment import run_experiment

    rc = context.run_config
    cfg = load_config(Path(str(rc["config"])), shlex.split(str(rc.get("overrides", ""))))
    nodes, timeout = int(rc.get("nodes", 2)), float(rc.get("round-timeout", 600))
    connect = float(rc.get("connect-timeout", 120))
    run_experiment(cfg, progress=False, fleet=lambda sim: FlowerFleet.connect(
        grid, sim.client_ids, cfg.model_dump_json(), nodes=nodes, timeout=timeout, connect_timeout=connect))


@client_app.query()
def describe(msg: Message, context: Context) -> Message:
    node = context.node_config
    info = ConfigRecord({"partition_id": int(node["partition-id"]), "num_partitions": int(node["num-partitions"])})
    return Message(RecordDict({"fedpeft": info}), reply_to=msg)


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    ins, config_json = read_instruction(msg.content)
    client = node_client(config_json, context)
    return Message(reply_record(client.fit(ins)), reply_to=msg)
