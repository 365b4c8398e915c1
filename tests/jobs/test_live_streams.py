"""Progress streams and webhooks of real jobs on a real local Ray, read over a socket: a generation's every
step and its final body, a training job's steps, losses and sample URLs, a reconnect with Last-Event-ID that
loses nothing, and one signed webhook delivery per event a request asked for."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from ember.job_stream import StreamEvent, parse_events

from .conftest import Live
from .trainable import start_training, trainable_model
from .webhook_receiver import Receiver, start_receiver, stop_receiver

pytestmark = pytest.mark.slow
TRAINING_STEPS = 110  # past the tiny preset's first sample (at step 100)


def read(base: str, headers: dict[str, str], job_id: str, *, stop_after: int | None = None,
         last_event_id: str | None = None) -> list[StreamEvent]:
    """The stream's events; with `stop_after`, the connection is dropped after that many (a client gone)."""
    extra = {"Last-Event-ID": last_event_id} if last_event_id else {}
    seen: list[StreamEvent] = []
    with httpx.stream("GET", f"{base}/v3/status/{job_id}/events", headers={**headers, **extra}, timeout=180) as r:
        assert r.status_code == 200, r.read()
        for event in parse_events(r.iter_lines()):
            seen.append(event)
            if stop_after is not None and len(seen) >= stop_after:
                break
    return seen


def generate(base: str, headers: dict[str, str], **extra: object) -> str:
    response = httpx.post(
        f"{base}/v3/images/generate-async", json={"prompt": "a zorb toy", "numVariations": 2, **extra},
        headers=headers, timeout=30,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def test_a_generation_stream_delivers_every_step_then_the_status_body(live: Live, live_url: str) -> None:
    _, headers = live.client()
    job_id = generate(live_url, headers)
    events = read(live_url, headers, job_id)
    steps = [event.data for event in events if event.event == "progress"]
    total = steps[0]["totalSteps"]
    assert [step["step"] for step in steps] == list(range(1, total + 1))
    assert all("etaSeconds" in step for step in steps)
    states = [event.data["status"] for event in events if event.event == "state"]
    assert states == ["pending", "running", "succeeded"]
    assert [int(event.id) for event in events[:-1]] == list(range(1, len(events)))
    assert events[-1].event == "status"
    # Each body signs its output URLs when it is written, to the second: bodies written in different seconds
    # differ only in the URLs' expiry and signature.
    assert unsigned(events[-1].data) == unsigned(httpx.get(f"{live_url}/v3/status/{job_id}", headers=headers).json())


def unsigned(body: Any) -> Any:
    """A status body with the query (expiry and signature) cut off every URL in it."""
    if isinstance(body, dict):
        return {key: value.split("?", 1)[0] if key == "url" and isinstance(value, str) else unsigned(value)
                for key, value in body.items()}
    if isinstance(body, list):
        return [unsigned(item) for item in body]
    return body


@pytest.fixture(scope="module")
def training_stream(live: Live, live_url: str) -> tuple[dict[str, str], str, list[StreamEvent], list[StreamEvent]]:
    """One training job read twice: dropped after a few events and resumed with Last-Event-ID, then whole."""
    _, headers = live.client()
    asset_id = trainable_model(live.http, headers)
    job_id = start_training(live.http, headers, asset_id, steps=TRAINING_STEPS, seed=5)
    first = read(live_url, headers, job_id, stop_after=5)
    resumed = read(live_url, headers, job_id, last_event_id=first[-1].id)
    whole = read(live_url, headers, job_id)
    return headers, job_id, first + resumed, whole


def test_a_training_stream_reports_steps_with_loss_and_eta(
    training_stream: tuple[dict[str, str], str, list[StreamEvent], list[StreamEvent]],
) -> None:
    _, _, _, whole = training_stream
    steps = [event.data for event in whole if event.event == "progress"]
    assert [step["step"] for step in steps] == list(range(1, TRAINING_STEPS + 1))
    assert all(isinstance(step["loss"], float) and step["totalSteps"] == TRAINING_STEPS for step in steps)
    assert whole[-1].event == "status" and whole[-1].data["status"] == "succeeded"


def test_a_training_stream_carries_a_url_for_each_new_sample(
    live_url: str, training_stream: tuple[dict[str, str], str, list[StreamEvent], list[StreamEvent]],
) -> None:
    _, _, _, whole = training_stream
    samples = [event.data for event in whole if event.event == "sample"]
    assert [sample["step"] for sample in samples] == [100]
    image = httpx.get(samples[0]["url"], timeout=30)
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")


def test_reconnecting_with_last_event_id_loses_nothing(
    training_stream: tuple[dict[str, str], str, list[StreamEvent], list[StreamEvent]],
    unsigned: Callable[[Any], Any],
) -> None:
    _, _, reconnected, whole = training_stream
    assert [(event.id, event.event) for event in reconnected] == [(event.id, event.event) for event in whole]
    assert [unsigned(event.data) for event in reconnected[:-1]] == [unsigned(event.data) for event in whole[:-1]]



@pytest.fixture
def receiver(live: Live, monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    monkeypatch.setattr(live.runtime.settings, "webhook_allow_private", True)
    monkeypatch.setattr(
        live.runtime.webhooks, "policy", dataclasses.replace(live.runtime.webhooks.policy, allow_private=True)
    )
    receiver = start_receiver(Receiver())
    yield receiver
    stop_receiver(receiver)


def test_a_webhook_gets_one_signed_delivery_per_event_it_asked_for(
    live: Live, live_url: str, receiver: Receiver
) -> None:
    _, headers = live.client()
    receiver.secret = httpx.get(f"{live_url}/v3/webhooks/secret", headers=headers).json()["secret"]
    job_id = generate(
        live_url, headers, webhook=receiver.url, webhookEventsFilter=["start", "progress", "completed"]
    )
    events = read(live_url, headers, job_id)
    expected = [event for event in events[:-1] if event.data.get("status") != "pending"]
    deliveries = receiver.wait_for(len(expected))
    assert all(delivery.verified for delivery in deliveries)
    assert sorted(delivery.body["data"]["eventId"] for delivery in deliveries) == [int(e.id) for e in expected]
    assert len({delivery.headers["webhook-id"] for delivery in deliveries}) == len(deliveries)
    topics = [delivery.body["type"] for delivery in sorted(deliveries, key=lambda d: d.body["data"]["eventId"])]
    assert topics[0] == "job.start" and topics[-1] == "job.completed"
    assert set(topics[1:-1]) == {"job.progress"}
