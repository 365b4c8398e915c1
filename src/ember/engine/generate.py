"""Generation: one request in, encoded images out; base pipelines stay loaded, LoRAs live in an LRU and run fused
into the weights they modify (see `ember.engine.fusing`)."""

from __future__ import annotations

import hashlib
import io
import math
import threading
import time
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PIL import Image

from ember.engine.compiling import compile_pipeline, compile_wanted, use_cache_in
from ember.engine.fusing import FusedLoras
from ember.engine.images import InvalidImage, open_rgb
from ember.engine.models import apply_thread_setting, choose_device, choose_dtype, load_pipeline
from ember.engine.presets import ComposedPrompt, compose_prompt, guidance_for
from ember.engine.registry import BaseModelSpec, get_base_model, nearest_native_resolution
from ember.engine.types import (
    CancelCheck,
    EngineError,
    GeneratedImage,
    GenerationRequest,
    InvalidRequest,
    LoraRef,
    Progress,
    ProgressCallback,
    check_cancel,
    report,
)

MIMETYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP"}
MAX_VARIATIONS = 4  # pictures one API request asks for
# The most pictures one engine call draws. API requests ask for at most MAX_VARIATIONS; Ember's own callers (the
# check after training, the benches) draw more at once where the base model is small (`check_batch`): a batch of
# 16 toy pictures costs 64 ms a picture on two CPU cores, against 107 ms in batches of 4.
MAX_BATCH = 32
MAX_SEED = 2**31 - 1
DEFAULT_STRUCTURE_STRENGTH = 50


class LoraLoadError(EngineError):
    """A LoRA file that does not load onto the base model (damaged, or made for another base model)."""


def encode_image(image: Image.Image, mimetype: str) -> bytes:
    """JPEG and WebP at quality 95; PNG lossless."""
    if mimetype not in MIMETYPES:
        raise InvalidRequest(f"unsupported output mimetype {mimetype!r}; use one of {sorted(MIMETYPES)}")
    buffer = io.BytesIO()
    fmt = MIMETYPES[mimetype]
    if fmt == "PNG":
        image.save(buffer, format=fmt)
    else:
        image.convert("RGB").save(buffer, format=fmt, quality=95)
    return buffer.getvalue()


