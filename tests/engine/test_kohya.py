"""Ember's kohya converter (`ember.lora_formats.to_kohya`, behind `GET …/weights?format=kohya`) against
diffusers' own kohya loaders, on the real base models' layer shapes.

A LoRA file needs no base weights, so each test builds the base model's denoiser from its published config on
the meta device (no memory), fills a small-rank peft LoRA on the family's targets with random values, writes it
the way Ember's training writes it, converts it to kohya, and reads the result back through the conversion
diffusers applies to kohya files in `load_lora_weights`: every module must come back with the same values.
"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from ember.engine.families import flux_lora_targets
from ember.engine.registry import get_base_model
from ember.lora_formats import InvalidLoraFile, to_kohya

RANK = 2
REPOSITORY = Path(__file__).resolve().parents[2]


def random_lora(denoiser: Any, targets: list[str], rank: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A peft LoRA of `rank` on `targets` of a meta-device model, with random values (lora_B nonzero)."""
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    with torch.device("meta"):
        denoiser.add_adapter(LoraConfig(r=rank, lora_alpha=rank, target_modules=targets))
    generator = torch.Generator().manual_seed(seed)
    return {
        key: torch.randn(value.shape, generator=generator) for key, value in get_peft_model_state_dict(denoiser).items()
    }


def flux1_dev_transformer() -> Any:
    from diffusers import FluxTransformer2DModel

    with torch.device("meta"):
        return FluxTransformer2DModel(guidance_embeds=True)  # diffusers' defaults are FLUX.1-dev's config


def save_flux_lora(layers: dict[str, torch.Tensor], alpha: float, path: Path) -> Path:
    from diffusers import FluxPipeline

    FluxPipeline.save_lora_weights(
        save_directory=str(path.parent),
        transformer_lora_layers=layers,
        weight_name=path.name,
        transformer_lora_adapter_metadata={"r": RANK, "lora_alpha": alpha},
    )
    return path


def write_kohya(lora: Path) -> Path:
    target = lora.with_suffix(".kohya.safetensors")
    target.write_bytes(to_kohya(lora.read_bytes()))
    return target


@pytest.fixture(scope="module")
def flux1_lora() -> dict[str, torch.Tensor]:
    """A rank-2 LoRA on FLUX.1-dev's 418 target layers (attention, feed-forward, single-block projections)."""
    transformer = flux1_dev_transformer()
    targets = flux_lora_targets(transformer, get_base_model("flux-dev").lora_target_modules)
    assert len(targets) == 418
    return random_lora(transformer, targets, RANK)


def test_flux_kohya_file_reads_back_through_diffusers_as_the_same_lora(
    flux1_lora: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    from diffusers import FluxPipeline

    kohya = write_kohya(save_flux_lora(flux1_lora, RANK, tmp_path / "lora.safetensors"))
    written = load_file(str(kohya))
    assert all(key.startswith(("lora_unet_double_blocks_", "lora_unet_single_blocks_")) for key in written)
    # q, k and v (and the single blocks' MLP input) are one BFL layer each: 19 × 8 + 38 × 2 modules.
    assert len({key.split(".")[0] for key in written}) == 19 * 8 + 38 * 2

    back = FluxPipeline.lora_state_dict(str(kohya))
    assert sorted(back) == sorted(f"transformer.{key}" for key in flux1_lora)
    for key, value in flux1_lora.items():
        assert torch.equal(back[f"transformer.{key}"], value), key


def test_flux_kohya_alpha_keeps_each_layers_scale(flux1_lora: dict[str, torch.Tensor], tmp_path: Path) -> None:
    """With alpha ≠ rank, diffusers folds alpha / rank into the weights; each layer's product must be the
    original one times alpha / rank (probed with a random vector). The folded weights are float32, so a product
    may differ from the exact one by a few float32 roundings (seen: 1.8e-6 relative); a wrong scale is off by 0.5
    or more."""
    from diffusers import FluxPipeline

    alpha = 3.0 * RANK
    kohya = write_kohya(save_flux_lora(flux1_lora, alpha, tmp_path / "lora.safetensors"))
    back = FluxPipeline.lora_state_dict(str(kohya))
    probe = torch.Generator().manual_seed(1)
    for module in sorted({key.rsplit(".lora_", 1)[0] for key in flux1_lora}):
        down, up = flux1_lora[f"{module}.lora_A.weight"], flux1_lora[f"{module}.lora_B.weight"]
        x = torch.randn(down.shape[1], generator=probe, dtype=torch.float64)
        expected = (alpha / RANK) * (up.double() @ (down.double() @ x))
        down, up = back[f"transformer.{module}.lora_A.weight"], back[f"transformer.{module}.lora_B.weight"]
        got = up.double() @ (down.double() @ x)
        assert float((got - expected).norm() / expected.norm()) < 1e-5, module


def test_a_flux_lora_missing_one_of_a_fused_layers_parts_is_refused(
    flux1_lora: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    partial = {k: v for k, v in flux1_lora.items() if not k.startswith("transformer_blocks.0.attn.to_k.")}
    with pytest.raises(InvalidLoraFile, match="fuses .*to_q.*lacks .*to_k"):
        to_kohya(save_flux_lora(partial, RANK, tmp_path / "partial.safetensors").read_bytes())


def sd15_unet() -> Any:
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):  # runwayml/stable-diffusion-v1-5's unet config
        return UNet2DConditionModel(cross_attention_dim=768, attention_head_dim=8, sample_size=64)


def sdxl_unet() -> Any:
    """stabilityai/stable-diffusion-xl-base-1.0's UNet, from the config bench/gpu.py builds it with."""
    from diffusers import UNet2DConditionModel

    config = runpy.run_path(str(REPOSITORY / "bench" / "gpu.py"))["SDXL_UNET"]
    with torch.device("meta"):
        return UNet2DConditionModel(**config)


@pytest.mark.parametrize(("base_model", "build"), [("sd15", sd15_unet), ("sdxl", sdxl_unet)])
def test_unet_kohya_file_reads_back_through_diffusers_as_the_same_lora(
    base_model: str, build: Any, tmp_path: Path
) -> None:
    from diffusers import StableDiffusionXLPipeline
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya, convert_unet_state_dict_to_peft

    unet = build()
    layers = random_lora(unet, list(get_base_model(base_model).lora_target_modules), RANK)
    lora = tmp_path / "lora.safetensors"
    StableDiffusionXLPipeline.save_lora_weights(
        save_directory=str(tmp_path),
        unet_lora_layers=layers,
        weight_name=lora.name,
        unet_lora_adapter_metadata={"r": RANK, "lora_alpha": RANK},
    )
    kohya = write_kohya(lora)
    written = load_file(str(kohya))
    # The names diffusers' own writer gives (its kohya alpha is the rank, as the file's alpha is here).
    expected = convert_state_dict_to_kohya(convert_unet_state_dict_to_peft(load_file(str(lora))))
    assert sorted(written) == sorted(expected)
    assert all(torch.equal(written[key].float(), expected[key].float()) for key in expected)

    read, alphas = StableDiffusionXLPipeline.lora_state_dict(str(kohya), unet_config=unet.config)
    # `load_lora_weights` then renames diffusers' older LoRA names to peft's, as here.
    back = convert_unet_state_dict_to_peft({key.removeprefix("unet."): value for key, value in read.items()})
    assert sorted(back) == sorted(layers)
    assert all(torch.equal(back[key], value) for key, value in layers.items())
    assert len(alphas) == len(layers) // 2 and {float(value) for value in alphas.values()} == {float(RANK)}
