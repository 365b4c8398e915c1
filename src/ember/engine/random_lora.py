"""Random-weight LoRA files shaped for a base model: benchmarks and tests measure loading, fusing and switching
custom models, on any architecture, without training one first."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_random_lora(
    denoiser: Any,
    prefix: str,
    targets: tuple[str, ...],
    path: Path,
    rank: int = 16,
    seed: int = 0,
    scale: float = 0.05,
) -> Path:
    """A diffusers-format LoRA (peft key names) on every linear
    layer of `denoiser` whose name ends with one of `targets`; `prefix` is the pipeline component
    (`unet`, `transformer`). Weights are normal with standard deviation `scale`, so the effect is visible."""
    import torch
    from safetensors.torch import save_file

    generator = torch.Generator("cpu").manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in denoiser.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        if not any(name == target or name.endswith("." + target) for target in targets):
            continue
        down = torch.randn((rank, module.in_features), generator=generator) * scale
        up = torch.randn((module.out_features, rank), generator=generator) * scale
        tensors[f"{prefix}.{name}.lora_A.weight"] = down.contiguous()
        tensors[f"{prefix}.{name}.lora_B.weight"] = up.contiguous()
    if not tensors:
        raise ValueError(f"no linear layer of the {prefix} matches {targets}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # No adapter metadata: diffusers then reads the rank from the shapes and takes alpha = rank (scale 1).
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path
