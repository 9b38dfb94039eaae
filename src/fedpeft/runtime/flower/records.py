"""Between fedpeft's fit instructions and replies and Flower's records. Nothing else crosses the wire:
tensors travel as fedpeft's safetensors payload bytes (one uint8 array, chunked by Flower), everything
else as plain config and metric values. Nothing is ever unpickled."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, MetricRecord, RecordDict

from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.errors import InvalidUpdate

TRAIN = "train"  # the message type of a round's work
QUERY = "query"  # the message type that asks a node which data partition it holds


def integer(record: ConfigRecord, key: str) -> int:
    """An integer field of a received record; anything else is refused."""
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidUpdate(f"the record's {key!r} must be an integer, not {value!r}")
    return value


def _bytes(payload: bytes) -> ArrayRecord:
    return ArrayRecord({"payload": Array(np.frombuffer(payload, dtype=np.uint8))})


def _payload(content: RecordDict, sender: str) -> bytes:
    record = content.array_records.get("payload")
    array = None if record is None else record.get("payload")
    if array is None or array.dtype != "uint8" or len(array.shape) != 1:
        raise InvalidUpdate(f"{sender}: the message carries no fedpeft payload (one uint8 array named 'payload')")
    return array.numpy().tobytes()


def instruction_record(ins: FitInstruction, config_json: str) -> RecordDict:
    """A round's instruction for one client, with the run's fedpeft config (the node builds from it)."""
    meta = ConfigRecord(
        {
            "round": ins.round,
            "client_id": ins.client_id,
            "config": json.dumps(ins.config),
            "fedpeft_config": config_json,
        }
    )
    return RecordDict({"fedpeft": meta, "payload": _bytes(ins.payload)})


def read_instruction(content: RecordDict) -> tuple[FitInstruction, str]:
    meta = content.config_records.get("fedpeft")
    if meta is None:
        raise InvalidUpdate("the message is not a fedpeft instruction (no 'fedpeft' config record)")
    config: dict[str, Any] = json.loads(str(meta["config"]))
    ins = FitInstruction(integer(meta, "round"), str(meta["client_id"]), _payload(content, "server"), config)
    return ins, str(meta["fedpeft_config"])


def reply_record(reply: FitReply) -> RecordDict:
    meta = ConfigRecord({"client_id": reply.client_id, "num_examples": reply.num_examples})
    metrics = MetricRecord({k: float(v) for k, v in reply.metrics.items()})
    return RecordDict({"fedpeft": meta, "metrics": metrics, "payload": _bytes(reply.payload)})


def read_reply(content: RecordDict, expected_client: str) -> FitReply:
    """A client's reply; one that claims another client's id, or carries no payload, is refused."""
    meta = content.config_records.get("fedpeft")
    if meta is None or meta.get("client_id") != expected_client:
        raise InvalidUpdate(
            f"{expected_client}: the reply does not come from that client "
            f"(client_id {None if meta is None else meta.get('client_id')!r})"
        )
    metrics = content.metric_records.get("metrics") or MetricRecord({})
    return FitReply(
        expected_client,
        _payload(content, expected_client),
        integer(meta, "num_examples"),
        {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))},
    )
