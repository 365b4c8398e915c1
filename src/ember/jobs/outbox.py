"""The webhook outbox: a delivery row per (event, URL) that should hear about it, added in the event's own
transaction so that nothing is announced that did not happen and nothing that happened goes unannounced."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.store.event_tables import DeliveryState, JobWebhook, WebhookDelivery, WebhookEndpoint
from ember.store.tables import utcnow


def enqueue(session: Session, *, job_id: str, org_id: uuid.UUID, seq: int, topic: str) -> int:
    """Queue the event for the request's own webhook and each endpoint of the organization whose filter takes
    `topic`; returns how many deliveries were queued."""
    now = utcnow()
    queued = 0
    hook = session.get(JobWebhook, job_id)
    if hook is not None and topic in hook.events:
        session.add(_delivery(org_id, job_id, seq, topic, hook.url, None, hook.base_url, now))
        queued += 1
    for endpoint in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id)):
        if topic in endpoint.events:
            session.add(_delivery(org_id, job_id, seq, topic, endpoint.url, endpoint.id, endpoint.base_url, now))
            queued += 1
    return queued


def _delivery(
    org_id: uuid.UUID, job_id: str, seq: int, topic: str, url: str, endpoint_id: uuid.UUID | None, base_url: str,
    now: datetime,
) -> WebhookDelivery:
    return WebhookDelivery(
        org_id=org_id, job_id=job_id, event_seq=seq, topic=topic, url=url, endpoint_id=endpoint_id,
        base_url=base_url, state=DeliveryState.pending, attempts=0, next_attempt_at=now, created_at=now,
    )
