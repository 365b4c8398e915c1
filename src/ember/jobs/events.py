"""Each job's event log in the database: a state change or progress step becomes a numbered row, written in
the transaction that changes the job, so any API replica can replay a job's stream and a webhook outbox row is
committed with the event it tells about (or not at all)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from ember.jobs import outbox
from ember.store.event_tables import JobEvent
from ember.store.tables import Job, JobState, utcnow

STATE = "state"
PROGRESS = "progress"
SAMPLE = "sample"
PAGE = 500  # events read per query
FINAL_STATE_VALUES = frozenset({"succeeded", "failed", "cancelled", "timeout"})
SignUrl = Callable[[str], str]


@dataclass(frozen=True)
class Step:
    """A progress event waiting to be written: what a worker buffers between two commits."""

    kind: str
    data: dict[str, Any]


def topic_of(kind: str, data: dict[str, Any]) -> str | None:
    """The webhook event (`start`, `progress`, `completed`) an event belongs to; None for those no webhook hears
    (a job created or put back in the queue)."""
    if kind != STATE:
        return PROGRESS
    status = data.get("status")
    if status == JobState.running.value:
        return "start"
    if status in FINAL_STATE_VALUES:
        return "completed"
    if status == JobState.cancel_pending.value:
        return PROGRESS
    return None


def record(session: Session, job_id: str, kind: str, data: dict[str, Any]) -> int:
    """Append one event to the job's log and queue its webhook deliveries; returns its number (0 for an
    unknown job)."""
    return record_steps(session, job_id, [Step(kind, data)])


def record_steps(session: Session, job_id: str, steps: Iterable[Step]) -> int:
    """Append events to the job's log, numbered on from its last, and queue their webhook deliveries; returns
    the last number. Call it after the UPDATE of the job row in the same transaction: the row lock orders
    writers, so numbers never clash."""
    last = select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id).scalar_subquery()
    found = session.execute(select(Job.org_id, last).where(Job.id == job_id)).one_or_none()
    if found is None:
        return 0
    org_id, seq = found[0], found[1] or 0
    rows: list[dict[str, Any]] = []
    targets: outbox.Targets | None = None
    now = utcnow()
    for step in steps:
        seq += 1
        rows.append({"job_id": job_id, "org_id": org_id, "seq": seq, "kind": step.kind, "data": step.data,
                     "created_at": now})
        topic = topic_of(step.kind, step.data)
        if topic is not None:
            targets = targets or outbox.targets(session, job_id, org_id)
            targets.enqueue(session, seq=seq, topic=topic)
    if rows:  # one INSERT for the whole batch: a worker writes a commit's worth of steps at once
        session.execute(insert(JobEvent), rows)
    return seq


def record_state(session: Session, job_id: str) -> None:
    """The job's state as it now stands (after an UPDATE that changed it)."""
    row = session.execute(
        select(Job.state, Job.progress, Job.error_code, Job.message).where(Job.id == job_id)
    ).one_or_none()
    if row is None:
        return
    state, progress, error_code, message = row
    data: dict[str, Any] = {"status": JobState(state).value, "progress": int(progress or 0)}
    if error_code:
        data.update(error_code=error_code, message=message or "")
    record(session, job_id, STATE, data)


def events_after(session: Session, job_id: str, after: int, limit: int = PAGE) -> list[JobEvent]:
    return list(
        session.scalars(
            select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq > after).order_by(JobEvent.seq).limit(limit)
        )
    )


def event_at(session: Session, job_id: str, seq: int) -> JobEvent | None:
    return session.scalar(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.seq == seq))


def wire_data(job_id: str, kind: str, data: dict[str, Any], sign: SignUrl) -> dict[str, Any]:
    """An event as clients see it: the job id added, a sample's blob key replaced by a fresh signed URL."""
    shown = {"jobId": job_id, **data}
    if kind == SAMPLE:
        shown["url"] = sign(str(shown.pop("key")))
    return shown
