"""The Firefly job API: `GET /v3/status/{jobId}` (and its alias `/jobs/result/{jobId}`), `PUT /v3/cancel/{jobId}`."""

from __future__ import annotations

from fastapi import APIRouter

from ember.api.deps import BaseUrlDep, PrincipalDep, RuntimeDep, SessionDep
from ember.api.errors import ApiError
from ember.api.links import output_url, url_key
from ember.api.runtime import Runtime
from ember.api.schemas import ErrorBody
from ember.api.views import job_status
from ember.api.wire import CancelAccepted, JobStatus
from ember.jobs.events import SignUrl
from ember.jobs.records import CancelRefused, find_job, request_cancel
from ember.store.tables import Job

router = APIRouter(tags=["jobs"])
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (401, 403, 404, 409, 410, 429)
}


def unknown_job() -> ApiError:
    return ApiError(404, "unknown_job_id", "The job id is unknown.")


def url_signer(runtime: Runtime, base_url: str) -> SignUrl:
    key = url_key(runtime.token_key)
    ttl = runtime.settings.output_url_ttl_s
    return lambda blob_key: output_url(runtime.blobs, base_url, blob_key, ttl, key)


def _visible_job(session: SessionDep, principal: PrincipalDep, job_id: str) -> Job:
    job = find_job(session, job_id, principal.org_id)
    if job is None:
        raise unknown_job()
    return job


@router.get(
    "/v3/status/{job_id}",
    response_model=JobStatus,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="The state, progress and result of a job",
)
def job_status_route(
    job_id: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep, base_url: BaseUrlDep
) -> JobStatus:
    return job_status(_visible_job(session, principal, job_id), url_signer(runtime, base_url))


@router.get(
    "/jobs/result/{job_id}",
    response_model=JobStatus,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="Alias of /v3/status/{jobId}",
)
def job_result_alias(
    job_id: str, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep, base_url: BaseUrlDep
) -> JobStatus:
    return job_status(_visible_job(session, principal, job_id), url_signer(runtime, base_url))


@router.put(
    "/v3/cancel/{job_id}",
    response_model=CancelAccepted,
    responses=ERROR_RESPONSES,
    summary="Cancel a job; running work stops at its next step",
)
def cancel_job(job_id: str, principal: PrincipalDep, session: SessionDep) -> CancelAccepted:
    job = _visible_job(session, principal, job_id)
    try:
        state = request_cancel(session, job)
    except CancelRefused as refused:
        raise ApiError(refused.status_code, refused.error_code, refused.message) from None
    return CancelAccepted(jobId=job.id, status=state.value)
