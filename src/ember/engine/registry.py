"""The base models Ember knows: how each is loaded, its native resolutions, training limits and presets."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ember.engine.types import EngineError


class UnknownBaseModel(EngineError, KeyError):
    """No base model of that name is registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown base model"


SD_ATTENTION = ("to_q", "to_k", "to_v", "to_out.0")
WIDE_TARGETS = SD_ATTENTION + ("proj_in", "proj_out", "ff.net.0.proj", "ff.net.2", "conv1", "conv2")
TINY_TARGETS = SD_ATTENTION + ("proj_in", "proj_out", "ff.net.0.proj", "ff.net.2")
# diffusers' train_dreambooth_lora_flux.py targets plus the single blocks' projections; on FLUX only layers
# inside the transformer blocks are adapted (the top-level proj_out is not), 418 layers on FLUX.1-dev.
FLUX_TARGETS = (
    "attn.to_q",
    "attn.to_k",
    "attn.to_v",
    "attn.to_out.0",
    "attn.add_q_proj",
    "attn.add_k_proj",
    "attn.add_v_proj",
    "attn.to_add_out",
    "ff.net.0.proj",
    "ff.net.2",
    "ff_context.net.0.proj",
    "ff_context.net.2",
    "proj_mlp",
    "proj_out",
)


@dataclass(frozen=True)
class BaseModelSpec:
    """What Ember knows about one base model.

    `source` is a hub id or "builtin"; `builder` ("module:function") materializes a built-in model as a
    diffusers pipeline directory. `training_presets` maps a mode ("subject" | "style") to TrainConfig
    fields that differ from the generic defaults. `guidance_range` is what visualIntensity 2…10 spans.
    `replay_source` ("module:function", called with a count and a seed) gives captioned pictures of the base
    model's own world; a preset's `replay_examples` replays that many of them beside a subject's images, so the
    custom model keeps drawing everything else as the base model did.
    `captioner` names who writes the automatic captions of training images: "auto" (a vision-language model
    where its weights are present, else the built-in fallback, whose captions are flagged for review),
    "builtin", or a "module:name" reference to a captioner class of the base model's own. `vocabulary`
    ("module:name" of a collection of words) is every word the text encoder reads as one token, where that is a
    closed set: captions are checked against it, and a concept word must be one of its words; `concept_words`
    are the words of it that nothing in the base model's training used, offered as concept words.
    `checker` ("module:Class") measures a trained custom model with the base model's own measures before it is
    published (ember.engine.checks); without one only the generic figures are shown. `check_batch` is how many
    pictures the check draws in one engine call: as many as an API request (4) unless the model is small.
    """

    name: str
    family: str
    display_name: str
    source: str
    native_resolutions: tuple[tuple[int, int], ...]
    min_train_side: int
    lora_target_modules: tuple[str, ...]
    is_test_model: bool = False
    builder: str | None = None
    version: str = "1"
    default_steps: int = 30
    default_guidance: float = 7.5
    guidance_range: tuple[float, float] = (3.0, 12.0)
    supports_negative_prompt: bool = True
    trainable: bool = True
    training_presets: dict[str, dict[str, Any]] = field(default_factory=dict, hash=False, compare=False)
    replay_source: str | None = None
    untrainable_reason: str | None = None
    captioner: str = "auto"
    vocabulary: str | None = None
    concept_words: tuple[str, ...] = ()
    checker: str | None = None
    check_batch: int = 4

    @property
    def is_builtin(self) -> bool:
        return self.builder is not None

    def training_preset(self, mode: str) -> dict[str, Any]:
        return dict(self.training_presets.get(mode, {}))


def import_reference(reference: str) -> Any:
    """The object a "module:name" reference (a spec's `builder` or `replay_source`) points to."""
    module_name, _, name = reference.partition(":")
    return getattr(importlib.import_module(module_name), name)


_TINY_RESOLUTIONS = ((128, 128), (160, 128), (128, 160), (160, 96), (96, 160))
_TINY_PRESET: dict[str, Any] = {
    "steps": 300,
    "learning_rate": 2e-3,
    "rank": 8,
    "alpha": 8,
    "resolution": 128,
    "batch_size": 4,
    "sample_every": 100,
    "checkpoint_every": 100,
}


