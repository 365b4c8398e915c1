"""Image generation: `POST /v3/images/generate-async` (a job), `POST /v3/images/generate` (waits for it)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Depends, Header

from ember.api.deps import BaseUrlDep, PrincipalDep, RuntimeDep, SessionDep, require_json
from ember.api.errors import ApiError
from ember.api.routes.jobs import url_signer
from ember.api.routes.webhooks import requested_webhook
from ember.api.runtime import Runtime
from ember.api.schemas import ErrorBody
from ember.api.submission import CustomModelNotFound, InvalidGeneration, Submission, prepare
from ember.api.submit import submit_job
from ember.api.views import generation_result
from ember.api.wire import GenerateImagesRequest, GenerationResult, JobAccepted
from ember.jobs.records import FINAL_STATES, CancelRefused, create_job, current_state, request_cancel
from ember.store.database import transaction
from ember.store.tables import Job, JobKind, JobState

router = APIRouter(prefix="/v3/images", tags=["images"])
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 404, 408, 415, 422, 429, 503)
}
SYNC_POLL_S = 0.05
ModelVersionHeader = Annotated[str | None, Header(alias="x-model-version")]
MimetypeHeader = Annotated[str | None, Header(alias="x-accept-mimetype")]


def _submit(
    runtime: Runtime,
    principal: PrincipalDep,
    session: SessionDep,
    body: GenerateImagesRequest,
    model_version: str | None,
    mimetype: str | None,
    base_url: str,
) -> str:
    """Validate, record the job, commit, then hand its id to the workers. Returns the job id."""
    webhook = requested_webhook(body, runtime.settings)
    try:
        submission: Submission = prepare(session, runtime.settings, principal.viewer, body, model_version, mimetype)
    except InvalidGeneration as invalid:
        raise ApiError(
            422, "validation_error", "Request validation failed.", validation_errors=invalid.errors
        ) from None
    except CustomModelNotFound as missing:
        raise ApiError(404, "not_found", str(missing)) from None
    job = submit_job(
        session,
        runtime,
        lambda: create_job(
            session,
            org_id=principal.org_id,
            client_pk=principal.client_pk,
            kind=JobKind.generate,
            request=submission.job.to_json(),
            custom_model_id=submission.custom_model_id,
        ),
        waits_for_engine=True,
        webhook=webhook,
        base_url=base_url,
        lora_key=submission.lora_key,
    )
    return job.id


@router.post(
    "/generate-async",
    status_code=202,
    response_model=JobAccepted,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="Generate images asynchronously (returns a job)",
)
def generate_async(
    body: GenerateImagesRequest,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    base_url: BaseUrlDep,
    model_version: ModelVersionHeader = None,
    mimetype: MimetypeHeader = None,
) -> JobAccepted:
    job_id = _submit(runtime, principal, session, body, model_version, mimetype, base_url)
    return JobAccepted.for_job(job_id, base_url)


@router.get("/generate-async", include_in_schema=False)
async def generate_async_needs_post() -> None:
    raise ApiError(
        405,
        "method_not_allowed",
        "Use POST to submit a generation request to /v3/images/generate-async.",
        headers={"allow": "POST"},
    )


@router.post(
    "/generate",
    response_model=GenerationResult,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="Generate images and wait for them (small requests)",
)
def generate(
    body: GenerateImagesRequest,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    base_url: BaseUrlDep,
    model_version: ModelVersionHeader = None,
    mimetype: MimetypeHeader = None,
) -> GenerationResult:
    job_id = _submit(runtime, principal, session, body, model_version, mimetype, base_url)
    deadline = time.monotonic() + runtime.settings.sync_generate_timeout_s
    while True:
        with runtime.sessions() as poll:
            state = current_state(poll, job_id)
        if state in FINAL_STATES or time.monotonic() >= deadline:
            break
        time.sleep(SYNC_POLL_S)
    with transaction(runtime.sessions) as finished:
        job = finished.get(Job, job_id, populate_existing=True)
        assert job is not None
        if job.state not in FINAL_STATES:
            try:
                request_cancel(finished, job)  # nobody waits for these images any more
            except CancelRefused:
                pass  # it ended on its own meanwhile; the caller still gets the timeout it was promised
            raise ApiError(408, "timeout_error", "The images were not ready in time; use generate-async.")
        if job.state is JobState.succeeded and job.result is not None:
            return generation_result(job.result, url_signer(runtime, base_url))
        if job.state is JobState.timeout:
            raise ApiError(408, "timeout_error", job.message or "The job ran past its time limit.")
        if job.error_code == "invalid_request":
            raise ApiError(400, "bad_request", job.message or "The request could not be carried out.")
        if job.state is JobState.cancelled:
            raise ApiError(409, "job_cancelled", job.message or "The job was cancelled.")
        raise ApiError(500, "runtime_error", job.message or "The generation failed.")
