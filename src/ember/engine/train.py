"""LoRA training: a prepared dataset and a config in, a diffusers-format LoRA .safetensors out.

It follows diffusers' text-to-image LoRA script (noise prediction MSE on a frozen UNet with a peft adapter)
and the DreamBooth script for prior preservation, with latents and caption embeddings cached up front
because the VAE and text encoder are frozen. Every step draws its randomness from (seed, step), so a run
resumed from a checkpoint takes the same path as one that never stopped.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ember.engine.captioning import ensure_concept
from ember.engine.dataset import bucket_sizes, prepare_image
from ember.engine.families import Batch, Conditioning, Family, crop_time_ids, family_for
from ember.engine.models import apply_thread_setting, choose_device, resolve_model_path
from ember.engine.registry import BaseModelSpec, get_base_model, import_reference
from ember.engine.types import (
    CancelCheck,
    EngineError,
    InvalidRequest,
    Progress,
    ProgressCallback,
    TrainingExample,
    check_cancel,
    report,
)

if TYPE_CHECKING:
    import torch
    from PIL import Image

MODES = ("subject", "style")
LORA_FILE = "lora.safetensors"
CHECKPOINTS_KEPT = 2
OPTIMIZERS = ("adamw", "adamw8bit")
EXIF_ORIENTATION = 0x0112
ROTATED = (5, 6, 7, 8)  # EXIF orientations that swap width and height


class TrainingUnsupported(EngineError):
    """The base model is not trainable in Ember (the registry says why)."""


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of one training run; presets per base model and mode come from `preset_for`."""

    steps: int = 500
    learning_rate: float = 1e-4
    rank: int = 8
    alpha: int = 8
    resolution: int = 512
    batch_size: int = 1
    gradient_accumulation: int = 1
    mixed_precision: str = "no"
    gradient_checkpointing: bool = False
    seed: int = 0
    caption_dropout: float = 0.0
    sample_every: int = 0
    checkpoint_every: int = 0
    replay_examples: int = 0
    prior_preservation: bool = False
    prior_loss_weight: float = 1.0
    num_class_images: int = 0
    class_prompt: str | None = None
    aspect_buckets: bool = False
    max_grad_norm: float = 1.0
    optimizer: str = "adamw"
    compile_blocks: bool = True
    training_guidance: float = 1.0

    def with_overrides(self, **overrides: Any) -> TrainConfig:
        """A copy with the given fields replaced; None means "keep the preset's value"."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise InvalidRequest(f"unknown training settings: {', '.join(unknown)}")
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def validate(self) -> None:
        if self.steps < 1 or self.batch_size < 1 or self.gradient_accumulation < 1 or self.rank < 1:
            raise InvalidRequest("steps, batch_size, gradient_accumulation and rank must be at least 1")
        if self.learning_rate <= 0:
            raise InvalidRequest("learning_rate must be positive")
        if self.resolution < 8 or self.resolution % 8:
            raise InvalidRequest("resolution must be a positive multiple of 8")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise InvalidRequest("mixed_precision must be no, fp16 or bf16")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise InvalidRequest("caption_dropout must be in [0, 1)")
        if self.replay_examples < 0:
            raise InvalidRequest("replay_examples must not be negative")
        if self.optimizer not in OPTIMIZERS:
            raise InvalidRequest(f"optimizer must be one of {OPTIMIZERS}")


def preset_for(base_model: str, mode: str) -> TrainConfig:
    """The training preset of a base model for a mode ("subject" | "style")."""
    if mode not in MODES:
        raise InvalidRequest(f"mode must be one of {MODES}, got {mode!r}")
    spec = get_base_model(base_model)
    config = TrainConfig(resolution=min(spec.native_resolutions[0]))
    if mode == "style":
        config = config.with_overrides(caption_dropout=0.1)
    return config.with_overrides(**spec.training_preset(mode))


@dataclass
class TrainResult:
    lora_path: Path
    steps: int
    losses: list[float]
    samples: list[Path]
    resumed_from: int | None
    captions: list[str] = field(default_factory=list)


@dataclass
class _Group:
    """Cached training tensors of one kind (instance, replay or class images), in size buckets."""

    means: list[torch.Tensor]
    stds: list[torch.Tensor]
    caption_index: torch.Tensor
    buckets: list[np.ndarray]
    time_ids: torch.Tensor

    def draw(
        self,
        embeddings: Conditioning,
        count: int,
        caption_dropout: float,
        rng: np.random.Generator,
        generator: torch.Generator,
    ) -> Batch:
        """Up to `count` examples of one size bucket (chosen in proportion to its size), without replacement;
        each latent sampled fresh from its picture's VAE posterior, each caption dropped (to the empty caption,
        index 0) with probability `caption_dropout`."""
        import torch

        sizes = np.array([len(bucket) for bucket in self.buckets], dtype=np.float64)
        bucket = self.buckets[int(rng.choice(len(self.buckets), p=sizes / sizes.sum()))]
        chosen = rng.choice(bucket, size=min(count, len(bucket)), replace=False)
        means = torch.stack([self.means[i] for i in chosen])
        stds = torch.stack([self.stds[i] for i in chosen])
        latents = means + stds * torch.randn(means.shape, generator=generator)
        caption_ids = self.caption_index[chosen].clone()
        if caption_dropout > 0:
            caption_ids[torch.from_numpy(rng.random(len(chosen)) < caption_dropout)] = 0
        return Batch(latents, embeddings.select(caption_ids), self.time_ids[torch.from_numpy(chosen)])


def train_lora(
    base_model: str,
    examples: list[TrainingExample],
    config: TrainConfig,
    work_dir: Path,
    *,
    model_dir: Path,
    mode: str,
    concept: str | None = None,
    sample_prompt: str | None = None,
    replay: list[TrainingExample] | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: CancelCheck | None = None,
    device: str | None = None,
) -> TrainResult:
    """Train a LoRA on `examples`; resume from the latest checkpoint in `work_dir/checkpoints` if any."""
    import torch
    from peft import LoraConfig

    spec = get_base_model(base_model)
    _validate_inputs(spec, examples, config, mode, concept)
    apply_thread_setting()
    device = choose_device(device)
    work_dir = Path(work_dir)
    checkpoints = work_dir / "checkpoints"
    samples_dir = work_dir / "samples"
    checkpoints.mkdir(parents=True, exist_ok=True)
    check_cancel(should_cancel, "before training")
    report(progress, Progress(step=0, total=config.steps, eta_s=None, message="loading base model"))

    path = resolve_model_path(spec, Path(model_dir))
    class_images = None
    if mode == "subject" and config.prior_preservation:
        class_images = _class_images(spec, path, config, work_dir / "class_images", device, should_cancel, progress)
    weight_dtype = _weight_dtype(config.mixed_precision, device)
    autocast = _autocast_dtype(config.mixed_precision, device)
    family = family_for(spec, path, device, weight_dtype, config.training_guidance)
    unet = family.denoiser

    captions = [
        ensure_concept(example.caption, concept) if mode == "subject" else example.caption for example in examples
    ]
    buckets = bucket_sizes(config.resolution, multiple=family.size_multiple()) if config.aspect_buckets else None
    report(progress, Progress(step=0, total=config.steps, eta_s=None, message="encoding images and captions"))
    caption_texts: list[str] = [""]
    instance = _encode_group([e.image for e in examples], captions, caption_texts, family, config, buckets)
    if replay is None and mode == "subject":
        replay = base_world_examples(spec, config.replay_examples, config.seed)
    replay_group = None
    if replay:
        replay_group = _encode_group(
            [e.image for e in replay], [e.caption for e in replay], caption_texts, family, config, None
        )
    class_group = None
    if class_images is not None:
        class_group = _encode_group(
            class_images, [config.class_prompt or ""] * len(class_images), caption_texts, family, config, None
        )
    embeddings = family.encode_captions(caption_texts)
    if sample_prompt:
        family.prepare_sampling(sample_prompt)
    family.free_encoders()

    torch.manual_seed(config.seed)
    unet.add_adapter(
        LoraConfig(
            r=config.rank,
            lora_alpha=config.alpha,
            init_lora_weights="gaussian",
            target_modules=family.lora_targets(),
        )
    )
    trainable = [p for p in unet.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.data = parameter.data.float()
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    unet.train()
    if config.compile_blocks and device.startswith("cuda"):
        _compile_blocks(unet)
    optimizer = _optimizer(trainable, config, device)
    scaler = torch.amp.GradScaler("cuda") if config.mixed_precision == "fp16" and device.startswith("cuda") else None

    start_step, losses = _resume(checkpoints, unet, optimizer)
    resumed_from = start_step or None
    samples = sorted(samples_dir.glob("step-*.png")) if resumed_from else []
    sampler = _Sampler(family, unet, sample_prompt, config.seed, samples_dir)
    started = time.monotonic()

    with _cuda_attention_guard(device):
        for step in range(start_step + 1, config.steps + 1):
            check_cancel(should_cancel, f"at step {step}")
            step_loss = 0.0
            for micro in range(config.gradient_accumulation):
                rng = np.random.default_rng([config.seed, step, micro])
                generator = torch.Generator("cpu").manual_seed(int(rng.integers(0, 2**62)))
                batch = instance.draw(embeddings, config.batch_size, config.caption_dropout, rng, generator)
                parts = [_noised(family, batch, generator)]
                if replay_group is not None:
                    replayed = replay_group.draw(embeddings, config.batch_size, config.caption_dropout, rng, generator)
                    parts.append(_noised(family, replayed, generator))
                if class_group is not None:
                    prior = class_group.draw(embeddings, config.batch_size, 0.0, rng, generator)
                    parts.append(_noised(family, prior, generator))
                part_losses = _mean_losses(family, parts, autocast)
                loss = part_losses[0]
                if replay_group is not None:
                    # Pictures of the base model's own world weigh as much as the user's.
                    replay_loss, count = part_losses[1], len(parts[1].batch)
                    loss = (loss * len(batch) + replay_loss * count) / (len(batch) + count)
                if class_group is not None:
                    # DreamBooth's prior preservation: the class pictures' loss, weighted, never dropped.
                    loss = loss + config.prior_loss_weight * part_losses[-1]
                scaled = loss / config.gradient_accumulation
                (scaler.scale(scaled) if scaler is not None else scaled).backward()
                step_loss += float(loss.detach()) / config.gradient_accumulation
            if scaler is not None:
                scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(step_loss)

            done = step - start_step
            eta = (time.monotonic() - started) / done * (config.steps - step)
            preview = None
            if sample_prompt and config.sample_every and step % config.sample_every == 0:
                sample_path = sampler.sample(step)
                samples.append(sample_path)
                preview = sample_path.read_bytes()
            report(
                progress,
                Progress(step=step, total=config.steps, eta_s=eta, loss=step_loss, preview=preview, message="training"),
            )
            if config.checkpoint_every and step % config.checkpoint_every == 0 and step < config.steps:
                _save_checkpoint(checkpoints, step, unet, optimizer, losses)

    lora_path = _save_lora(family, work_dir / LORA_FILE)
    _save_checkpoint(checkpoints, config.steps, unet, optimizer, losses)
    return TrainResult(
        lora_path=lora_path,
        steps=config.steps,
        losses=losses,
        samples=samples,
        resumed_from=resumed_from,
        captions=captions,
    )


def base_world_examples(spec: BaseModelSpec, count: int, seed: int) -> list[TrainingExample]:
    """`count` captioned pictures of the base model's own world (none when it has no `replay_source`)."""
    if count < 1 or spec.replay_source is None:
        return []
    examples: list[TrainingExample] = import_reference(spec.replay_source)(count, seed)
    return examples


