"""Wire shapes of image generation and the job API (SPEC §3), with every per-field rule of the request."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ember.jobs.webhooks import WebhookFields
from ember.media import MAX_SEED, MIMETYPES
from ember.validation import validation_entry

MODEL_VERSIONS = ("image3", "image3_custom", "image4_standard", "image4_ultra", "image4_custom")
DEFAULT_MODEL_VERSION = "image3"
OUTPUT_MIMETYPES = MIMETYPES
SUPPORTED_SIZES = (
    (2048, 2048), (1024, 1024), (2304, 1792), (1792, 2304), (2688, 1536), (2688, 1512),
    (1344, 768), (1344, 756), (1152, 896), (896, 1152), (1440, 2560),
)
DEFAULT_SIZE = (2048, 2048)
MAX_VARIATIONS = 4
MAX_CUSTOM_MODELS = 4
MAX_CUSTOM_MODEL_WEIGHT = 2.0
LOCALE = re.compile(r"^[a-z]{2}-[A-Z]{2}$")
# The Firefly style preset ids of SPEC §6; a test keeps this list equal to the engine's phrase table (the API
# may not import the engine).
STYLE_PRESET_IDS: frozenset[str] = frozenset((
    'graphic', 'wireframe', 'vector_look', 'bw', 'cool_colors', 'golden', 'monochromatic', 'muted_color',
    'pastel_color', 'toned_image', 'vibrant_colors', 'warm_tone', 'closeup', 'knolling',
    'landscape_photography', 'macrophotography', 'photographed_through_window', 'shallow_depth_of_field',
    'shot_from_above', 'shot_from_below', 'surface_detail', 'wide_angle', 'beautiful', 'bohemian',
    'chaotic', 'dais', 'divine', 'eclectic', 'futuristic', 'kitschy', 'nostalgic', 'simple',
    'antique_photo', 'bioluminescent', 'bokeh', 'color_explosion', 'dark', 'faded_image', 'fisheye',
    'gomori_photography', 'grainy_film', 'iridescent', 'isometric', 'misty', 'neon',
    'otherworldly_depiction', 'ultraviolet', 'underwater', 'backlighting', 'dramatic_light', 'golden_hour',
    'harsh_light', 'long', 'low_lighting', 'multiexposure', 'studio_light', 'surreal_lighting',
    '3d_patterns', 'charcoal', 'claymation', 'fabric', 'fur', 'guilloche_patterns', 'layered_paper',
    'marble_sculpture', 'made_of_metal', 'origami', 'paper_mache', 'polka', 'strange_patterns',
    'wood_carving', 'yarn', 'art_deco', 'art_nouveau', 'baroque', 'bauhaus', 'constructivism', 'cubism',
    'cyberpunk', 'fantasy', 'fauvism', 'film_noir', 'glitch_art', 'impressionism', 'industrialism',
    'maximalism', 'minimalism', 'modern_art', 'modernism', 'neo', 'pointillism', 'psychedelic',
    'science_fiction', 'steampunk', 'surrealism', 'synthetism', 'synthwave', 'vaporwave', 'acrylic_paint',
    'bold_lines', 'chiaroscuro', 'color_shift_art', 'daguerreotype', 'digital_fractal', 'doodle_drawing',
    'double_exposure_portrait', 'fresco', 'geometric_pen', 'halftone', 'ink', 'light_painting',
    'line_drawing', 'linocut', 'oil_paint', 'paint_spattering', 'painting', 'palette_knife',
    'photo_manipulation', 'scribble_texture', 'sketch', 'splattering', 'stippling_drawing', 'watercolor',
    '3d', 'anime', 'cartoon', 'cinematic', 'comic_book', 'concept_art', 'cyber_matrix', 'digital_art',
    'flat_design', 'geometric', 'glassmorphism', 'glitch_graphic', 'graffiti', 'hyper_realistic',
    'interior_design', 'line_gradient', 'low_poly', 'newspaper_collage', 'optical_illusion',
    'pattern_pixel', 'pixel_art', 'pop_art', 'product_photo', 'psychedelic_background',
    'psychedelic_wonderland', 'scandinavian', 'splash_images', 'stamp', 'trompe_loeil',
))


class StrictWire(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Size(StrictWire):
    width: int
    height: int

    @model_validator(mode="after")
    def _supported(self) -> Size:
        if (self.width, self.height) not in SUPPORTED_SIZES:
            listed = ", ".join(f"{w}x{h}" for w, h in SUPPORTED_SIZES)
            raise ValueError(f"size {self.width}x{self.height} is not supported; use one of {listed}")
        return self


class ImageSource(StrictWire):
    upload_id: str | None = Field(None, alias="uploadId")
    url: str | None = Field(None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageSource:
        if (self.upload_id is None) == (self.url is None):
            raise ValueError("give exactly one of uploadId or url")
        return self


class ImageReference(StrictWire):
    source: ImageSource


class Style(StrictWire):
    presets: list[str] = Field(default_factory=list)
    strength: int = Field(50, ge=1, le=100)
    image_reference: ImageReference | None = Field(None, alias="imageReference")

    @field_validator("presets")
    @classmethod
    def _known_unique(cls, presets: list[str]) -> list[str]:
        unknown = [preset for preset in presets if preset not in STYLE_PRESET_IDS]
        if unknown:
            raise ValueError(f"unknown style presets: {', '.join(unknown)}")
        if len(set(presets)) != len(presets):
            raise ValueError("style presets must be unique")
        return presets


class Structure(StrictWire):
    strength: int = Field(50, ge=0, le=100)
    image_reference: ImageReference = Field(alias="imageReference")


Seed = Annotated[int, Field(ge=0, le=MAX_SEED, strict=True)]


class WeightedCustomModel(StrictWire):
    """One entry of Ember's `customModels` extension: a custom model and how strongly it applies."""

    id: str = Field(min_length=1, description="The custom model's asset id (urn:aaid:sc:<region>:<uuid>).")
    weight: float = Field(1.0, ge=0, le=MAX_CUSTOM_MODEL_WEIGHT, description="0 (no effect) to 2; default 1.")


