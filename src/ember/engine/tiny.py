"""The built-in `tiny` base model: a Stable-Diffusion-shaped pipeline built from a small config, fixed seeds."""

from __future__ import annotations

from pathlib import Path

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
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    directory = Path(directory)
    tokenizer = build_clip_tokenizer(directory / "_tokenizer_build", [*vocabulary_words(), *COMMON_WORDS])

    torch.manual_seed(SEED)
    unet = UNet2DConditionModel(
        sample_size=16,
        in_channels=4,
        out_channels=4,
        block_out_channels=(32, 64, 64),
        layers_per_block=1,
        # Cross-attention only in the lowest block: attention at full latent size is what makes CPU slow.
        down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    torch.manual_seed(SEED + 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 32, 32),
        layers_per_block=1,
        latent_channels=4,
        norm_num_groups=8,
        sample_size=128,
    )
    torch.manual_seed(SEED + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
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
    )
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
    pipeline.save_pretrained(str(directory))  # type: ignore[attr-defined]  # defined on DiffusionPipeline at run time
    import shutil

    shutil.rmtree(directory / "_tokenizer_build", ignore_errors=True)
    return directory