def _validate_inputs(
    spec: BaseModelSpec, examples: list[TrainingExample], config: TrainConfig, mode: str, concept: str | None
) -> None:
    if mode not in MODES:
        raise InvalidRequest(f"mode must be one of {MODES}, got {mode!r}")
    if not spec.trainable:
        reason = spec.untrainable_reason or "it has no training recipe in Ember"
        raise TrainingUnsupported(f"training LoRAs on {spec.display_name} is not supported: {reason}")
    if mode == "subject" and not (concept and concept.strip()):
        raise InvalidRequest("subject mode needs a concept word")
    if not examples:
        raise InvalidRequest("training needs at least one example")
    config.validate()
    if config.prior_preservation and mode == "subject":
        if not config.class_prompt or config.num_class_images < 1:
            raise InvalidRequest("prior preservation needs class_prompt and num_class_images ≥ 1")


def _weight_dtype(mixed_precision: str, device: str) -> torch.dtype:
    """Frozen weights in half precision on accelerators when asked; on CPU everything stays fp32 and
    bf16 is applied by autocast instead (CPU has no fast fp16 kernels)."""
    import torch

    if device.startswith("cpu") or mixed_precision == "no":
        return torch.float32
    return torch.float16 if mixed_precision == "fp16" else torch.bfloat16


