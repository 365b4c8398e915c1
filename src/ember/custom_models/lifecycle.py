"""A custom model's lifecycle: finding it and deciding what the caller may do, create, edit, delete,
publishing and weights, and the errors every call of this package may raise.

The engine's torch-free modules (registry, dataset checks, captioning) are imported inside the functions that
use them, so importing the API stays light.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.blobs import BlobNotFound, BlobStore
from ember.config import Settings
from ember.jobs.records import ACTIVE_STATES
from ember.store.custom_models import Viewer, visible_to
from ember.store.database import after_commit
from ember.store.tables import (
    ApiClient,
    CustomModel,
    CustomModelVersion,
    Job,
    JobKind,
    JobState,
    Project,
    PublishedState,
    Share,
    ShareRole,
    TrainingImage,
    TrainingMode,
    TrainingState,
    utcnow,
)

if TYPE_CHECKING:
    from ember.engine.dataset import DatasetRules
    from ember.engine.registry import BaseModelSpec


CONCEPT_PATTERN = re.compile(r"^\w(?:[\w' -]*\w)?$")


class Access(IntEnum):
    """What a caller may do with a model: a `user` share uses it, an `editor` share edits it, the owning
    organization does everything."""

    use = 1
    edit = 2
    own = 3


class LifecycleError(Exception):
    """Base class of the errors a lifecycle call answers with."""


class ModelNotFound(LifecycleError):
    """No model of that id is visible to the caller (foreign and missing models look the same)."""


class ImageNotFound(LifecycleError):
    """The model has no image of that id."""


class ShareNotFound(LifecycleError):
    """The model is not shared with that principal."""


class AccessDenied(LifecycleError):
    """The caller sees the model through a share whose role does not allow the action."""


class LifecycleConflict(LifecycleError):
    """The model's state does not allow the action now; `code` is the wire error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Problem:
    """One broken rule: the field it concerns (named as the API names the model's fields: `("conceptId",)`,
    `("baseModel", "name")`, `("images", <image id>, "caption")`), a message for people and a stable code."""

    field: tuple[str | int, ...]
    message: str
    code: str


def problem(field: Sequence[str | int], message: str, code: str) -> Problem:
    return Problem(tuple(field), message, code)


class InvalidInput(LifecycleError):
    """Rules broken by the request (`in_request`: the fields are the request body's) or by the model's content
    (the fields are the model's, as a training request finds them)."""

    def __init__(self, problems: list[Problem], *, in_request: bool) -> None:
        super().__init__("; ".join(item.message for item in problems))
        self.problems = problems
        self.in_request = in_request


class WeightsUnavailable(LifecycleError):
    """The model's current version has no weights file in the blob store."""


def touch(model: CustomModel) -> None:
    """Every change moves the modified date and the etag, so listings and caches see it."""
    model.modified_at = utcnow()
    model.etag = uuid.uuid4().hex


def dataset_rules(settings: Settings) -> DatasetRules:
    from ember.engine.dataset import DatasetRules

    return DatasetRules(
        min_count=settings.training_min_images,
        max_count=settings.training_max_images,
        min_side=settings.training_min_image_side,
    )


def base_model_choices(model_dir: Path) -> list[dict[str, Any]]:
    """The base models a custom model may start from, labelled; test models make images that mean nothing, and
    a model whose weights are not on this machine carries the reason instead of being offered."""
    from ember.engine.models import missing_weights_reason
    from ember.engine.registry import list_base_models

    return [
        {
            "name": spec.name,
            "displayName": spec.display_name,
            "version": spec.version,
            "isTestModel": spec.is_test_model,
            "trainable": spec.trainable,
            "unavailableReason": missing_weights_reason(spec, model_dir),
        }
        for spec in list_base_models()
    ]


def base_model_spec(name: str) -> BaseModelSpec | None:
    from ember.engine.registry import UnknownBaseModel, get_base_model

    try:
        return get_base_model(name)
    except UnknownBaseModel:
        return None


# --- finding a model and deciding what the caller may do -------------------------------------------------


