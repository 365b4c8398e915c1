"""Job rows and their state machine: every change is one conditional UPDATE, so racing writers cannot undo
each other (a cancel against a finishing worker, two workers claiming one job, the reaper against both).

Fencing: each claim of a job is an attempt, numbered by `Job.attempts`. Every write a worker makes for a job
(progress, heartbeat, training state, success, cancellation, failure) names its attempt and changes the row
only while that attempt still holds it, so an attempt taken for lost (a paused process, a partitioned node)
that wakes up later changes nothing: its writes match no row and it learns it must stop."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from ember.jobs import events
from ember.store.tables import Job, JobKind, JobState, utcnow

ACTIVE_STATES = frozenset({JobState.pending, JobState.running, JobState.cancel_pending})
FINAL_STATES = frozenset({JobState.succeeded, JobState.failed, JobState.cancelled, JobState.timeout})
FINAL_MESSAGES = {
    JobState.cancelled: ("cancelled", "The job was cancelled."),
    JobState.timeout: ("job_timeout", "The job ran past its time limit."),
}


class CancelRefused(Exception):
    """The job's state does not allow a cancel; carries the HTTP status and Firefly error code."""

    def __init__(self, status_code: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.error_code = error_code
        self.message = message


def job_host() -> str:
    """The `<host>` part of job ids: this machine's name, reduced to characters safe in a URN and a URL."""
    name = "".join(ch for ch in socket.gethostname().lower() if ch.isalnum() or ch == "-")
    return name or "ember"


def new_job_id(host: str) -> str:
    return f"urn:ff:jobs:{host}:{uuid.uuid4()}"


def create_job(
    session: Session,
    *,
    org_id: uuid.UUID,
    client_pk: uuid.UUID | None,
    kind: JobKind,
    request: dict[str, Any],
    custom_model_id: uuid.UUID | None = None,
) -> Job:
    job = Job(
        id=new_job_id(job_host()),
        org_id=org_id,
        client_id=client_pk,
        kind=kind,
        state=JobState.pending,
        progress=0,
        request=request,
        custom_model_id=custom_model_id,
        attempts=0,
        created_at=utcnow(),
    )
    session.add(job)
    session.flush()
    events.record_state(session, job.id)
    return job


def find_job(session: Session, job_id: str, org_id: uuid.UUID) -> Job | None:
    """The job if it belongs to `org_id`; a foreign job is as unknown as a missing one."""
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.org_id != org_id:
        return None
    return job


def _transition(
    session: Session, job_id: str, from_states: set[JobState], attempt: int | None = None, **values: Any
) -> bool:
    """Change the row when it is in one of `from_states` (and, given `attempt`, still held by that attempt)."""
    condition = [Job.id == job_id, Job.state.in_(from_states)]
    if attempt is not None:
        condition.append(Job.attempts == attempt)
    result = session.execute(update(Job).where(*condition).values(**values))
    changed = bool(getattr(result, "rowcount", 0))
    if changed and "state" in values:
        events.record_state(session, job_id)
    return changed


def request_cancel(session: Session, job: Job) -> JobState:
    """Cancel a job: a pending one at once, a running one at its next step. Returns the state it is left in."""
    now = utcnow()
    code, message = FINAL_MESSAGES[JobState.cancelled]
    if _transition(
        session, job.id, {JobState.pending}, state=JobState.cancelled, finished_at=now, error_code=code,
        message=message,
    ):
        return JobState.cancelled
    if _transition(session, job.id, {JobState.running}, state=JobState.cancel_pending):
        return JobState.cancel_pending
    current = session.scalar(select(Job.state).where(Job.id == job.id))
    if current in (JobState.cancel_pending, JobState.cancelled):
        raise CancelRefused(409, "job_already_canceled", "The job has already been cancelled.")
    if current is JobState.succeeded:
        raise CancelRefused(409, "job_completed", "The job has already completed.")
    if current is JobState.timeout:
        raise CancelRefused(410, "job_timeout", "The job has already timed out.")
    raise CancelRefused(409, "job_cancel_failed", "The job has already failed and cannot be cancelled.")


@dataclass(frozen=True)
class Claimed:
    """A job a worker has just claimed: the attempt this is, and what the job asks for."""

    attempt: int
    request: dict[str, Any]
    kind: JobKind


def claim_job(session: Session, job_id: str, worker_id: str) -> Claimed | None:
    """pending → running for exactly one worker, in one statement that also returns the job's request and kind;
    None when the job was cancelled or claimed meanwhile (it is then left alone)."""
    now = utcnow()
    row = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.state == JobState.pending)
        .values(
            state=JobState.running, worker_id=worker_id, started_at=now, heartbeat_at=now,
            attempts=Job.attempts + 1, progress=0,
        )
        .returning(Job.attempts, Job.request, Job.kind)
    ).first()
    if row is None:
        return None
    events.record_state(session, job_id)
    return Claimed(int(row.attempts), dict(row.request or {}), row.kind)