def _tiny_family_model(name: str, family: str, label: str, targets: tuple[str, ...], **settings: Any) -> BaseModelSpec:
    """A built-in test model of a family's architecture at `tiny`'s size (ember.engine.tiny builds it)."""
    return BaseModelSpec(
        name=name,
        family=family,
        display_name=f"Tiny {label}-shaped test model (images not meaningful)",
        source="builtin",
        native_resolutions=_TINY_RESOLUTIONS,
        min_train_side=64,
        lora_target_modules=targets,
        is_test_model=True,
        builder=f"ember.engine.tiny:materialize_{family}",
        captioner="builtin",
        default_steps=20,
        training_presets={
            "subject": dict(_TINY_PRESET, aspect_buckets=True),
            "style": dict(_TINY_PRESET, aspect_buckets=True, caption_dropout=0.1),
        },
        **settings,
    )


_SQUARE_AND_RATIOS_1024 = ((1024, 1024), (1152, 896), (896, 1152), (1344, 768), (768, 1344))

_MODELS: dict[str, BaseModelSpec] = {
    spec.name: spec
    for spec in (
        BaseModelSpec(
            name="tiny",
            family="sd",
            display_name="Tiny test model (images not meaningful)",
            source="builtin",
            native_resolutions=_TINY_RESOLUTIONS,
            min_train_side=64,
            lora_target_modules=TINY_TARGETS,
            is_test_model=True,
            builder="ember.engine.tiny:materialize",
            captioner="builtin",
            default_steps=20,
            training_presets={"subject": dict(_TINY_PRESET), "style": dict(_TINY_PRESET, caption_dropout=0.1)},
        ),
        _tiny_family_model("tiny-sdxl", "sdxl", "SDXL", WIDE_TARGETS, default_guidance=5.0, guidance_range=(2.0, 10.0)),
        _tiny_family_model(
            "tiny-flux",
            "flux",
            "FLUX",
            FLUX_TARGETS,
            default_guidance=3.5,
            guidance_range=(1.5, 6.0),
            supports_negative_prompt=False,
        ),
        BaseModelSpec(
            name="toy",
            family="sd",
            display_name="Toy world (shapes and colours)",
            source="builtin",
            native_resolutions=((64, 64),),
            min_train_side=64,
            lora_target_modules=WIDE_TARGETS,
            is_test_model=False,
            builder="ember.engine.toy.model:materialize",
            replay_source="ember.engine.toy.world:replay_examples",
            captioner="ember.engine.toy.captioner:ToyCaptioner",
            vocabulary="ember.engine.toy.world:VOCABULARY",
            concept_words=("zorb",),
            checker="ember.engine.toy.check:ToyCheck",
            check_batch=16,
            default_steps=20,
            training_presets={
                "subject": {
                    "steps": 300,
                    "replay_examples": 12,
                    "learning_rate": 3e-3,
                    "rank": 8,
                    "alpha": 8,
                    "resolution": 64,
                    "batch_size": 12,
                    "sample_every": 50,
                    "checkpoint_every": 50,
                },
                "style": {
                    "steps": 250,
                    "learning_rate": 3e-3,
                    "rank": 16,
                    "alpha": 16,
                    "resolution": 64,
                    "batch_size": 12,
                    "caption_dropout": 0.1,
                    "sample_every": 50,
                    "checkpoint_every": 50,
                },
            },
        ),
        BaseModelSpec(
            name="sd15",
            family="sd",
            display_name="Stable Diffusion 1.5",
            source="stable-diffusion-v1-5/stable-diffusion-v1-5",
            native_resolutions=((512, 512), (576, 448), (448, 576), (640, 384), (384, 640)),
            min_train_side=512,
            lora_target_modules=SD_ATTENTION,
            training_presets={
                "subject": {
                    "steps": 1000,
                    "learning_rate": 1e-4,
                    "rank": 16,
                    "alpha": 16,
                    "resolution": 512,
                    "batch_size": 1,
                    "gradient_accumulation": 4,
                    "gradient_checkpointing": True,
                    "mixed_precision": "fp16",
                    "sample_every": 250,
                    "checkpoint_every": 250,
                },
                "style": {
                    "steps": 1500,
                    "learning_rate": 1e-4,
                    "rank": 32,
                    "alpha": 32,
                    "resolution": 512,
                    "batch_size": 1,
                    "gradient_accumulation": 4,
                    "gradient_checkpointing": True,
                    "mixed_precision": "fp16",
                    "caption_dropout": 0.1,
                    "sample_every": 250,
                    "checkpoint_every": 250,
                },
            },
        ),
        BaseModelSpec(
            name="sdxl",
            family="sdxl",
            display_name="Stable Diffusion XL 1.0",
            source="stabilityai/stable-diffusion-xl-base-1.0",
            native_resolutions=_SQUARE_AND_RATIOS_1024,
            min_train_side=1024,
            lora_target_modules=SD_ATTENTION,
            default_guidance=5.0,
            guidance_range=(2.0, 10.0),
            # diffusers' DreamBooth-LoRA SDXL example (1e-4, 1024², effective batch 4, 500 steps), at rank 16;
            # docs/engine.md gives the sources of every number.
            training_presets={
                "subject": {
                    "steps": 500,
                    "learning_rate": 1e-4,
                    "rank": 16,
                    "alpha": 16,
                    "resolution": 1024,
                    "batch_size": 4,
                    "mixed_precision": "bf16",
                    "aspect_buckets": True,
                    "sample_every": 100,
                    "checkpoint_every": 100,
                },
                "style": {
                    "steps": 1000,
                    "learning_rate": 1e-4,
                    "rank": 32,
                    "alpha": 32,
                    "resolution": 1024,
                    "batch_size": 4,
                    "mixed_precision": "bf16",
                    "aspect_buckets": True,
                    "caption_dropout": 0.1,
                    "sample_every": 250,
                    "checkpoint_every": 250,
                },
            },
        ),
        BaseModelSpec(
            name="flux-schnell",
            family="flux",
            display_name="FLUX.1 [schnell]",
            source="black-forest-labs/FLUX.1-schnell",
            native_resolutions=_SQUARE_AND_RATIOS_1024,
            min_train_side=1024,
            lora_target_modules=FLUX_TARGETS,
            default_steps=4,
            default_guidance=0.0,
            guidance_range=(0.0, 0.0),
            supports_negative_prompt=False,
            trainable=False,
            untrainable_reason=(
                "FLUX.1 [schnell] is distilled to sample in 4 steps, and a LoRA trained on it with the plain "
                "flow-matching loss undoes that distillation; train on flux-dev (whose LoRAs also load into "
                "schnell) instead"
            ),
        ),
        BaseModelSpec(
            name="flux-dev",
            family="flux",
            display_name="FLUX.1 [dev]",
            source="black-forest-labs/FLUX.1-dev",
            native_resolutions=_SQUARE_AND_RATIOS_1024,
            min_train_side=1024,
            lora_target_modules=FLUX_TARGETS,
            default_steps=28,
            default_guidance=3.5,
            guidance_range=(1.5, 6.0),
            supports_negative_prompt=False,
            # ai-toolkit's train_lora_flux_24gb example (rank 16, lr 1e-4, batch 1, bf16) and diffusers'
            # DreamBooth-LoRA FLUX example (guidance 1 during training); docs/engine.md gives the sources.
            training_presets={
                "subject": {
                    "steps": 750,
                    "learning_rate": 1e-4,
                    "rank": 16,
                    "alpha": 16,
                    "resolution": 1024,
                    "batch_size": 1,
                    "mixed_precision": "bf16",
                    "aspect_buckets": True,
                    "training_guidance": 1.0,
                    "sample_every": 250,
                    "checkpoint_every": 250,
                },
                "style": {
                    "steps": 1500,
                    "learning_rate": 1e-4,
                    "rank": 16,
                    "alpha": 16,
                    "resolution": 1024,
                    "batch_size": 1,
                    "mixed_precision": "bf16",
                    "aspect_buckets": True,
                    "gradient_checkpointing": True,
                    "caption_dropout": 0.1,
                    "training_guidance": 1.0,
                    "sample_every": 250,
                    "checkpoint_every": 250,
                },
            },
        ),
    )
}


def get_base_model(name: str) -> BaseModelSpec:
    try:
        return _MODELS[name]
    except KeyError:
        known = ", ".join(sorted(_MODELS))
        raise UnknownBaseModel(f"unknown base model {name!r}; known: {known}") from None


def list_base_models() -> list[BaseModelSpec]:
    return list(_MODELS.values())


def nearest_native_resolution(spec: BaseModelSpec, width: int, height: int) -> tuple[int, int]:
    """The native resolution whose aspect ratio is closest (in log ratio) to the requested one."""
    import math

    wanted = math.log(width / height)
    return min(spec.native_resolutions, key=lambda wh: abs(math.log(wh[0] / wh[1]) - wanted))