def _access(session: Session, model: CustomModel, viewer: Viewer) -> Access:
    if model.org_id == viewer.org_id:
        return Access.own
    roles = session.scalars(
        select(Share.role).where(Share.model_id == model.id, Share.principal_value.in_(list(viewer.principal_names)))
    ).all()
    return Access.edit if ShareRole.editor in roles else Access.use


_DENIED = {
    Access.edit: "This custom model is shared with you in the user role; editing, training and publishing it "
    "need the editor role.",
    Access.own: "Only the organization that owns this custom model may delete it or manage its shares.",
}


def find_model(session: Session, viewer: Viewer, model_id: uuid.UUID, need: Access = Access.use) -> CustomModel:
    """The model if `viewer` may see it (else ModelNotFound) and may do what `need` says (else AccessDenied)."""
    model = session.scalar(select(CustomModel).where(CustomModel.id == model_id, visible_to(viewer)))
    if model is None:
        raise ModelNotFound(str(model_id))
    if need > Access.use and _access(session, model, viewer) < need:
        raise AccessDenied(_DENIED[need])
    settle_training_state(session, model)
    return model


def active_training_job(session: Session, model: CustomModel) -> Job | None:
    return session.scalar(
        select(Job).where(Job.custom_model_id == model.id, Job.kind == JobKind.train, Job.state.in_(ACTIVE_STATES))
    )


def settle_training_state(session: Session, model: CustomModel) -> None:
    """A training job cancelled before any worker took it, or ended by the reaper, leaves the model
    `queued`/`training`; the job row is the truth, so the model follows it here."""
    if model.training_state not in (TrainingState.queued, TrainingState.training):
        return
    job = session.scalar(
        select(Job)
        .where(Job.custom_model_id == model.id, Job.kind == JobKind.train)
        .order_by(Job.created_at.desc())
        .limit(1)
    )
    settled = {
        None: TrainingState.ready if model.current_version > 0 else TrainingState.draft,
        JobState.cancelled: TrainingState.cancelled,
        JobState.failed: TrainingState.failed,
        JobState.timeout: TrainingState.failed,
        JobState.running: TrainingState.training,
    }
    state = job.state if job is not None else None
    if state in settled and settled[state] is not model.training_state:
        model.training_state = settled[state]
        touch(model)


def refuse_while_training(session: Session, model: CustomModel, action: str) -> None:
    if active_training_job(session, model) is not None:
        raise LifecycleConflict(
            "training_in_progress", f"The custom model is being trained; {action} once the training job has ended."
        )



# --- create, edit, delete -----------------------------------------------------------------------------------


def concept_errors(mode: TrainingMode, concept: str, field: list[str | int]) -> list[Problem]:
    if mode is not TrainingMode.subject:
        return []
    if not concept:
        return [problem(field, "Subject mode needs a concept word (conceptId).", "missing")]
    if not CONCEPT_PATTERN.match(concept):
        return [
            problem(
                field,
                "The concept word must start and end with a letter or digit and hold only letters, digits, "
                "spaces, hyphens and apostrophes.",
                "string_pattern_mismatch",
            )
        ]
    return []


def _concept_token_errors(
    mode: TrainingMode, concept: str, spec: BaseModelSpec | None, field: list[str | int]
) -> list[Problem]:
    """A concept word the base model's text encoder cannot read as one token is refused when the model is made."""
    from ember.engine.captioning import concept_refusal

    if mode is not TrainingMode.subject or not concept or spec is None:
        return []
    reason = concept_refusal(concept, spec)
    return [problem(field, reason, "concept_not_one_token")] if reason else []


def prompt_names_concept(prompt: str, concept: str) -> bool:
    """Whether a prompt (or a caption) carries the concept word as a word of its own, in any case."""
    from ember.engine.captioning import contains_concept

    return contains_concept(prompt, concept)


def sample_prompt_errors(mode: TrainingMode, concept: str, prompt: str, field: list[str | int]) -> list[Problem]:
    from ember.engine.captioning import contains_concept

    if mode is TrainingMode.subject and prompt.strip() and concept and not contains_concept(prompt, concept):
        return [
            problem(
                field,
                f"In subject mode the sample prompt must contain the concept word {concept!r}.",
                "sample_prompt_missing_concept",
            )
        ]
    return []


