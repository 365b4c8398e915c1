"""The webhook outbox: a delivery row per (event, URL) that should hear about it, added in the event's own
transaction so that nothing is announced that did not happen and nothing that happened goes unannounced."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.store.event_tables import DeliveryState, JobWebhook, WebhookDelivery, WebhookEndpoint
from ember.store.tables import utcnow


@dataclass(frozen=True)
class Targets:
    """Who hears about one job: the request's own webhook and the organization's endpoints."""

    job_id: str
    org_id: uuid.UUID
    hook: JobWebhook | None
    endpoints: list[WebhookEndpoint]

    def enqueue(self, session: Session, *, seq: int, topic: str) -> int:
        """Queue event `seq` for each target whose filter takes `topic`; returns how many were queued."""
        now = utcnow()
        queued = []
        if self.hook is not None and topic in self.hook.events:
            queued.append(_delivery(self, seq, topic, self.hook.url, None, self.hook.base_url, now))
        for endpoint in self.endpoints:
            if topic in endpoint.events:
                queued.append(_delivery(self, seq, topic, endpoint.url, endpoint.id, endpoint.base_url, now))
        session.add_all(queued)
        return len(queued)


def targets(session: Session, job_id: str, org_id: uuid.UUID) -> Targets:
    endpoints = list(session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id)))
    return Targets(job_id, org_id, session.get(JobWebhook, job_id), endpoints)


def _delivery(
    targets: Targets, seq: int, topic: str, url: str, endpoint_id: uuid.UUID | None, base_url: str, now: datetime
) -> WebhookDelivery:
    return WebhookDelivery(
        org_id=targets.org_id, job_id=targets.job_id, event_seq=seq, topic=topic, url=url, endpoint_id=endpoint_id,
        base_url=base_url, state=DeliveryState.pending, attempts=0, next_attempt_at=now, created_at=now,
    )
