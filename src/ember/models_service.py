"""The custom-model lifecycle: create, edit, training images, training jobs, publishing, shares and weights.

Routes call these functions with a session; every rule of SPEC §2 "Lifecycle" and "Training rules" lives
here once. The engine's torch-free modules (registry, dataset checks, captioning) are imported inside the
functions that use them, so importing the API stays light.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ember.blobs import BlobNotFound, BlobStore, new_key
from ember.config import Settings
from ember.jobs.records import ACTIVE_STATES, create_job
from ember.store.custom_models import Viewer, visible_to
from ember.store.tables import (
    ApiClient,
    CustomModel,
    CustomModelVersion,
    Job,
    JobKind,
    JobState,
    PrincipalKind,
    Project,
    PublishedState,
    Share,
    ShareRole,
    TrainingImage,
    TrainingMode,
    TrainingState,
    User,
    utcnow,
)

if TYPE_CHECKING:
    from ember.engine.dataset import DatasetRules
    from ember.engine.registry import BaseModelSpec

CONCEPT_PATTERN = re.compile(r"^\w(?:[\w' -]*\w)?$")
FILE_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
TOO_MANY_IMAGES = "too_many_images"
# Codes of files that are not usable pictures at all: there is nothing to show or fix, so they are not kept.
UNUSABLE_FILE_CODES = frozenset(
    {"empty_file", "file_too_large", "unsupported_format", "corrupt_image", "decompression_bomb"}
)


class Access(IntEnum):
    """What a caller may do with a model: a `user` share uses it, an `editor` share edits it, the owning
    organization does everything."""

    use = 1
    edit = 2
    own = 3


@dataclass(frozen=True)
class Issue:
    """One broken rule of one image: a stable code and a message for people."""

    code: str
    message: str


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


class InvalidInput(LifecycleError):
    """Rules broken by the request or by the model's content; each entry is a wire validation error."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(error["msg"]) for error in errors))
        self.errors = errors


class WeightsUnavailable(LifecycleError):
    """The model's current version has no weights file in the blob store."""


def _error(loc: Sequence[str | int], msg: str, type_: str) -> dict[str, Any]:
    return {"loc": list(loc), "msg": msg, "type": type_}


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


def _base_model(name: str) -> BaseModelSpec | None:
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
    _settle_training_state(session, model)
    return model


def active_training_job(session: Session, model: CustomModel) -> Job | None:
    return session.scalar(
        select(Job).where(Job.custom_model_id == model.id, Job.kind == JobKind.train, Job.state.in_(ACTIVE_STATES))
    )


def _settle_training_state(session: Session, model: CustomModel) -> None:
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


def _refuse_while_training(session: Session, model: CustomModel, action: str) -> None:
    if active_training_job(session, model) is not None:
        raise LifecycleConflict(
            "training_in_progress", f"The custom model is being trained; {action} once the training job has ended."
        )


# --- create, edit, delete -----------------------------------------------------------------------------------


def _concept_errors(mode: TrainingMode, concept: str, loc: list[str | int]) -> list[dict[str, Any]]:
    if mode is not TrainingMode.subject:
        return []
    if not concept:
        return [_error(loc, "Subject mode needs a concept word (conceptId).", "missing")]
    if not CONCEPT_PATTERN.match(concept):
        return [
            _error(
                loc,
                "The concept word must start and end with a letter or digit and hold only letters, digits, "
                "spaces, hyphens and apostrophes.",
                "string_pattern_mismatch",
            )
        ]
    return []


def _concept_token_errors(
    mode: TrainingMode, concept: str, spec: BaseModelSpec | None, loc: list[str | int]
) -> list[dict[str, Any]]:
    """A concept word the base model's text encoder cannot read as one token is refused when the model is made."""
    from ember.engine.captioning import concept_refusal

    if mode is not TrainingMode.subject or not concept or spec is None:
        return []
    reason = concept_refusal(concept, spec)
    return [_error(loc, reason, "concept_not_one_token")] if reason else []


