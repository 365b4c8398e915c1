"""The engine pool hears of a worker's death from Ray and takes its job back at once (not after the heartbeat
timeout); SIGTERM on a worker drains it: the running job finishes in its first attempt, then the worker exits
and the pool starts another. Jobs go in through the HTTP API of the live app."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from ember.store.tables import Job

from .conftest import Live, wait_for


def submit(live: Live, headers: dict[str, str], variations: int = 4) -> str:
    response = live.http.post(
        "/v3/images/generate-async",
        json={"prompt": "a slow red boat", "numVariations": variations, "size": {"width": 1024, "height": 1024}},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def row(live: Live, job_id: str) -> Job:
    with live.runtime.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job


def pool_workers(live: Live) -> list[dict[str, Any]]:
    return wait_for(
        "the pool's worker checked",
        lambda: [w for w in live.runtime.dispatcher.worker_states() if w.get("check") == "ok"],
        120, interval=0.2,
    )


def test_a_dead_workers_job_is_taken_back_within_5_s_and_finished_by_another(live: Live) -> None:
    import ray

    _, headers = live.client()
    pool_workers(live)
    job_id = submit(live, headers)
    running = wait_for("the job running", lambda: (job := row(live, job_id)).state == "running" and job, 60)
    ray.kill(ray.get_actor(running.worker_id, namespace="ember"))
    killed = time.monotonic()
    wait_for("the job taken back", lambda: row(live, job_id).worker_id != running.worker_id, 5)
    assert time.monotonic() - killed <= 5
    final = wait_for("the job final", lambda: (body := live.http.get(f"/v3/status/{job_id}", headers=headers)
                                              .json())["status"] in ("succeeded", "failed") and body, 120, 0.2)
    assert final["status"] == "succeeded" and final["attempts"] == 2


def test_sigterm_drains_a_worker_its_running_job_finishes_in_its_first_attempt(live: Live) -> None:
    _, headers = live.client()
    before = pool_workers(live)
    job_id = submit(live, headers)
    running = wait_for("the job running", lambda: (job := row(live, job_id)).state == "running" and job, 60)
    worker = next(w for w in before if w["id"] == running.worker_id)
    os.kill(worker["pid"], signal.SIGTERM)
    final = wait_for("the job final", lambda: (body := live.http.get(f"/v3/status/{job_id}", headers=headers)
                                              .json())["status"] in ("succeeded", "failed") and body, 120, 0.2)
    assert final["status"] == "succeeded" and final["attempts"] == 1
    wait_for("the drained worker gone", lambda: not _alive(worker["pid"]), 30, 0.2)
    after = pool_workers(live)
    assert worker["id"] not in {w["id"] for w in after}
    again = submit(live, headers, variations=1)
    wait_for("a job on the new worker", lambda: row(live, again).state == "succeeded", 120, 0.2)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
