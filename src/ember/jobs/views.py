"""The one place where job rows become wire objects: status bodies and results with fresh signed URLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember.jobs.records import FINAL_MESSAGES
from ember.jobs.wire import GenerationResult, JobStatus
from ember.store.tables import Job, JobKind, JobState

SignUrl = Callable[[str], str]


def generation_result(result: dict[str, Any], sign: SignUrl) -> GenerationResult:
    body: dict[str, Any] = {
        "size": result["size"],
        "outputs": [{"seed": output["seed"], "image": {"url": sign(output["key"])}} for output in result["outputs"]],
    }
    if result.get("contentClass"):
        body["contentClass"] = result["contentClass"]
    if result.get("warnings"):
        body["warnings"] = result["warnings"]
    return GenerationResult.model_validate(body)


def job_status(job: Job, sign: SignUrl) -> JobStatus:
    state = job.state
    if state is JobState.succeeded and job.result is not None:
        # Other kinds of job (training) store their result in its wire shape already.
        result = generation_result(job.result, sign) if job.kind is JobKind.generate else job.result
        return JobStatus(jobId=job.id, status=state.value, progress=100, result=result)
    if state in (JobState.failed, JobState.cancelled, JobState.timeout):
        default_code, default_message = FINAL_MESSAGES.get(state, ("runtime_error", "The job failed."))
        return JobStatus(
            jobId=job.id, status=state.value, error_code=job.error_code or default_code,
            message=job.message or default_message,
        )
    return JobStatus(jobId=job.id, status=state.value, progress=job.progress)
