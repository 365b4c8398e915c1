"""GET /v3/status/{jobId}, its alias /jobs/result/{jobId}, and PUT /v3/cancel/{jobId}, over stored job rows."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ember.api.runtime import Runtime
from ember.identity import ClientCredentials
from ember.jobs.records import create_job
from ember.store.database import transaction
from ember.store.tables import ApiClient, Job, JobKind, JobState

from .conftest import Headers


def stored_job(runtime: Runtime, credentials: ClientCredentials, state: JobState, **values: Any) -> str:
    with transaction(runtime.sessions) as session:
        org_id = session.scalar(select(ApiClient.org_id).where(ApiClient.client_id == credentials.client_id))
        assert org_id is not None
        job = create_job(session, org_id=org_id, client_pk=None, kind=JobKind.generate, request={"prompt": "a cat"})
        job.state = state
        for name, value in values.items():
            setattr(job, name, value)
        return job.id


def test_a_pending_job_reports_status_and_progress(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    job_id = stored_job(runtime, credentials, JobState.pending)
    assert http.get(f"/v3/status/{job_id}", headers=headers).json() == {
        "jobId": job_id, "status": "pending", "progress": 0
    }


def test_a_running_job_reports_its_progress(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    job_id = stored_job(runtime, credentials, JobState.running, progress=40)
    assert http.get(f"/v3/status/{job_id}", headers=headers).json()["progress"] == 40


def test_a_succeeded_job_carries_its_result_with_signed_urls(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    result = {
        "size": {"width": 1024, "height": 1024},
        "outputs": [{"seed": 3, "key": "outputs/abc/0-3.jpg", "mimetype": "image/jpeg"}],
        "contentClass": "photo",
    }
    job_id = stored_job(runtime, credentials, JobState.succeeded, progress=100, result=result)
    body = http.get(f"/v3/status/{job_id}", headers=headers).json()
    assert (body["status"], body["progress"]) == ("succeeded", 100)
    assert body["result"]["size"] == {"width": 1024, "height": 1024}
    assert body["result"]["contentClass"] == "photo"
    [output] = body["result"]["outputs"]
    assert output["seed"] == 3
    assert output["image"]["url"].startswith("http://testserver/outputs/outputs/abc/0-3.jpg?expires=")


@pytest.mark.parametrize("state", [JobState.failed, JobState.cancelled, JobState.timeout])
def test_an_ended_job_reports_an_error_code_and_message(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials, state: JobState
) -> None:
    job_id = stored_job(runtime, credentials, state, error_code="some_code", message="what happened")
    assert http.get(f"/v3/status/{job_id}", headers=headers).json() == {
        "jobId": job_id, "status": state.value, "error_code": "some_code", "message": "what happened"
    }


def test_the_result_alias_answers_like_status(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    job_id = stored_job(runtime, credentials, JobState.running, progress=10)
    alias = http.get(f"/jobs/result/{job_id}", headers=headers)
    assert alias.status_code == 200
    assert alias.json() == http.get(f"/v3/status/{job_id}", headers=headers).json()


def test_an_unknown_job_is_404(http: TestClient, headers: Headers) -> None:
    response = http.get("/v3/status/urn:ff:jobs:host:00000000-0000-4000-8000-000000000000", headers=headers)
    assert response.status_code == 404
    assert response.json() == {"error_code": "unknown_job_id", "message": "The job id is unknown."}


def test_another_organizations_job_is_404_for_status_and_cancel(
    http: TestClient, other_org_headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    job_id = stored_job(runtime, credentials, JobState.running)
    assert http.get(f"/v3/status/{job_id}", headers=other_org_headers).status_code == 404
    assert http.get(f"/jobs/result/{job_id}", headers=other_org_headers).status_code == 404
    assert http.put(f"/v3/cancel/{job_id}", headers=other_org_headers).status_code == 404


def test_status_needs_a_token(http: TestClient, runtime: Runtime, credentials: ClientCredentials) -> None:
    job_id = stored_job(runtime, credentials, JobState.pending)
    assert http.get(f"/v3/status/{job_id}").status_code == 403


def test_cancelling_a_pending_job_ends_it_at_once(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    job_id = stored_job(runtime, credentials, JobState.pending)
    response = http.put(f"/v3/cancel/{job_id}", headers=headers)
    assert (response.status_code, response.json()) == (200, {"jobId": job_id, "status": "cancelled"})
    assert http.get(f"/v3/status/{job_id}", headers=headers).json()["status"] == "cancelled"


def test_cancelling_a_running_job_asks_its_worker_to_stop(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials
) -> None:
    job_id = stored_job(runtime, credentials, JobState.running)
    response = http.put(f"/v3/cancel/{job_id}", headers=headers)
    assert (response.status_code, response.json()["status"]) == (200, "cancel_pending")
    with runtime.sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.state is JobState.cancel_pending


@pytest.mark.parametrize(
    ("state", "status_code", "error_code"),
    [
        (JobState.cancel_pending, 409, "job_already_canceled"),
        (JobState.cancelled, 409, "job_already_canceled"),
        (JobState.succeeded, 409, "job_completed"),
        (JobState.failed, 409, "job_cancel_failed"),
        (JobState.timeout, 410, "job_timeout"),
    ],
)
def test_cancelling_an_ended_job_is_refused_with_its_reason(
    http: TestClient, headers: Headers, runtime: Runtime, credentials: ClientCredentials,
    state: JobState, status_code: int, error_code: str,
) -> None:
    job_id = stored_job(runtime, credentials, state)
    response = http.put(f"/v3/cancel/{job_id}", headers=headers)
    assert (response.status_code, response.json()["error_code"]) == (status_code, error_code)


def test_cancelling_an_unknown_job_is_404(http: TestClient, headers: Headers) -> None:
    response = http.put("/v3/cancel/urn:ff:jobs:host:00000000-0000-4000-8000-000000000000", headers=headers)
    assert (response.status_code, response.json()["error_code"]) == (404, "unknown_job_id")
