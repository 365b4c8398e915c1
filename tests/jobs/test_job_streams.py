"""`GET /v3/status/{jobId}/events` on the control plane: the events of a job's state changes, then its final
status body; resuming with Last-Event-ID; and the same access rules as the status route."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from ember.api import create_app
from ember.config import Settings
from ember.job_stream import StreamEvent, parse_events

from .conftest import Headers, RecordingDispatcher


def submit(http: TestClient, headers: Headers) -> str:
    response = http.post("/v3/images/generate-async", json={"prompt": "a lighthouse"}, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def stream(http: TestClient, headers: Headers, job_id: str, **extra: str) -> list[StreamEvent]:
    with http.stream("GET", f"/v3/status/{job_id}/events", headers={**headers, **extra}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        return list(parse_events(response.iter_lines()))


def cancelled_job(http: TestClient, headers: Headers) -> str:
    job_id = submit(http, headers)
    assert http.put(f"/v3/cancel/{job_id}", headers=headers).status_code == 200
    return job_id


def test_a_finished_job_streams_its_state_changes_then_its_status_body(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher
) -> None:
    job_id = cancelled_job(http, headers)
    events = stream(http, headers, job_id)
    assert [(event.id, event.event, event.data["status"]) for event in events[:-1]] == [
        ("1", "state", "pending"), ("2", "state", "cancelled"),
    ]
    assert events[-1].event == "status"
    status: dict[str, Any] = http.get(f"/v3/status/{job_id}", headers=headers).json()
    assert events[-1].data == status


def test_last_event_id_resumes_after_the_event_it_names(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher
) -> None:
    job_id = cancelled_job(http, headers)
    resumed = stream(http, headers, job_id, **{"Last-Event-ID": "1"})
    assert [(event.id, event.event) for event in resumed] == [("2", "state"), (None, "status")]


def test_another_organization_s_job_stream_is_not_found(
    http: TestClient, headers: Headers, other_org_headers: Headers, dispatcher: RecordingDispatcher
) -> None:
    job_id = submit(http, headers)
    response = http.get(f"/v3/status/{job_id}/events", headers=other_org_headers)
    assert response.status_code == 404
    assert response.json()["error_code"] == "unknown_job_id"


def test_a_last_event_id_that_is_not_a_number_is_a_400(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher
) -> None:
    job_id = submit(http, headers)
    response = http.get(f"/v3/status/{job_id}/events", headers={**headers, "Last-Event-ID": "soon"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "invalid_request"


def test_another_replica_on_the_same_database_serves_the_stream(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, settings: Settings
) -> None:
    job_id = cancelled_job(http, headers)
    with TestClient(create_app(settings)) as replica:
        events = stream(replica, headers, job_id)
    assert [event.event for event in events] == ["state", "state", "status"]
    assert events[-1].data["status"] == "cancelled"
