"""The typed contract between the submitting side and the engine workers: what a job asks for (`GenerationJob`,
`TrainingJob`) and what it produced (`GenerationOutcome`, `TrainingOutcome`, and the running `TrainingRecord`).

The submission side writes these, the worker and the status views read them; the job row's JSON columns hold
their serialized form. That form keeps the camelCase keys rows have always had, plus `"payload": 1`; a row
written before the marker existed (no `"payload"` key) reads as version 1 too, and a generation job stored with
one `lora` (the shape before several custom models) reads as a list of one."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field
from typing import Any

PAYLOAD_KEY = "payload"
PAYLOAD_VERSION = 1
CURVE_POINTS = 200


class UnknownPayloadVersion(ValueError):
    """A row written by a newer Ember than this one."""


def _check_version(data: dict[str, Any]) -> None:
    version = data.get(PAYLOAD_KEY, PAYLOAD_VERSION)
    if version != PAYLOAD_VERSION:
        raise UnknownPayloadVersion(f"job payload version {version!r} is not {PAYLOAD_VERSION}")


def _without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if value is not None}


# --- generation -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoraChoice:
    """One custom model's weights in a generation: `key` names the version (`<model uuid>:v<n>`)."""

    key: str
    blob_key: str
    weight: float = 1.0

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "blobKey": self.blob_key, "weight": self.weight}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoraChoice:
        return cls(key=str(data["key"]), blob_key=str(data["blobKey"]), weight=float(data.get("weight", 1.0)))


@dataclass(frozen=True)
class ImageRef:
    """A reference image: an uploaded blob (with its mimetype) or a URL the worker fetches."""

    url: str | None = None
    blob_key: str | None = None
    mimetype: str | None = None

    def to_json(self) -> dict[str, str]:
        if self.url is not None:
            return {"url": self.url}
        return _without_none({"blobKey": self.blob_key, "mimetype": self.mimetype})

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> ImageRef | None:
        if not data:
            return None
        return cls(url=data.get("url"), blob_key=data.get("blobKey"), mimetype=data.get("mimetype"))


def affinity_key(loras: list[LoraChoice] | tuple[LoraChoice, ...]) -> str | None:
    """What a worker holds after running these LoRAs, for routing: one model at weight 1 is its key, so jobs for
    that model go where it is loaded; a weighted combination is written `key@weight+key@weight…`, and
    `affinity_models` reads the models back out of it (a worker holding some of them is preferred)."""
    if not loras:
        return None
    if len(loras) == 1 and float(loras[0].weight) == 1.0:
        return loras[0].key
    return "+".join(f"{lora.key}@{float(lora.weight):g}" for lora in loras)


def affinity_models(key: str | None) -> list[str]:
    """The LoRA keys named by a routing key of `affinity_key`, in order ([] for none)."""
    if not key:
        return []
    return [part.rsplit("@", 1)[0] if "@" in part else part for part in key.split("+")]


