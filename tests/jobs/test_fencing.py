"""Fencing: an attempt taken for lost (a paused process) that wakes up after another attempt finished the job
changes nothing: every output of the finished job stays, its result and state stay, and the status shows the
attempt count. The job goes in through the HTTP API; both attempts are the real engine worker on `tiny`."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ember.api.runtime import Runtime
from ember.blobs import BlobStore
from ember.config import Settings
from ember.jobs import records
from ember.store.database import transaction
from ember.store.tables import utcnow
from ember.worker.actor import EngineWorker, WorkerConfig, output_key

from .conftest import Headers, RecordingDispatcher, migrated_settings

SEEDS = [1, 2, 3, 4]


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path) -> Settings:
    return migrated_settings(
        data_dir=tmp_path / "data", ray_address="disabled", model_dir=model_dir, default_base_model="tiny"
    )


class PausingStore:
    """The worker's own blob store, paused after its first write until released: what a long GC pause or a
    stalled connection looks like from the database's side (the attempt goes silent mid-job)."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.paused = threading.Event()
        self.release = threading.Event()

    def put(self, key: str, data: bytes, content_type: str | None = None) -> None:
        self.inner.put(key, data, content_type)
        if not self.paused.is_set():
            self.paused.set()
            assert self.release.wait(120)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def worker(runtime: Runtime, name: str) -> EngineWorker:
    settings = runtime.settings
    config = WorkerConfig(
        database_url=settings.database_url, blob_url=settings.blob_url, model_dir=str(settings.model_dir),
        data_dir=str(settings.data_dir), heartbeat_interval_s=3600,
    )
    return EngineWorker(config, name)


def test_a_stale_attempt_leaves_every_output_of_the_finished_job_intact(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, runtime: Runtime,
    unsigned: Callable[[Any], Any],
) -> None:
    response = http.post(
        "/v3/images/generate-async",
        json={"prompt": "a red fox", "numVariations": 4, "seeds": SEEDS, "size": {"width": 1024, "height": 1024}},
        headers={**headers, "x-accept-mimetype": "image/png"},
    )
    assert response.status_code == 202, response.text
    job_id = response.json()["jobId"]
    assert [job for job, _ in dispatcher.submitted] == [job_id]

    stale = worker(runtime, "worker-a")
    pausing = PausingStore(stale.blobs)
    stale.blobs = pausing  # type: ignore[assignment]
    outcome: dict[str, str] = {}
    first = threading.Thread(target=lambda: outcome.setdefault("stale", stale.run(job_id)))
    first.start()
    assert pausing.paused.wait(120), "the first attempt never wrote an output"

    # The first attempt is silent past the heartbeat timeout: the reaper takes the job back, another worker
    # runs it to the end.
    with transaction(runtime.sessions) as session:
        swept = records.sweep(
            session, now=utcnow() + timedelta(seconds=3600), job_timeout_s=7200, heartbeat_timeout_s=30,
            max_attempts=3, dispatched=set(), pending_grace_s=0,
        )
    assert job_id in swept.redispatch
    assert worker(runtime, "worker-b").run(job_id) == "succeeded"
    finished = http.get(f"/v3/status/{job_id}", headers=headers).json()
    assert finished["status"] == "succeeded" and finished["attempts"] == 2
    urls = [output["image"]["url"] for output in finished["result"]["outputs"]]
    assert len(urls) == 4

    # The stale attempt wakes up, stores its other outputs, finds the job is not its own and cleans up.
    pausing.release.set()
    first.join(120)
    assert outcome["stale"] == "succeeded"  # the state the job is in; the stale attempt did not end it

    after = http.get(f"/v3/status/{job_id}", headers=headers).json()
    assert unsigned(after) == unsigned(finished)  # signed URLs carry their expiry, so they differ by the second
    for url in urls:
        image = http.get(url.removeprefix("http://testserver"))
        assert image.status_code == 200 and image.headers["content-type"] == "image/png", url
    stale_keys = [output_key(job_id, 1, index, seed, "image/png") for index, seed in enumerate(SEEDS)]
    assert not any(runtime.blobs.exists(key) for key in stale_keys), "the stale attempt left its outputs behind"
