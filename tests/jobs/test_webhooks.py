"""Webhooks on the control plane: a request's webhook and an organization's endpoints get one signed
delivery (Standard Webhooks, verified with `standardwebhooks`) per event they asked for, a failing receiver
gets it on a later try, and URLs that may not be called are refused with a 422."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ember.api.runtime import Runtime
from ember.config import Settings
from ember.jobs.webhook_delivery import WebhookSender
from ember.store.event_tables import DeliveryState, WebhookDelivery

from .conftest import Headers, RecordingDispatcher, migrated_settings
from .webhook_receiver import Receiver, start_receiver, stop_receiver


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return migrated_settings(
        data_dir=tmp_path / "data", ray_address="disabled", webhook_allow_private=True,
        webhook_retry_base_s=0.05, webhook_interval_s=0.05,
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = start_receiver(Receiver())
    yield receiver
    stop_receiver(receiver)


def org_secret(http: TestClient, headers: Headers) -> str:
    response = http.get("/v3/webhooks/secret", headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["secret"])


def generate(http: TestClient, headers: Headers, **extra: Any) -> Any:
    return http.post("/v3/images/generate-async", json={"prompt": "a lighthouse", **extra}, headers=headers)


def cancelled_job_with_webhook(http: TestClient, headers: Headers, url: str) -> str:
    response = generate(http, headers, webhook=url)
    assert response.status_code == 202, response.text
    job_id = str(response.json()["jobId"])
    assert http.put(f"/v3/cancel/{job_id}", headers=headers).status_code == 200
    return job_id


def test_a_request_s_webhook_gets_one_signed_completed_delivery(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, receiver: Receiver
) -> None:
    receiver.secret = org_secret(http, headers)
    job_id = cancelled_job_with_webhook(http, headers, receiver.url)
    [delivery] = receiver.wait_for(1)
    assert delivery.verified
    assert delivery.body["type"] == "job.completed"
    status = http.get(f"/v3/status/{job_id}", headers=headers).json()
    assert {key: value for key, value in delivery.body["data"].items() if key != "eventId"} == status


def test_a_receiver_that_fails_twice_gets_the_delivery_on_the_third_try(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, receiver: Receiver
) -> None:
    receiver.secret, receiver.fail_first = org_secret(http, headers), 2
    cancelled_job_with_webhook(http, headers, receiver.url)
    [delivery] = receiver.wait_for(1)
    assert receiver.requests == 3
    assert delivery.verified


def test_every_try_of_one_delivery_carries_the_same_webhook_id(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, receiver: Receiver
) -> None:
    receiver.secret, receiver.fail_first = org_secret(http, headers), 1
    cancelled_job_with_webhook(http, headers, receiver.url)
    [delivery] = receiver.wait_for(1)
    assert receiver.webhook_ids == [delivery.headers["webhook-id"]] * 2
    assert delivery.headers["webhook-id"].startswith("msg_")


def test_a_registered_endpoint_hears_about_the_organization_s_jobs_with_its_own_secret(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, receiver: Receiver
) -> None:
    created = http.post("/v3/webhooks", json={"url": receiver.url}, headers=headers)
    assert created.status_code == 201, created.text
    receiver.secret = created.json()["secret"]
    assert receiver.secret.startswith("whsec_") and created.json()["events"] == ["completed"]
    job_id = str(generate(http, headers).json()["jobId"])
    http.put(f"/v3/cancel/{job_id}", headers=headers)
    [delivery] = receiver.wait_for(1)
    assert delivery.verified and delivery.body["data"]["jobId"] == job_id


def test_endpoints_are_listed_without_their_secret_and_can_be_removed(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, receiver: Receiver
) -> None:
    body = {"url": receiver.url, "events": ["start"]}
    endpoint_id = http.post("/v3/webhooks", json=body, headers=headers).json()["id"]
    listed = http.get("/v3/webhooks", headers=headers).json()["webhooks"]
    assert [(item["id"], item["events"], "secret" in item) for item in listed] == [(endpoint_id, ["start"], False)]
    assert http.delete(f"/v3/webhooks/{endpoint_id}", headers=headers).status_code == 204
    assert http.get("/v3/webhooks", headers=headers).json()["webhooks"] == []


def test_another_organization_s_endpoint_cannot_be_removed(
    http: TestClient, headers: Headers, other_org_headers: Headers, dispatcher: RecordingDispatcher,
    receiver: Receiver,
) -> None:
    endpoint_id = http.post("/v3/webhooks", json={"url": receiver.url}, headers=headers).json()["id"]
    response = http.delete(f"/v3/webhooks/{endpoint_id}", headers=other_org_headers)
    assert response.status_code == 404
    assert len(http.get("/v3/webhooks", headers=headers).json()["webhooks"]) == 1


def test_a_webhook_url_that_is_not_http_is_a_422(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher
) -> None:
    response = generate(http, headers, webhook="ftp://example.com/hook")
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["loc"] == ["body", "webhook"]
    assert dispatcher.submitted == []


def test_a_webhook_on_a_private_address_is_refused_unless_allowed(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, runtime: Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runtime.settings, "webhook_allow_private", False)
    for url in ("http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest"):
        response = generate(http, headers, webhook=url)
        assert response.status_code == 422, url
        assert "non-public address" in response.json()["validation_errors"][0]["msg"]
    registered = http.post("/v3/webhooks", json={"url": "http://192.168.1.5/hook"}, headers=headers)
    assert registered.status_code == 422


def test_an_unknown_webhook_event_filter_value_is_a_422(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, receiver: Receiver
) -> None:
    response = generate(http, headers, webhook=receiver.url, webhookEventsFilter=["finished"])
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["loc"][:2] == ["body", "webhookEventsFilter"]


def test_an_event_filter_without_a_webhook_is_a_422(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher
) -> None:
    response = generate(http, headers, webhookEventsFilter=["completed"])
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["loc"] == ["body", "webhookEventsFilter"]


def test_servers_sharing_a_database_send_each_delivery_once(
    http: TestClient, headers: Headers, dispatcher: RecordingDispatcher, receiver: Receiver, runtime: Runtime
) -> None:
    replicas = [
        WebhookSender(
            runtime.sessions, runtime.token_key, lambda base: lambda key: key, runtime.webhooks.policy,
            status_body=runtime.webhooks.status_body,
        )
        for _ in range(2)
    ]
    for replica in replicas:
        replica.start()
    try:
        receiver.secret = org_secret(http, headers)
        for _ in range(6):
            cancelled_job_with_webhook(http, headers, receiver.url)
        receiver.wait_for(6)
        deadline = time.monotonic() + 30
        while delivery_states(runtime) != [(DeliveryState.delivered, 1)] * 6:
            assert time.monotonic() < deadline, delivery_states(runtime)
            time.sleep(0.05)  # the senders record outcomes in their own threads
    finally:
        for replica in replicas:
            replica.stop()
    assert receiver.requests == 6


def delivery_states(runtime: Runtime) -> list[tuple[DeliveryState, int]]:
    with runtime.sessions() as session:
        return [(row.state, row.attempts) for row in session.scalars(select(WebhookDelivery))]
