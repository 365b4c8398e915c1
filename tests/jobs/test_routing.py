"""Routing by the custom models a worker holds, through the HTTP API with two real engine workers: a job for
models A and B goes to the worker that holds A, not to the first idle one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ember.store.tables import Job

from .conftest import Live, add_trained_model, live_app, live_settings, wait_for

pytestmark = pytest.mark.slow
CUSTOM = {"x-model-version": "image3_custom"}


@pytest.fixture(scope="module")
def two_workers(ray_address: str, model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """An app whose pool has two engine workers (half a CPU each, beside the session's live app)."""
    settings = live_settings(
        tmp_path_factory.mktemp("routing") / "data", ray_address, model_dir, engine_workers=2,
        engine_worker_num_cpus=0.5,
    )
    with live_app(settings, ray_address, start_timeout_s=120) as live:
        wait_for("both workers checked", lambda: len(
            [w for w in live.runtime.dispatcher.worker_states() if w.get("check") == "ok"]) == 2, 120)
        yield live


def submit(live: Live, headers: dict[str, str], body: dict[str, Any]) -> str:
    custom = CUSTOM if "customModelId" in body or "customModels" in body else {}
    response = live.http.post("/v3/images/generate-async", json=body, headers={**headers, **custom})
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def finished_row(live: Live, job_id: str) -> Job:
    def final() -> Job | None:
        with live.runtime.sessions() as session:
            job = session.get(Job, job_id)
        return job if job is not None and job.state in ("succeeded", "failed", "cancelled", "timeout") else None

    job: Job = wait_for(f"job {job_id} final", final, 120)
    assert job.state == "succeeded", (job.error_code, job.error_message)
    return job


def test_a_job_for_two_models_goes_to_the_worker_holding_one_of_them(two_workers: Live, tiny_lora: bytes) -> None:
    credentials, headers = two_workers.client()
    one, two, added = (add_trained_model(two_workers.runtime, credentials, tiny_lora) for _ in range(3))
    # Sent together, the two jobs go to the two workers (the second to the one that is not busy).
    jobs = {model: submit(two_workers, headers, {"prompt": "a zorb", "customModelId": model, "numVariations": 4})
            for model in (one, two)}
    holders = {model: finished_row(two_workers, job_id).worker_id for model, job_id in jobs.items()}
    assert holders[one] != holders[two]
    # With both workers idle, a job without a custom model shows which worker a tie goes to; the model held by
    # the other worker is the one the next jobs ask for, so that a tie cannot pass for routing.
    tie_goes_to = finished_row(two_workers, submit(two_workers, headers, {"prompt": "a cube"})).worker_id
    held = two if holders[one] == tie_goes_to else one
    holder = holders[held]
    assert holder != tie_goes_to
    # A job for `held` and a model no worker holds goes to the worker holding `held`.
    both = submit(two_workers, headers, {
        "prompt": "a zorb", "customModels": [{"id": added, "weight": 0.7}, {"id": held}], "numVariations": 1,
    })
    assert finished_row(two_workers, both).worker_id == holder
    # That worker now holds both, and is preferred for either one alone.
    again = submit(two_workers, headers, {"prompt": "a zorb", "customModels": [{"id": added}], "numVariations": 1})
    assert finished_row(two_workers, again).worker_id == holder