def claim(session: Session, job_id: str, worker_id: str) -> int | None:
    """Like `claim_job`; returns only the attempt this claim is (1 for the first)."""
    claimed = claim_job(session, job_id, worker_id)
    return None if claimed is None else claimed.attempt


def record_progress(session: Session, job_id: str, progress: int, *, attempt: int | None = None) -> bool:
    return _transition(session, job_id, {JobState.running}, attempt, progress=progress, heartbeat_at=utcnow())


def record_heartbeat(session: Session, job_id: str, *, attempt: int | None = None) -> bool:
    return _transition(session, job_id, {JobState.running, JobState.cancel_pending}, attempt, heartbeat_at=utcnow())


def record_training(
    session: Session, job_id: str, attempt: int, progress: int, result: dict[str, Any]
) -> bool:
    """Write a training job's progress and its `result` JSON (step, loss curve, samples, checkpoint) — only while
    `attempt` runs it, so an attempt taken for lost can never overwrite the attempt that replaced it."""
    return _transition(
        session, job_id, {JobState.running}, attempt, progress=progress, result=result, heartbeat_at=utcnow()
    )


def stored_result(session: Session, job_id: str) -> dict[str, Any]:
    result = session.scalar(select(Job.result).where(Job.id == job_id))
    return dict(result or {})


def job_kind(session: Session, job_id: str) -> JobKind | None:
    return session.scalar(select(Job.kind).where(Job.id == job_id))


def current_state(session: Session, job_id: str) -> JobState | None:
    return session.scalar(select(Job.state).where(Job.id == job_id))


def stored_request(session: Session, job_id: str) -> dict[str, Any]:
    request = session.scalar(select(Job.request).where(Job.id == job_id))
    return dict(request or {})


def current_attempt(session: Session, job_id: str) -> int | None:
    return session.scalar(select(Job.attempts).where(Job.id == job_id))


def should_stop(session: Session, job_id: str, attempt: int | None = None) -> bool:
    """True once the job is no longer plainly running (cancel requested, timed out or taken back) or, given
    `attempt`, once another attempt holds it."""
    row = session.execute(select(Job.state, Job.attempts).where(Job.id == job_id)).first()
    if row is None or row.state is not JobState.running:
        return True
    return attempt is not None and row.attempts != attempt


def succeed(session: Session, job_id: str, result: dict[str, Any], *, attempt: int | None = None) -> bool:
    """running → succeeded with `result`; given `attempt`, only while that attempt holds the job. This is where
    an attempt's outputs become the job's: the result names the keys that attempt wrote."""
    return _transition(
        session, job_id, {JobState.running}, attempt, state=JobState.succeeded, progress=100, result=result,
        finished_at=utcnow(), heartbeat_at=utcnow(),
    )


def confirm_cancelled(session: Session, job_id: str, *, attempt: int | None = None) -> bool:
    code, message = FINAL_MESSAGES[JobState.cancelled]
    return _transition(
        session, job_id, {JobState.cancel_pending, JobState.running}, attempt, state=JobState.cancelled,
        finished_at=utcnow(), error_code=code, message=message,
    )


