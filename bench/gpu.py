"""Training benchmark per family: Ember's `train_lora` against a bare diffusers+peft loop, in the same run.

For SDXL and FLUX.1-dev it builds pipelines of the real architectures and sizes with random weights (SDXL:
UNet 2.57 B, CLIP-L and bigG; FLUX: transformer 11.9 B, CLIP-L, T5-XXL; random weights time exactly like
real ones), saves them into a temporary model directory as `sdxl` and `flux-dev`, and then, per family:

- trains with Ember (`train_lora`, the family's subject preset, `--steps` steps) and reads its steps/s from
  the progress events after `--warmup` steps (so regional compilation is not counted), its peak GPU memory,
  and its set-up time (loading, encoding, caching);
- runs a bare loop as diffusers' DreamBooth-LoRA scripts write it (the same denoiser from the same folder,
  the same peft LoRA targets, rank, batch, resolution, dtype and checkpointing; no compilation), on random
  latents and embeddings of the right shapes;
- prints both, their ratio (target ≥ 0.95) and the minutes the preset would take end to end (set-up plus
  the preset's steps at Ember's rate).

With `--small` it does the same on CPU with the built-in `tiny-sdxl` and `tiny-flux` and their presets (the
CI runs this mode); memory is then the process's peak RSS, and each side is also timed in CPU seconds of this
process (one torch thread), which a busy shared machine disturbs far less than the wall clock: the CPU ratio
is the one to read there. `--repeats N` runs N pairs, alternating which side goes first, and prints medians.

    .venv/bin/python bench/gpu.py [--small] [--steps 30] [--warmup 5] [--families sdxl,flux] [--repeats 1]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ember.engine.models import choose_device, resolve_model_path
from ember.engine.registry import get_base_model
from ember.engine.train import TrainConfig, _cuda_attention_guard, _weight_dtype, preset_for, train_lora
from ember.engine.types import Progress, TrainingExample

SMALL_MODELS = {"sdxl": "tiny-sdxl", "flux": "tiny-flux"}
FULL_MODELS = {"sdxl": "sdxl", "flux": "flux-dev"}
TARGET_RATIO = 0.95
# stabilityai/stable-diffusion-xl-base-1.0's UNet config (2.57 B parameters).
SDXL_UNET: dict[str, Any] = {
    "sample_size": 128,
    "block_out_channels": (320, 640, 1280),
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    "transformer_layers_per_block": (1, 2, 10),
    "attention_head_dim": (5, 10, 20),
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,
}


@dataclass
class Measured:
    steps_per_s: float
    cpu_steps_per_s: float  # steps per CPU second of this process
    peak_gib: float
    setup_s: float = 0.0


def rates(stamps: list[tuple[float, float]], warmup: int) -> tuple[float, float]:
    """Steps per wall second and per CPU second after the first `warmup` steps, from (wall, cpu) stamps
    taken at the end of each step."""
    (wall_0, cpu_0), (wall_n, cpu_n) = stamps[warmup - 1], stamps[-1]
    steps = len(stamps) - warmup
    return steps / (wall_n - wall_0), steps / (cpu_n - cpu_0)


def peak_memory_gib(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def examples(resolution: int, count: int = 4) -> list[TrainingExample]:
    rng = np.random.default_rng(0)
    return [
        TrainingExample(Image.fromarray(rng.integers(0, 255, (resolution, resolution, 3), dtype=np.uint8)), "a zorb")
        for _ in range(count)
    ]


def measure_ember(base_model: str, config: TrainConfig, model_dir: Path, work_dir: Path, warmup: int) -> Measured:
    device = choose_device()
    reset_peak(device)
    stamps: dict[int, tuple[float, float]] = {}
    started = time.monotonic()

    def on_progress(event: Progress) -> None:
        if event.message == "training":
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            stamps[event.step] = (time.monotonic(), time.process_time())

    train_lora(
        base_model,
        examples(config.resolution),
        config,
        work_dir,
        model_dir=model_dir,
        mode="subject",
        concept="zorb",
        replay=[],
        progress=on_progress,
    )
    steps_per_s, cpu_steps_per_s = rates([stamps[step] for step in sorted(stamps)], warmup)
    setup_s = stamps[1][0] - started - (stamps[2][0] - stamps[1][0])  # before the first step
    return Measured(steps_per_s, cpu_steps_per_s, peak_memory_gib(device), setup_s)


def measure_bare(base_model: str, config: TrainConfig, model_dir: Path, steps: int, warmup: int) -> Measured:
    """The loop of diffusers' train_dreambooth_lora_{sdxl,flux}.py on inputs of the right shapes."""
    from diffusers import DDPMScheduler, FluxPipeline, FluxTransformer2DModel, UNet2DConditionModel
    from peft import LoraConfig

    spec = get_base_model(base_model)
    device = choose_device()
    dtype = _weight_dtype(config.mixed_precision, device)
    path = resolve_model_path(spec, model_dir)
    # The same LoRA targets as Ember: the family lists them (for FLUX, the layers inside the blocks).
    targets = family_targets(base_model, model_dir)
    reset_peak(device)
    flux = spec.family == "flux"
    if flux:
        denoiser: Any = FluxTransformer2DModel.from_pretrained(str(path), subfolder="transformer").to(device, dtype)
    else:
        denoiser = UNet2DConditionModel.from_pretrained(str(path), subfolder="unet").to(device, dtype)
    scheduler = DDPMScheduler(num_train_timesteps=1000)
    denoiser.requires_grad_(False)
    denoiser.add_adapter(
        LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian", target_modules=targets)
    )
    trainable = [p for p in denoiser.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.data = parameter.data.float()
    if config.gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    denoiser.train()
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate)
    batch, side = config.batch_size, config.resolution // 8
    stamps: list[tuple[float, float]] = []
    with _cuda_attention_guard(device):
        for _ in range(steps):
            if flux:
                channels = denoiser.config.in_channels // 4
                latents = torch.randn(batch, channels, side, side, device=device, dtype=dtype)
                noise = torch.randn_like(latents)
                sigmas = torch.rand(batch, device=device, dtype=dtype).view(-1, 1, 1, 1)
                noisy = FluxPipeline._pack_latents((1 - sigmas) * latents + sigmas * noise, batch, channels, side, side)
                prediction = denoiser(
                    hidden_states=noisy,
                    timestep=sigmas.flatten(),
                    guidance=torch.ones(batch, device=device) if denoiser.config.guidance_embeds else None,
                    pooled_projections=torch.randn(
                        batch, denoiser.config.pooled_projection_dim, device=device, dtype=dtype
                    ),
                    encoder_hidden_states=torch.randn(
                        batch, 512, denoiser.config.joint_attention_dim, device=device, dtype=dtype
                    ),
                    txt_ids=torch.zeros(512, 3, device=device, dtype=dtype),
                    img_ids=FluxPipeline._prepare_latent_image_ids(batch, side // 2, side // 2, device, dtype),
                    return_dict=False,
                )[0]
                target = FluxPipeline._pack_latents(noise - latents, batch, channels, side, side)
            else:
                latents = torch.randn(batch, denoiser.config.in_channels, side, side, device=device, dtype=dtype)
                noise = torch.randn_like(latents)
                timesteps = torch.randint(0, 1000, (batch,), device=device)
                pooled_dim = (
                    denoiser.config.projection_class_embeddings_input_dim - 6 * denoiser.config.addition_time_embed_dim
                )
                prediction = denoiser(
                    scheduler.add_noise(latents, noise, timesteps),
                    timesteps,
                    torch.randn(batch, 77, denoiser.config.cross_attention_dim, device=device, dtype=dtype),
                    added_cond_kwargs={
                        "text_embeds": torch.randn(batch, pooled_dim, device=device, dtype=dtype),
                        "time_ids": torch.tensor(
                            [[config.resolution] * 2 + [0, 0] + [config.resolution] * 2] * batch,
                            device=device,
                            dtype=dtype,
                        ),
                    },
                ).sample
                target = noise
            loss = torch.nn.functional.mse_loss(prediction.float(), target.float())
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            stamps.append((time.monotonic(), time.process_time()))
    measured = Measured(*rates(stamps, warmup), peak_memory_gib(device))
    del denoiser, optimizer, trainable
    return measured


def family_targets(base_model: str, model_dir: Path) -> list[str]:
    spec = get_base_model(base_model)
    if spec.family != "flux":
        return list(spec.lora_target_modules)
    from diffusers import FluxTransformer2DModel

    from ember.engine.families import flux_lora_targets

    with torch.device("meta"):
        transformer = FluxTransformer2DModel.from_config(
            FluxTransformer2DModel.load_config(str(resolve_model_path(spec, model_dir)), subfolder="transformer")
        )
    return flux_lora_targets(transformer, spec.lora_target_modules)


def build_full_size(model_dir: Path, family: str) -> None:
    """Random-weight pipelines of the real SDXL / FLUX.1-dev architectures, saved as `sdxl` / `flux-dev`.

    Built directly on the GPU in bf16 (seconds, not minutes); the tokenizer is the made-in-code one, so the
    embedding tables are smaller than the real ones (nothing else is)."""
    target = model_dir / FULL_MODELS[family]
    if (target / "model_index.json").is_file():
        return
    from ember.engine.presets import vocabulary_words
    from ember.engine.tokenizer import build_clip_tokenizer

    tokenizer = build_clip_tokenizer(model_dir / "_tokenizer", vocabulary_words())
    device = choose_device()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16 if device.startswith("cuda") else torch.float32)
    try:
        pipeline = full_sdxl(tokenizer, device) if family == "sdxl" else full_flux(tokenizer, device)
        pipeline.save_pretrained(str(target))
    finally:
        torch.set_default_dtype(previous)


