"""The server's side of a Flower deployment: fedpeft's round engine decides and validates; this fleet delivers
each round's instructions to the SuperNodes that hold the clients, through Flower's Grid, and sums them under
Flower's SecAgg+ when secure aggregation is on (a ``SecureFleet``). Real clients drop out and straggle on
their own: nothing is simulated here."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence, Set
from typing import Any

import torch
from flwr.app import ConfigRecord, Context, Message, RecordDict
from flwr.serverapp import Grid

from fedpeft.client.messages import FitInstruction, FitReply
from fedpeft.errors import ConfigError, InvalidUpdate, reading
from fedpeft.fleet.base import Delivery, OnReply, SecureResult, Sink
from fedpeft.runtime.flower.records import QUERY, TRAIN, instruction_record, integer, read_reply
from fedpeft.runtime.flower.secure import secure_round

log = logging.getLogger(__name__)


def wait_for_nodes(grid: Grid, expected: int, timeout: float) -> list[int]:
    """The connected SuperNodes' ids, once ``expected`` of them are there; a clear error after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        nodes = sorted(grid.get_node_ids())
        if len(nodes) >= expected:
            return nodes
        if time.monotonic() > deadline:
            raise ConfigError(
                f"only {len(nodes)} of {expected} SuperNodes connected within {timeout:g} s: start "
                "them (flower-supernode ... --node-config 'partition-id=I num-partitions=N'), or lower "
                "the run config's 'nodes'"
            )
        time.sleep(0.5)


def partitions_of(grid: Grid, nodes: Sequence[int], timeout: float) -> dict[int, int]:
    """Ask every node which data partition it holds: partition id -> node id. Every partition 0..N-1 of the
    same N must be held by exactly one node."""
    asks = [Message(RecordDict({"fedpeft": ConfigRecord({})}), dst_node_id=n, message_type=QUERY) for n in nodes]
    held: dict[int, int] = {}
    counts = set()
    for reply in grid.send_and_receive(asks, timeout=timeout):
        if reply.has_error():
            raise ConfigError(
                f"SuperNode {reply.metadata.src_node_id} could not say which partition it holds: {reply.error.reason}"
            )
        info = reply.content.config_records["fedpeft"]
        pid, count = integer(info, "partition_id"), integer(info, "num_partitions")
        if pid in held:
            raise ConfigError(
                f"SuperNodes {held[pid]} and {reply.metadata.src_node_id} both hold partition-id={pid}:"
                " give each node its own --node-config 'partition-id=I'"
            )
        held[pid] = reply.metadata.src_node_id
        counts.add(count)
    if counts != {len(nodes)} or sorted(held) != list(range(len(nodes))):
        raise ConfigError(
            f"{len(nodes)} SuperNodes hold partitions {sorted(held)} of num-partitions {sorted(counts)}: "
            f"each must hold one of partition-id=0..{len(nodes) - 1} with num-partitions={len(nodes)}"
        )
    return held


class FlowerFleet:
    """Sends a round's instructions as Flower messages and reads the replies; a client that errs or does not
    answer within ``timeout`` seconds is reported, never waited on forever. Client k of the config's clients
    lives on the node holding partition k mod N.

    Example:
        >>> fleet = FlowerFleet(grid, node_of={"c0": 1234}, config_json=cfg.model_dump_json())  # doctest: +SKIP
        >>> fleet.fit(1, [FitInstruction(1, "c0", payload)]).replies["c0"]  # doctest: +SKIP
    """

    protocol = "flower secagg+"

    def __init__(
        self,
        grid: Grid,
        node_of: dict[str, int],
        config_json: str,
        timeout: float = 600.0,
        context: Context | None = None,
    ) -> None:
        self.grid = grid
        self.context = context  # the ServerApp's, for Flower's SecAgg+ workflow
        self.node_of = node_of
        self.config_json = config_json
        self.timeout = timeout

    @classmethod
    def connect(
        cls,
        grid: Grid,
        client_ids: Sequence[str],
        config_json: str,
        nodes: int,
        timeout: float,
        connect_timeout: float = 120.0,
        context: Context | None = None,
    ) -> FlowerFleet:
        held = partitions_of(grid, wait_for_nodes(grid, nodes, connect_timeout), connect_timeout)
        node_of = {cid: held[k % len(held)] for k, cid in enumerate(client_ids)}
        log.info("%d clients on %d SuperNodes", len(client_ids), len(held))
        return cls(grid, node_of, config_json, timeout, context)

    def busy(self) -> Set[str]:
        return frozenset()

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None

    def secure_round(
        self,
        instructions: Sequence[FitInstruction],
        weights: Mapping[str, float],
        spec: Mapping[str, tuple[tuple[int, ...], torch.dtype]],
        *,
        bound: float,
        threshold: float,
        on_reply: OnReply = None,
    ) -> SecureResult:
        """The round through Flower's SecAgg+ (``fedpeft.runtime.flower.secure``): each survivor sent one
        64-bit masked word per coordinate; every other client counts as dropped."""
        if self.context is None:
            raise ConfigError("Flower's SecAgg+ needs the ServerApp's context: FlowerFleet.connect(..., context=)")
        if not instructions:
            return SecureResult(None, [])
        result = secure_round(
            self.grid,
            self.context,
            self.node_of,
            instructions,
            weights,
            spec,
            self.config_json,
            bound=bound,
            threshold=threshold,
            timeout=self.timeout,
        )
        words = sum(math.prod(shape) for shape, _ in spec.values())
        result.bytes_up = {cid: 8 * words for cid in result.metrics}
        result.dropped = {
            i.client_id: "no masked update reached the SecAgg+ sum (dropped out or too late)"
            for i in instructions
            if i.client_id not in result.accepted
        }
        return result

    def fit(
        self, round_: int, instructions: Sequence[FitInstruction], on_reply: OnReply = None, sink: Sink = None
    ) -> Delivery:
        """(Replies are returned together: ``sink`` is not used.)"""
        sent = {}
        for ins in instructions:
            msg = Message(
                instruction_record(ins, self.config_json),
                dst_node_id=self.node_of[ins.client_id],
                message_type=TRAIN,
                group_id=str(ins.round),
            )
            sent[ins.client_id] = msg
        replies = list(self.grid.send_and_receive(list(sent.values()), timeout=self.timeout))
        ids = {m.metadata.message_id: cid for cid, m in sent.items()}  # (set when the grid pushed them)
        out: dict[str, FitReply | str] = {}
        for reply in replies:
            cid = ids.get(reply.metadata.reply_to_message_id)
            if cid is None:
                continue
            if reply.has_error():
                out[cid] = f"client failed: {reply.error.reason}"
            else:
                try:
                    with reading(cid, "reply"):
                        out[cid] = read_reply(reply.content, cid)
                except InvalidUpdate as exc:
                    out[cid] = f"malformed reply: {exc}"
            if on_reply is not None:
                on_reply(cid)
        for cid in sent:
            if cid not in out:
                out[cid] = f"no reply within {self.timeout:g} s (node {self.node_of[cid]})"
        return Delivery(out)
