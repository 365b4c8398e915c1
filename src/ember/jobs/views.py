"""The one place where job rows become wire objects: status bodies and results with fresh signed URLs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ember.jobs.records import FINAL_MESSAGES
from ember.jobs.wire import GenerationResult, JobStatus, TrainingProgress, TrainingResult
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


def training_progress(stored: dict[str, Any], sign: SignUrl) -> TrainingProgress:
    """The stored training record on the wire: sample keys become signed URLs; checkpoint keys stay inside."""
    checkpoint = stored.get("checkpoint") or {}
    return TrainingProgress.model_validate(
        {
            "step": stored.get("step", 0),
            "totalSteps": stored.get("totalSteps", 0),
            "loss": stored.get("loss"),
            "etaSeconds": stored.get("etaSeconds"),
            "losses": stored.get("losses", []),
            "samples": [{"step": sample["step"], "url": sign(sample["key"])} for sample in stored.get("samples", [])],
            "checkpointStep": checkpoint.get("step"),
            "resumedFrom": stored.get("resumedFrom"),
        }
    )


def job_status(job: Job, sign: SignUrl) -> JobStatus:
    state = job.state
    attempts = job.attempts or None
    training = None
    if job.kind is JobKind.train and job.result and job.result.get("training"):
        training = training_progress(job.result["training"], sign)
    if state is JobState.succeeded and job.result is not None:
        result: GenerationResult | TrainingResult
        if job.kind is JobKind.train:
            result = TrainingResult.model_validate(
                {name: job.result[name] for name in ("customModelId", "version", "size")}
            )
        else:
            result = generation_result(job.result, sign)
        return JobStatus(jobId=job.id, status=state.value, progress=100, result=result, training=training,
                         attempts=attempts)
    if state in (JobState.failed, JobState.cancelled, JobState.timeout):
        default_code, default_message = FINAL_MESSAGES.get(state, ("runtime_error", "The job failed."))
        return JobStatus(
            jobId=job.id, status=state.value, error_code=job.error_code or default_code,
            message=job.message or default_message, training=training, attempts=attempts,
        )
    return JobStatus(jobId=job.id, status=state.value, progress=job.progress, training=training, attempts=attempts)
