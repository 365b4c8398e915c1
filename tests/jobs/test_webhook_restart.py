"""A server killed hard while a webhook delivery waits for its retry: the server started again on the same
database delivers it, once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from ember.store.database import open_engine, session_factory
from ember.store.event_tables import DeliveryState, WebhookDelivery

from .conftest import stop_pool
from .test_restart import first_client_headers, free_port, start_server
from .webhook_receiver import Receiver, start_receiver, stop_receiver

pytestmark = pytest.mark.slow
WEBHOOK_SETTINGS = {"webhook_allow_private": "1", "webhook_retry_base_s": "0.3", "webhook_interval_s": "0.1"}


def deliveries(data_dir: Path) -> list[tuple[DeliveryState, int]]:
    engine = open_engine(f"sqlite:///{data_dir / 'ember.db'}")
    try:
        with session_factory(engine)() as session:
            return [(row.state, row.attempts) for row in session.scalars(select(WebhookDelivery))]
    finally:
        engine.dispose()


def test_a_delivery_pending_when_the_server_is_killed_is_delivered_after_the_restart(
    tmp_path: Path, ray_address: str, model_dir: Path
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    receiver = start_receiver(Receiver(down=True))
    server = start_server(data_dir, port, ray_address, model_dir, **WEBHOOK_SETTINGS)
    try:
        headers = first_client_headers(base, data_dir)
        receiver.secret = httpx.get(f"{base}/v3/webhooks/secret", headers=headers).json()["secret"]
        response = httpx.post(
            f"{base}/v3/images/generate-async", json={"prompt": "a cat", "webhook": receiver.url},
            headers=headers, timeout=30,
        )
        assert response.status_code == 202, response.text
        deadline = time.monotonic() + 90
        while not any(attempts for _, attempts in deliveries(data_dir)):
            assert time.monotonic() < deadline, "the delivery was never tried"
            time.sleep(0.05)  # another process's database: no event to await
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    [(state, _)] = deliveries(data_dir)
    assert state is DeliveryState.pending
    receiver.down = False
    server = start_server(data_dir, port, ray_address, model_dir, **WEBHOOK_SETTINGS)
    try:
        [delivery] = receiver.wait_for(1, timeout=60)
        assert delivery.verified and delivery.body["type"] == "job.completed"
        deadline = time.monotonic() + 30
        while deliveries(data_dir)[0][0] is not DeliveryState.delivered:
            assert time.monotonic() < deadline, "the success was never recorded"
            time.sleep(0.05)
    finally:
        server.terminate()
        server.wait(timeout=60)
        stop_receiver(receiver)
        stop_pool(f"sqlite:///{data_dir / 'ember.db'}")
    assert len(receiver.deliveries) == 1
