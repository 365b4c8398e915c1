"""A running generation's database work happens beside the engine: progress and step events reach the row and
the event log, a cancel raises the stop flag the engine reads at every step, and the engine's callbacks
never touch the database."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ember.api.runtime import Runtime
from ember.config import Settings
from ember.engine.types import Progress
from ember.jobs import records
from ember.store.database import open_engine, session_factory, transaction
from ember.store.event_tables import JobEvent
from ember.store.tables import ApiClient, Job, JobKind
from ember.worker.actor import STOP_CHECK_S, GenerationTracker

from .conftest import add_client, wait_for


def running_job(sessions: sessionmaker[Session], org_id: Any) -> tuple[str, int]:
    with transaction(sessions) as session:
        job_id = records.create_job(session, org_id=org_id, client_pk=None, kind=JobKind.generate, request={}).id
    with transaction(sessions) as session:
        attempt = records.claim(session, job_id, "worker-a")
    assert attempt == 1
    return job_id, attempt


def test_progress_is_written_beside_the_engine_and_a_cancel_raises_the_stop_flag(
    settings: Settings, runtime: Runtime
) -> None:
    add_client(runtime, "acme")
    sessions = session_factory(open_engine(settings.database_url))
    with sessions() as session:
        org_id = session.scalar(select(ApiClient.org_id))
    job_id, attempt = running_job(sessions, org_id)
    tracker = GenerationTracker(sessions, job_id, attempt)
    try:
        for step in range(1, 6):
            tracker.on_progress(Progress(step=step, total=20, eta_s=1.0))
        assert not tracker.should_stop()

        def progress() -> int:
            with sessions() as session:
                return int(session.scalar(select(Job.progress).where(Job.id == job_id)) or 0)

        assert wait_for("progress written", progress, 5, interval=0.01) == 25
        with sessions() as session:
            kinds = session.scalars(select(JobEvent.kind).where(JobEvent.job_id == job_id)).all()
        assert kinds.count("progress") == 5
        with transaction(sessions) as session:
            job = session.get(Job, job_id)
            assert job is not None
            records.request_cancel(session, job)
        cancelled = time.monotonic()
        wait_for("the stop flag", tracker.should_stop, 5, interval=0.01)
        assert time.monotonic() - cancelled < STOP_CHECK_S + 1.0
        tracker.on_progress(Progress(step=6, total=20, eta_s=1.0))
    finally:
        left = tracker.finish()
    assert [step.data["step"] for step in left] == [6]  # not written: the caller writes them with the job's end