def fail(session: Session, job_id: str, error_code: str, message: str, *, attempt: int | None = None) -> bool:
    """Any active job → failed (a cancel already asked for still ends as cancelled); given `attempt`, only a
    running job that attempt still holds."""
    cancelled_code, cancelled_message = FINAL_MESSAGES[JobState.cancelled]
    if _transition(session, job_id, {JobState.cancel_pending}, attempt, state=JobState.cancelled,
                   finished_at=utcnow(), error_code=cancelled_code, message=cancelled_message):
        return True
    from_states = {JobState.running} if attempt is not None else {JobState.pending, JobState.running}
    return _transition(
        session, job_id, from_states, attempt, state=JobState.failed, finished_at=utcnow(),
        error_code=error_code, message=message,
    )


@dataclass(frozen=True)
class KindLimits:
    """How long a job of one kind may take from submission, and how many dispatches it gets."""

    timeout_s: float
    max_attempts: int


@dataclass(frozen=True)
class Sweep:
    """What one pass of the reaper changed: jobs to dispatch again, how many it ended, and the custom models
    whose training job it ended (their training state follows the job)."""

    redispatch: list[str]
    timed_out: int
    failed: int
    cancelled: int
    ended_training_models: list[uuid.UUID]


def sweep(
    session: Session,
    *,
    now: datetime,
    job_timeout_s: float,
    heartbeat_timeout_s: float,
    max_attempts: int,
    dispatched: set[str],
    pending_grace_s: float,
    training: KindLimits | None = None,
) -> Sweep:
    """End jobs past their time limit; take back jobs whose worker went silent (dispatch again, or fail them
    once they used their attempts); find pending jobs nobody carries. `dispatched` are the jobs this process
    handed to Ray that are still in flight (a job taken back from a silent worker is dispatched again even so: the
    silent worker may hold its call for ever); a pending job younger than `pending_grace_s` may still be on its
    way from the API replica that inserted it. Training jobs have their own limits (`training`; the generation
    ones when None): a training job dispatched again resumes from its last checkpoint."""
    limits = {
        JobKind.generate: KindLimits(job_timeout_s, max_attempts),
        JobKind.train: training or KindLimits(job_timeout_s, max_attempts),
    }
    silent = now - timedelta(seconds=heartbeat_timeout_s)
    ending = _active_training_models(session)
    timed_out = failed = cancelled = 0
    lost: list[str] = []
    for kind, limit in limits.items():
        counts = _sweep_kind(session, kind, limit, now=now, silent=silent)
        timed_out, failed, cancelled = timed_out + counts[0], failed + counts[1], cancelled + counts[2]
        lost += counts[3]
    settled = now - timedelta(seconds=pending_grace_s)
    waiting = [
        job_id
        for job_id in session.scalars(
            select(Job.id)
            .where(Job.state == JobState.pending, or_(Job.created_at < settled, Job.id.in_(lost)))
            .order_by(Job.created_at)
        )
        if job_id not in dispatched or job_id in lost  # a silent worker may still hold the call it never ran
    ]
    still_active = _active_training_models(session)
    return Sweep(
        redispatch=waiting,
        timed_out=timed_out,
        failed=failed,
        cancelled=cancelled,
        ended_training_models=sorted(set(ending) - set(still_active)),
    )


def _active_training_models(session: Session) -> list[uuid.UUID]:
    return [
        model_id
        for model_id in session.scalars(
            select(Job.custom_model_id).where(Job.kind == JobKind.train, Job.state.in_(ACTIVE_STATES))
        )
        if model_id is not None
    ]