def _autocast_dtype(mixed_precision: str, device: str) -> torch.dtype | None:
    import torch

    if mixed_precision == "no":
        return None
    if device.startswith("cpu"):
        return torch.bfloat16
    return torch.float16 if mixed_precision == "fp16" else torch.bfloat16


def _optimizer(parameters: list[Any], config: TrainConfig, device: str) -> Any:
    """AdamW (weight decay 0.01), or bitsandbytes' 8-bit AdamW, which keeps its moments in a quarter of the
    memory and needs CUDA."""
    import torch

    if config.optimizer == "adamw8bit":
        if not device.startswith("cuda"):
            raise InvalidRequest("optimizer adamw8bit needs a CUDA device; use adamw")
        try:
            import bitsandbytes  # type: ignore[import-not-found]  # optional, CUDA only
        except ImportError:
            message = "optimizer adamw8bit needs the bitsandbytes package (pip install bitsandbytes)"
            raise InvalidRequest(message) from None
        return bitsandbytes.optim.AdamW8bit(parameters, lr=config.learning_rate, weight_decay=1e-2)
    # The fused kernel updates every LoRA tensor in one call: on two CPU cores 4 ms a step for 600 LoRA-sized
    # tensors (0.3 M parameters, about the toy adapter's size), against 19 ms for PyTorch's default on CPU (a
    # loop over the tensors).
    return torch.optim.AdamW(parameters, lr=config.learning_rate, weight_decay=1e-2, fused=True)


