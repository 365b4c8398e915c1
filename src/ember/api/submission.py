"""Turning a validated generation request into a `GenerationJob` (`ember.jobs.payloads`): model version and
mimetype headers, the custom models the caller may use (with their weights), uploaded references, seeds, and the
concept-word warning."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.api.conversions import InvalidAssetId, model_id_from_asset_id
from ember.api.wire import (
    DEFAULT_MODEL_VERSION,
    DEFAULT_SIZE,
    MODEL_VERSIONS,
    OUTPUT_MIMETYPES,
    GenerateImagesRequest,
    ImageSource,
    cross_field_errors,
)
from ember.config import Settings
from ember.custom_models.lifecycle import prompt_names_concept
from ember.jobs.payloads import GenerationJob, ImageRef, LoraChoice
from ember.media import DEFAULT_MIMETYPE, MAX_SEED
from ember.store.custom_models import Viewer, visible_to
from ember.store.tables import CustomModel, CustomModelVersion, TrainingMode, Upload, utcnow
from ember.validation import validation_entry


class InvalidGeneration(Exception):
    """The request broke one or more rules; each entry is a Firefly validation error."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(error["msg"]) for error in errors))
        self.errors = errors


class CustomModelNotFound(Exception):
    """A model of the `customModels` list that is unknown or not shared with the caller; the answer names it."""

    def __init__(self, asset_id: str) -> None:
        super().__init__(f"The custom model {asset_id} is unknown or not shared with this organization.")
        self.asset_id = asset_id


@dataclass(frozen=True)
class Submission:
    job: GenerationJob
    custom_model_id: uuid.UUID | None

    @property
    def lora_key(self) -> str | None:
        return self.job.affinity


def prepare(
    session: Session,
    settings: Settings,
    viewer: Viewer,
    body: GenerateImagesRequest,
    model_version: str | None,
    accept_mimetype: str | None,
    now: datetime | None = None,
) -> Submission:
    """Check everything that needs headers or the database; raise InvalidGeneration listing each problem."""
    errors: list[dict[str, Any]] = []
    version = model_version or DEFAULT_MODEL_VERSION
    if version not in MODEL_VERSIONS:
        errors.append(
            validation_entry(["header", "x-model-version"], f"x-model-version must be one of {MODEL_VERSIONS}")
        )
    mimetype = accept_mimetype or DEFAULT_MIMETYPE
    if mimetype not in OUTPUT_MIMETYPES:
        errors.append(
            validation_entry(["header", "x-accept-mimetype"], f"x-accept-mimetype must be one of {OUTPUT_MIMETYPES}")
        )
    if not errors:
        errors.extend(cross_field_errors(body, version))
    when = now or utcnow()
    base_model = settings.model_version_base_models.get(version, settings.default_base_model)
    models: list[CustomModel] = []
    loras: list[LoraChoice] = []
    if not errors:
        for wire_id, weight, loc in body.weighted_custom_models():
            model, lora, problem = _usable_model(session, viewer, wire_id)
            if model is None and problem == UNKNOWN_MODEL and loc[1] == "customModels":
                raise CustomModelNotFound(wire_id)
            if problem:
                errors.append(validation_entry(loc, problem))
            elif model is not None and lora is not None:
                models.append(model)
                loras.append(LoraChoice(key=lora.key, blob_key=lora.blob_key, weight=weight))
        if len({model.base_model_name for model in models}) > 1:
            errors.append(validation_entry(["body", "customModels"], "the custom models must share one base model"))
    style_image = structure_image = None
    if body.style and body.style.image_reference:
        style_image = _reference(
            session, viewer, body.style.image_reference.source, ["body", "style", "imageReference", "source"], when,
            errors,
        )
    if body.structure:
        structure_image = _reference(
            session, viewer, body.structure.image_reference.source, ["body", "structure", "imageReference", "source"],
            when, errors,
        )
    if errors:
        raise InvalidGeneration(errors)
    count = len(body.seeds) if body.seeds else (body.num_variations or 1)
    seeds = list(body.seeds) if body.seeds else _random_seeds(count)
    width, height = (body.size.width, body.size.height) if body.size else DEFAULT_SIZE
    warnings = [warning for model in models if (warning := concept_warning(model, body.prompt))]
    job = GenerationJob(
        model_version=version,
        base_model=models[0].base_model_name if models else base_model,
        prompt=body.prompt,
        mimetype=mimetype,
        seeds=tuple(seeds),
        width=width,
        height=height,
        negative_prompt=body.negative_prompt,
        content_class=body.content_class,
        visual_intensity=body.visual_intensity,
        style_presets=None if body.style is None else tuple(body.style.presets),
        style_strength=None if body.style is None else body.style.strength,
        style_image=style_image,
        structure_image=structure_image,
        structure_strength=body.structure.strength if body.structure else None,
        prompt_biasing_locale_code=body.prompt_biasing_locale_code,
        upsampler_type=body.upsampler_type,
        loras=tuple(loras),
        custom_models=tuple(wire_id for wire_id, _, _ in body.weighted_custom_models()) if models else (),
        warnings=tuple(warnings),
    )
    return Submission(job=job, custom_model_id=models[0].id if models else None)


def concept_warning(model: CustomModel, prompt: str) -> dict[str, str] | None:
    """A subject-mode model's concept word missing from the prompt: the job still runs, with a warning."""
    concept = model.concept_id.strip()
    if model.training_mode is not TrainingMode.subject or not concept or prompt_names_concept(prompt, concept):
        return None
    return {
        "code": "concept_missing",
        "message": f"The prompt does not contain the custom model's concept word '{concept}'; "
        "the subject may not appear.",
    }


UNKNOWN_MODEL = "The custom model is unknown or not shared with this organization."


def _usable_model(
    session: Session, viewer: Viewer, wire_id: str
) -> tuple[CustomModel | None, LoraChoice | None, str | None]:
    try:
        model_id = model_id_from_asset_id(wire_id)
    except InvalidAssetId:
        return None, None, "a custom model id must be an asset id (urn:aaid:sc:<region>:<uuid>)"
    model = session.scalar(select(CustomModel).where(CustomModel.id == model_id, visible_to(viewer)))
    if model is None:
        return None, None, UNKNOWN_MODEL
    version = None
    if model.current_version > 0:
        version = session.scalar(
            select(CustomModelVersion).where(
                CustomModelVersion.model_id == model.id, CustomModelVersion.number == model.current_version
            )
        )
    if version is None:
        return None, None, "The custom model has no trained weights yet."
    lora = LoraChoice(key=f"{model.id}:v{version.number}", blob_key=version.lora_blob_key)
    return model, lora, None


def _reference(
    session: Session,
    viewer: Viewer,
    source: ImageSource,
    loc: list[str | int],
    now: datetime,
    errors: list[dict[str, Any]],
) -> ImageRef | None:
    if source.url is not None:
        return ImageRef(url=source.url)
    assert source.upload_id is not None
    upload = None
    try:
        upload = session.get(Upload, uuid.UUID(source.upload_id))
    except ValueError:
        pass
    if upload is None or upload.org_id != viewer.org_id or upload.expires_at < now:
        errors.append(
            validation_entry([*loc, "uploadId"], "The upload is unknown or has expired (uploads last 7 days).")
        )
        return None
    return ImageRef(blob_key=upload.blob_key, mimetype=upload.mimetype)


def _random_seeds(count: int) -> list[int]:
    seeds: list[int] = []
    while len(seeds) < count:
        seed = secrets.randbelow(MAX_SEED + 1)
        if seed not in seeds:
            seeds.append(seed)
    return seeds
