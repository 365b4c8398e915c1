"""A custom model's training images: upload with checks and captions, findings, captions and deletion."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ember.blobs import BlobStore, new_key
from ember.config import Settings
from ember.custom_models.lifecycle import (
    ImageNotFound,
    LifecycleConflict,
    base_model_spec,
    dataset_rules,
    refuse_while_training,
    touch,
)
from ember.media import SUFFIXES
from ember.store.database import after_commit
from ember.store.tables import (
    CustomModel,
    TrainingImage,
    utcnow,
)

if TYPE_CHECKING:
    from ember.engine.dataset import DatasetRules



TOO_MANY_IMAGES = "too_many_images"
# Codes of files that are not usable pictures at all: there is nothing to show or fix, so they are not kept.
UNUSABLE_FILE_CODES = frozenset(
    {"empty_file", "file_too_large", "unsupported_format", "corrupt_image", "decompression_bomb"}
)


@dataclass(frozen=True)
class Issue:
    """One broken rule of one image: a stable code and a message for people."""

    code: str
    message: str


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

    refuse_while_training(session, model, "add images")
    spec = base_model_spec(model.base_model_name)
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
            key = new_key(f"custom-models/{model.id.hex}/images", SUFFIXES[report.format])
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

    spec = base_model_spec(model.base_model_name)
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
    refuse_while_training(session, model, "edit captions")
    text = " ".join(caption.split())
    if text != image.caption:
        image.caption = text
        touch(model)
    return image


def delete_image(session: Session, blobs: BlobStore, model: CustomModel, image: TrainingImage) -> None:
    refuse_while_training(session, model, "delete images")
    key = image.blob_key
    session.delete(image)
    touch(model)
    after_commit(session, lambda: blobs.delete(key))