def _compile_blocks(denoiser: Any) -> None:
    """Regional compilation: each repeated transformer block is compiled once and reused, which gives most of
    a whole-model compile's speed (SDXL 2.95 → 4.32 steps/s on an H200) for seconds of compile time."""
    if getattr(denoiser, "_repeated_blocks", None):
        denoiser.compile_repeated_blocks(fullgraph=False, dynamic=True)


@contextmanager
def _cuda_attention_guard(device: str) -> Iterator[None]:
    """cuDNN's fused attention crashed FLUX's backward pass with "an illegal memory access" (PyTorch 2.11,
    CUDA 13); it is switched off while training on CUDA and restored afterwards."""
    import torch

    if not device.startswith("cuda"):
        yield
        return
    enabled = torch.backends.cuda.cudnn_sdp_enabled()
    torch.backends.cuda.enable_cudnn_sdp(False)
    try:
        yield
    finally:
        torch.backends.cuda.enable_cudnn_sdp(enabled)


def _to_tensor(image: Image.Image) -> torch.Tensor:
    import torch

    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1)


def _encode_group(
    images: list[Any],
    captions: list[str],
    caption_texts: list[str],
    family: Family,
    config: TrainConfig,
    buckets: list[tuple[int, int]] | None,
) -> _Group:
    """Latent mean and std per image (sampled fresh each step, as the VAE posterior is), caption ids, and for
    SDXL each picture's size/crop time ids."""
    import torch

    originals = [_original_size(image) for image in images]
    prepared = [prepare_image(image, config.resolution, buckets) for image in images]
    caption_ids = []
    for caption in captions:
        if caption not in caption_texts:
            caption_texts.append(caption)
        caption_ids.append(caption_texts.index(caption))
    sizes = sorted({image.size for image in prepared})
    means: list[torch.Tensor] = []
    stds: list[torch.Tensor] = []
    with torch.no_grad():
        for image in prepared:
            mean, std = family.encode_image(_to_tensor(image).unsqueeze(0))
            means.append(mean)
            stds.append(std)
    time_ids = torch.tensor(
        [crop_time_ids(original, image.size) for original, image in zip(originals, prepared, strict=True)],
        dtype=torch.float32,
    )
    groups = [np.array([i for i, image in enumerate(prepared) if image.size == size]) for size in sizes]
    return _Group(means, stds, torch.tensor(caption_ids), groups, time_ids)


