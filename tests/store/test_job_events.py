"""The job event log and the webhook outbox on SQLite and PostgreSQL: events numbered per job as its state
changes (one by one and in bulk), deliveries queued with the events their filters take, and claims that never
give one delivery to two senders."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ember.api.views import status_body
from ember.jobs import events, records
from ember.jobs.webhook_delivery import DeliveryPolicy, WebhookSender
from ember.jobs.webhooks import subscribe
from ember.store.database import transaction
from ember.store.event_tables import JobEvent, WebhookDelivery
from ember.store.tables import Job, JobKind, Organization, utcnow


def new_job(sessions: sessionmaker[Session], webhook: list[str] | None = None) -> str:
    with transaction(sessions) as session:
        org = Organization(id=uuid.uuid4(), name=f"org-{uuid.uuid4().hex[:8]}")
        session.add(org)
        session.flush()
        job = records.create_job(session, org_id=org.id, client_pk=None, kind=JobKind.generate, request={})
        if webhook is not None:
            subscribe(session, job.id, "http://127.0.0.1:9/hook", webhook, "http://ember.test")
        return job.id


def logged(sessions: sessionmaker[Session], job_id: str) -> list[tuple[int, str, object]]:
    with sessions() as session:
        rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq))
        return [(row.seq, row.kind, row.data.get("status", row.data.get("step"))) for row in rows]


def test_a_job_s_state_changes_and_steps_are_numbered_in_order(sessions: sessionmaker[Session]) -> None:
    job_id = new_job(sessions)
    with transaction(sessions) as session:
        records.claim(session, job_id, "worker-1")
    with transaction(sessions) as session:
        assert records.record_progress(session, job_id, 50)
        events.record_steps(session, job_id, [events.Step(events.PROGRESS, {"step": n}) for n in (1, 2)])
    with transaction(sessions) as session:
        records.succeed(session, job_id, {"outputs": []})
    assert logged(sessions, job_id) == [
        (1, "state", "pending"), (2, "state", "running"), (3, "progress", 1), (4, "progress", 2),
        (5, "state", "succeeded"),
    ]


def test_a_claim_returns_the_attempt_the_request_and_the_kind_once(sessions: sessionmaker[Session]) -> None:
    """A worker's claim reads what the job asks for in the statement that claims it; a second claim gets nothing."""
    request = {"modelId": str(uuid.uuid4()), "config": {"steps": 3}}
    with transaction(sessions) as session:
        org = Organization(id=uuid.uuid4(), name=f"org-{uuid.uuid4().hex[:8]}")
        session.add(org)
        session.flush()
        job_id = records.create_job(session, org_id=org.id, client_pk=None, kind=JobKind.train, request=request).id
    with transaction(sessions) as session:
        first = records.claim_job(session, job_id, "worker-1")
    with transaction(sessions) as session:
        second = records.claim_job(session, job_id, "worker-2")
    assert (first, second) == (records.Claimed(1, request, JobKind.train), None)
    assert logged(sessions, job_id) == [(1, "state", "pending"), (2, "state", "running")]


def test_the_reaper_s_bulk_timeout_logs_each_job_s_new_state(sessions: sessionmaker[Session]) -> None:
    job_ids = [new_job(sessions) for _ in range(2)]
    with transaction(sessions) as session:
        records.sweep(
            session, now=utcnow() + timedelta(hours=1), job_timeout_s=60, heartbeat_timeout_s=30, max_attempts=2,
            dispatched=set(), pending_grace_s=0,
        )
    assert [logged(sessions, job_id)[-1] for job_id in job_ids] == [(2, "state", "timeout")] * 2


def test_deliveries_are_queued_only_for_the_events_the_filter_takes(sessions: sessionmaker[Session]) -> None:
    job_id = new_job(sessions, webhook=["completed"])
    with transaction(sessions) as session:
        records.claim(session, job_id, "worker-1")
        records.succeed(session, job_id, {"outputs": []})
    with sessions() as session:
        queued = [(row.topic, row.event_seq) for row in session.scalars(select(WebhookDelivery))]
    assert queued == [("completed", 3)]


def test_two_senders_never_claim_the_same_delivery(sessions: sessionmaker[Session]) -> None:
    for _ in range(4):
        job_id = new_job(sessions, webhook=["completed"])
        with transaction(sessions) as session:
            job = session.get(Job, job_id)
            assert job is not None
            records.request_cancel(session, job)
    senders = [
        WebhookSender(sessions, b"k" * 32, lambda base: lambda key: key, DeliveryPolicy(), status_body=status_body)
        for _ in range(2)
    ]
    now = utcnow()
    first, second = (sender.claim(now) for sender in senders)
    assert len(first) == 4 and second == []
