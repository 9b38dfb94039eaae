from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from fedpeft.client.app import FitInstruction, FitReply
from fedpeft.errors import InvalidUpdate
from fedpeft.runtime.flower.records import instruction_record, read_instruction, read_reply, reply_record


def test_an_instruction_and_a_reply_cross_unchanged() -> None:
    ins = FitInstruction(3, "c7", b"\x00\x01payload\xff", {"local_steps": 4, "rank": 2})
    back, config = read_instruction(instruction_record(ins, '{"seed": 1}'))
    assert back == ins and config == '{"seed": 1}'
    reply = FitReply("c7", bytes(range(256)) * 3, 12, {"train_loss": 0.5, "samples": 48.0})
    assert read_reply(reply_record(reply), "c7") == reply


def test_a_reply_claiming_another_client_or_without_payload_is_refused() -> None:
    content = reply_record(FitReply("c1", b"x", 1, {}))
    with pytest.raises(InvalidUpdate, match="does not come from that client"):
        read_reply(content, "c2")
    bad = RecordDict(
        {
            "fedpeft": ConfigRecord({"client_id": "c1", "num_examples": 1}),
            "payload": ArrayRecord({"payload": Array(np.zeros(3, dtype=np.float32))}),
        }
    )
    with pytest.raises(InvalidUpdate, match="no fedpeft payload"):
        read_reply(bad, "c1")
    with pytest.raises(InvalidUpdate, match="not a fedpeft instruction"):
        read_instruction(RecordDict({}))