@dataclass(frozen=True)
class GenerationJob:
    """Everything an engine worker needs to generate: resolved models, seeds, size and references."""

    model_version: str
    base_model: str
    prompt: str
    mimetype: str
    seeds: tuple[int, ...]
    width: int
    height: int
    negative_prompt: str | None = None
    content_class: str | None = None
    visual_intensity: int | None = None
    style_presets: tuple[str, ...] | None = None
    style_strength: int | None = None
    style_image: ImageRef | None = None
    structure_image: ImageRef | None = None
    structure_strength: int | None = None
    prompt_biasing_locale_code: str | None = None
    upsampler_type: str | None = None
    loras: tuple[LoraChoice, ...] = ()
    custom_models: tuple[str, ...] = ()  # the wire ids of the custom models asked for, in order
    warnings: tuple[dict[str, str], ...] = ()
    steps: int | None = None  # the base model's default when None

    @property
    def affinity(self) -> str | None:
        return affinity_key(self.loras)

    def to_json(self) -> dict[str, Any]:
        data = _without_none({
            PAYLOAD_KEY: PAYLOAD_VERSION,
            "modelVersion": self.model_version,
            "baseModel": self.base_model,
            "prompt": self.prompt,
            "mimetype": self.mimetype,
            "seeds": list(self.seeds),
            "width": self.width,
            "height": self.height,
            "negativePrompt": self.negative_prompt,
            "contentClass": self.content_class,
            "visualIntensity": self.visual_intensity,
            "stylePresets": None if self.style_presets is None else list(self.style_presets),
            "styleStrength": self.style_strength,
            "styleImage": None if self.style_image is None else self.style_image.to_json(),
            "structureImage": None if self.structure_image is None else self.structure_image.to_json(),
            "structureStrength": self.structure_strength,
            "promptBiasingLocaleCode": self.prompt_biasing_locale_code,
            "upsamplerType": self.upsampler_type,
            "steps": self.steps,
        })
        if self.loras:
            data["loras"] = [lora.to_json() for lora in self.loras]
            data["customModels"] = list(self.custom_models)
        if self.warnings:
            data["warnings"] = [dict(warning) for warning in self.warnings]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationJob:
        _check_version(data)
        loras = data.get("loras") or ([data["lora"]] if data.get("lora") else [])
        presets = data.get("stylePresets")
        return cls(
            model_version=str(data.get("modelVersion", "")),
            base_model=str(data["baseModel"]),
            prompt=str(data["prompt"]),
            mimetype=str(data["mimetype"]),
            seeds=tuple(int(seed) for seed in data["seeds"]),
            width=int(data["width"]),
            height=int(data["height"]),
            negative_prompt=data.get("negativePrompt"),
            content_class=data.get("contentClass"),
            visual_intensity=data.get("visualIntensity"),
            style_presets=None if presets is None else tuple(presets),
            style_strength=data.get("styleStrength"),
            style_image=ImageRef.from_json(data.get("styleImage")),
            structure_image=ImageRef.from_json(data.get("structureImage")),
            structure_strength=data.get("structureStrength"),
            prompt_biasing_locale_code=data.get("promptBiasingLocaleCode"),
            upsampler_type=data.get("upsamplerType"),
            loras=tuple(LoraChoice.from_json(lora) for lora in loras),
            custom_models=tuple(data.get("customModels", ())),
            warnings=tuple(dict(warning) for warning in data.get("warnings", ())),
            steps=data.get("steps"),
        )


def stored_affinity(request: dict[str, Any]) -> str | None:
    """The routing key of a stored job of any kind (training jobs and malformed rows have none)."""
    loras = request.get("loras") or ([request["lora"]] if request.get("lora") else [])
    try:
        return affinity_key([LoraChoice.from_json(lora) for lora in loras])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True)
class GeneratedImage:
    seed: int
    key: str  # the blob key of the signed image
    mimetype: str

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "key": self.key, "mimetype": self.mimetype}


