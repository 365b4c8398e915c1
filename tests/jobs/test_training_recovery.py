"""The reaper and start-up recovery for training jobs: their own, longer time limit and attempt bound, and
the model's training state following a job they end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ember.custom_models.training import follow_training_job
from ember.jobs.records import KindLimits, Sweep, create_job, reset_orphans, sweep
from ember.store.database import migrate, open_engine, session_factory, transaction
from ember.store.tables import CustomModel, Job, JobKind, JobState, Organization, TrainingMode, TrainingState, utcnow

GENERATION_TIMEOUT_S = 100
TRAINING = KindLimits(timeout_s=5000, max_attempts=3)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = open_engine(f"sqlite:///{tmp_path / 'jobs.db'}")
    migrate(engine)
    yield session_factory(engine)
    engine.dispose()


def add_training_job(
    sessions: sessionmaker[Session], state: JobState, *, age_s: float = 0, silent_s: float = 0, attempts: int = 1
) -> tuple[str, uuid.UUID]:
    now = utcnow()
    with transaction(sessions) as session:
        org = Organization(id=uuid.uuid4(), name=f"org-{uuid.uuid4().hex[:6]}")
        session.add(org)
        session.flush()
        model = CustomModel(org_id=org.id, display_name="m", training_mode=TrainingMode.style, base_model_name="tiny")
        session.add(model)
        session.flush()
        job = create_job(
            session, org_id=org.id, client_pk=None, kind=JobKind.train, request={}, custom_model_id=model.id
        )
        job.state, job.attempts = state, attempts
        job.created_at = now - timedelta(seconds=age_s)
        job.heartbeat_at = now - timedelta(seconds=silent_s)
        return job.id, model.id


def run_sweep(sessions: sessionmaker[Session]) -> Sweep:
    with transaction(sessions) as session:
        return sweep(session, now=utcnow(), job_timeout_s=GENERATION_TIMEOUT_S, heartbeat_timeout_s=10,
                     max_attempts=2, dispatched=set(), pending_grace_s=0.0, training=TRAINING)


def job(sessions: sessionmaker[Session], job_id: str) -> Job:
    with sessions() as session:
        found = session.get(Job, job_id)
        assert found is not None
        return found


def test_a_training_job_past_the_generation_limit_keeps_running(sessions: sessionmaker[Session]) -> None:
    job_id, _ = add_training_job(sessions, JobState.running, age_s=GENERATION_TIMEOUT_S * 10)
    run_sweep(sessions)
    assert job(sessions, job_id).state is JobState.running


def test_a_training_job_past_its_own_limit_ends_as_timeout(sessions: sessionmaker[Session]) -> None:
    job_id, model_id = add_training_job(sessions, JobState.running, age_s=TRAINING.timeout_s + 1)
    swept = run_sweep(sessions)
    assert job(sessions, job_id).state is JobState.timeout
    assert swept.ended_training_models == [model_id]


def test_a_silent_training_job_is_dispatched_again(sessions: sessionmaker[Session]) -> None:
    job_id, _ = add_training_job(sessions, JobState.running, silent_s=11, attempts=2)
    assert run_sweep(sessions).redispatch == [job_id]
    assert job(sessions, job_id).state is JobState.pending


def test_a_silent_training_job_fails_once_its_attempts_are_used(sessions: sessionmaker[Session]) -> None:
    job_id, model_id = add_training_job(sessions, JobState.running, silent_s=11, attempts=TRAINING.max_attempts)
    swept = run_sweep(sessions)
    ended = job(sessions, job_id)
    assert (ended.state, ended.error_code, swept.redispatch) == (JobState.failed, "worker_lost", [])
    assert swept.ended_training_models == [model_id]


def test_start_up_puts_a_running_training_job_back_within_its_attempts(sessions: sessionmaker[Session]) -> None:
    again, _ = add_training_job(sessions, JobState.running, attempts=2)
    exhausted, model_id = add_training_job(sessions, JobState.running, attempts=3)
    with transaction(sessions) as session:
        ended = reset_orphans(session, max_attempts=2, training_max_attempts=3)
    assert (job(sessions, again).state, job(sessions, exhausted).state) == (JobState.pending, JobState.failed)
    assert ended == [model_id]


def test_the_model_of_a_training_job_the_reaper_ended_is_failed(sessions: sessionmaker[Session]) -> None:
    job_id, model_id = add_training_job(sessions, JobState.running, age_s=TRAINING.timeout_s + 1)
    with transaction(sessions) as session:
        model = session.get(CustomModel, model_id)
        assert model is not None
        model.training_state = TrainingState.training
    swept = run_sweep(sessions)
    with transaction(sessions) as session:
        for ended in swept.ended_training_models:
            follow_training_job(session, ended)
    with sessions() as session:
        model = session.get(CustomModel, model_id)
        assert model is not None and model.training_state is TrainingState.failed
