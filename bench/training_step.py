"""Ember's FLUX training step against the bare loop's, interleaved in one process on `tiny-flux` (CPU).

`bench/gpu.py --small` times two whole runs one after the other, and on a busy shared machine their wall-clock
ratio moves by ±30 % between runs. This script isolates the per-step work instead: one transformer with one
LoRA and one optimizer, and each step runs either `train_lora`'s loop body (a batch drawn from the cached
latents and caption embeddings, `_denoising_loss`, backward, clipping, the optimizer step) or `bench/gpu.py`'s
bare step (random latents and embeddings of the same shapes, diffusers' packing, the same backward and
optimizer), alternating which goes first; each is timed in CPU seconds of the process (one torch thread).

    .venv/bin/python bench/training_step.py [--steps 40]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import FluxPipeline
from peft import LoraConfig
from PIL import Image

from ember.engine import train
from ember.engine.families import FAMILIES
from ember.engine.models import resolve_model_path
from ember.engine.registry import get_base_model

BASE_MODEL = "tiny-flux"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    spec = get_base_model(BASE_MODEL)
    config = train.preset_for(BASE_MODEL, "subject")
    with tempfile.TemporaryDirectory(prefix="ember-step-bench-") as scratch:
        path = resolve_model_path(spec, args.model_dir or Path(scratch))
        family = FAMILIES[spec.family](spec, path, "cpu", torch.float32)
        rng = np.random.default_rng(0)
        size = config.resolution
        images = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(4)]
        texts = [""]
        buckets = train.bucket_sizes(size, multiple=family.size_multiple())
        group = train._encode_group(images, ["zorb, a zorb"] * 4, texts, family, config, buckets)
        embeddings = family.encode_captions(texts)
        family.free_encoders()
    denoiser = family.denoiser
    torch.manual_seed(0)
    targets = family.lora_targets()
    denoiser.add_adapter(
        LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian", target_modules=targets)
    )
    trainable = [p for p in denoiser.parameters() if p.requires_grad]
    for parameter in trainable:
        parameter.data = parameter.data.float()
    denoiser.train()
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=1e-2)
    batch_size, side = config.batch_size, size // 8

    def finish(loss: torch.Tensor) -> None:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def ember_step(step: int) -> None:
        draw = np.random.default_rng([config.seed, step, 0])
        generator = torch.Generator("cpu").manual_seed(int(draw.integers(0, 2**62)))
        batch = group.draw(embeddings, batch_size, config.caption_dropout, draw, generator)
        loss = train._denoising_loss(family, batch, generator, None)
        finish(loss)
        float(loss.detach())

    def bare_step(step: int) -> None:
        channels = denoiser.config.in_channels // 4
        latents = torch.randn(batch_size, channels, side, side)
        noise = torch.randn_like(latents)
        sigmas = torch.rand(batch_size).view(-1, 1, 1, 1)
        noisy = FluxPipeline._pack_latents((1 - sigmas) * latents + sigmas * noise, batch_size, channels, side, side)
        prediction = denoiser(
            hidden_states=noisy,
            timestep=sigmas.flatten(),
            guidance=torch.ones(batch_size) if denoiser.config.guidance_embeds else None,
            pooled_projections=torch.randn(batch_size, denoiser.config.pooled_projection_dim),
            encoder_hidden_states=torch.randn(batch_size, 512, denoiser.config.joint_attention_dim),
            txt_ids=torch.zeros(512, 3),
            img_ids=FluxPipeline._prepare_latent_image_ids(batch_size, side // 2, side // 2, "cpu", torch.float32),
            return_dict=False,
        )[0]
        target = FluxPipeline._pack_latents(noise - latents, batch_size, channels, side, side)
        finish(torch.nn.functional.mse_loss(prediction.float(), target.float()))

    seconds: dict[str, list[float]] = {"ember": [], "bare": []}
    for step in range(1, args.steps + 1):
        order = [("ember", ember_step), ("bare", bare_step)]
        for name, run in order if step % 2 else order[::-1]:
            started = time.process_time()
            run(step)
            seconds[name].append(time.process_time() - started)
    ember, bare = (np.array(seconds[name][args.warmup :]) for name in ("ember", "bare"))
    print(f"{BASE_MODEL}, batch {batch_size} at {size}², rank {config.rank}; {len(ember)} steps each, interleaved")
    print(f"  Ember step: median {np.median(ember) * 1000:.1f} ms CPU; bare step: {np.median(bare) * 1000:.1f} ms")
    print(
        f"  Ember steps/s / bare steps/s: {np.median(bare) / np.median(ember):.3f} (ratio of medians), "
        f"{bare.mean() / ember.mean():.3f} (ratio of means)"
    )


if __name__ == "__main__":
    main()
