"""The `toy` base model: its architecture, and the committed pretrained pipeline written out for loading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ember.engine.toy.world import VOCABULARY

if TYPE_CHECKING:
    from transformers import CLIPTokenizer

WEIGHTS_DIR = Path(__file__).parent / "weights"
# The pretrained pipeline as `save_pretrained` wrote it, in half precision to keep the repository small.
PIPELINE_DIR = WEIGHTS_DIR / "pipeline"

LATENT_CHANNELS = 4
# The VAE halves the picture twice: 64×64 pixels become a 16×16 latent.
LATENT_SIZE = 16
MODEL_MAX_LENGTH = 77
TEXT_WIDTH = 64
SEED = 20261121


class ToyWeightsMissingError(FileNotFoundError):
    """The pretrained `toy` pipeline is not in the package (run `ember engine toy pretrain`)."""


def vae_config() -> dict[str, Any]:
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 3,
        "up_block_types": ["UpDecoderBlock2D"] * 3,
        "block_out_channels": [16, 32, 32],
        "layers_per_block": 1,
        "latent_channels": LATENT_CHANNELS,
        "norm_num_groups": 8,
        "sample_size": 64,
        # The mid block's attention at 16×16 costs more than it helps for flat-coloured scenes.
        "mid_block_add_attention": False,
    }


def unet_config() -> dict[str, Any]:
    return {
        "sample_size": LATENT_SIZE,
        "in_channels": LATENT_CHANNELS,
        "out_channels": LATENT_CHANNELS,
        "block_out_channels": [32, 64, 64],
        # Cross-attention only at 8×8 and 4×4: at 16×16 it would dominate the cost on a CPU.
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "layers_per_block": 1,
        "cross_attention_dim": TEXT_WIDTH,
        "attention_head_dim": 8,
        "norm_num_groups": 8,
    }


def text_encoder_config(tokenizer: CLIPTokenizer) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": TEXT_WIDTH,
        "intermediate_size": TEXT_WIDTH * 2,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": MODEL_MAX_LENGTH,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }


def scheduler_config() -> dict[str, Any]:
    return {
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "clip_sample": False,
        "set_alpha_to_one": False,
        "steps_offset": 1,
        "prediction_type": "epsilon",
    }


def build_tokenizer(directory: Path) -> CLIPTokenizer:
    from ember.engine.tokenizer import build_clip_tokenizer

    return build_clip_tokenizer(directory, words=VOCABULARY, model_max_length=MODEL_MAX_LENGTH)


def new_vae() -> Any:
    """A fresh, seeded VAE whose posterior starts almost noiseless, so colours are learned from the start."""
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(SEED)
    vae: Any = AutoencoderKL(**vae_config())
    with torch.no_grad():
        # quant_conv's output is (mean, log-variance); a log-variance near 0 drowns the colours in noise.
        vae.quant_conv.bias[LATENT_CHANNELS:].fill_(-6.0)
    return vae


def new_unet() -> Any:
    import torch
    from diffusers import UNet2DConditionModel

    torch.manual_seed(SEED + 1)
    return UNet2DConditionModel(**unet_config())


def new_text_encoder(tokenizer: CLIPTokenizer) -> Any:
    """The frozen text encoder: random but seeded, so every build gives the same embeddings."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(SEED + 2)
    encoder = CLIPTextModel(CLIPTextConfig(**text_encoder_config(tokenizer)))
    encoder.requires_grad_(False)
    return encoder.eval()


def assemble_pipeline(vae: Any, unet: Any, text_encoder: Any, tokenizer: CLIPTokenizer) -> Any:
    """A StableDiffusionPipeline of the parts (diffusers' classes are untyped, hence Any)."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DDIMScheduler(**scheduler_config()),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_committed_pipeline(pipeline: Any, directory: Path = PIPELINE_DIR) -> None:
    """Write the pipeline in half precision, the form committed to the repository."""
    import torch

    pipeline.to(torch.float16).save_pretrained(str(directory), safe_serialization=True)
    pipeline.to(torch.float32)


def materialize(directory: Path) -> None:
    """Write the committed `toy` pipeline into `directory` as a full-precision diffusers pipeline."""
    import torch
    from diffusers import StableDiffusionPipeline

    if not (PIPELINE_DIR / "model_index.json").is_file():
        raise ToyWeightsMissingError(f"no pretrained toy pipeline at {PIPELINE_DIR}")
    pipeline = StableDiffusionPipeline.from_pretrained(
        str(PIPELINE_DIR), dtype=torch.float32, safety_checker=None, requires_safety_checker=False
    )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    pipeline.save_pretrained(str(directory), safe_serialization=True)


def pretraining_record() -> dict[str, Any]:
    """What the committed pipeline was trained with (written by `ember engine toy pretrain`)."""
    path = WEIGHTS_DIR / "pretraining.json"
    return json.loads(path.read_text()) if path.is_file() else {}