def _sweep_kind(
    session: Session, kind: JobKind, limit: KindLimits, *, now: datetime, silent: datetime
) -> tuple[int, int, int, list[str]]:
    of_kind = Job.kind == kind
    deadline = now - timedelta(seconds=limit.timeout_s)
    code, message = FINAL_MESSAGES[JobState.timeout]
    timed_out = _ended(
        session,
        update(Job)
        .where(of_kind, Job.state.in_(ACTIVE_STATES), Job.created_at < deadline)
        .values(state=JobState.timeout, finished_at=now, error_code=code, message=message)
    )
    cancel_code, cancel_message = FINAL_MESSAGES[JobState.cancelled]
    cancelled = _ended(
        session,
        update(Job)
        .where(
            of_kind, Job.state == JobState.cancel_pending,
            or_(Job.heartbeat_at.is_(None), Job.heartbeat_at < silent),
        )
        .values(state=JobState.cancelled, finished_at=now, error_code=cancel_code, message=cancel_message)
    )
    failed = _ended(
        session,
        update(Job)
        .where(of_kind, Job.state == JobState.running, Job.heartbeat_at < silent, Job.attempts >= limit.max_attempts)
        .values(
            state=JobState.failed, finished_at=now, error_code="worker_lost",
            message=f"The engine worker running this job stopped responding ({limit.max_attempts} attempts).",
        )
    )
    lost = list(
        session.scalars(select(Job.id).where(of_kind, Job.state == JobState.running, Job.heartbeat_at < silent))
    )
    for job_id in lost:
        _transition(session, job_id, {JobState.running}, state=JobState.pending, worker_id=None)
    return timed_out, failed, cancelled, lost


def _ended(session: Session, statement: Any) -> int:
    """Run a bulk state change and log each changed job's new state; returns how many changed."""
    changed = list(session.scalars(statement.returning(Job.id)))
    for job_id in changed:
        events.record_state(session, job_id)
    return len(changed)


def take_back(session: Session, job_id: str, worker_id: str, *, max_attempts: int) -> JobState | None:
    """Ray says `worker_id` is gone: its job goes back to pending at once (no wait for the silent heartbeat),
    or fails once it used `max_attempts`; a cancel asked for ends as cancelled. Only a job that worker still
    holds is touched. Returns the job's state afterwards (None when it is unknown)."""
    now = utcnow()
    held = [Job.id == job_id, Job.worker_id == worker_id]
    code, message = FINAL_MESSAGES[JobState.cancelled]
    _ended(
        session,
        update(Job).where(*held, Job.state == JobState.cancel_pending)
        .values(state=JobState.cancelled, finished_at=now, error_code=code, message=message),
    )
    _ended(
        session,
        update(Job).where(*held, Job.state == JobState.running, Job.attempts >= max_attempts)
        .values(
            state=JobState.failed, finished_at=now, error_code="worker_lost",
            message=f"The engine worker running this job was lost ({max_attempts} attempts).",
        ),
    )
    _ended(
        session,
        update(Job).where(*held, Job.state == JobState.running).values(state=JobState.pending, worker_id=None),
    )
    return current_state(session, job_id)


def reset_orphans(
    session: Session, *, max_attempts: int, training_max_attempts: int | None = None
) -> list[uuid.UUID]:
    """At start-up with a Ray this process owns, no earlier worker can still be alive: running jobs go back
    to pending (or fail once out of attempts; training jobs have their own bound) and cancel requests end as
    cancelled. A training job put back resumes from its last checkpoint when it is dispatched again. Returns
    the custom models whose training job this ended."""
    now = utcnow()
    ending = _active_training_models(session)
    code, message = FINAL_MESSAGES[JobState.cancelled]
    _ended(
        session,
        update(Job).where(Job.state == JobState.cancel_pending)
        .values(state=JobState.cancelled, finished_at=now, error_code=code, message=message),
    )
    bounds = {JobKind.generate: max_attempts, JobKind.train: training_max_attempts or max_attempts}
    for kind, bound in bounds.items():
        _ended(
            session,
            update(Job).where(Job.kind == kind, Job.state == JobState.running, Job.attempts >= bound)
            .values(
                state=JobState.failed, finished_at=now, error_code="worker_lost",
                message=f"The server stopped while this job ran ({bound} attempts).",
            ),
        )
    _ended(
        session,
        update(Job).where(Job.state == JobState.running).values(state=JobState.pending, worker_id=None),
    )
    return sorted(set(ending) - set(_active_training_models(session)))
