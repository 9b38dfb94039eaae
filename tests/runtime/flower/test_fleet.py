"""The Flower fleet against a stand-in Grid (a unit test of the fleet alone; the real SuperLink is in
tests/integration/test_flower.py)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest
from flwr.app import ConfigRecord, Error, Message, RecordDict
from flwr.supercore.task_identity import TaskIdentity

from fedpeft.client.app import FitInstruction, FitReply
from fedpeft.errors import ConfigError
from fedpeft.runtime.flower.fleet import FlowerFleet, partitions_of
from fedpeft.runtime.flower.records import read_instruction, reply_record


@pytest.fixture(autouse=True)
def _inside_a_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Flower sets in a ServerApp process before it builds messages."""
    for name, value in (("_run_id", 1), ("_node_id", 0), ("_task_id", 0)):
        monkeypatch.setattr(TaskIdentity, name, value)


class Grid:
    """Answers each message by ``answer(msg)`` (None: no reply), as a SuperLink would."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.sent: list[Message] = []

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> list[Message]:
        out = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = f"m{len(self.sent)}"
            self.sent.append(msg)
            reply = self.answer(msg)
            if reply is not None:
                reply.metadata.__dict__["_reply_to_message_id"] = msg.metadata.message_id
                reply.metadata.__dict__["_src_node_id"] = msg.metadata.dst_node_id
                out.append(reply)
        return out


def _train(msg: Message) -> Message | None:
    ins, _ = read_instruction(msg.content)
    if ins.client_id == "silent":
        return None
    if ins.client_id == "crash":
        return Message(Error(code=1, reason="ValueError: out of memory"), reply_to=msg)
    return Message(reply_record(FitReply(ins.client_id, ins.payload[::-1], 5, {"train_loss": 1.0})), reply_to=msg)


def test_replies_come_back_by_client_and_missing_or_failed_ones_say_why() -> None:
    grid = Grid(_train)
    nodes = {"a": 11, "silent": 12, "crash": 11}
    fleet = FlowerFleet(grid, nodes, config_json="{}", timeout=5)  # type: ignore[arg-type]
    out = fleet.fit(1, [FitInstruction(1, c, b"abc") for c in ("a", "silent", "crash")]).replies
    assert isinstance(out["a"], FitReply) and out["a"].payload == b"cba"
    assert out["silent"] == "no reply within 5 s (node 12)"
    assert out["crash"] == "client failed: ValueError: out of memory"
    assert [m.metadata.dst_node_id for m in grid.sent] == [11, 12, 11]


def _holds(pids: dict[int, int], count: int):
    def answer(msg: Message) -> Message:
        info = ConfigRecord({"partition_id": pids[msg.metadata.dst_node_id], "num_partitions": count})
        return Message(RecordDict({"fedpeft": info}), reply_to=msg)

    return answer


def test_nodes_are_mapped_by_the_partition_they_hold_and_a_clash_is_refused() -> None:
    assert partitions_of(Grid(_holds({7: 1, 9: 0}, 2)), [7, 9], 5) == {1: 7, 0: 9}  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="both hold partition-id=0"):
        partitions_of(Grid(_holds({7: 0, 9: 0}, 2)), [7, 9], 5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="num-partitions=2"):
        partitions_of(Grid(_holds({7: 0, 9: 1}, 3)), [7, 9], 5)  # type: ignore[arg-type]
