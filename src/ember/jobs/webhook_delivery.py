"""The delivery loop: every API process runs one; each claims due outbox rows with a lease (a conditional
UPDATE, so two replicas never hold one row), sends them signed per Standard Webhooks, and records the outcome
while it still holds the lease. A success is recorded before the lease ends, so it is never sent again; a
process that dies between sending and recording leaves the row to be sent again once the lease runs out
(at-least-once: receivers deduplicate on `webhook-id`). Failures are retried with exponential backoff."""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker
from standardwebhooks import Webhook

from ember.jobs import events
from ember.jobs.events import SignUrl
from ember.jobs.webhook_secrets import organization_secret, unseal
from ember.safe_fetch import (
    ALLOWED_SCHEMES,
    ReferenceUnavailable,
    checked_address,
    pinned_url,
    resolve_host,
)
from ember.store.database import transaction
from ember.store.event_tables import DeliveryState, WebhookDelivery, WebhookEndpoint
from ember.store.tables import Job, utcnow

log = logging.getLogger("ember.jobs.webhooks")
BATCH = 20
MAX_DELAY_S = 4 * 3600.0
ERROR_CHARS = 500


@dataclass(frozen=True)
class DeliveryPolicy:
    """How deliveries are sent and retried: the first retry after `retry_base_s`, each later one twice as late
    (at most MAX_DELAY_S apart), until `retry_for_s` after the event; then the delivery is given up."""

    retry_base_s: float = 5.0
    retry_for_s: float = 26 * 3600.0
    timeout_s: float = 10.0
    interval_s: float = 1.0
    allow_private: bool = False

    @property
    def lease_s(self) -> float:
        # Longer than any send can take, so a live sender never loses its row to another replica.
        return 3 * self.timeout_s + 5

    def delay_s(self, attempts: int) -> float:
        return float(min(self.retry_base_s * 2 ** max(0, attempts - 1), MAX_DELAY_S))


StatusBody = Callable[[Job, SignUrl], dict[str, Any]]


