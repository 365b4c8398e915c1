"""The one submit path: a route's job (a generation or a training) is recorded in the request's session, its
webhook subscribed, the session committed (the row must exist before any worker looks for it), and the job
handed to the dispatcher.

When no engine is available (Ray disabled or failed) the policy depends on whether the caller waits for the
engine: a generation is refused with 503 before anything is recorded, since its caller waits for images (or
polls a job that would never move); a training job is recorded and stays pending, since training is queued by
nature (the model shows `queued`) and the dispatcher's recovery carries pending rows once workers exist."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from ember.api.errors import ApiError
from ember.api.runtime import Runtime
from ember.jobs.dispatch import EngineUnavailable
from ember.jobs.webhooks import subscribe
from ember.store.tables import Job


def engine_unavailable() -> ApiError:
    return ApiError(503, "service_unavailable", "No engine workers are available to generate images.")


def submit_job(
    session: Session,
    runtime: Runtime,
    record: Callable[[], Job],
    *,
    waits_for_engine: bool,
    webhook: tuple[str, list[str]] | None,
    base_url: str,
    lora_key: str | None = None,
) -> Job:
    """Record the job with `record` (which checks the request's rules and may raise), then commit and dispatch."""
    if waits_for_engine and not runtime.dispatcher.accepting:
        raise engine_unavailable()
    job = record()
    if webhook is not None:
        subscribe(session, job.id, *webhook, base_url)
    session.commit()  # the row must exist before any worker looks for it
    try:
        runtime.dispatcher.submit(job.id, lora_key)
    except EngineUnavailable:
        if waits_for_engine:
            raise engine_unavailable() from None
    return job