def clip(tokenizer: Any, hidden: int, layers: int, heads: int, projection: int | None = None) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        max_position_embeddings=77,
        projection_dim=projection or hidden,
        hidden_act="gelu",
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(config) if projection else CLIPTextModel(config)


def sdxl_vae(latent_channels: int, **settings: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(128, 256, 512, 512),
        layers_per_block=2,
        latent_channels=latent_channels,
        sample_size=1024,
        **settings,
    )


def full_sdxl(tokenizer: Any, device: str) -> Any:
    """stabilityai/stable-diffusion-xl-base-1.0's configs: UNet 2.57 B, CLIP-L, CLIP-bigG, the SDXL VAE."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    # The models are built on the device; a scheduler keeps numpy arrays and is built outside that context.
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1, timestep_spacing="leading"
    )
    with torch.device(device):
        unet = UNet2DConditionModel(**SDXL_UNET)
        vae = sdxl_vae(4, scaling_factor=0.13025)
        text_encoder = clip(tokenizer, 768, 12, 12)
        text_encoder_2 = clip(tokenizer, 1280, 32, 20, projection=1280)
    return StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
    )


def full_flux(tokenizer: Any, device: str) -> Any:
    """black-forest-labs/FLUX.1-dev's configs: transformer 11.9 B (diffusers' defaults), CLIP-L, T5-XXL."""
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True)
    with torch.device(device):
        t5 = T5EncoderModel(
            T5Config(
                vocab_size=len(tokenizer),
                d_model=4096,
                d_kv=64,
                d_ff=10240,
                num_layers=24,
                num_heads=64,
                feed_forward_proj="gated-gelu",
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        )
        vae = sdxl_vae(16, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
        text_encoder = clip(tokenizer, 768, 12, 12)
        transformer = FluxTransformer2DModel(guidance_embeds=True)
    return FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=t5,
        tokenizer_2=tokenizer,
        transformer=transformer,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="tiny-sdxl and tiny-flux on CPU")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--families", default="sdxl,flux")
    parser.add_argument("--model-dir", type=Path, default=None, help="keep the built models here between runs")
    parser.add_argument("--repeats", type=int, default=1, help="pairs of runs, alternating which side goes first")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup + 1:
        parser.error("--steps must exceed --warmup + 1")
    if args.small:
        torch.set_num_threads(1)
    device = choose_device("cpu" if args.small else None)
    names = SMALL_MODELS if args.small else FULL_MODELS
    failed = False
    with tempfile.TemporaryDirectory(prefix="ember-gpu-bench-") as scratch:
        model_dir = args.model_dir or Path(scratch) / "models"
        model_dir.mkdir(parents=True, exist_ok=True)
        print(f"device {device}; {args.steps} steps, the first {args.warmup} not timed; {args.repeats} pair(s)")
        for family in args.families.split(","):
            base_model = names[family]
            if not args.small:
                build_full_size(model_dir, family)
            preset = preset_for(base_model, "subject")
            config = preset.with_overrides(steps=args.steps, sample_every=0, checkpoint_every=0)
            embers: list[Measured] = []
            bares: list[Measured] = []
            for repeat in range(args.repeats):
                work_dir = Path(scratch) / f"work-{family}-{repeat}"
                if repeat % 2:  # every other pair runs the bare loop first
                    bares.append(measure_bare(base_model, config, model_dir, args.steps, args.warmup))
                    embers.append(measure_ember(base_model, config, model_dir, work_dir, args.warmup))
                else:
                    embers.append(measure_ember(base_model, config, model_dir, work_dir, args.warmup))
                    bares.append(measure_bare(base_model, config, model_dir, args.steps, args.warmup))
            ember = median_of(embers)
            bare = median_of(bares)
            ratio = float(np.median([e.steps_per_s / b.steps_per_s for e, b in zip(embers, bares, strict=True)]))
            cpu_ratios = [e.cpu_steps_per_s / b.cpu_steps_per_s for e, b in zip(embers, bares, strict=True)]
            cpu_ratio = float(np.median(cpu_ratios))
            minutes = (ember.setup_s + preset.steps / ember.steps_per_s) / 60
            memory = "GiB peak GPU memory" if device.startswith("cuda") else "GiB peak RSS (process)"
            print(
                f"{base_model}: batch {config.batch_size} at {config.resolution}², rank {config.rank}, "
                f"{config.mixed_precision}, checkpointing {config.gradient_checkpointing}"
            )
            print(f"  Ember train_lora:      {ember.steps_per_s:7.3f} steps/s, {ember.peak_gib:6.2f} {memory}")
            print(f"  bare diffusers + peft: {bare.steps_per_s:7.3f} steps/s, {bare.peak_gib:6.2f} {memory}")
            print(f"  ratio Ember / bare:    {ratio:7.3f} (target ≥ {TARGET_RATIO})")
            if not device.startswith("cuda"):
                print(
                    f"  per CPU second:        Ember {ember.cpu_steps_per_s:.3f}, bare {bare.cpu_steps_per_s:.3f} "
                    f"steps; ratio {cpu_ratio:.3f} (each pair: {', '.join(f'{r:.3f}' for r in cpu_ratios)})"
                )
            print(
                f"  subject preset ({preset.steps} steps) end to end: {minutes:.2f} min "
                f"(set-up and caching {ember.setup_s:.1f} s)"
            )
            failed |= ratio < TARGET_RATIO
    return 1 if failed and not args.small else 0


def median_of(runs: list[Measured]) -> Measured:
    """Each field's median over the runs."""
    return Measured(*(float(np.median([getattr(run, name) for run in runs])) for name in Measured.__dataclass_fields__))


if __name__ == "__main__":
    sys.exit(main())
