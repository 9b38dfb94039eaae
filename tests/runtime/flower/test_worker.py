"""The node worker: a real worker process on a Unix socket, against the same request served in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from fedpeft.build import build_setup as build
from fedpeft.config import load_config
from fedpeft.pipeline.compression import UpdatePipeline
from fedpeft.runtime.flower.node import NodePlace
from fedpeft.runtime.flower.worker import (
    WorkerError,
    ask_worker,
    fit_request,
    place_header,
    socket_path,
    stop_worker,
)


def test_the_worker_answers_as_an_in_process_fit_and_keeps_its_client(tiny_config: dict, tmp_path: Path) -> None:
    cfg = load_config(tiny_config)
    setup = build(cfg)
    cid = next(iter(setup.client_data))
    payload, _ = UpdatePipeline().encode(setup.trainable.snapshot(), seed=0)
    header = {"round": 1, "client_id": cid, "config": {}, "fedpeft_config": cfg.model_dump_json(), "decoded": False}
    here = NodePlace(0, 1, run_id=7, state_dir=tmp_path / "here", use_worker=False)
    expected, body = fit_request({**header, "place": place_header(here)}, payload)
    worker = NodePlace(0, 1, run_id=7, state_dir=tmp_path / ("a-long-folder-name" * 6))  # (> a socket path)
    try:
        first, first_body = ask_worker(worker, header, payload)
        assert first_body == body and first["num_examples"] == expected["num_examples"] > 0
        assert first["metrics"]["worker_start_seconds"] > 0
        with pytest.raises(WorkerError, match="KeyError"):  # a client this node does not hold
            ask_worker(worker, {**header, "client_id": "nobody"}, payload)
        second, _ = ask_worker(worker, {**header, "round": 2}, payload)  # the same worker, still alive
        assert second["metrics"]["worker_start_seconds"] == 0 and second["metrics"]["build_seconds"] < 0.5
        assert oct(socket_path(worker).stat().st_mode)[-3:] == "600"
    finally:
        assert stop_worker(worker)
    assert not stop_worker(worker)