class GenerateImagesRequest(StrictWire, WebhookFields):
    """The body of generate-async and generate; unknown fields are rejected (`customModels`, `webhook` and
    `webhookEventsFilter` are Ember extensions)."""

    prompt: str = Field(min_length=1, max_length=1024)
    negative_prompt: str | None = Field(None, alias="negativePrompt", max_length=1024)
    num_variations: int | None = Field(None, alias="numVariations", ge=1, le=MAX_VARIATIONS, strict=True)
    seeds: list[Seed] | None = Field(None, min_length=1, max_length=MAX_VARIATIONS)
    size: Size | None = None
    content_class: Literal["photo", "art"] | None = Field(None, alias="contentClass")
    visual_intensity: int | None = Field(None, alias="visualIntensity", ge=2, le=10, strict=True)
    style: Style | None = None
    structure: Structure | None = None
    prompt_biasing_locale_code: str | None = Field(
        None, alias="promptBiasingLocaleCode", pattern=LOCALE.pattern
    )
    custom_model_id: str | None = Field(None, alias="customModelId", min_length=1)
    custom_models: list[WeightedCustomModel] | None = Field(
        None,
        alias="customModels",
        min_length=1,
        max_length=MAX_CUSTOM_MODELS,
        description="Ember extension: up to 4 custom models applied together, each with its weight (0–2). "
        "customModelId, when given too, joins them at weight 1.",
    )
    upsampler_type: Literal["default", "low_creativity"] | None = Field(None, alias="upsamplerType")

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("prompt must not be blank")
        return prompt

    @field_validator("seeds")
    @classmethod
    def _unique(cls, seeds: list[int] | None) -> list[int] | None:
        if seeds is not None and len(set(seeds)) != len(seeds):
            raise ValueError("seeds must be unique")
        return seeds

    @field_validator("custom_models")
    @classmethod
    def _distinct(cls, models: list[WeightedCustomModel] | None) -> list[WeightedCustomModel] | None:
        if models is not None and len({model.id for model in models}) != len(models):
            raise ValueError("each custom model may be listed once")
        return models

    def weighted_custom_models(self) -> list[tuple[str, float, list[str | int]]]:
        """Every custom model asked for: (asset id, weight, where it was named). `customModelId` alone is one
        model at weight 1; listed in `customModels` too, the list's weight wins."""
        listed = self.custom_models or []
        chosen: list[tuple[str, float, list[str | int]]] = []
        if self.custom_model_id is not None and all(model.id != self.custom_model_id for model in listed):
            chosen.append((self.custom_model_id, 1.0, ["body", "customModelId"]))
        for index, model in enumerate(listed):
            chosen.append((model.id, model.weight, ["body", "customModels", index, "id"]))
        return chosen


