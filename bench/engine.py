"""Benchmark of the engine against bare diffusers and peft, each baseline measured in the same run, on CPU.

For each base model (`toy`, `tiny`) it prints:
  1. Ember's `Engine.generate` over a bare diffusers call on the same pipeline with the same arguments
     (prompt, steps, guidance, generators, size; target ≤ 1.05);
  2. generation with a custom model (a rank-16 LoRA on the model's target layers) over without: fused, as the
     engine runs it (target ≤ 1.05), and unfused (peft adapters active at every step), for reference;
  3. switching between two custom models at every request over repeating one (target ≤ 1.2);
  4. Ember's training steps/s (`train_lora`, style preset) over a bare diffusers + peft loop doing the same
     steps: same UNet, LoRA config, batch, resolution, precision, optimizer and clipping (target ≥ 0.95).

Timed calls alternate between the two sides of each ratio (each side on its own engine, so it stays in its
steady state: holding a custom model, switching at every request, or bare), so a machine shared with other work
disturbs both alike. Times are CPU seconds of the process (see `clock`); each figure is the median of
`--repeats` calls, and `best` is the ratio of the fastest call of each side (the least disturbed).

    .venv/bin/python bench/engine.py [--models toy tiny] [--repeats 7] [--train-steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

SIZE = 1024  # requested size; each model renders at its native resolution for it
PROMPT = "a red cube on a table"
RANK = 16


def clock() -> float:
    """CPU seconds of this process: with one torch thread all of the work, and, unlike wall time, hardly
    changed when other work shares the machine's cores (wall time on a busy 2-core machine varied 8×)."""
    return time.process_time()


def timed(call: Callable[[], Any]) -> float:
    started = clock()
    call()
    return clock() - started


def alternate(first: Callable[[], Any], second: Callable[[], Any], repeats: int) -> dict[str, Any]:
    """Each callable called in turn `repeats` times after one warm-up call each: the median of each, and the
    best of each (the least disturbed call, on a machine shared with other work)."""
    first()
    second()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        times[0].append(timed(first))
        times[1].append(timed(second))
    return {"s": round(statistics.median(times[0]), 4), "baseline_s": round(statistics.median(times[1]), 4),
            "ratio": round(statistics.median(times[0]) / statistics.median(times[1]), 3),
            "best_ratio": round(min(times[0]) / min(times[1]), 3)}


def generation_figures(model: str, model_dir: Path, lora_dir: Path, repeats: int) -> dict[str, Any]:
    import torch

    from ember.engine.generate import Engine
    from ember.engine.presets import compose_prompt
    from ember.engine.random_lora import write_random_lora
    from ember.engine.registry import get_base_model, nearest_native_resolution
    from ember.engine.types import GenerationRequest, LoraRef

    spec = get_base_model(model)
    engine = Engine(model_dir)
    pipeline = engine.pipeline(model)
    width, height = nearest_native_resolution(spec, SIZE, SIZE)
    steps = spec.default_steps

    def request(loras: list[LoraRef] | None = None) -> GenerationRequest:
        return GenerationRequest(base_model=model, prompt=PROMPT, seeds=[1], width=SIZE, height=SIZE,
                                 mimetype="image/jpeg", loras=loras or [])

    def bare() -> Any:
        generator = [torch.Generator("cpu").manual_seed(1)]
        with torch.inference_mode():
            return pipeline(prompt=[compose_prompt(PROMPT).text], num_inference_steps=steps,
                            guidance_scale=spec.default_guidance, generator=generator, width=width, height=height,
                            output_type="pil").images

    figures: dict[str, Any] = {"native_size": f"{width}x{height}", "steps": steps}
    figures["ember_over_bare"] = {**alternate(lambda: engine.generate(request()), bare, repeats), "target": "<= 1.05"}

    first, second = (
        write_random_lora(pipeline.unet, "unet", spec.lora_target_modules, lora_dir / f"{model}-{name}.safetensors",
                          rank=RANK, seed=seed)
        for seed, name in enumerate(("a", "b"))
    )
    one, other = LoraRef("a", first), LoraRef("b", second)
    # Separate engines, so each side of a ratio stays in its steady state while the calls alternate.
    holding, switching, unfused = Engine(model_dir), Engine(model_dir), Engine(model_dir, fuse_loras=False)
    switching.generate(request([other]))
    figures["custom_over_base"] = {
        **alternate(lambda: holding.generate(request([one])), lambda: engine.generate(request()), repeats),
        "target": "<= 1.05",
    }
    figures["unfused_custom_over_base"] = {
        **alternate(lambda: unfused.generate(request([one])), lambda: engine.generate(request()), repeats),
        "target": "reference",
    }
    turn = iter(range(10**6))
    figures["switching_over_repeating"] = {
        **alternate(lambda: switching.generate(request([[one, other][next(turn) % 2]])),
                    lambda: holding.generate(request([one])), repeats),
        "target": "<= 1.2",
    }
    return figures


