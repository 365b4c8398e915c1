"""The one place where stored rows become wire objects (and wire ids become stored keys)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC
from typing import Any

from ember.api.schemas import (
    BaseModelRef,
    CheckMeasureItem,
    CustomModelItem,
    ImageIssue,
    ModelCheckItem,
    ShareItem,
    TrainingImageItem,
)
from ember.custom_models.images import ImageFindings, Issue
from ember.store.tables import CustomModel, Share, TrainingImage

# What an asset id looks like, as the OpenAPI document states it for parameters that take one.
ASSET_ID_PATTERN = (
    r"^urn:aaid:sc:[A-Za-z0-9]+:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)
_ASSET_ID = re.compile(r"^urn:aaid:sc:[A-Za-z0-9]+:([0-9a-fA-F-]{36})$")


class InvalidAssetId(ValueError):
    """Not of the form urn:aaid:sc:<region>:<uuid>."""


def asset_id(model_id: uuid.UUID, region: str) -> str:
    return f"urn:aaid:sc:{region}:{model_id}"


def model_id_from_asset_id(value: str) -> uuid.UUID:
    """The stored id inside an asset id; any region is accepted, so ids survive a region change."""
    match = _ASSET_ID.match(value)
    if match is None:
        raise InvalidAssetId(value)
    try:
        return uuid.UUID(match.group(1))
    except ValueError as error:
        raise InvalidAssetId(value) from error


def model_check_item(stored: dict[str, Any] | None, sign: Callable[[str], str]) -> ModelCheckItem | None:
    """A version's stored check (ember.engine.checks.ModelCheck.as_json), its samples as signed URLs."""
    if not stored:
        return None
    return ModelCheckItem(
        status=stored["status"],
        summary=stored["summary"],
        prompt=stored.get("prompt", ""),
        measures=[CheckMeasureItem.model_validate(measure) for measure in stored.get("measures", [])],
        samples=[sign(key) for key in stored.get("sampleKeys", [])],
    )


def custom_model_item(model: CustomModel, region: str, check: ModelCheckItem | None = None) -> CustomModelItem:
    wire_id = asset_id(model.id, region)
    return CustomModelItem.model_validate(
        {
            "assetId": wire_id,
            "repo:assetId": wire_id,
            "assetName": f"{model.display_name}.ffcustommodel",
            "displayName": model.display_name,
            "version": str(model.current_version),
            "size": model.size,
            "etag": f'"{model.etag}"',
            "trainingMode": model.training_mode.value,
            "conceptId": model.concept_id if model.training_mode.value == "subject" else "",
            "createdDate": model.created_at.astimezone(UTC),
            "modifiedDate": model.modified_at.astimezone(UTC),
            "publishedState": model.published_state.value,
            "trainingState": model.training_state.value,
            "baseModel": BaseModelRef(name=model.base_model_name, version=model.base_model_version),
            "samplePrompt": model.sample_prompt,
            "check": check,
            "projectId": str(model.project_id) if model.project_id is not None else None,
        }
    )


def _wire_issues(issues: list[Issue]) -> list[ImageIssue]:
    return [ImageIssue(code=issue.code, message=issue.message) for issue in issues]


def training_image_item(
    image: TrainingImage, findings: ImageFindings, preview_url: str | None = None
) -> TrainingImageItem:
    return TrainingImageItem.model_validate(
        {
            "id": str(image.id),
            "filename": image.filename,
            "stored": True,
            "caption": image.caption,
            "autoCaption": image.auto_caption,
            "width": image.width,
            "height": image.height,
            "errors": _wire_issues(findings.errors),
            "warnings": _wire_issues(findings.warnings),
            "previewUrl": preview_url,
        }
    )


def refused_image_item(filename: str, issues: list[Issue]) -> TrainingImageItem:
    return TrainingImageItem.model_validate(
        {"id": None, "filename": filename, "stored": False, "errors": _wire_issues(issues)}
    )


def share_item(share: Share) -> ShareItem:
    return ShareItem.model_validate(
        {
            "principal": share.principal_value,
            "principalKind": share.principal_kind.value,
            "role": share.role.value,
            "createdDate": share.created_at.astimezone(UTC),
        }
    )
