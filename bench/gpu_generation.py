"""Benchmark of generation on SDXL- and FLUX-architecture pipelines with random weights, on a GPU.

The pipelines are built in memory from the real architectures' configs (SDXL: two CLIP text encoders, the
2.6 B-parameter UNet, the SDXL VAE; FLUX.1-dev: CLIP, a T5-XXL-sized encoder, the 12 B-parameter transformer,
the 16-channel VAE), with random weights (no weights are downloaded), and handed to Ember's engine
(`Engine.use_pipeline`). Each is measured at 1024² with its default steps, and the script prints:
  1. Ember's generate over a bare diffusers call on the same pipeline with the same arguments (target ≤ 1.03);
  2. with a rank-16 custom model (random LoRA on the model's target layers), fused, over without (≤ 1.05),
     and unfused over without, for reference;
  3. a switch between two loaded custom models: the extra seconds of a request that switches over one that
     repeats (target ≤ 0.2 s);
  4. a first load of a custom model: the extra seconds of the first request with a new LoRA file (≤ 1.5 s);
  5. the compiled speed-up (EMBER_COMPILE=on: VAE decoder and regional compilation of the denoiser) and the
     compile time of the warm-up, and 2. again when compiled;
  6. the alternative to merging: diffusers' LoRA hotswap into the compiled denoiser (bare diffusers calls),
     its cost over the compiled base, a swap's seconds, and the first generation after a swap.

`--small` runs the same code on CPU with scaled-down configs of the same architectures (float32, 2 steps, and
dynamo's eager backend for the compiled part), to check the script where no GPU is present; its figures say
nothing about a GPU.

Tokenizers are Ember's own CLIP tokenizer (`build_clip_tokenizer`); FLUX's T5 slot gets one too, with a
512-token limit, since T5's vocabulary files are not available offline (the encoder is T5-sized, so its cost is
real).

    python bench/gpu_generation.py [--small] [--models sdxl flux] [--repeats 5] [--no-compile]
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

PROMPT = "a red cube on a table"
RANK = 16
WORDS = "a an the red cube on table photo of".split()


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(call: Callable[[], Any]) -> float:
    synchronize()
    started = time.perf_counter()
    call()
    synchronize()
    return time.perf_counter() - started


def median_time(call: Callable[[], Any], repeats: int) -> float:
    return statistics.median(timed(call) for _ in range(repeats))


def clip_text(tokenizer: Any, hidden: int, layers: int, projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 4, num_hidden_layers=layers,
        num_attention_heads=max(1, hidden // 64), max_position_embeddings=77, projection_dim=hidden,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def autoencoder(small: bool, **config: Any) -> Any:
    """The SDXL / FLUX VAE shape (four blocks, 8× down); `config` holds what differs between them."""
    from diffusers import AutoencoderKL

    # Small: six blocks (32× down), so the denoiser of the CPU check works on 32² latents of a 1024² image.
    blocks = 6 if small else 4
    return AutoencoderKL(
        block_out_channels=(4, 8, 8, 8, 8, 8) if small else (128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * blocks,
        up_block_types=("UpDecoderBlock2D",) * blocks,
        layers_per_block=1 if small else 2,
        norm_num_groups=4 if small else 32,
        sample_size=1024,
        **config,
    )


def sdxl_pipeline(tokenizer: Any, small: bool) -> Any:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel

    one, two = (32, 32) if small else (768, 1280)
    time_dim = 8 if small else 256
    unet = UNet2DConditionModel(
        sample_size=128,
        block_out_channels=(32, 64, 64) if small else (320, 640, 1280),
        layers_per_block=1 if small else 2,
        transformer_layers_per_block=(1, 1, 1) if small else (1, 2, 10),
        attention_head_dim=(2, 4, 4) if small else (5, 10, 20),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=one + two,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_dim,
        projection_class_embeddings_input_dim=time_dim * 6 + two,
        use_linear_projection=True,
        norm_num_groups=8 if small else 32,
    )
    vae = autoencoder(small, latent_channels=4, scaling_factor=0.13025)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading", steps_offset=1
    )
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=clip_text(tokenizer, one, 2 if small else 12, False),
        text_encoder_2=clip_text(tokenizer, two, 2 if small else 32, True), tokenizer=tokenizer,
        tokenizer_2=tokenizer, unet=unet, scheduler=scheduler,
    )


def flux_pipeline(tokenizer: Any, t5_tokenizer: Any, small: bool) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    t5_width = 32 if small else 4096
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=64, num_layers=1 if small else 19, num_single_layers=2 if small else 38,
        attention_head_dim=16 if small else 128, num_attention_heads=2 if small else 24,
        joint_attention_dim=t5_width, pooled_projection_dim=32 if small else 768, guidance_embeds=True,
        axes_dims_rope=(4, 6, 6) if small else (16, 56, 56),
    )
    t5 = T5EncoderModel(T5Config(
        vocab_size=len(t5_tokenizer), d_model=t5_width, d_ff=64 if small else 10240, num_layers=2 if small else 24,
        num_heads=2 if small else 64, d_kv=16 if small else 64, feed_forward_proj="gated-gelu",
        pad_token_id=t5_tokenizer.pad_token_id, eos_token_id=t5_tokenizer.eos_token_id,
    ))
    vae = autoencoder(
        small, latent_channels=16, scaling_factor=0.3611, shift_factor=0.1159, use_quant_conv=False,
        use_post_quant_conv=False,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=1.15, base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    return FluxPipeline(
        scheduler=scheduler, vae=vae,
        text_encoder=clip_text(tokenizer, 32 if small else 768, 2 if small else 12, False), tokenizer=tokenizer,
        text_encoder_2=t5, tokenizer_2=t5_tokenizer, transformer=transformer,
    )


def figures_for(name: str, base_model: str, pipeline: Any, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ember.engine.generate import Engine
    from ember.engine.presets import compose_prompt
    from ember.engine.random_lora import write_random_lora
    from ember.engine.registry import get_base_model
    from ember.engine.types import GenerationRequest, LoraRef

    spec = get_base_model(base_model)
    device = "cpu" if args.small else "cuda"
    dtype = "float32" if args.small else "bfloat16"
    steps = 2 if args.small else spec.default_steps
    pipeline = pipeline.to(device, torch.float32 if args.small else torch.bfloat16)
    engine = Engine(work / "models", device=device, dtype=dtype, compile="off")
    engine.use_pipeline(base_model, pipeline)
    denoiser = getattr(pipeline, "unet", None) or pipeline.transformer
    prefix = "unet" if hasattr(pipeline, "unet") else "transformer"
    files = [
        write_random_lora(denoiser, prefix, spec.lora_target_modules, work / f"{name}-{index}.safetensors",
                          rank=RANK, seed=index, scale=0.01)
        for index in range(3)
    ]
    loras = [LoraRef(f"{name}-{index}", path) for index, path in enumerate(files)]

    def request(chosen: list[LoraRef] | None = None) -> GenerationRequest:
        return GenerationRequest(base_model=base_model, prompt=PROMPT, seeds=[1], width=1024, height=1024,
                                 steps=steps, loras=chosen or [])

    def bare() -> Any:
        generator = [torch.Generator(device).manual_seed(1)]
        with torch.inference_mode():
            return pipeline(prompt=[compose_prompt(PROMPT).text], num_inference_steps=steps,
                            guidance_scale=spec.default_guidance, generator=generator, width=1024, height=1024,
                            output_type="pil").images

    report: dict[str, Any] = {"steps": steps, "dtype": dtype}
    engine.generate(request())
    bare()
    base_s, bare_s = median_time(lambda: engine.generate(request()), args.repeats), median_time(bare, args.repeats)
    report["ember_over_bare"] = {"s": round(base_s, 3), "baseline_s": round(bare_s, 3),
                                 "ratio": round(base_s / bare_s, 3), "target": "<= 1.03"}
    first_load_s = timed(lambda: engine.generate(request([loras[0]])))
    custom_s = median_time(lambda: engine.generate(request([loras[0]])), args.repeats)
    report["custom_over_base"] = {"s": round(custom_s, 3), "baseline_s": round(base_s, 3),
                                  "ratio": round(custom_s / base_s, 3), "target": "<= 1.05"}
    report["first_load_s"] = {"s": round(first_load_s - custom_s, 3), "target": "<= 1.5"}
    engine.generate(request([loras[1]]))  # loaded, so what follows are switches between loaded models
    turn = iter(range(10**6))
    switch_s = median_time(lambda: engine.generate(request([loras[next(turn) % 2]])), args.repeats)
    report["switch_s"] = {"s": round(switch_s - custom_s, 3), "target": "<= 0.2"}
    unfused = Engine(work / "models", device=device, dtype=dtype, compile="off", fuse_loras=False)
    unfused.use_pipeline(base_model, pipeline)  # the same modules; the fused engine is unfused by a base request
    engine.generate(request())
    unfused.generate(request([loras[2]]))
    unfused_s = median_time(lambda: unfused.generate(request([loras[2]])), args.repeats)
    report["unfused_custom_over_base"] = {"s": round(unfused_s, 3), "baseline_s": round(base_s, 3),
                                          "ratio": round(unfused_s / base_s, 3), "target": "reference"}
    unfused.generate(request())  # leave the shared modules with adapters disabled
    if not args.no_compile:
        from ember.engine.compiling import compile_pipeline, use_cache_in

        use_cache_in(work / "models")
        # On CPU (--small) dynamo's eager backend checks the compiled path without minutes of C++ builds.
        compile_pipeline(pipeline, backend="eager" if args.small else "inductor")
        compile_s = timed(lambda: engine.generate(request()))
        compiled_s = median_time(lambda: engine.generate(request()), args.repeats)
        engine.generate(request([loras[0]]))
        compiled_custom_s = median_time(lambda: engine.generate(request([loras[0]])), args.repeats)
        report["compiled"] = {"s": round(compiled_s, 3), "uncompiled_s": round(base_s, 3),
                              "speed_up": round(base_s / compiled_s, 3), "warm_up_s": round(compile_s, 1),
                              "custom_over_base": round(compiled_custom_s / compiled_s, 3)}
        engine.generate(request())  # the exact base weights back, before the pipeline is handed to peft
        try:
            report["hotswap"] = hotswap_figures(pipeline, files, bare, compiled_s, args)
        except Exception as error:  # the alternative's figures are a comparison; their failure keeps the rest
            report["hotswap"] = {"error": f"{type(error).__name__}: {error}"[:500]}
    return report


def hotswap_figures(pipeline: Any, files: list[Path], bare: Callable[[], Any], compiled_base_s: float,
                    args: argparse.Namespace) -> dict[str, Any]:
    """The alternative to merging that the engine did not take: diffusers' LoRA hotswap into the compiled
    denoiser (peft keeps the LoRA layers beside the weights, padded to one rank, and swaps their tensors in
    place so the compiled graph stays valid). Bare diffusers calls on the already compiled pipeline: the cost
    of a generation with a hot-swappable custom model over the compiled base (Ember's compiled base request),
    the first generation after loading (it compiles the LoRA layers in), a swap, and the first generation
    after the swap (a recompile would show there)."""
    pipeline.unload_lora_weights()  # whatever Ember's engines left: the pipeline's own weights only
    pipeline.enable_lora_hotswap(target_rank=RANK, check_compiled="ignore")
    pipeline.load_lora_weights(str(files[0]), adapter_name="custom")
    first_s = timed(bare)
    custom_s = median_time(bare, args.repeats)
    swap_s = timed(lambda: pipeline.load_lora_weights(str(files[1]), adapter_name="custom", hotswap=True))
    after_swap_s = timed(bare)
    swapped_s = median_time(bare, args.repeats)
    pipeline.unload_lora_weights()
    return {"custom_over_base": round(custom_s / compiled_base_s, 3), "custom_s": round(custom_s, 3),
            "compiled_base_s": round(compiled_base_s, 3), "first_generation_s": round(first_s, 2),
            "swap_s": round(swap_s, 3), "first_after_swap_s": round(after_swap_s, 3),
            "after_swap_s": round(swapped_s, 3),
            "reference": "merged (Ember): compiled.custom_over_base; target for a custom model <= 1.05"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true",
                        help="Scaled-down architectures on CPU (a check of the script, not a figure).")
    parser.add_argument("--models", nargs="+", default=["sdxl", "flux"], choices=["sdxl", "flux"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", action="store_true", help="Skip the compiled measurement.")
    args = parser.parse_args()

    import torch

    from ember.engine.tokenizer import build_clip_tokenizer

    if not args.small and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU, or pass --small for the CPU check")
    torch.manual_seed(0)
    report: dict[str, Any] = {"device": torch.cuda.get_device_name() if not args.small else "cpu (small configs)"}
    with tempfile.TemporaryDirectory(prefix="ember-bench-gpu-generation-") as tmp:
        work = Path(tmp)
        tokenizer = build_clip_tokenizer(work / "tokenizer", WORDS)
        t5_tokenizer = build_clip_tokenizer(work / "t5-tokenizer", WORDS)
        t5_tokenizer.model_max_length = 512
        build_device = "cpu" if args.small else "cuda"
        for name in args.models:
            with torch.device(build_device):
                if name == "sdxl":
                    pipeline, base_model = sdxl_pipeline(tokenizer, args.small), "sdxl"
                else:
                    pipeline, base_model = flux_pipeline(tokenizer, t5_tokenizer, args.small), "flux-dev"
            report[name] = figures_for(name, base_model, pipeline, work, args)
            del pipeline
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
