"""Training a custom model: every training rule, the training job, and the model following its job."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ember.config import Settings
from ember.custom_models.images import TOO_MANY_IMAGES, image_issues, list_images
from ember.custom_models.lifecycle import (
    InvalidInput,
    ModelNotFound,
    Problem,
    base_model_spec,
    concept_errors,
    dataset_rules,
    problem,
    refuse_while_training,
    sample_prompt_errors,
    settle_training_state,
    touch,
)
from ember.jobs.payloads import TrainingImageRef, TrainingJob
from ember.jobs.records import create_job
from ember.store.tables import (
    CustomModel,
    CustomModelVersion,
    Job,
    JobKind,
    TrainingMode,
    TrainingState,
    utcnow,
)

if TYPE_CHECKING:
    pass



# --- training -----------------------------------------------------------------------------------------------


def training_errors(session: Session, settings: Settings, model: CustomModel) -> list[Problem]:
    """Every training rule the model breaks now, per image and per model."""
    rules = dataset_rules(settings)
    images = list_images(session, model)
    errors: list[Problem] = []
    if len(images) < rules.min_count:
        errors.append(
            problem(
                ["images"],
                f"The model has {len(images)} images; at least {rules.min_count} are needed to train.",
                "too_few_images",
            )
        )
    if len(images) > rules.max_count:
        errors.append(
            problem(
                ["images"],
                f"The model has {len(images)} images; at most {rules.max_count} are allowed.",
                TOO_MANY_IMAGES,
            )
        )
    filenames = {image.id: image.filename or "an image" for image in images}
    for image_id, issues in image_issues(model, images, settings).items():
        for issue in issues:
            field: list[str | int] = ["images", str(image_id)]
            if issue.code.startswith("caption_"):
                field.append("caption")
            # The file is named: a message read away from the image (a list of what blocks training) says which.
            errors.append(problem(field, f"{filenames[image_id]}: {issue.message}", issue.code))
    errors += concept_errors(model.training_mode, model.concept_id, ["conceptId"])
    if not model.sample_prompt.strip():
        errors.append(problem(["samplePrompt"], "A sample prompt is required before training.", "missing"))
    else:
        errors += sample_prompt_errors(model.training_mode, model.concept_id, model.sample_prompt, ["samplePrompt"])
    if base_model_spec(model.base_model_name) is None:
        errors.append(
            problem(
                ["baseModel"], f"The base model {model.base_model_name!r} is not available.", "unknown_base_model"
            )
        )
    return errors


def start_training(
    session: Session,
    settings: Settings,
    model: CustomModel,
    *,
    org_id: uuid.UUID,
    client_pk: uuid.UUID | None,
    overrides: dict[str, int | float],
) -> Job:
    """Check every training rule, then record a pending training job holding all the worker needs, and queue
    the model. Retraining a trained model produces the next version."""
    refuse_while_training(session, model, "start another training")
    errors = training_errors(session, settings, model)
    if errors:
        raise InvalidInput(errors, in_request=False)
    from ember.engine.captioning import ensure_concept, trim_caption

    concept = model.concept_id if model.training_mode is TrainingMode.subject else None
    highest = session.scalar(select(func.max(CustomModelVersion.number)).where(CustomModelVersion.model_id == model.id))
    version = max(highest or 0, model.current_version) + 1
    request = TrainingJob(
        custom_model_id=str(model.id),
        base_model=model.base_model_name,
        base_model_version=model.base_model_version,
        mode=model.training_mode.value,
        concept=concept or "",
        sample_prompt=model.sample_prompt,
        images=tuple(
            TrainingImageRef(
                id=str(image.id),
                blob_key=image.blob_key,
                caption=trim_caption(ensure_concept(image.caption or "", concept)),
            )
            for image in list_images(session, model)
        ),
        config=dict(overrides),
        version=version,
        lora_blob_key=f"custom-models/{model.id.hex}/versions/{version}/lora.safetensors",
    )
    job = create_job(
        session, org_id=org_id, client_pk=client_pk, kind=JobKind.train, request=request.to_json(),
        custom_model_id=model.id,
    )
    model.training_state = TrainingState.queued
    touch(model)
    return job


def follow_training_job(session: Session, model_id: uuid.UUID) -> None:
    """Bring a model's training state in line with its latest training job: `training` once a worker claimed
    it, `cancelled`, or `failed` (failed or timed out); the job keeps the error code and message."""
    model = session.get(CustomModel, model_id, populate_existing=True)
    if model is not None:
        settle_training_state(session, model)


def record_trained_version(
    session: Session,
    model_id: uuid.UUID,
    *,
    number: int,
    lora_blob_key: str,
    size: int,
    job_id: str,
    check: dict[str, Any] | None = None,
) -> CustomModelVersion:
    """A training job's success: its LoRA becomes version `number`, the model's current one, and the model is
    ready; `check` is what the check after training measured. Call it in the transaction that records the
    job's success, so neither happens without the other."""
    model = session.get(CustomModel, model_id, populate_existing=True)
    if model is None:
        raise ModelNotFound(str(model_id))
    version = CustomModelVersion(
        model_id=model.id, number=number, lora_blob_key=lora_blob_key, size=size, training_job_id=job_id,
        publish_check=check, created_at=utcnow(),
    )
    session.add(version)
    model.current_version = number
    model.size = size
    model.training_state = TrainingState.ready
    touch(model)
    session.flush()
    return version