class WebhookSender:
    """Sends due deliveries from a background thread (or one pass at a time from `deliver_due`)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        server_key: bytes,
        signer: Callable[[str], SignUrl],
        policy: DeliveryPolicy,
        transport: httpx.BaseTransport | None = None,
        *,
        status_body: StatusBody,
    ) -> None:
        self.sessions = sessions
        self.status_body = status_body  # the job's final status as GET /v3/status shows it (the API's view)
        self.server_key = server_key
        self.signer = signer
        self.policy = policy
        self.transport = transport
        self.sender_id = f"{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ember-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.policy.timeout_s + 5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                sent = self.deliver_due()
            except Exception:  # the loop must outlive a database hiccup
                log.exception("webhook delivery pass failed")
                sent = 0
            if not sent:
                self._stopping.wait(self.policy.interval_s)

    def deliver_due(self, now: datetime | None = None) -> int:
        """Claim and send the deliveries due now; returns how many were attempted."""
        claimed = self.claim(now or utcnow())
        for delivery_id in claimed:
            self._send(delivery_id)
        return len(claimed)

    def claim(self, now: datetime) -> list[uuid.UUID]:
        """Lease up to BATCH due deliveries to this sender; returns their ids (none another sender holds)."""
        free = or_(WebhookDelivery.lease_until.is_(None), WebhookDelivery.lease_until < now)
        claimed = []
        with transaction(self.sessions) as session:
            due = list(
                session.scalars(
                    select(WebhookDelivery.id)
                    .where(WebhookDelivery.state == DeliveryState.pending, WebhookDelivery.next_attempt_at <= now, free)
                    .order_by(WebhookDelivery.next_attempt_at)
                    .limit(BATCH)
                )
            )
            for delivery_id in due:
                taken = session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == DeliveryState.pending, free)
                    .values(lease_until=now + timedelta(seconds=self.policy.lease_s), leased_by=self.sender_id)
                )
                if getattr(taken, "rowcount", 0):
                    claimed.append(delivery_id)
        return claimed

    def _send(self, delivery_id: uuid.UUID) -> None:
        with transaction(self.sessions) as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            url, secret = delivery.url, self._secret(session, delivery)
            body = json.dumps(self._payload(session, delivery), separators=(",", ":"))
        message_id = f"msg_{delivery_id.hex}"
        timestamp = utcnow()
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": Webhook(secret).sign(message_id, timestamp, body),
        }
        status: int | None = None
        error: str | None = None
        try:
            status = self._post(url, body, headers)
            if not 200 <= status < 300:
                error = f"the receiver answered HTTP {status}"
        except (httpx.HTTPError, ReferenceUnavailable) as failure:
            error = str(failure) or type(failure).__name__
        self._record(delivery_id, status, error)

    def _post(self, url: str, body: str, headers: dict[str, str]) -> int:
        # The host is checked and pinned again at each send: its DNS answer may have changed since the request.
        scheme, host, port, address = checked_address(
            url, allow_private=self.policy.allow_private, resolve=resolve_host, subject="webhook"
        )
        name = f"[{host}]" if ":" in host else host
        headers["host"] = name if port == ALLOWED_SCHEMES[scheme] else f"{name}:{port}"
        with httpx.Client(
            timeout=self.policy.timeout_s, follow_redirects=False, transport=self.transport, trust_env=False
        ) as client:
            response = client.post(
                pinned_url(url, address, port), content=body.encode(), headers=headers,
                extensions={"sni_hostname": host} if scheme == "https" else {},
            )
            return response.status_code

    def _record(self, delivery_id: uuid.UUID, status: int | None, error: str | None) -> None:
        now = utcnow()
        mine = (WebhookDelivery.id == delivery_id, WebhookDelivery.leased_by == self.sender_id)
        with transaction(self.sessions) as session:
            delivery = session.get(WebhookDelivery, delivery_id)
            if delivery is None:
                return
            attempts = delivery.attempts + 1
            values: dict[str, Any] = {
                "attempts": attempts, "last_status": status, "lease_until": None, "leased_by": None,
                "last_error": None if error is None else error[:ERROR_CHARS],
            }
            if error is None:
                values.update(state=DeliveryState.delivered, delivered_at=now)
            elif now - delivery.created_at >= timedelta(seconds=self.policy.retry_for_s):
                values.update(state=DeliveryState.failed)
                log.warning("webhook %s given up after %d attempts: %s", delivery_id, attempts, error)
            else:
                values.update(next_attempt_at=now + timedelta(seconds=self.policy.delay_s(attempts)))
            session.execute(update(WebhookDelivery).where(*mine).values(**values))

    def _secret(self, session: Session, delivery: WebhookDelivery) -> str:
        if delivery.endpoint_id is not None:
            endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
            if endpoint is not None:
                return unseal(self.server_key, endpoint.secret)
        return organization_secret(session, delivery.org_id, self.server_key)

    def _payload(self, session: Session, delivery: WebhookDelivery) -> dict[str, Any]:
        """The message body, made at send time so its URLs are freshly signed: `completed` carries the job's
        final status body (as GET /v3/status returns it), the others the stream's event."""
        sign = self.signer(delivery.base_url)
        event = events.event_at(session, delivery.job_id, delivery.event_seq)
        job = session.get(Job, delivery.job_id)
        data: dict[str, Any]
        if delivery.topic == "completed" and job is not None:
            data = self.status_body(job, sign)
        elif event is not None:
            data = events.wire_data(delivery.job_id, event.kind, event.data, sign)
        else:
            data = {"jobId": delivery.job_id}
        created = event.created_at if event is not None else delivery.created_at
        return {
            "type": f"job.{delivery.topic}",
            "timestamp": created.isoformat().replace("+00:00", "Z"),
            "data": {**data, "eventId": delivery.event_seq},
        }

