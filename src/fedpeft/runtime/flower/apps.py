"""The Flower ServerApp and ClientApp of fedpeft. The ServerApp runs fedpeft's own round loop (strategy,
update pipelines, privacy, ledger, evaluation, report) with a FlowerFleet delivering the work; the ClientApp
runs fedpeft's own FederatedClient on the node's data partition. No algorithm lives here.

Run config (``flwr run ... --run-config``): ``config`` (the fedpeft YAML on the server's machine),
``overrides`` (dotted key=value pairs, space separated), ``nodes`` (SuperNodes to wait for),
``round-timeout`` and ``connect-timeout`` (seconds). Node config (``flower-supernode --node-config``):
``partition-id`` and ``num-partitions``; optional ``state-dir`` (default ~/.cache/fedpeft/flower).

A deployment starts a fresh ClientApp process for every message, so this module imports only Flower at
the top: the messages that do not train (the partition query, SecAgg+'s key and unmask stages) never pay
for torch and fedpeft's model code (about 3 s a process).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import replace
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.serverapp import Grid, ServerApp

SECURE_FIT = "fitins.config"  # where Flower's SecAgg+ workflow puts a round's instruction (see secure.py)


def _secagg_when_asked(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Flower's SecAgg+ client mod for the rounds the server runs under SecAgg+; other messages pass."""
    if msg.metadata.message_type == MessageType.TRAIN and RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, context, call_next)
    return call_next(msg, context)


server_app = ServerApp()
client_app = ClientApp(mods=[_secagg_when_asked])


@server_app.main()
def serve(grid: Grid, context: Context) -> None:
    from fedpeft.config.load import load_config
    from fedpeft.experiment import run_experiment
    from fedpeft.runtime.flower.fleet import FlowerFleet

    rc = context.run_config
    cfg = load_config(Path(str(rc["config"])), shlex.split(str(rc.get("overrides", ""))))
    nodes, timeout = int(rc.get("nodes", 2)), float(rc.get("round-timeout", 600))
    connect = float(rc.get("connect-timeout", 120))
    run_experiment(cfg, progress=False, fleet=lambda sim: FlowerFleet.connect(
        grid, sim.client_ids, cfg.model_dump_json(), nodes=nodes, timeout=timeout, connect_timeout=connect,
        context=context))


@client_app.query()
def describe(msg: Message, context: Context) -> Message:
    node = context.node_config
    info = ConfigRecord({"partition_id": int(node["partition-id"]), "num_partitions": int(node["num-partitions"])})
    return Message(RecordDict({"fedpeft": info}), reply_to=msg)


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    """One client's round. The reply's metrics also say what this message cost the node beyond training:
    the process's age when the message arrived (interpreter and imports) and the client's build time."""
    arrived = time.time()
    import psutil

    from fedpeft.runtime.flower.node import node_client
    from fedpeft.runtime.flower.records import read_instruction, reply_record
    from fedpeft.runtime.flower.secure import secure_fit

    if SECURE_FIT in msg.content.config_records:  # a SecAgg+ round: the mod masks what this returns
        return secure_fit(node_client(str(msg.content.config_records[SECURE_FIT]["fedpeft_config"]), context), msg)
    ins, config_json = read_instruction(msg.content)
    client = node_client(config_json, context)
    built = time.time()
    reply = client.fit(ins)
    costs = {"process_start_seconds": arrived - psutil.Process().create_time(), "build_seconds": built - arrived}
    return Message(reply_record(replace(reply, metrics={**reply.metrics, **costs})), reply_to=msg)
