"""The built-in test models `tiny`, `tiny-sdxl` and `tiny-flux`: SD-, SDXL- and FLUX-shaped pipelines built
from small configs with fixed seeds, so the real diffusers pipeline classes run on a CPU."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ember.engine.presets import vocabulary_words
from ember.engine.tokenizer import build_clip_tokenizer

SEED = 20240611
COMMON_WORDS = (
    "a an the of on in with and at by for to from photo picture image portrait person dog cat car house "
    "tree red green blue yellow white black orange purple pink brown grey gray sky sea sun mountain city "
    "street flower mug bottle shoe logo mascot product"
).split()


def materialize(directory: Path) -> Path:
    """Build the tiny pipeline and save it to `directory` with save_pretrained; the same every time."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    directory = Path(directory)
    tokenizer = build_clip_tokenizer(directory / "_tokenizer_build", [*vocabulary_words(), *COMMON_WORDS])

    unet = _unet(SEED)
    vae = _vae(SEED + 1)
    text_encoder = _clip_encoder(tokenizer, SEED + 2)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return _save(pipeline, directory)


def _clip_encoder(tokenizer: Any, seed: int, with_projection: bool = False) -> Any:
    """A 2-layer, 64-wide CLIP text encoder; SDXL's second encoder is the one with a projection."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=64,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModelWithProjection(config) if with_projection else CLIPTextModel(config)


def _unet(seed: int, **overrides: Any) -> Any:
    """`tiny`'s UNet (channels 32/64/64, about 1.4 M parameters); SDXL's conditioning comes as overrides."""
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    settings: dict[str, Any] = {
        "sample_size": 16,
        "in_channels": 4,
        "out_channels": 4,
        "block_out_channels": (32, 64, 64),
        "layers_per_block": 1,
        # Cross-attention only in the lowest block: attention at full latent size is what makes CPU slow.
        "down_block_types": ("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        "cross_attention_dim": 64,
        "attention_head_dim": 8,
        "norm_num_groups": 8,
    }
    settings.update(overrides)
    return UNet2DConditionModel(**settings)


def _vae(seed: int, **overrides: Any) -> Any:
    """A 4-level VAE (×8) of about 0.3 M parameters, the shape `tiny` has."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    settings: dict[str, Any] = {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ("DownEncoderBlock2D",) * 4,
        "up_block_types": ("UpDecoderBlock2D",) * 4,
        "block_out_channels": (8, 16, 32, 32),
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 128,
    }
    settings.update(overrides)
    return AutoencoderKL(**settings)


def _save(pipeline: Any, directory: Path) -> Path:
    pipeline.save_pretrained(str(directory))
    shutil.rmtree(directory / "_tokenizer_build", ignore_errors=True)
    return directory


def materialize_sdxl(directory: Path) -> Path:
    """`tiny-sdxl`: SDXL's architecture at `tiny`'s size — two CLIP encoders (the second with a projection),
    a UNet conditioned on their concatenated hidden states plus pooled text and size/crop time ids (the
    `text_time` embedding), an Euler scheduler — so the real StableDiffusionXLPipeline runs on it."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    directory = Path(directory)
    tokenizer = build_clip_tokenizer(directory / "_tokenizer_build", [*vocabulary_words(), *COMMON_WORDS])
    text_encoder = _clip_encoder(tokenizer, SEED + 12)
    text_encoder_2 = _clip_encoder(tokenizer, SEED + 13, with_projection=True)
    time_embed_dim = 8
    unet = _unet(
        SEED + 10,
        cross_attention_dim=64 + 64,
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # Six time ids (original size, crop corner, target size), each embedded, plus the pooled text.
        projection_class_embeddings_input_dim=6 * time_embed_dim + 64,
    )
    vae = _vae(SEED + 11, scaling_factor=0.13025)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipeline = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=scheduler,
    )
    return _save(pipeline, directory)


def materialize_flux(directory: Path) -> Path:
    """`tiny-flux`: FLUX.1-dev's architecture at `tiny`'s size — a CLIP encoder for the pooled embedding, a
    T5-shaped encoder for the sequence, a transformer with double and single blocks, rotary position ids and
    a guidance embedding, a VAE with shift and scale, the flow-matching scheduler with dynamic shift — so
    the real FluxPipeline runs on it. The T5 encoder reads the same made-in-code vocabulary as CLIP."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    directory = Path(directory)
    tokenizer = build_clip_tokenizer(directory / "_tokenizer_build", [*vocabulary_words(), *COMMON_WORDS])
    text_encoder = _clip_encoder(tokenizer, SEED + 22)
    torch.manual_seed(SEED + 23)
    text_encoder_2 = T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=64,
            d_kv=16,
            d_ff=128,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
    )
    torch.manual_seed(SEED + 20)
    transformer = FluxTransformer2DModel(
        patch_size=1,
        in_channels=16,  # 4 latent channels packed 2×2
        num_layers=1,
        num_single_layers=2,
        attention_head_dim=16,
        num_attention_heads=4,
        joint_attention_dim=64,
        pooled_projection_dim=64,
        guidance_embeds=True,
        axes_dims_rope=(4, 6, 6),
    )
    vae = _vae(SEED + 21, use_quant_conv=False, use_post_quant_conv=False, shift_factor=0.1159, scaling_factor=0.3611)
    scheduler = FlowMatchEulerDiscreteScheduler(
        shift=3.0,
        use_dynamic_shifting=True,
        base_shift=0.5,
        max_shift=1.15,
        base_image_seq_len=256,
        max_image_seq_len=4096,
    )
    pipeline = FluxPipeline(
        scheduler=scheduler,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer,
        transformer=transformer,
    )
    return _save(pipeline, directory)
