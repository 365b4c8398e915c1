"""The SDK (and so the CLI's progress bars) follows a job through its event stream, and falls back to polling
the status route where a proxy drops the stream."""

from __future__ import annotations

import httpx

from ember.client import EmberClient

from .conftest import Live


class DroppingStreams(httpx.HTTPTransport):
    """A proxy in front of the server that answers 502 to every event stream request."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(502, text="Bad Gateway")
        return super().handle_request(request)


def followed(client: EmberClient, job_id: str) -> list[dict[str, object]]:
    return list(client.follow(job_id, poll_s=0.05, timeout_s=120))


def test_the_sdk_follows_a_job_through_its_stream_without_polling(live: Live, live_url: str) -> None:
    credentials, _ = live.client()
    paths: list[str] = []
    http = httpx.Client(event_hooks={"request": [lambda request: paths.append(request.url.path)]}, timeout=60)
    with EmberClient(live_url, credentials.client_id, credentials.client_secret, http=http) as client:
        job_id = client.generate_async("a cat", numVariations=1)["jobId"]
        statuses = followed(client, job_id)
    progress = [status["progress"] for status in statuses if status["status"] == "running"]
    assert len(progress) >= 2 and progress == sorted(progress)
    assert statuses[-1]["status"] == "succeeded" and "result" in statuses[-1]
    assert f"/v3/status/{job_id}" not in paths and paths.count(f"/v3/status/{job_id}/events") == 1


def test_the_sdk_polls_when_a_proxy_drops_the_stream(live: Live, live_url: str) -> None:
    credentials, _ = live.client()
    http = httpx.Client(transport=DroppingStreams(), timeout=60)
    with EmberClient(live_url, credentials.client_id, credentials.client_secret, http=http) as client:
        job_id = client.generate_async("a cat", numVariations=1)["jobId"]
        final = client.wait(job_id, poll_s=0.05, timeout_s=120)
    assert final["status"] == "succeeded" and final["result"]["outputs"]
