"""The one place where job rows become wire objects: status bodies and results with fresh signed URLs."""

from __future__ import annotations

from typing import Any

from ember.api.wire import GenerationResult, JobStatus, TrainingProgress, TrainingResult
from ember.jobs.events import SignUrl
from ember.jobs.payloads import GenerationOutcome, TrainingOutcome, TrainingRecord
from ember.jobs.records import FINAL_MESSAGES
from ember.store.tables import Job, JobKind, JobState


def generation_result(result: dict[str, Any], sign: SignUrl) -> GenerationResult:
    outcome = GenerationOutcome.from_json(result)
    body: dict[str, Any] = {
        "size": {"width": outcome.width, "height": outcome.height},
        "outputs": [{"seed": output.seed, "image": {"url": sign(output.key)}} for output in outcome.outputs],
    }
    if outcome.content_class:
        body["contentClass"] = outcome.content_class
    if outcome.warnings:
        body["warnings"] = list(outcome.warnings)
    return GenerationResult.model_validate(body)


def training_progress(record: TrainingRecord, sign: SignUrl) -> TrainingProgress:
    """The stored training record on the wire: sample keys become signed URLs; checkpoint keys stay inside."""
    return TrainingProgress.model_validate(
        {
            "step": record.step,
            "totalSteps": record.total_steps,
            "loss": record.loss,
            "etaSeconds": record.eta_s,
            "losses": record.curve,
            "samples": [{"step": sample["step"], "url": sign(sample["key"])} for sample in record.samples],
            "checkpointStep": record.checkpoint_step,
            "resumedFrom": record.resumed_from,
        }
    )


def job_status(job: Job, sign: SignUrl) -> JobStatus:
    state = job.state
    attempts = job.attempts or None
    training = None
    if job.kind is JobKind.train and job.result and job.result.get("training"):
        training = training_progress(TrainingRecord.from_result(job.result), sign)
    if state is JobState.succeeded and job.result is not None:
        result: GenerationResult | TrainingResult
        if job.kind is JobKind.train:
            outcome = TrainingOutcome.from_json(job.result)
            result = TrainingResult.model_validate(
                {"customModelId": outcome.custom_model_id, "version": outcome.version, "size": outcome.size}
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


def status_body(job: Job, sign: SignUrl) -> dict[str, Any]:
    """The job's status as `GET /v3/status` answers it, as JSON (the body of a `completed` webhook)."""
    return job_status(job, sign).model_dump(mode="json", exclude_none=True)