def cross_field_errors(body: GenerateImagesRequest, model_version: str) -> list[dict[str, Any]]:
    """The rules that tie fields (and the model version header) together."""
    errors: list[dict[str, Any]] = []
    if body.seeds is not None and body.num_variations is not None and body.num_variations != len(body.seeds):
        errors.append(validation_entry(["body", "numVariations"], "numVariations must equal the number of seeds"))
    custom = model_version.endswith("_custom")
    wants_custom = body.custom_model_id is not None or body.custom_models is not None
    if custom and not wants_custom:
        errors.append(validation_entry(["body", "customModelId"], f"{model_version} requires customModelId", "missing"))
    if wants_custom and not custom:
        errors.append(
            validation_entry(["header", "x-model-version"], "custom models need a *_custom x-model-version")
        )
    if len(body.weighted_custom_models()) > MAX_CUSTOM_MODELS:
        errors.append(
            validation_entry(
                ["body", "customModels"], f"at most {MAX_CUSTOM_MODELS} custom models, customModelId included"
            )
        )
    if body.upsampler_type is not None and model_version != "image4_custom":
        errors.append(validation_entry(["body", "upsamplerType"], "upsamplerType is only accepted with image4_custom"))
    return errors


class JobAccepted(BaseModel):
    jobId: str
    statusUrl: str
    cancelUrl: str

    @classmethod
    def for_job(cls, job_id: str, base_url: str) -> JobAccepted:
        """The 202 body of any job: its id and the absolute URLs to follow and cancel it."""
        return cls(jobId=job_id, statusUrl=f"{base_url}/v3/status/{job_id}", cancelUrl=f"{base_url}/v3/cancel/{job_id}")


class OutputImage(BaseModel):
    url: str


class Output(BaseModel):
    seed: int
    image: OutputImage


class ResultSize(BaseModel):
    width: int
    height: int


class JobWarning(BaseModel):
    code: str
    message: str


class GenerationResult(BaseModel):
    size: ResultSize
    outputs: list[Output]
    contentClass: str | None = None
    warnings: list[JobWarning] | None = None


class LossPoint(BaseModel):
    step: int
    loss: float


class TrainingSample(BaseModel):
    step: int
    url: str


class TrainingProgress(BaseModel):
    """Where a training job stands: its step, loss and ETA, the loss curve (at most 200 points, each the mean of
    a run of steps), sample images with signed URLs, the last checkpoint and the step it resumed from."""

    step: int
    totalSteps: int
    loss: float | None = None
    etaSeconds: float | None = None
    losses: list[LossPoint]
    samples: list[TrainingSample]
    checkpointStep: int | None = None
    resumedFrom: int | None = None


class TrainingResult(BaseModel):
    customModelId: str
    version: int
    size: int


class JobStatus(BaseModel):
    """pending/running: jobId, status, progress; succeeded: + result; failed/cancelled/timeout: + error.
    Training jobs also carry `training` once a worker has started them."""

    jobId: str
    status: str
    progress: int | None = None
    result: GenerationResult | TrainingResult | dict[str, Any] | None = None
    error_code: str | None = None
    message: str | None = None
    training: TrainingProgress | None = None
    attempts: int | None = Field(
        None,
        description="Ember extension: how many times an engine worker has taken the job (more than 1 once a lost "
        "worker's job was taken again); absent before the first.",
    )


class CancelAccepted(BaseModel):
    jobId: str
    status: str


class UploadedImage(BaseModel):
    id: str


class UploadResponse(BaseModel):
    images: list[UploadedImage]
