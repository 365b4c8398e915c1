"""`/readyz` names the device and dtype of every engine worker once it has started."""

from __future__ import annotations

import time

from .conftest import Live


def test_readyz_lists_each_engine_workers_device_and_dtype(live: Live) -> None:
    deadline = time.monotonic() + 60
    workers = ["starting"]
    while "starting" in workers and time.monotonic() < deadline:
        response = live.http.get("/readyz")
        assert response.status_code == 200, response.text
        workers = response.json()["engineWorkers"]
        time.sleep(0.2)
    assert workers == ["cpu (float32)"]