def _original_size(image: Any) -> tuple[int, int]:
    """(width, height) after EXIF orientation, without decoding the pixels."""
    import io

    from PIL import Image

    picture = Image.open(io.BytesIO(image)) if isinstance(image, bytes) else image
    width, height = picture.size
    return (height, width) if picture.getexif().get(EXIF_ORIENTATION, 1) in ROTATED else (width, height)


@dataclass
class _Noised:
    """One group's examples of a step, noised: what the denoiser is given and what it should predict."""

    batch: Batch
    noisy: torch.Tensor
    timesteps: torch.Tensor
    target: torch.Tensor


def _noised(family: Family, batch: Batch, generator: torch.Generator) -> _Noised:
    """Noise a batch as diffusers' training loop does: noise, then timesteps, both drawn from `generator`."""
    import torch

    noise = torch.randn(batch.latents.shape, generator=generator)
    noisy, timesteps = family.add_noise(batch.latents, noise, generator)
    return _Noised(batch, noisy, timesteps, family.target(batch.latents, noise, timesteps))


def _mean_losses(family: Family, parts: list[_Noised], autocast: torch.dtype | None) -> list[torch.Tensor]:
    """Each part's mean squared error between the denoiser's prediction and its target. The parts whose latents
    have one size are predicted in one denoiser pass, as diffusers' DreamBooth script concatenates instance and
    class images: on a CPU one pass of 24 toy examples costs about three quarters of two passes of 12."""
    import torch

    losses: list[torch.Tensor | None] = [None] * len(parts)
    by_size: dict[tuple[int, ...], list[int]] = {}
    for index, part in enumerate(parts):
        by_size.setdefault(tuple(part.noisy.shape[1:]), []).append(index)
    for indices in by_size.values():
        chosen = [parts[i] for i in indices]
        batch = chosen[0].batch if len(chosen) == 1 else Batch.concat([p.batch for p in chosen])
        noisy = torch.cat([p.noisy for p in chosen])
        timesteps = torch.cat([p.timesteps for p in chosen])
        prediction = family.predict(noisy, timesteps, batch, autocast).float()
        target = torch.cat([p.target for p in chosen]).to(prediction.device).float()
        per_example = (prediction - target).pow(2).flatten(1).mean(dim=1)
        for index, piece in zip(indices, per_example.split([len(p.batch) for p in chosen]), strict=True):
            losses[index] = piece.mean()
    return [loss for loss in losses if loss is not None]


def _denoising_loss(
    family: Family, batch: Batch, generator: torch.Generator, autocast: torch.dtype | None
) -> torch.Tensor:
    """One step of diffusers' training loop on one batch: noise the latents, let the denoiser predict, and take
    the mean squared error to the family's target."""
    return _mean_losses(family, [_noised(family, batch, generator)], autocast)[0]


