"""`GET /v3/status/{jobId}/events`: a job's progress as Server-Sent Events, read from the database's event log
(so any replica serves any job), ending with the job's final status body."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header
from sqlalchemy.orm import Session, sessionmaker
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.concurrency import run_in_threadpool

from ember.api.deps import BaseUrlDep, PrincipalDep, RuntimeDep, SessionDep
from ember.api.errors import ApiError
from ember.api.routes.jobs import ERROR_RESPONSES, unknown_job, url_signer
from ember.api.views import job_status
from ember.jobs import events
from ember.jobs.events import SignUrl
from ember.jobs.records import FINAL_STATES, find_job
from ember.store.tables import Job

router = APIRouter(tags=["jobs"])
POLL_S = 0.2  # how often a stream looks for new events in the database
PING_S = 15  # a comment line this often keeps proxies from closing an idle stream
STREAM_DOC = """Server-Sent Events (`text/event-stream`): `state` at each state change, `progress` at each step
(generation: step, totalSteps, etaSeconds; training: also loss), `sample` for each new training sample (a signed
URL), each with its number as the event id; then one `status` event whose data is the body
`GET /v3/status/{jobId}` returns, and the stream ends. Send `Last-Event-ID` to resume after a reconnect."""


@router.get(
    "/v3/status/{job_id}/events",
    responses={**ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}, "description": STREAM_DOC}},
    response_class=EventSourceResponse,
    summary="A job's state changes and progress as a Server-Sent Events stream",
)
def job_events_route(
    job_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    base_url: BaseUrlDep,
    last_event_id: Annotated[str | None, Header(alias="last-event-id")] = None,
) -> EventSourceResponse:
    if find_job(session, job_id, principal.org_id) is None:
        raise unknown_job()
    after = 0
    if last_event_id is not None and last_event_id.strip():
        try:
            after = max(0, int(last_event_id))
        except ValueError:
            raise ApiError(400, "invalid_request", "Last-Event-ID must be an event id this stream sent.") from None
    # The request's session would stay open for as long as the stream; the stream reads with its own sessions.
    session.close()
    return EventSourceResponse(
        _follow(runtime.sessions, job_id, after, url_signer(runtime, base_url)),
        ping=PING_S,
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


async def _follow(
    sessions: sessionmaker[Session], job_id: str, after: int, sign: SignUrl
) -> AsyncIterator[ServerSentEvent]:
    while True:
        batch, final = await run_in_threadpool(_read, sessions, job_id, after, sign)
        for seq, kind, data in batch:
            yield ServerSentEvent(data=json.dumps(data), event=kind, id=str(seq))
            after = seq
        if final is not None:
            yield ServerSentEvent(data=json.dumps(final), event="status")
            return
        if not batch:
            await asyncio.sleep(POLL_S)


def _read(
    sessions: sessionmaker[Session], job_id: str, after: int, sign: SignUrl
) -> tuple[list[tuple[int, str, dict[str, Any]]], dict[str, Any] | None]:
    """The events after `after`, and the final status body once the job is final and they are all read. The
    job is read first: once it is final, every event it will ever have is already committed."""
    with sessions() as session:
        job = session.get(Job, job_id)
        if job is None:
            return [], {"jobId": job_id, "status": "failed", "error_code": "unknown_job_id"}
        is_final = job.state in FINAL_STATES
        found = events.events_after(session, job_id, after)
        batch = [(event.seq, event.kind, events.wire_data(job_id, event.kind, event.data, sign)) for event in found]
        if is_final and len(found) < events.PAGE:
            return batch, job_status(job, sign).model_dump(mode="json", exclude_none=True)
        return batch, None