@dataclass(frozen=True)
class GenerationOutcome:
    """A generation job's stored result."""

    width: int
    height: int
    outputs: tuple[GeneratedImage, ...]
    content_class: str | None = None
    warnings: tuple[dict[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "size": {"width": self.width, "height": self.height},
            "outputs": [output.to_json() for output in self.outputs],
        }
        if self.content_class:
            data["contentClass"] = self.content_class
        if self.warnings:
            data["warnings"] = [dict(warning) for warning in self.warnings]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GenerationOutcome:
        _check_version(data)
        return cls(
            width=int(data["size"]["width"]),
            height=int(data["size"]["height"]),
            outputs=tuple(
                GeneratedImage(int(output["seed"]), str(output["key"]), str(output.get("mimetype", "")))
                for output in data["outputs"]
            ),
            content_class=data.get("contentClass"),
            warnings=tuple(dict(warning) for warning in data.get("warnings", ())),
        )


# --- training ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingImageRef:
    id: str
    blob_key: str
    caption: str

    def to_json(self) -> dict[str, str]:
        return {"id": self.id, "blobKey": self.blob_key, "caption": self.caption}


@dataclass(frozen=True)
class TrainingJob:
    """Everything an engine worker needs to train one version of a custom model."""

    custom_model_id: str
    base_model: str
    base_model_version: str
    mode: str
    concept: str
    sample_prompt: str
    images: tuple[TrainingImageRef, ...]
    config: dict[str, Any]  # the caller's overrides of the base model's preset (snake_case preset fields)
    version: int
    lora_blob_key: str

    @property
    def model_id(self) -> uuid.UUID:
        return uuid.UUID(self.custom_model_id)

    def to_json(self) -> dict[str, Any]:
        return {
            PAYLOAD_KEY: PAYLOAD_VERSION,
            "customModelId": self.custom_model_id,
            "baseModel": self.base_model,
            "baseModelVersion": self.base_model_version,
            "mode": self.mode,
            "concept": self.concept,
            "samplePrompt": self.sample_prompt,
            "images": [image.to_json() for image in self.images],
            "config": dict(self.config),
            "version": self.version,
            "loraBlobKey": self.lora_blob_key,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingJob:
        _check_version(data)
        return cls(
            custom_model_id=str(data["customModelId"]),
            base_model=str(data["baseModel"]),
            base_model_version=str(data.get("baseModelVersion", "")),
            mode=str(data["mode"]),
            concept=str(data.get("concept") or ""),
            sample_prompt=str(data.get("samplePrompt") or ""),
            images=tuple(
                TrainingImageRef(id=str(image["id"]), blob_key=str(image["blobKey"]), caption=str(image["caption"]))
                for image in data["images"]
            ),
            config=dict(data.get("config", {})),
            version=int(data["version"]),
            lora_blob_key=str(data["loraBlobKey"]),
        )


def trained_model_of(request: dict[str, Any]) -> uuid.UUID | None:
    """The custom model a stored training job trains (None for a malformed job, which then simply fails)."""
    try:
        return uuid.UUID(str(request["customModelId"]))
    except (KeyError, ValueError):
        return None


def loss_curve(losses: list[float], points: int = CURVE_POINTS) -> list[dict[str, float]]:
    """The loss per step, averaged over equal runs of steps so that at most `points` remain; each point is
    labelled with the last step of its run."""
    if not losses:
        return []
    stride = max(1, math.ceil(len(losses) / points))
    curve = []
    for start in range(0, len(losses), stride):
        chunk = losses[start : start + stride]
        curve.append({"step": start + len(chunk), "loss": round(sum(chunk) / len(chunk), 6)})
    return curve


@dataclass
class TrainingRecord:
    """What the job row holds about a training run (in its `result` JSON under "training"); it outlives an
    attempt, so the next one knows which checkpoint to resume from and which samples exist."""

    total_steps: int = 0
    step: int = 0
    loss: float | None = None
    eta_s: float | None = None
    losses: list[float] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    checkpoint_step: int | None = None
    checkpoint_keys: list[str] = field(default_factory=list)
    resumed_from: int | None = None
    curve: list[dict[str, float]] = field(default_factory=list)  # the stored loss curve, as read back

    @classmethod
    def from_result(cls, result: dict[str, Any]) -> TrainingRecord:
        stored = result.get("training") or {}
        checkpoint = stored.get("checkpoint") or {}
        return cls(
            total_steps=int(stored.get("totalSteps", 0)),
            step=int(stored.get("step", 0)),
            loss=stored.get("loss"),
            eta_s=stored.get("etaSeconds"),
            samples=list(stored.get("samples", [])),
            checkpoint_step=checkpoint.get("step"),
            checkpoint_keys=list(checkpoint.get("keys", [])),
            resumed_from=stored.get("resumedFrom"),
            curve=list(stored.get("losses", [])),
        )

    def as_json(self) -> dict[str, Any]:
        """The stored form: the wire's `training` object, with sample keys instead of URLs and the checkpoint's
        blob keys (never shown)."""
        return {
            "step": self.step,
            "totalSteps": self.total_steps,
            "loss": self.loss,
            "etaSeconds": None if self.eta_s is None else round(self.eta_s, 1),
            "losses": loss_curve(self.losses),
            "samples": list(self.samples),
            "checkpoint": (
                {"step": self.checkpoint_step, "keys": list(self.checkpoint_keys)}
                if self.checkpoint_step is not None
                else None
            ),
            "resumedFrom": self.resumed_from,
        }

    @property
    def percent(self) -> int:
        return min(99, int(100 * self.step / max(1, self.total_steps)))


@dataclass(frozen=True)
class TrainingOutcome:
    """A training job's stored result on success."""

    custom_model_id: str  # the wire (asset) id
    version: int
    size: int
    training: TrainingRecord

    def to_json(self) -> dict[str, Any]:
        return {
            "customModelId": self.custom_model_id,
            "version": self.version,
            "size": self.size,
            "training": self.training.as_json(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainingOutcome:
        _check_version(data)
        return cls(
            custom_model_id=str(data["customModelId"]),
            version=int(data["version"]),
            size=int(data["size"]),
            training=TrainingRecord.from_result(data),
        )
