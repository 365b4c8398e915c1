"""The engine worker on a real Ray: cancelling running work, time limits, and failures that end a job."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from ember.identity import ClientCredentials
from ember.jobs.events import PROGRESS
from ember.jobs.records import create_job
from ember.store.database import transaction
from ember.store.event_tables import JobEvent
from ember.store.tables import Job, JobKind, JobState, utcnow

from .conftest import Live, org_of
from .test_end_to_end import wait_final


def long_job(live: Live, credentials: ClientCredentials, *, steps: int, age_s: float = 0.0, seeds: int = 4) -> str:
    """A job with many denoising steps, recorded and dispatched as the API does (the wire has no step count)."""
    request: dict[str, Any] = {
        "modelVersion": "image3", "baseModel": "tiny", "prompt": "a slow cat", "mimetype": "image/jpeg",
        "seeds": list(range(1, seeds + 1)), "width": 1024, "height": 1024, "steps": steps,
    }
    with transaction(live.runtime.sessions) as session:
        job = create_job(session, org_id=org_of(live.runtime, credentials), client_pk=None, kind=JobKind.generate,
                         request=request)
        job.created_at = utcnow() - timedelta(seconds=age_s)
        job_id = job.id
    live.runtime.dispatcher.submit(job_id)
    return job_id


def wait_progress(live: Live, headers: dict[str, str], job_id: str, at_least: int) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    status: dict[str, Any] = {}
    while time.monotonic() < deadline and status.get("status") in (None, "pending", "running"):
        status = live.http.get(f"/v3/status/{job_id}", headers=headers).json()
        if status["status"] == "running" and status["progress"] >= at_least:
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {at_least}%: {status}")


def stored_outputs(live: Live, job_id: str) -> list[str]:
    root = live.runtime.settings.data_dir / "blobs" / "outputs" / job_id.rsplit(":", 1)[-1]
    return sorted(path.name for path in root.glob("*")) if root.exists() else []


def test_cancelling_a_running_job_stops_it_at_the_next_step_without_outputs(live: Live) -> None:
    credentials, headers = live.client()
    job_id = long_job(live, credentials, steps=900)
    running = wait_progress(live, headers, job_id, at_least=1)
    cancelled_at = time.monotonic()
    response = live.http.put(f"/v3/cancel/{job_id}", headers=headers)
    assert (response.status_code, response.json()["status"]) == (200, "cancel_pending")
    final = wait_final(live.http, headers, f"/v3/status/{job_id}")
    stopped_after = time.monotonic() - cancelled_at
    assert final["status"] == "cancelled"
    assert running["progress"] < 50
    # A step of this job takes a small fraction of a second; stopping took far less than what remained.
    assert stopped_after < 5.0
    assert stored_outputs(live, job_id) == []


def test_a_job_past_its_time_limit_ends_as_timeout_without_outputs(live: Live) -> None:
    credentials, headers = live.client()
    limit = live.runtime.settings.job_timeout_s
    job_id = long_job(live, credentials, steps=900, age_s=limit - 3)
    final = wait_final(live.http, headers, f"/v3/status/{job_id}")
    assert (final["status"], final["error_code"]) == ("timeout", "job_timeout")
    assert stored_outputs(live, job_id) == []
    assert live.http.put(f"/v3/cancel/{job_id}", headers=headers).status_code == 410


def test_a_job_the_engine_cannot_carry_out_fails_with_a_message(live: Live) -> None:
    credentials, headers = live.client()
    with transaction(live.runtime.sessions) as session:
        job = create_job(
            session, org_id=org_of(live.runtime, credentials), client_pk=None, kind=JobKind.generate,
            request={"modelVersion": "image3", "baseModel": "no-such-model", "prompt": "a cat",
                     "mimetype": "image/jpeg", "seeds": [1], "width": 1024, "height": 1024},
        )
        job_id = job.id
    live.runtime.dispatcher.submit(job_id)
    final = wait_final(live.http, headers, f"/v3/status/{job_id}")
    assert final["status"] == "failed"
    assert final["message"]


def test_a_worker_records_attempts_and_timestamps(live: Live) -> None:
    credentials, headers = live.client()
    accepted = live.http.post("/v3/images/generate-async", json={"prompt": "a cat", "size": {"width": 1024,
                              "height": 1024}}, headers=headers)
    final = wait_final(live.http, headers, accepted.json()["statusUrl"])
    assert final["status"] == "succeeded"
    with live.runtime.sessions() as session:
        job = session.get(Job, accepted.json()["jobId"])
        assert job is not None
    assert job.state is JobState.succeeded and job.attempts == 1 and job.worker_id
    assert job.created_at <= job.started_at <= job.finished_at  # type: ignore[operator]
    assert job.heartbeat_at is not None


def test_a_cpu_worker_carries_one_generation_job_at_a_time(live: Live) -> None:
    """Two jobs handed to one CPU worker at once (it takes two calls at a time) both succeed, and the second
    one's denoising starts only after the first has been signed, stored and recorded: on a CPU, storing one
    job beside the next one's denoising slows the denoising more than the overlap saves (docs/jobs.md). The
    engine's own lock alone would let the second job denoise while the first is stored."""
    credentials, headers = live.client()
    jobs = [long_job(live, credentials, steps=80, seeds=2) for _ in range(2)]
    for job_id in jobs:
        assert wait_final(live.http, headers, f"/v3/status/{job_id}")["status"] == "succeeded"
    with live.runtime.sessions() as session:
        spans = []
        for job_id in jobs:
            written = session.scalars(
                select(JobEvent.created_at).where(JobEvent.job_id == job_id, JobEvent.kind == PROGRESS)
            ).all()
            job = session.get(Job, job_id)
            assert job is not None and job.finished_at is not None
            assert len(written) >= 2  # progress was written while it ran, not only with its end
            spans.append((min(written), job.finished_at))
    (first_progress, first_end), (second_progress, _) = sorted(spans)
    assert first_progress < first_end <= second_progress
