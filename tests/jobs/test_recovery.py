"""The reaper's sweep and start-up recovery over job rows: nothing stays pending or running forever."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ember.jobs import records
from ember.jobs.records import claim, create_job, reset_orphans, sweep
from ember.store.database import migrate, open_engine, session_factory, transaction
from ember.store.tables import Job, JobKind, JobState, Organization, utcnow


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = open_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def add_job(
    sessions: sessionmaker[Session], state: JobState, *, age_s: float = 0, silent_s: float | None = None,
    attempts: int = 1, kind: JobKind = JobKind.generate,
) -> str:
    now = utcnow()
    with transaction(sessions) as session:
        org = Organization(id=uuid.uuid4(), name=f"org-{uuid.uuid4().hex[:6]}")
        session.add(org)
        session.flush()
        job = create_job(session, org_id=org.id, client_pk=None, kind=kind, request={})
        job.state = state
        job.attempts = attempts
        job.created_at = now - timedelta(seconds=age_s)
        job.heartbeat_at = None if silent_s is None else now - timedelta(seconds=silent_s)
        return job.id


def state_of(sessions: sessionmaker[Session], job_id: str) -> JobState:
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.state


def run_sweep(sessions: sessionmaker[Session], now: datetime | None = None, dispatched: set[str] | None = None,
              grace: float = 0.0) -> list[str]:
    with transaction(sessions) as session:
        return sweep(session, now=now or utcnow(), job_timeout_s=100, heartbeat_timeout_s=10, max_attempts=2,
                     dispatched=dispatched or set(), pending_grace_s=grace).redispatch


def test_a_job_past_its_limit_ends_as_timeout(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions, JobState.running, age_s=101, silent_s=0)
    run_sweep(sessions)
    assert state_of(sessions, job_id) is JobState.timeout


def test_a_running_job_with_a_silent_worker_is_dispatched_again(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions, JobState.running, silent_s=11, attempts=1)
    assert run_sweep(sessions) == [job_id]
    assert state_of(sessions, job_id) is JobState.pending


def test_a_silent_job_out_of_attempts_fails_with_a_clear_error(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions, JobState.running, silent_s=11, attempts=2)
    assert run_sweep(sessions) == []
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.state, job.error_code) == (JobState.failed, "worker_lost")
        assert job.message and "stopped responding" in job.message


def test_a_live_running_job_is_left_alone(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions, JobState.running, silent_s=1)
    assert run_sweep(sessions) == []
    assert state_of(sessions, job_id) is JobState.running


def test_a_cancel_request_whose_worker_is_gone_ends_as_cancelled(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions, JobState.cancel_pending, silent_s=11)
    run_sweep(sessions)
    assert state_of(sessions, job_id) is JobState.cancelled


def test_a_pending_job_nobody_carries_is_dispatched_again(sessions: sessionmaker[Session]) -> None:
    carried = add_job(sessions, JobState.pending, age_s=30)
    orphan = add_job(sessions, JobState.pending, age_s=30)
    assert run_sweep(sessions, dispatched={carried}, grace=10) == [orphan]


def test_a_fresh_pending_job_may_be_in_flight_elsewhere(sessions: sessionmaker[Session]) -> None:
    add_job(sessions, JobState.pending, age_s=1)
    assert run_sweep(sessions, grace=10) == []


def test_start_up_puts_running_jobs_back_and_fails_exhausted_ones(sessions: sessionmaker[Session]) -> None:
    again = add_job(sessions, JobState.running, silent_s=0, attempts=1)
    exhausted = add_job(sessions, JobState.running, silent_s=0, attempts=2)
    cancelling = add_job(sessions, JobState.cancel_pending, silent_s=0)
    with transaction(sessions) as session:
        reset_orphans(session, max_attempts=2)
    assert [state_of(sessions, job) for job in (again, exhausted, cancelling)] == [
        JobState.pending, JobState.failed, JobState.cancelled
    ]


def test_only_one_worker_can_claim_a_job(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions, JobState.pending, attempts=0)
    with transaction(sessions) as session:
        first = claim(session, job_id, "worker-a")
    with transaction(sessions) as session:
        second = claim(session, job_id, "worker-b")
    assert (first, second) == (1, None)
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None and (job.worker_id, job.attempts) == ("worker-a", 1)



def test_an_attempt_taken_back_can_write_nothing_for_the_job(sessions: sessionmaker[Session]) -> None:
    job_id = add_job(sessions, JobState.pending, attempts=0)
    with transaction(sessions) as session:
        stale = claim(session, job_id, "worker-a")
    assert stale == 1
    run_sweep(sessions, now=utcnow() + timedelta(seconds=60))  # worker-a went silent: the job is taken back
    with transaction(sessions) as session:
        current = claim(session, job_id, "worker-b")
    assert current == 2
    with transaction(sessions) as session:
        assert records.should_stop(session, job_id, stale)
        assert not records.should_stop(session, job_id, current)
        assert not records.record_progress(session, job_id, 50, attempt=stale)
        assert not records.record_heartbeat(session, job_id, attempt=stale)
        assert not records.record_training(session, job_id, stale, 50, {"training": {}})
        assert not records.succeed(session, job_id, {"outputs": ["stale"]}, attempt=stale)
        assert not records.confirm_cancelled(session, job_id, attempt=stale)
        assert not records.fail(session, job_id, "runtime_error", "stale", attempt=stale)
        assert records.succeed(session, job_id, {"outputs": ["current"]}, attempt=current)
    with sessions() as session:
        job = session.get(Job, job_id)
        assert job is not None
        assert (job.state, job.result, job.worker_id, job.attempts) == (
            JobState.succeeded, {"outputs": ["current"]}, "worker-b", 2
        )