def create_model(
    session: Session,
    settings: Settings,
    viewer: Viewer,
    client_pk: uuid.UUID | None,
    *,
    display_name: str,
    training_mode: str,
    concept_id: str = "",
    project_id: str | None = None,
    base_model_name: str | None = None,
    base_model_version: str | None = None,
    sample_prompt: str = "",
) -> CustomModel:
    """A new draft model of the caller's organization; every broken rule is reported at once."""
    mode = TrainingMode(training_mode)
    concept = concept_id.strip() if mode is TrainingMode.subject else ""
    errors = concept_errors(mode, concept, ["conceptId"])
    name = base_model_name or settings.default_base_model
    spec = base_model_spec(name)
    if spec is None:
        errors.append(problem(
            ["baseModel", "name"], f"Unknown base model {name!r}.", "unknown_base_model"
        ))
    elif not spec.trainable:
        errors.append(
            problem(
                ["baseModel", "name"],
                f"Ember cannot train on {spec.display_name}: {spec.untrainable_reason or 'it has no training recipe'}.",
                "not_trainable",
            )
        )
    elif base_model_version is not None and base_model_version != spec.version:
        errors.append(
            problem(
                ["baseModel", "version"],
                f"{spec.display_name} is at version {spec.version!r}.",
                "unknown_base_model_version",
            )
        )
    if not errors:
        errors.extend(_concept_token_errors(mode, concept, spec, ["conceptId"]))
    project = _project(session, viewer, client_pk, project_id, errors)
    if not errors:
        errors.extend(sample_prompt_errors(mode, concept, sample_prompt, ["samplePrompt"]))
    if errors:
        raise InvalidInput(errors, in_request=True)
    assert spec is not None
    now = utcnow()
    model = CustomModel(
        org_id=viewer.org_id,
        project_id=project,
        created_by_client_id=client_pk,
        display_name=display_name.strip(),
        training_mode=mode,
        concept_id=concept,
        base_model_name=spec.name,
        base_model_version=spec.version,
        sample_prompt=sample_prompt.strip(),
        published_state=PublishedState.never,
        training_state=TrainingState.draft,
        current_version=0,
        size=0,
        etag=uuid.uuid4().hex,
        created_at=now,
        modified_at=now,
    )
    session.add(model)
    session.flush()
    return model


def _project(
    session: Session,
    viewer: Viewer,
    client_pk: uuid.UUID | None,
    project_id: str | None,
    errors: list[Problem],
) -> uuid.UUID | None:
    """The named project of the caller's organization, else the calling client's own project (none for a user)."""
    if project_id is None:
        if client_pk is None:
            return None
        return session.scalar(select(ApiClient.project_id).where(ApiClient.id == client_pk))
    try:
        wanted = uuid.UUID(project_id)
    except ValueError:
        wanted = None
    project = session.get(Project, wanted) if wanted is not None else None
    if project is None or project.org_id != viewer.org_id:
        errors.append(problem(
            ["projectId"], "No project of this organization has that id.", "unknown_project"
        ))
        return None
    return project.id


def update_model(
    session: Session,
    model: CustomModel,
    *,
    display_name: str | None = None,
    sample_prompt: str | None = None,
    concept_id: str | None = None,
) -> CustomModel:
    """Apply the given fields; the concept word may change only while the model is a draft."""
    errors: list[Problem] = []
    concept = model.concept_id
    if concept_id is not None and concept_id.strip() != model.concept_id:
        if model.training_state is not TrainingState.draft:
            raise LifecycleConflict(
                "model_not_draft", "The concept word can only change while the model is a draft (never trained)."
            )
        concept = concept_id.strip() if model.training_mode is TrainingMode.subject else ""
        errors.extend(concept_errors(model.training_mode, concept, ["conceptId"]))
        if not errors:
            spec = base_model_spec(model.base_model_name)
            errors.extend(_concept_token_errors(model.training_mode, concept, spec, ["conceptId"]))
    prompt = model.sample_prompt if sample_prompt is None else sample_prompt.strip()
    if sample_prompt is not None and not errors:
        errors.extend(sample_prompt_errors(model.training_mode, concept, prompt, ["samplePrompt"]))
    if errors:
        raise InvalidInput(errors, in_request=True)
    changed = False
    if display_name is not None and display_name.strip() != model.display_name:
        model.display_name = display_name.strip()
        changed = True
    if concept != model.concept_id:
        model.concept_id = concept
        changed = True
    if prompt != model.sample_prompt:
        model.sample_prompt = prompt
        changed = True
    if changed:
        touch(model)
    return model