def _class_images(
    spec: BaseModelSpec,
    path: Path,
    config: TrainConfig,
    directory: Path,
    device: str,
    should_cancel: CancelCheck | None,
    progress: ProgressCallback | None,
) -> list[Image.Image]:
    """Class images for prior preservation, made once by the base model and kept for resumed runs."""
    import torch
    from diffusers import AutoPipelineForText2Image
    from PIL import Image

    directory.mkdir(parents=True, exist_ok=True)
    existing = sorted(directory.glob("class-*.png"))
    if len(existing) < config.num_class_images:
        pipeline = AutoPipelineForText2Image.from_pretrained(str(path)).to(device)
        pipeline.set_progress_bar_config(disable=True)
        for index in range(len(existing), config.num_class_images):
            check_cancel(should_cancel, "while making class images")
            report(
                progress,
                Progress(
                    step=0, total=config.steps, eta_s=None, message=f"class image {index + 1}/{config.num_class_images}"
                ),
            )
            generator = torch.Generator("cpu").manual_seed(config.seed + index)
            with torch.inference_mode():
                image = pipeline(
                    config.class_prompt,
                    num_inference_steps=spec.default_steps,
                    generator=generator,
                    width=config.resolution,
                    height=config.resolution,
                ).images[0]
            image.save(directory / f"class-{index:04d}.png")
        del pipeline
    files = sorted(directory.glob("class-*.png"))[: config.num_class_images]
    return [Image.open(file).convert("RGB") for file in files]


class _Sampler:
    """Sample images with the adapter being trained, through the family's own pipeline on the same modules."""

    def __init__(self, family: Family, unet: Any, prompt: str | None, seed: int, directory: Path) -> None:
        self._family = family
        self._unet = unet
        self._prompt = prompt
        self._seed = seed
        self._directory = directory

    def sample(self, step: int) -> Path:
        assert self._prompt is not None
        self._directory.mkdir(parents=True, exist_ok=True)
        self._unet.eval()
        try:
            image = self._family.sample(self._prompt, self._seed)
        finally:
            self._unet.train()
        target = self._directory / f"step-{step:06d}.png"
        image.save(target)
        return target


def _lora_state(unet: Any) -> dict[str, torch.Tensor]:
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().cpu().contiguous() for k, v in get_peft_model_state_dict(unet).items()}


def _save_checkpoint(directory: Path, step: int, unet: Any, optimizer: Any, losses: list[float]) -> Path:
    """Write a checkpoint atomically (staging directory, then rename) and keep only the latest few."""
    import torch
    from safetensors.torch import save_file

    target = directory / f"step-{step:06d}"
    staging = directory / f".step-{step:06d}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    save_file(_lora_state(unet), str(staging / "adapter.safetensors"))
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    (staging / "state.json").write_text(json.dumps({"step": step, "losses": losses}))
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    for old in sorted(directory.glob("step-*"))[:-CHECKPOINTS_KEPT]:
        shutil.rmtree(old, ignore_errors=True)
    return target


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint `train_lora` wrote: its step, its folder (every file in it is needed to resume) and the
    loss of every step up to it."""

    step: int
    directory: Path
    losses: list[float]


def read_checkpoints(directory: Path) -> list[Checkpoint]:
    """The complete checkpoints in `directory` (a work dir's `checkpoints`), oldest first: what a runner copies
    away while training, and puts back in a fresh work dir for `train_lora` to resume from."""
    found = []
    for folder in Path(directory).glob("step-*"):
        state = folder / "state.json"
        if state.is_file():
            data = json.loads(state.read_text())
            found.append(Checkpoint(int(data["step"]), folder, [float(x) for x in data.get("losses", [])]))
    return sorted(found, key=lambda checkpoint: checkpoint.step)


def latest_checkpoint(directory: Path) -> Path | None:
    found = read_checkpoints(directory)
    return found[-1].directory if found else None


def _resume(directory: Path, unet: Any, optimizer: Any) -> tuple[int, list[float]]:
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    checkpoint = latest_checkpoint(directory)
    if checkpoint is None:
        return 0, []
    state = json.loads((checkpoint / "state.json").read_text())
    set_peft_model_state_dict(unet, load_file(str(checkpoint / "adapter.safetensors")))
    optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", weights_only=True))
    return int(state["step"]), [float(x) for x in state["losses"]]


def _save_lora(family: Family, target: Path) -> Path:
    """Save in the format diffusers' `load_lora_weights` reads for the family (peft keys under `unet.` or
    `transformer.`), with the adapter's rank and alpha in the file's metadata."""
    unet = family.denoiser
    family.save_lora(_lora_state(unet), unet.peft_config["default"].to_dict(), target)
    return target

