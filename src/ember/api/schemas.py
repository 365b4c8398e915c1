"""Wire schemas: the JSON shapes of the Firefly-compatible API, named exactly as its clients expect."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

MODEL_MEDIA_TYPE = "application/vnd.adobe.ffmodel+dcx"


class WireModel(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class TokenResponse(WireModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


class TokenError(WireModel):
    error: Literal["invalid_client", "invalid_scope", "unsupported_grant_type", "invalid_request"]
    error_description: str


class ValidationErrorItem(WireModel):
    loc: list[str | int]
    msg: str
    type: str
    ctx: dict[str, object] | None = None


class ErrorBody(WireModel):
    error_code: str
    message: str
    validation_errors: list[ValidationErrorItem] | None = None


class BaseModelRef(WireModel):
    name: str
    version: str


class CustomModelItem(WireModel):
    asset_id: str = Field(alias="assetId")
    repo_asset_id: str = Field(alias="repo:assetId")
    asset_name: str = Field(alias="assetName")
    display_name: str = Field(alias="displayName")
    version: str
    size: int
    etag: str
    training_mode: Literal["subject", "style"] = Field(alias="trainingMode")
    concept_id: str = Field(alias="conceptId")
    media_type: str = Field(MODEL_MEDIA_TYPE, alias="mediaType")
    created_date: datetime = Field(alias="createdDate")
    modified_date: datetime = Field(alias="modifiedDate")
    published_state: Literal["never", "published", "unpublished"] = Field(alias="publishedState")
    training_state: Literal["draft", "queued", "training", "ready", "failed", "cancelled"] = Field(
        alias="trainingState"
    )
    base_model: BaseModelRef = Field(alias="baseModel")
    sample_prompt: str = Field(alias="samplePrompt")

    @field_serializer("created_date", "modified_date")
    def _utc_iso(self, value: datetime) -> str:
        # Millisecond precision with a Z suffix, as the published OpenAPI date-time examples show.
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class Link(WireModel):
    href: str
    rel: str
    templated: bool = False


class ListingLinks(WireModel):
    page: Link
    next: Link | None = None


class CustomModelList(WireModel):
    custom_models: list[CustomModelItem]
    links: ListingLinks = Field(alias="_links")
    total_count: int