def delete_model(session: Session, blobs: BlobStore, model: CustomModel) -> None:
    """Remove the model, its images, versions and shares, then their blobs. Refused while it trains, since the
    worker reads those blobs."""
    refuse_while_training(session, model, "delete it")
    keys = list(session.scalars(select(TrainingImage.blob_key).where(TrainingImage.model_id == model.id)))
    versions = session.scalars(select(CustomModelVersion).where(CustomModelVersion.model_id == model.id)).all()
    for version in versions:
        keys += [version.lora_blob_key, *(version.publish_check or {}).get("sampleKeys", [])]
    session.delete(model)
    # Rows go first: a blob left behind by a failed delete is waste, a row pointing at no blob is an error.
    def delete_blobs() -> None:
        for key in keys:
            blobs.delete(key)

    after_commit(session, delete_blobs)



# --- publishing and weights ---------------------------------------------------------------------------------


def current_version(session: Session, model: CustomModel) -> CustomModelVersion | None:
    if model.current_version < 1:
        return None
    return session.scalar(
        select(CustomModelVersion).where(
            CustomModelVersion.model_id == model.id, CustomModelVersion.number == model.current_version
        )
    )


def current_checks(session: Session, models: Sequence[CustomModel]) -> dict[uuid.UUID, dict[str, Any] | None]:
    """The stored check of each model's current version, in one query (for a page of the listing)."""
    wanted = {model.id: model.current_version for model in models if model.current_version >= 1}
    if not wanted:
        return {}
    rows = session.execute(
        select(CustomModelVersion.model_id, CustomModelVersion.number, CustomModelVersion.publish_check).where(
            CustomModelVersion.model_id.in_(list(wanted))
        )
    )
    return {model_id: check for model_id, number, check in rows if wanted.get(model_id) == number}


def publish(session: Session, model: CustomModel, *, force: bool = False) -> CustomModel:
    """Publish the model; a current version whose check after training failed is published only with `force`
    (the owner has seen the check and publishes anyway)."""
    version = current_version(session, model)
    if version is None:
        raise LifecycleConflict("model_not_trained", "Only a trained custom model can be published; train it first.")
    check = version.publish_check or {}
    if check.get("status") == "failed" and not force and model.published_state is not PublishedState.published:
        raise LifecycleConflict(
            "model_check_failed",
            f"The check after training failed ({check.get('summary', 'see the model')}); review the samples, "
            "retrain with other pictures or captions, or publish anyway with force=true.",
        )
    if model.published_state is not PublishedState.published:
        model.published_state = PublishedState.published
        touch(model)
    return model


def unpublish(model: CustomModel) -> CustomModel:
    if model.published_state is PublishedState.never:
        raise LifecycleConflict("model_not_published", "The custom model has never been published.")
    if model.published_state is not PublishedState.unpublished:
        model.published_state = PublishedState.unpublished
        touch(model)
    return model


@dataclass(frozen=True)
class WeightsFile:
    filename: str
    data: bytes


def weights(session: Session, blobs: BlobStore, model: CustomModel, kohya: bool) -> WeightsFile:
    """The current version's LoRA as diffusers-format safetensors, or converted to the kohya format."""
    from ember.lora_formats import to_kohya

    version = current_version(session, model)
    if version is None:
        raise LifecycleConflict("model_not_trained", "The custom model has no trained weights yet; train it first.")
    try:
        data = blobs.get(version.lora_blob_key)
    except BlobNotFound:
        raise WeightsUnavailable(f"The weights file of version {version.number} is missing.") from None
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", model.display_name).strip("._") or "custom-model"
    if kohya:
        return WeightsFile(f"{stem}-v{version.number}.kohya.safetensors", to_kohya(data))
    return WeightsFile(f"{stem}-v{version.number}.safetensors", data)
