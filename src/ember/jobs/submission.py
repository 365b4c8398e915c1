"""Turning a validated generation request into a stored job spec: model version and mimetype headers,
the custom model the caller may use, uploaded references, seeds, and the concept-word warning."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ember.api.conversions import InvalidAssetId, model_id_from_asset_id
from ember.config import Settings
from ember.jobs.wire import (
    DEFAULT_MIMETYPE,
    DEFAULT_MODEL_VERSION,
    DEFAULT_SIZE,
    MAX_SEED,
    MODEL_VERSIONS,
    OUTPUT_MIMETYPES,
    GenerateImagesRequest,
    ImageSource,
    cross_field_errors,
    field_error,
)
from ember.store.custom_models import Viewer, visible_to
from ember.store.tables import CustomModel, CustomModelVersion, TrainingMode, Upload, utcnow


class InvalidGeneration(Exception):
    """The request broke one or more rules; each entry is a Firefly validation error."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(error["msg"]) for error in errors))
        self.errors = errors


@dataclass(frozen=True)
class Submission:
    spec: dict[str, Any]
    custom_model_id: uuid.UUID | None
    lora_key: str | None


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
        errors.append(field_error(["header", "x-model-version"], f"x-model-version must be one of {MODEL_VERSIONS}"))
    mimetype = accept_mimetype or DEFAULT_MIMETYPE
    if mimetype not in OUTPUT_MIMETYPES:
        errors.append(
            field_error(["header", "x-accept-mimetype"], f"x-accept-mimetype must be one of {OUTPUT_MIMETYPES}")
        )
    if not errors:
        errors.extend(cross_field_errors(body, version))
    when = now or utcnow()
    spec: dict[str, Any] = {
        "modelVersion": version,
        "baseModel": settings.model_version_base_models.get(version, settings.default_base_model),
        "prompt": body.prompt,
        "mimetype": mimetype,
    }
    model = None
    lora: dict[str, Any] | None = None
    if body.custom_model_id is not None and not errors:
        model, lora, problem = _usable_model(session, viewer, body.custom_model_id)
        if problem:
            errors.append(field_error(["body", "customModelId"], problem))
    if body.style and body.style.image_reference:
        spec["styleImage"] = _reference(
            session, viewer, body.style.image_reference.source, ["body", "style", "imageReference", "source"], when,
            errors,
        )
    if body.structure:
        spec["structureImage"] = _reference(
            session, viewer, body.structure.image_reference.source, ["body", "structure", "imageReference", "source"],
            when, errors,
        )
        spec["structureStrength"] = body.structure.strength
    if errors:
        raise InvalidGeneration(errors)
    count = len(body.seeds) if body.seeds else (body.num_variations or 1)
    seeds = list(body.seeds) if body.seeds else _random_seeds(count)
    width, height = (body.size.width, body.size.height) if body.size else DEFAULT_SIZE
    spec.update({"seeds": seeds, "width": width, "height": height})
    if body.negative_prompt is not None:
        spec["negativePrompt"] = body.negative_prompt
    if body.content_class is not None:
        spec["contentClass"] = body.content_class
    if body.visual_intensity is not None:
        spec["visualIntensity"] = body.visual_intensity
    if body.style is not None:
        spec["stylePresets"] = list(body.style.presets)
        spec["styleStrength"] = body.style.strength
    if body.prompt_biasing_locale_code is not None:
        spec["promptBiasingLocaleCode"] = body.prompt_biasing_locale_code
    if body.upsampler_type is not None:
        spec["upsamplerType"] = body.upsampler_type
    if model is not None:
        spec["baseModel"] = model.base_model_name
        spec["lora"] = lora
        spec["customModels"] = [body.custom_model_id]
        warning = concept_warning(model, body.prompt)
        if warning:
            spec["warnings"] = [warning]
    return Submission(
        spec=spec,
        custom_model_id=model.id if model is not None else None,
        lora_key=lora["key"] if lora else None,
    )


def concept_warning(model: CustomModel, prompt: str) -> dict[str, str] | None:
    """A subject-mode model's concept word missing from the prompt: the job still runs, with a warning."""
    concept = model.concept_id.strip()
    if model.training_mode is not TrainingMode.subject or not concept:
        return None
    if re.search(rf"(?<!\w){re.escape(concept)}(?!\w)", prompt, flags=re.IGNORECASE):
        return None
    return {
        "code": "concept_missing",
        "message": f"The prompt does not contain the custom model's concept word '{concept}'; "
        "the subject may not appear.",
    }


def _usable_model(
    session: Session, viewer: Viewer, wire_id: str
) -> tuple[CustomModel | None, dict[str, Any] | None, str | None]:
    try:
        model_id = model_id_from_asset_id(wire_id)
    except InvalidAssetId:
        return None, None, "customModelId must be an asset id (urn:aaid:sc:<region>:<uuid>)"
    model = session.scalar(select(CustomModel).where(CustomModel.id == model_id, visible_to(viewer)))
    if model is None:
        return None, None, "The custom model is unknown or not shared with this organization."
    version = None
    if model.current_version > 0:
        version = session.scalar(
            select(CustomModelVersion).where(
                CustomModelVersion.model_id == model.id, CustomModelVersion.number == model.current_version
            )
        )
    if version is None:
        return None, None, "The custom model has no trained weights yet."
    lora = {"key": f"{model.id}:v{version.number}", "blobKey": version.lora_blob_key, "weight": 1.0}
    return model, lora, None


def _reference(
    session: Session,
    viewer: Viewer,
    source: ImageSource,
    loc: list[str | int],
    now: datetime,
    errors: list[dict[str, Any]],
) -> dict[str, str] | None:
    if source.url is not None:
        return {"url": source.url}
    assert source.upload_id is not None
    upload = None
    try:
        upload = session.get(Upload, uuid.UUID(source.upload_id))
    except ValueError:
        pass
    if upload is None or upload.org_id != viewer.org_id or upload.expires_at < now:
        errors.append(field_error([*loc, "uploadId"], "The upload is unknown or has expired (uploads last 7 days)."))
        return None
    return {"blobKey": upload.blob_key, "mimetype": upload.mimetype}


def _random_seeds(count: int) -> list[int]:
    seeds: list[int] = []
    while len(seeds) < count:
        seed = secrets.randbelow(MAX_SEED + 1)
        if seed not in seeds:
            seeds.append(seed)
    return seeds