def _sample_prompt_errors(mode: TrainingMode, concept: str, prompt: str, loc: list[str | int]) -> list[dict[str, Any]]:
    from ember.engine.captioning import contains_concept

    if mode is TrainingMode.subject and prompt.strip() and concept and not contains_concept(prompt, concept):
        return [
            _error(
                loc,
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
    errors = _concept_errors(mode, concept, ["body", "conceptId"])
    name = base_model_name or settings.default_base_model
    spec = _base_model(name)
    if spec is None:
        errors.append(_error(["body", "baseModel", "name"], f"Unknown base model {name!r}.", "unknown_base_model"))
    elif not spec.trainable:
        errors.append(
            _error(
                ["body", "baseModel", "name"],
                f"Ember cannot train on {spec.display_name}: {spec.untrainable_reason or 'it has no training recipe'}.",
                "not_trainable",
            )
        )
    elif base_model_version is not None and base_model_version != spec.version:
        errors.append(
            _error(
                ["body", "baseModel", "version"],
                f"{spec.display_name} is at version {spec.version!r}.",
                "unknown_base_model_version",
            )
        )
    if not errors:
        errors.extend(_concept_token_errors(mode, concept, spec, ["body", "conceptId"]))
    project = _project(session, viewer, client_pk, project_id, errors)
    if not errors:
        errors.extend(_sample_prompt_errors(mode, concept, sample_prompt, ["body", "samplePrompt"]))
    if errors:
        raise InvalidInput(errors)
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
    errors: list[dict[str, Any]],
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
        errors.append(_error(["body", "projectId"], "No project of this organization has that id.", "unknown_project"))
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
    errors: list[dict[str, Any]] = []
    concept = model.concept_id
    if concept_id is not None and concept_id.strip() != model.concept_id:
        if model.training_state is not TrainingState.draft:
            raise LifecycleConflict(
                "model_not_draft", "The concept word can only change while the model is a draft (never trained)."
            )
        concept = concept_id.strip() if model.training_mode is TrainingMode.subject else ""
        errors.extend(_concept_errors(model.training_mode, concept, ["body", "conceptId"]))
        if not errors:
            spec = _base_model(model.base_model_name)
            errors.extend(_concept_token_errors(model.training_mode, concept, spec, ["body", "conceptId"]))
    prompt = model.sample_prompt if sample_prompt is None else sample_prompt.strip()
    if sample_prompt is not None and not errors:
        errors.extend(_sample_prompt_errors(model.training_mode, concept, prompt, ["body", "samplePrompt"]))
    if errors:
        raise InvalidInput(errors)
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
    _refuse_while_training(session, model, "delete it")
    keys = list(session.scalars(select(TrainingImage.blob_key).where(TrainingImage.model_id == model.id)))
    keys += session.scalars(select(CustomModelVersion.lora_blob_key).where(CustomModelVersion.model_id == model.id))
    session.delete(model)
    # Rows go first: a blob left behind by a failed delete is waste, a row pointing at no blob is an error.
    session.commit()
    for key in keys:
        blobs.delete(key)


# --- training images ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageOutcome:
    """What became of one uploaded file: a stored image, or a refusal with its reasons."""

    filename: str
    image: TrainingImage | None
    issues: list[Issue]


def list_images(session: Session, model: CustomModel) -> list[TrainingImage]:
    return list(
        session.scalars(
            select(TrainingImage)
            .where(TrainingImage.model_id == model.id)
            .order_by(TrainingImage.position, TrainingImage.created_at, TrainingImage.id)
        )
    )


def find_image(session: Session, model: CustomModel, image_id: uuid.UUID) -> TrainingImage:
    image = session.get(TrainingImage, image_id)
    if image is None or image.model_id != model.id:
        raise ImageNotFound(str(image_id))
    return image


def add_images(
    session: Session, blobs: BlobStore, settings: Settings, model: CustomModel, files: list[tuple[str, bytes]]
) -> list[ImageOutcome]:
    """Check, caption and store each file. Decodable images are kept even when they break a rule (too small,
    wrong aspect ratio, duplicate) so the owner sees them flagged and can delete them; files that are no usable
    picture, and files past the image limit, are reported and not kept."""
    from ember.engine.captioning import caption_images, captioner_for
    from ember.engine.dataset import check_image, open_image

    _refuse_while_training(session, model, "add images")
    spec = _base_model(model.base_model_name)
    if spec is None:
        raise LifecycleConflict("unknown_base_model", f"The base model {model.base_model_name!r} is not available.")
    rules = dataset_rules(settings)
    captioner = captioner_for(spec, settings.model_dir)
    mode = model.training_mode.value
    count = session.scalar(select(func.count()).where(TrainingImage.model_id == model.id)) or 0
    position = session.scalar(select(func.max(TrainingImage.position)).where(TrainingImage.model_id == model.id))
    next_position = (position or 0) + 1
    outcomes: list[ImageOutcome] = []
    written: list[str] = []
    try:
        for filename, data in files:
            if count >= rules.max_count:
                message = f"The model already holds {rules.max_count} images, the most it may have."
                outcomes.append(ImageOutcome(filename, None, [Issue(TOO_MANY_IMAGES, message)]))
                continue
            report = check_image(filename, data, spec, rules)
            issues = [Issue(issue.code, issue.message) for issue in report.errors]
            if any(issue.code in UNUSABLE_FILE_CODES for issue in issues) or report.format is None:
                outcomes.append(ImageOutcome(filename, None, issues))
                continue
            picture = open_image(data, rules.max_pixels)
            caption = caption_images([picture], captioner, mode, model.concept_id or None)[0]
            key = new_key(f"custom-models/{model.id.hex}/images", FILE_EXTENSIONS[report.format])
            blobs.put(key, data, f"image/{report.format.lower()}")
            written.append(key)
            image = TrainingImage(
                model_id=model.id,
                blob_key=key,
                filename=filename[:500],
                caption=caption,
                auto_caption=caption,
                width=report.width or 0,
                height=report.height or 0,
                content_hash=hashlib.sha256(data).hexdigest(),
                fingerprint=report.fingerprint,
                captioned_by=captioner.name,
                errors=[{"code": issue.code, "message": issue.message} for issue in issues],
                position=next_position,
                created_at=utcnow(),
            )
            session.add(image)
            next_position += 1
            count += 1
            outcomes.append(ImageOutcome(filename, image, issues))
        if written:
            touch(model)
        session.flush()
    except BaseException:
        for key in written:
            blobs.delete(key)
        raise
    return outcomes


@dataclass(frozen=True)
class ImageFindings:
    """What the checks say of one image now: `errors` block training, `warnings` ask the owner to look."""

    errors: list[Issue]
    warnings: list[Issue]


def image_findings(
    model: CustomModel, images: Sequence[TrainingImage], settings: Settings
) -> dict[uuid.UUID, ImageFindings]:
    """Each image's broken rules as of now: its stored file checks, whether it is a copy of an earlier image of
    the model (exactly, or by fingerprint likeness: a sure copy is an error, a possible one a warning), its
    caption's length; and, as warnings, a caption written without a captioning model and left as written, and
    a caption mostly in words the base model does not know."""
    from ember.engine.captioning import check_caption, check_vocabulary, review_note_of
    from ember.engine.dataset import DUPLICATE_IMAGE, POSSIBLE_DUPLICATE

    spec = _base_model(model.base_model_name)
    rules = dataset_rules(settings)
    found: dict[uuid.UUID, ImageFindings] = {}
    originals: list[TrainingImage] = []
    for image in images:
        errors = [Issue(str(entry["code"]), str(entry["message"])) for entry in image.errors]
        warnings: list[Issue] = []
        copy_of, sure = _copy_of(image, originals, rules)
        if copy_of is None or not sure:
            originals.append(image)
        if copy_of is not None:
            name = f"{copy_of.filename or 'an image'!r} (id {copy_of.id})"
            if sure:
                errors.append(Issue(DUPLICATE_IMAGE, f"The image is a duplicate of {name}."))
            else:
                warnings.append(
                    Issue(
                        POSSIBLE_DUPLICATE,
                        f"The image looks like a cropped copy of {name}; if it is one, delete one of them.",
                    )
                )
        # The concept word is bound to every caption when training starts, so only the length rules block.
        errors += [Issue(issue.code, issue.message) for issue in check_caption(image.caption, "style")]
        # A caption left as a review-noted captioner wrote it says the note; an edited one no longer does.
        note = review_note_of(image.captioned_by) if image.caption == image.auto_caption else None
        if note is not None:
            warnings.append(Issue("caption_needs_review", note))
        if spec is not None:
            warnings += [
                Issue(issue.code, issue.message)
                for issue in check_vocabulary(image.caption, spec, model.concept_id or None)
            ]
        found[image.id] = ImageFindings(errors, warnings)
    return found


def image_issues(
    model: CustomModel, images: Sequence[TrainingImage], settings: Settings
) -> dict[uuid.UUID, list[Issue]]:
    """Each image's errors: the findings that block training."""
    return {image_id: findings.errors for image_id, findings in image_findings(model, images, settings).items()}


def _copy_of(
    image: TrainingImage, originals: Sequence[TrainingImage], rules: DatasetRules
) -> tuple[TrainingImage | None, bool]:
    """The first earlier image this one copies and whether that is sure; (None, False) when it copies none."""
    from ember.engine.dataset import DUPLICATE_IMAGE, POSSIBLE_DUPLICATE, likeness

    unsure: TrainingImage | None = None
    for earlier in originals:
        if earlier.content_hash and earlier.content_hash == image.content_hash:
            return earlier, True
        if earlier.fingerprint is None or image.fingerprint is None:
            continue
        verdict = likeness(earlier.fingerprint, image.fingerprint).verdict(rules)
        if verdict == DUPLICATE_IMAGE:
            return earlier, True
        if verdict == POSSIBLE_DUPLICATE and unsure is None:
            unsure = earlier
    return unsure, False


def update_caption(session: Session, model: CustomModel, image: TrainingImage, caption: str) -> TrainingImage:
    _refuse_while_training(session, model, "edit captions")
    text = " ".join(caption.split())
    if text != image.caption:
        image.caption = text
        touch(model)
    return image


def delete_image(session: Session, blobs: BlobStore, model: CustomModel, image: TrainingImage) -> None:
    _refuse_while_training(session, model, "delete images")
    key = image.blob_key
    session.delete(image)
    touch(model)
    session.commit()
    blobs.delete(key)


# --- training -----------------------------------------------------------------------------------------------


def training_errors(session: Session, settings: Settings, model: CustomModel) -> list[dict[str, Any]]:
    """Every training rule the model breaks now, per image and per model, as wire validation errors."""
    rules = dataset_rules(settings)
    images = list_images(session, model)
    errors: list[dict[str, Any]] = []
    if len(images) < rules.min_count:
        errors.append(
            _error(
                ["images"],
                f"The model has {len(images)} images; at least {rules.min_count} are needed to train.",
                "too_few_images",
            )
        )
    if len(images) > rules.max_count:
        errors.append(
            _error(
                ["images"],
                f"The model has {len(images)} images; at most {rules.max_count} are allowed.",
                TOO_MANY_IMAGES,
            )
        )
    filenames = {image.id: image.filename or "an image" for image in images}
    for image_id, issues in image_issues(model, images, settings).items():
        for issue in issues:
            loc: list[str | int] = ["images", str(image_id)]
            if issue.code.startswith("caption_"):
                loc.append("caption")
            # The file is named: a message read away from the image (a list of what blocks training) says which.
            errors.append(_error(loc, f"{filenames[image_id]}: {issue.message}", issue.code))
    errors += _concept_errors(model.training_mode, model.concept_id, ["conceptId"])
    if not model.sample_prompt.strip():
        errors.append(_error(["samplePrompt"], "A sample prompt is required before training.", "missing"))
    else:
        errors += _sample_prompt_errors(model.training_mode, model.concept_id, model.sample_prompt, ["samplePrompt"])
    if _base_model(model.base_model_name) is None:
        errors.append(
            _error(["baseModel"], f"The base model {model.base_model_name!r} is not available.", "unknown_base_model")
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
    _refuse_while_training(session, model, "start another training")
    errors = training_errors(session, settings, model)
    if errors:
        raise InvalidInput(errors)
    from ember.engine.captioning import ensure_concept, trim_caption

    concept = model.concept_id if model.training_mode is TrainingMode.subject else None
    highest = session.scalar(select(func.max(CustomModelVersion.number)).where(CustomModelVersion.model_id == model.id))
    version = max(highest or 0, model.current_version) + 1
    request: dict[str, Any] = {
        "customModelId": str(model.id),
        "baseModel": model.base_model_name,
        "baseModelVersion": model.base_model_version,
        "mode": model.training_mode.value,
        "concept": concept or "",
        "samplePrompt": model.sample_prompt,
        "images": [
            {
                "id": str(image.id),
                "blobKey": image.blob_key,
                "caption": trim_caption(ensure_concept(image.caption or "", concept)),
            }
            for image in list_images(session, model)
        ],
        "config": dict(overrides),
        "version": version,
        "loraBlobKey": f"custom-models/{model.id.hex}/versions/{version}/lora.safetensors",
    }
    job = create_job(
        session, org_id=org_id, client_pk=client_pk, kind=JobKind.train, request=request, custom_model_id=model.id
    )
    model.training_state = TrainingState.queued
    touch(model)
    return job


def follow_training_job(session: Session, model_id: uuid.UUID) -> None:
    """Bring a model's training state in line with its latest training job: `training` once a worker claimed
    it, `cancelled`, or `failed` (failed or timed out); the job keeps the error code and message."""
    model = session.get(CustomModel, model_id, populate_existing=True)
    if model is not None:
        _settle_training_state(session, model)


def record_trained_version(
    session: Session, model_id: uuid.UUID, *, number: int, lora_blob_key: str, size: int, job_id: str
) -> CustomModelVersion:
    """A training job's success: its LoRA becomes version `number`, the model's current one, and the model is
    ready. Call it in the transaction that records the job's success, so neither happens without the other."""
    model = session.get(CustomModel, model_id, populate_existing=True)
    if model is None:
        raise ModelNotFound(str(model_id))
    version = CustomModelVersion(
        model_id=model.id, number=number, lora_blob_key=lora_blob_key, size=size, training_job_id=job_id,
        created_at=utcnow(),
    )
    session.add(version)
    model.current_version = number
    model.size = size
    model.training_state = TrainingState.ready
    touch(model)
    session.flush()
    return version


# --- publishing and weights ---------------------------------------------------------------------------------


def current_version(session: Session, model: CustomModel) -> CustomModelVersion | None:
    if model.current_version < 1:
        return None
    return session.scalar(
        select(CustomModelVersion).where(
            CustomModelVersion.model_id == model.id, CustomModelVersion.number == model.current_version
        )
    )


def publish(session: Session, model: CustomModel) -> CustomModel:
    if current_version(session, model) is None:
        raise LifecycleConflict("model_not_trained", "Only a trained custom model can be published; train it first.")
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


# --- shares -------------------------------------------------------------------------------------------------


def list_shares(session: Session, model: CustomModel) -> list[Share]:
    return list(session.scalars(select(Share).where(Share.model_id == model.id).order_by(Share.created_at, Share.id)))


def _resolve_principal(session: Session, name: str) -> tuple[PrincipalKind, str, uuid.UUID] | None:
    """A technical account id, technical account email or user email, as stored, with its organization."""
    text = name.strip()
    client = session.scalar(
        select(ApiClient).where(ApiClient.technical_account_id == text, ApiClient.revoked_at.is_(None))
    )
    if client is not None:
        return PrincipalKind.technical_account_id, client.technical_account_id, client.org_id
    client = session.scalar(
        select(ApiClient).where(
            func.lower(ApiClient.technical_account_email) == text.lower(), ApiClient.revoked_at.is_(None)
        )
    )
    if client is not None:
        return PrincipalKind.technical_account_email, client.technical_account_email, client.org_id
    user = session.scalar(select(User).where(func.lower(User.email) == text.lower(), User.disabled_at.is_(None)))
    if user is not None:
        return PrincipalKind.user_email, user.email, user.org_id
    return None


def add_share(session: Session, model: CustomModel, principal: str, role: str) -> tuple[Share, bool]:
    """Share with a principal of another organization, or change its role; True when the share is new."""
    resolved = _resolve_principal(session, principal)
    if resolved is None:
        raise InvalidInput(
            [_error(["body", "principal"], "No technical account or user has that id or email.", "unknown_principal")]
        )
    kind, value, principal_org = resolved
    if principal_org == model.org_id:
        raise InvalidInput(
            [
                _error(
                    ["body", "principal"],
                    "That principal belongs to the organization that owns the model and has full access already.",
                    "principal_in_owning_organization",
                )
            ]
        )
    share = session.scalar(
        select(Share).where(Share.model_id == model.id, Share.principal_kind == kind, Share.principal_value == value)
    )
    created = share is None
    if share is None:
        share = Share(model_id=model.id, principal_kind=kind, principal_value=value, role=ShareRole(role))
        share.created_at = utcnow()
        session.add(share)
    elif share.role is not ShareRole(role):
        share.role = ShareRole(role)
    else:
        return share, False
    touch(model)
    session.flush()
    return share, created


def remove_share(session: Session, model: CustomModel, principal: str) -> None:
    text = principal.strip()
    shares = session.scalars(
        select(Share).where(Share.model_id == model.id, func.lower(Share.principal_value) == text.lower())
    ).all()
    if not shares:
        raise ShareNotFound(text)
    for share in shares:
        session.delete(share)
    touch(model)
