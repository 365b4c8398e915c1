"""Wire schemas: the JSON shapes of the Firefly-compatible API, named exactly as its clients expect."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_serializer, model_validator
from pydantic_core import PydanticCustomError

from ember.jobs.webhooks import WebhookFields
from ember.media import MAX_SEED

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


class CheckMeasureItem(WireModel):
    name: str = Field(description="conceptRate, otherPrompts, styleRate or likeness")
    label: str
    value: float
    before: float | None = Field(None, description="The same figure from the base model alone, where it has one.")
    target: str = Field(description="The condition the figure is held to, in words.")
    passed: bool | None = Field(description="null: shown for the owner to judge, not held to a threshold.")


class ModelCheckItem(WireModel):
    """What Ember measured of the current version after its training (docs/custom-models.md)."""

    status: Literal["passed", "failed", "unmeasured"]
    summary: str
    prompt: str = Field(description="The prompt of the samples.")
    measures: list[CheckMeasureItem]
    samples: list[str] = Field(description="Signed URLs of samples of the prompt drawn with the custom model.")


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
    check: ModelCheckItem | None = Field(
        None,
        description="The check after training of the current version; absent before training and for versions "
        "trained before Ember checked them. Publishing a version whose check failed needs force=true.",
    )
    # The project the model was saved to (Ember's addition; absent when none).
    project_id: str | None = Field(None, alias="projectId")

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


# Lifecycle of a custom model (Ember's own endpoints, in the listing's style).

MAX_PROMPT_CHARS = 1024
MAX_CAPTION_CHARS = 2000


class StrictWireModel(WireModel):
    """A request body: unknown fields are rejected, values are not coerced across types."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid", strict=True)


class BaseModelChoice(StrictWireModel):
    name: str = Field(min_length=1, max_length=100)
    version: str | None = Field(None, max_length=100)


class CustomModelCreate(StrictWireModel):
    display_name: str = Field(alias="displayName", min_length=1, max_length=200, pattern=r"\S")
    training_mode: Literal["subject", "style"] = Field(alias="trainingMode")
    concept_id: str = Field("", alias="conceptId", max_length=50)
    project_id: str | None = Field(None, alias="projectId")
    base_model: BaseModelChoice | None = Field(None, alias="baseModel")
    sample_prompt: str = Field("", alias="samplePrompt", max_length=MAX_PROMPT_CHARS)


class CustomModelPatch(StrictWireModel):
    # Documented as plain strings: a field may be left out, but null is refused (see _no_nulls).
    display_name: Annotated[
        str | None, WithJsonSchema({"type": "string", "minLength": 1, "maxLength": 200, "pattern": r"\S"})
    ] = Field(None, alias="displayName", min_length=1, max_length=200, pattern=r"\S")
    sample_prompt: Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": MAX_PROMPT_CHARS})] = Field(
        None, alias="samplePrompt", max_length=MAX_PROMPT_CHARS
    )
    concept_id: Annotated[str | None, WithJsonSchema({"type": "string", "maxLength": 50})] = Field(
        None, alias="conceptId", max_length=50
    )

    @model_validator(mode="after")
    def _no_nulls(self) -> CustomModelPatch:
        # An absent field is left as it is; null is no value for any of them (send "" to clear a prompt).
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise PydanticCustomError("string_type", "Input should be a valid string, not null")
        return self


class ImageIssue(WireModel):
    code: str
    message: str


class TrainingImageItem(WireModel):
    """One training image, or one uploaded file that was refused (`stored: false`, no id)."""

    id: str | None
    filename: str
    stored: bool
    caption: str | None = None
    auto_caption: str | None = Field(None, alias="autoCaption")
    width: int | None = None
    height: int | None = None
    errors: list[ImageIssue]
    # Findings that do not block training but ask the owner to look (a possible copy, a caption to review).
    warnings: list[ImageIssue] = Field(default_factory=list)
    # A signed URL of a small WebP of the image (at most 256 px), valid for one to two hours; Ember's addition.
    preview_url: str | None = Field(None, alias="previewUrl")


class TrainingSetSummary(WireModel):
    """The training set as a whole: whether training may start, and every rule it breaks now (the errors that
    `train-async` would answer), with a score of how much of the set is usable."""

    ready_to_train: bool = Field(alias="readyToTrain")
    score: int = Field(ge=0, le=100, description="Usable images against the images needed, 0–100.")
    image_count: int = Field(alias="imageCount")
    usable_count: int = Field(alias="usableCount", description="Images that break no rule.")
    review_count: int = Field(alias="reviewCount", description="Usable images with a finding to look at.")
    min_images: int = Field(alias="minImages")
    max_images: int = Field(alias="maxImages")
    blocking: list[ValidationErrorItem]


class TrainingImageList(WireModel):
    images: list[TrainingImageItem]
    total_count: int
    summary: TrainingSetSummary | None = None


class CaptionPatch(StrictWireModel):
    caption: str = Field(max_length=MAX_CAPTION_CHARS)


class TrainingOverrides(StrictWireModel, WebhookFields):
    """Training settings that replace the base model's preset; each is optional. `webhook` and
    `webhookEventsFilter` (Ember extensions) name a URL that hears about the training job."""

    steps: int | None = Field(None, ge=1, le=20_000)
    learning_rate: float | None = Field(None, alias="learningRate", gt=0, le=0.1)
    rank: int | None = Field(None, ge=1, le=128)
    resolution: int | None = Field(None, ge=64, le=2048, multiple_of=8)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)

    def engine_settings(self) -> dict[str, int | float]:
        """The overrides under the engine's TrainConfig field names, unset ones left out."""
        dumped = self.model_dump(by_alias=False, exclude=set(WebhookFields.model_fields))
        return {key: value for key, value in dumped.items() if value is not None}


class ShareCreate(StrictWireModel):
    principal: str = Field(min_length=1, max_length=320)
    role: Literal["user", "editor"]


class ShareItem(WireModel):
    principal: str
    principal_kind: Literal["technical_account_id", "technical_account_email", "user_email"] = Field(
        alias="principalKind"
    )
    role: Literal["user", "editor"]
    created_date: datetime = Field(alias="createdDate")

    @field_serializer("created_date")
    def _utc_iso(self, value: datetime) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


class ShareList(WireModel):
    shares: list[ShareItem]