def fit_to_size(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale to cover `width`×`height` and centre-crop, so the aspect ratio is never distorted."""
    if image.size == (width, height):
        return image
    scale = max(width / image.width, height / image.height)
    scaled = image.resize(
        (max(width, round(image.width * scale)), max(height, round(image.height * scale))), Image.Resampling.LANCZOS
    )
    left = (scaled.width - width) // 2
    top = (scaled.height - height) // 2
    return scaled.crop((left, top, left + width, top + height))


def structure_denoise(strength: int | None) -> float:
    """structure strength 0…100 → image-to-image denoise 1.0…0.2: more strength keeps more of the reference."""
    value = DEFAULT_STRUCTURE_STRENGTH if strength is None else strength
    if not 0 <= value <= 100:
        raise InvalidRequest(f"structure strength must be 0–100, got {value}")
    return 1.0 - 0.8 * value / 100


def validate_request(request: GenerationRequest) -> None:
    if not request.prompt or not request.prompt.strip():
        raise InvalidRequest("prompt must not be empty")
    if not 1 <= len(request.seeds) <= MAX_BATCH:
        raise InvalidRequest(f"between 1 and {MAX_BATCH} seeds are needed, got {len(request.seeds)}")
    if len(set(request.seeds)) != len(request.seeds):
        raise InvalidRequest("seeds must be unique")
    for seed in request.seeds:
        if not 0 <= seed <= MAX_SEED:
            raise InvalidRequest(f"seed {seed} is outside 0…{MAX_SEED}")
    if request.width <= 0 or request.height <= 0:
        raise InvalidRequest("width and height must be positive")
    if request.mimetype not in MIMETYPES:
        raise InvalidRequest(f"unsupported output mimetype {request.mimetype!r}")
    if request.steps is not None and request.steps < 1:
        raise InvalidRequest("steps must be at least 1")


def _adapter_name(key: str) -> str:
    # Adapter names become module keys inside the UNet, which may not contain dots or colons.
    return "lora_" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:16]


class Engine:
    """Holds base pipelines loaded between calls and an LRU of LoRA adapters per pipeline."""

    def __init__(
        self,
        model_dir: Path,
        device: str | None = None,
        dtype: str | None = None,
        lora_cache_size: int = 8,
        sources: Mapping[str, str] | None = None,
        fuse_loras: bool = True,
        compile: str | None = None,
        compile_backend: str = "inductor",
    ) -> None:
        apply_thread_setting()
        self.model_dir = Path(model_dir)
        self.device = choose_device(device)
        self.dtype = choose_dtype(self.device, dtype)
        self.lora_cache_size = max(1, lora_cache_size)
        self._sources = dict(sources or {})
        self._pipelines: dict[str, Any] = {}
        # (base model, LoRA key) → the file loaded under that key; order is least recently used first.
        self._loras: OrderedDict[tuple[str, str], Path] = OrderedDict()
        # Per base model: the LoRAs merged into its weights now, and the base weights they replaced.
        self.fuse_loras = fuse_loras
        self._fused: dict[str, FusedLoras] = {}
        # EMBER_COMPILE (or `compile`): auto | on | off; see ember.engine.compiling.
        self.compiled = compile_wanted(compile, self.device)
        self.compile_backend = compile_backend
        self._lock = threading.RLock()

    def pipeline(self, base_model: str) -> Any:
        """The loaded text-to-image pipeline of a base model (loaded on first use, then kept)."""
        with self._lock:
            if base_model not in self._pipelines:
                self.use_pipeline(
                    base_model, load_pipeline(base_model, self.model_dir, self.device, self.dtype, self._sources)
                )
            return self._pipelines[base_model]

    def use_pipeline(self, base_model: str, pipeline: Any) -> None:
        """Serve a base model with this pipeline (compiled when compiling): the loader's last step, and the way
        benchmarks bring an architecture built in memory whose weights are not on this machine."""
        with self._lock:
            pipeline.set_progress_bar_config(disable=True)
            if self.compiled:
                use_cache_in(self.model_dir)
                compile_pipeline(pipeline, self.compile_backend)
            self._pipelines[base_model] = pipeline

    def warm(self, base_model: str) -> None:
        """Load a base model now; when compiling, also run a short generation at its first native size, so the
        first request does not pay for compilation."""
        self.pipeline(base_model)
        if self.compiled:
            width, height = get_base_model(base_model).native_resolutions[0]
            self.generate(
                GenerationRequest(base_model=base_model, prompt="warm-up", width=width, height=height, steps=2)
            )

    def loaded_loras(self) -> list[str]:
        """LoRA keys in the cache, least recently used first."""
        with self._lock:
            return [key for _, key in self._loras]

    def fused_loras(self, base_model: str) -> tuple[tuple[str, float], ...]:
        """(key, weight) of the LoRAs merged into a base model's weights now, in merge order."""
        with self._lock:
            fused = self._fused.get(base_model)
            return (fused.state or ()) if fused is not None else ()

    def generate(
        self,
        request: GenerationRequest,
        progress: ProgressCallback | None = None,
        should_cancel: CancelCheck | None = None,
    ) -> list[GeneratedImage]:
        import torch

        validate_request(request)
        spec = get_base_model(request.base_model)
        check_cancel(should_cancel, "before generation")
        # Everything that can reject the request happens before the model is touched.
        style_description = _describe_style_image(request.style_image) if request.style_image else None
        composed = compose_prompt(
            request.prompt, request.content_class, request.style_presets, request.style_strength, style_description
        )
        width, height = nearest_native_resolution(spec, request.width, request.height)
        guidance = (
            request.guidance_scale
            if request.guidance_scale is not None
            else guidance_for(spec, request.visual_intensity)
        )
        steps = request.steps or spec.default_steps
        structure = fit_to_size(_open_rgb(request.structure_image), width, height) if request.structure_image else None
        denoise = structure_denoise(request.structure_strength) if structure is not None else 1.0
        with self._lock:
            pipeline = self.pipeline(spec.name)
            self._activate_loras(spec.name, pipeline, request.loras)
            generator_device = "cpu" if self.device == "mps" else self.device
            generators = [torch.Generator(generator_device).manual_seed(seed) for seed in request.seeds]
            started = time.monotonic()

            def on_step_end(pipe: Any, index: int, timestep: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                total = int(getattr(pipe, "num_timesteps", steps) or steps)
                elapsed = time.monotonic() - started
                eta = elapsed / (index + 1) * (total - index - 1)
                report(progress, Progress(step=index + 1, total=total, eta_s=eta, message="denoising"))
                check_cancel(should_cancel, f"at step {index + 1}")
                return kwargs

            arguments: dict[str, Any] = {
                "num_inference_steps": steps,
                "guidance_scale": guidance,
                "generator": generators,
                "callback_on_step_end": on_step_end,
                "output_type": "pil",
            }
            arguments.update(self._prompt_arguments(spec, pipeline, composed, request, guidance))
            if structure is not None:
                from diffusers import AutoPipelineForImage2Image

                runner = AutoPipelineForImage2Image.from_pipe(pipeline)
                runner.set_progress_bar_config(disable=True)
                arguments["image"] = [structure] * len(request.seeds)
                arguments["strength"] = denoise
                # Image-to-image runs only the last `denoise` share of the schedule; scale the schedule so the
                # requested number of steps is what actually runs.
                arguments["num_inference_steps"] = max(steps, math.ceil(steps / denoise))
            else:
                runner = pipeline
                arguments["width"] = width
                arguments["height"] = height
            with torch.inference_mode():
                images = runner(**arguments).images
        outputs = []
        for seed, image in zip(request.seeds, images, strict=True):
            final = fit_to_size(image, request.width, request.height)
            outputs.append(
                GeneratedImage(
                    seed=seed,
                    data=encode_image(final, request.mimetype),
                    mimetype=request.mimetype,
                    width=final.width,
                    height=final.height,
                )
            )
        return outputs

    def _prompt_arguments(
        self,
        spec: BaseModelSpec,
        pipeline: Any,
        composed: ComposedPrompt,
        request: GenerationRequest,
        guidance: float,
    ) -> dict[str, Any]:
        """Prompt text, or for SD pipelines embeddings blended between unstyled and styled by style strength."""
        count = len(request.seeds)
        negative = request.negative_prompt if spec.supports_negative_prompt else None
        if spec.family != "sd" or composed.style_weight == 1.0:
            arguments: dict[str, Any] = {"prompt": [composed.text] * count}
            if negative:
                arguments["negative_prompt"] = [negative] * count
            return arguments
        use_guidance = guidance > 1.0
        styled, negative_embeds = pipeline.encode_prompt(composed.text, pipeline.device, count, use_guidance, negative)
        unstyled, _ = pipeline.encode_prompt(composed.unstyled, pipeline.device, count, use_guidance, negative)
        blended = unstyled + composed.style_weight * (styled - unstyled)
        arguments = {"prompt_embeds": blended}
        if use_guidance:
            arguments["negative_prompt_embeds"] = negative_embeds
        return arguments

    def _activate_loras(self, base_model: str, pipeline: Any, loras: list[LoraRef]) -> None:
        """Make the pipeline run with exactly `loras`: load missing adapters, evict the least recently used beyond
        the cache size, and (when fusing) merge them into the weights. A run of requests for the same LoRAs and
        weights finds them merged already and pays nothing."""
        fused = self._fused.setdefault(base_model, FusedLoras())
        wanted_state = tuple((lora.key, float(lora.weight)) for lora in loras)
        stale = [lora for lora in loras if self._loras.get((base_model, lora.key)) != Path(lora.path)]
        if self.fuse_loras and not stale and fused.state == wanted_state:
            for lora in loras:
                self._loras.move_to_end((base_model, lora.key))
            return
        # Adapters are only loaded, deleted or re-weighted on the exact base weights.
        fused.restore()
        wanted = {(base_model, lora.key) for lora in loras}
        for lora in loras:
            slot = (base_model, lora.key)
            cached = self._loras.get(slot)
            if cached is not None and cached != Path(lora.path):
                pipeline.delete_adapters(_adapter_name(lora.key))
                del self._loras[slot]
                cached = None
            if cached is None:
                path = Path(lora.path)
                if not path.is_file():
                    raise InvalidRequest(f"LoRA file for {lora.key!r} not found: {path}")
                try:
                    with warnings.catch_warnings():
                        # peft warns whenever a second adapter joins a model: that is the cache working.
                        warnings.filterwarnings("ignore", message="Already found a `peft_config` attribute")
                        pipeline.load_lora_weights(
                            str(path.parent), weight_name=path.name, adapter_name=_adapter_name(lora.key)
                        )
                except Exception as error:  # diffusers and safetensors raise many types for a bad file
                    self._forget_adapter(pipeline, lora.key)
                    raise LoraLoadError(f"LoRA {lora.key!r} cannot be loaded from {path}: {error}") from error
                self._loras[slot] = path
            self._loras.move_to_end(slot)
        while len(self._loras) > self.lora_cache_size:
            victim = next((slot for slot in self._loras if slot not in wanted), None)
            if victim is None:
                break
            del self._loras[victim]
            victim_fused = self._fused.get(victim[0])
            if victim_fused is not None:
                victim_fused.restore()
            self._pipelines[victim[0]].delete_adapters(_adapter_name(victim[1]))
        has_adapters = any(slot[0] == base_model for slot in self._loras)
        if not loras:
            if has_adapters:
                pipeline.disable_lora()
            fused.state = ()
            return
        pipeline.enable_lora()
        names = [_adapter_name(lora.key) for lora in loras]
        pipeline.set_adapters(names, adapter_weights=[lora.weight for lora in loras])
        if self.fuse_loras:
            fused.fuse(pipeline, names, wanted_state)

    @staticmethod
    def _forget_adapter(pipeline: Any, key: str) -> None:
        name = _adapter_name(key)
        try:
            if name in pipeline.get_list_adapters().get("unet", []):
                pipeline.delete_adapters(name)
        except Exception:  # nothing was loaded, or the loader left no trace to remove
            pass


def _open_rgb(data: bytes) -> Image.Image:
    try:
        return open_rgb(data)
    except InvalidImage as error:
        raise InvalidRequest(f"reference image cannot be decoded: {error}") from error


def _describe_style_image(data: bytes) -> str:
    """A style reference becomes words about its measurable look (palette, light), weighted like presets."""
    from ember.engine.captioning import describe_style

    return describe_style(_open_rgb(data))
