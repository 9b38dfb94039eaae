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

import json
import shlex
import time
from pathlib import Path

from flwr.app import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters, parameters_to_ndarrays
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
from flwr.compat.common import recorddict_compat as compat
from flwr.serverapp import Grid, ServerApp

from fedpeft.client.messages import FitReply

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
    from fedpeft.config.load import for_deployment, load_config
    from fedpeft.recipe import run_experiment
    from fedpeft.runtime.flower.fleet import FlowerFleet

    rc = context.run_config
    cfg = for_deployment(load_config(Path(str(rc["config"])), shlex.split(str(rc.get("overrides", "")))))
    nodes, timeout = int(rc.get("nodes", 2)), float(rc.get("round-timeout", 600))
    connect = float(rc.get("connect-timeout", 120))
    run_experiment(
        cfg,
        progress="lines",  # the ServerApp's log
        fleet=lambda client_ids: FlowerFleet.connect(
            grid,
            client_ids,
            cfg.model_dump_json(),
            nodes=nodes,
            timeout=timeout,
            connect_timeout=connect,
            context=context,
        ),
    )


@client_app.query()
def describe(msg: Message, context: Context) -> Message:
    from fedpeft.runtime.flower.node import NodePlace

    place = NodePlace.of(context.node_config, context.run_id)
    info = ConfigRecord({"partition_id": place.partition_id, "num_partitions": place.num_partitions})
    return Message(RecordDict({"fedpeft": info}), reply_to=msg)


@client_app.train()
def train(msg: Message, context: Context) -> Message:
    """One client's round, trained by the node's worker (or here, with node config ``worker=false``). Under
    SecAgg+ the decoded update goes back as float arrays for ``secaggplus_mod`` to mask. The reply's
    metrics also say what this message cost the node beyond training: the ClientApp process's age when the
    message arrived, starting the node worker (first message only) and building the client (likewise)."""
    arrived = time.time()
    import psutil

    from fedpeft.runtime.flower.node import NodePlace
    from fedpeft.runtime.flower.records import integer, read_instruction, reply_record
    from fedpeft.runtime.flower.worker import ask_worker, fit_request, place_header

    place = NodePlace.of(context.node_config, context.run_id)
    secure = SECURE_FIT in msg.content.config_records
    if secure:  # the instruction as Flower's SecAgg+ workflow packs it (see secure.py)
        meta = msg.content.config_records[SECURE_FIT]
        params = compat.arrayrecord_to_parameters(msg.content.array_records["fitins.parameters"], keep_input=True)
        payload = parameters_to_ndarrays(params)[0].tobytes()
        header = {
            "round": integer(meta, "round"),
            "client_id": str(meta["client_id"]),
            "config": json.loads(str(meta["config"])),
            "fedpeft_config": str(meta["fedpeft_config"]),
        }
    else:
        ins, config_json = read_instruction(msg.content)
        payload = ins.payload
        header = {"round": ins.round, "client_id": ins.client_id, "config": ins.config, "fedpeft_config": config_json}
    header["decoded"] = secure
    if place.use_worker:
        answer, body = ask_worker(place, header, payload)
    else:
        answer, body = fit_request({**header, "place": place_header(place)}, payload)
    metrics = {**answer["metrics"], "process_start_seconds": arrived - psutil.Process().create_time()}
    if secure:
        from safetensors.numpy import load

        named = load(body)
        arrays = [named[n] for n in sorted(named)]  # (by name, as the server reads them)
        res = FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), integer(meta, "weight"), metrics)
        return Message(compat.fitres_to_recorddict(res, keep_input=True), reply_to=msg)
    reply = FitReply(str(answer["client_id"]), body, int(answer["num_examples"]), metrics)
    return Message(reply_record(reply), reply_to=msg)
