"""`/readyz` is ready once an engine worker has passed its own database and blob-store check, and names the
device and dtype of every such worker."""

from __future__ import annotations

import time

from .conftest import Live


def test_readyz_lists_each_engine_workers_device_and_dtype(live: Live) -> None:
    deadline = time.monotonic() + 60
    response = live.http.get("/readyz")
    while response.status_code != 200 and time.monotonic() < deadline:
        assert response.json()["checks"]["engine_workers"] != "ok", response.text
        time.sleep(0.2)
        response = live.http.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"]["engine_workers"] == "ok"
    assert response.json()["engineWorkers"] == ["cpu (float32)"]