def training_figures(model: str, model_dir: Path, work: Path, steps: int) -> dict[str, Any]:
    from ember.engine.train import preset_for, train_lora
    from ember.engine.types import Progress

    config = preset_for(model, "style").with_overrides(
        steps=steps, sample_every=0, checkpoint_every=0, replay_examples=0, prior_preservation=False,
        caption_dropout=0.0, aspect_buckets=False,
    )
    examples = training_examples(config.resolution)
    stamps: list[float] = []

    def on_progress(event: Progress) -> None:
        if event.message == "training":
            stamps.append(clock())

    # The baseline runs before and after Ember's run and is averaged, so a load that changes meanwhile weighs on
    # both sides alike.
    before = bare_training_rate(model, model_dir, config, steps)
    train_lora(model, examples, config, work / "ember", model_dir=model_dir, mode="style", progress=on_progress)
    ember_rate = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    bare_rate = (before + bare_training_rate(model, model_dir, config, steps)) / 2
    return {"resolution": config.resolution, "batch_size": config.batch_size, "rank": config.rank,
            "mixed_precision": config.mixed_precision,
            "ember_over_bare": {"steps_per_s": round(ember_rate, 3), "baseline_steps_per_s": round(bare_rate, 3),
                                "ratio": round(ember_rate / bare_rate, 3), "target": ">= 0.95"}}


def training_examples(side: int) -> list[Any]:
    import numpy as np
    from PIL import Image

    from ember.engine.types import TrainingExample

    examples = []
    for seed in range(8):
        blocks = np.random.default_rng(seed).integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
        image = Image.fromarray(blocks).resize((side, side), Image.Resampling.NEAREST)
        examples.append(TrainingExample(image, f"a painting of coloured blocks number {seed}"))
    return examples


def bare_training_rate(model: str, model_dir: Path, config: Any, steps: int) -> float:
    """The textbook diffusers + peft LoRA loop (as in diffusers' train_text_to_image_lora.py) on random latents
    and embeddings of the same shapes: steps per second over the same number of steps."""
    import torch
    import torch.nn.functional as functional
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from peft import LoraConfig
    from transformers import CLIPTokenizer

    from ember.engine.models import resolve_model_path
    from ember.engine.registry import get_base_model

    spec = get_base_model(model)
    path = resolve_model_path(spec, model_dir)
    unet = UNet2DConditionModel.from_pretrained(str(path), subfolder="unet")
    scheduler = DDPMScheduler.from_pretrained(str(path), subfolder="scheduler")
    unet.requires_grad_(False)
    unet.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.alpha, init_lora_weights="gaussian",
                                target_modules=list(spec.lora_target_modules)))
    trainable = [p for p in unet.parameters() if p.requires_grad]
    unet.train()
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=1e-2)
    vae_config = AutoencoderKL.load_config(str(path), subfolder="vae")
    latent_side = config.resolution // 2 ** (len(vae_config["block_out_channels"]) - 1)
    tokens = CLIPTokenizer.from_pretrained(str(path), subfolder="tokenizer").model_max_length
    generator = torch.Generator("cpu").manual_seed(0)
    autocast = torch.bfloat16 if config.mixed_precision != "no" else None
    stamps = []
    for _ in range(steps):
        latents = torch.randn((config.batch_size, unet.config.in_channels, latent_side, latent_side),
                              generator=generator)
        embeddings = torch.randn((config.batch_size, tokens, unet.config.cross_attention_dim), generator=generator)
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        with torch.autocast("cpu", dtype=autocast or torch.float32, enabled=autocast is not None):
            prediction = unet(noisy, timesteps, embeddings).sample
        loss = functional.mse_loss(prediction.float(), noise.float())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, config.max_grad_norm)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        stamps.append(clock())
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["toy", "tiny"])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="ember-bench-engine-") as tmp:
        model_dir = Path(tmp) / "models"
        for model in args.models:
            report[model] = {
                "generation": generation_figures(model, model_dir, Path(tmp) / "loras", args.repeats),
                "training": training_figures(model, model_dir, Path(tmp) / f"train-{model}", args.train_steps),
            }
    print(json.dumps(report, indent=2))
    print()
    print(f"{'model':6} {'figure':34} {'value':>10} {'baseline':>10} {'ratio':>7} {'best':>7}  target")
    for model, sections in report.items():
        for section, figures in sections.items():
            for name, figure in figures.items():
                if isinstance(figure, dict):
                    value = figure.get("s", figure.get("steps_per_s"))
                    base = figure.get("baseline_s", figure.get("baseline_steps_per_s"))
                    print(f"{model:6} {section + ': ' + name:34} {value:>10} {base:>10} {figure['ratio']:>7} "
                          f"{figure.get('best_ratio', ''):>7}  {figure['target']}")


if __name__ == "__main__":
    main()
