"""LoRAs merged into the weights they modify, so a denoising step with custom models costs what a base step costs.

Unmerging by subtraction drifts the base weights a little with every switch (in bf16, 0.13 % after a few
cycles), so a long-lived worker never subtracts: the first time a layer is merged its exact base weights are kept
aside, and a switch copies them back before the next LoRAs are merged. After any number of switches the weights
are bit for bit what a fresh worker loads, and so are its images."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class FusedLoras:
    """One pipeline's merge state.

    `state` is the (key, weight) of the LoRAs the pipeline runs with now, `()` for the bare base model, `None`
    when that is unknown (after a restore, or a failure half-way): only a known state may be reused."""

    state: tuple[tuple[str, float], ...] | None = None
    # id(peft layer) → (layer, its base weight, its base bias), copied the first time the layer is merged.
    _kept: dict[int, tuple[Any, Any, Any]] = field(default_factory=dict)
    _merged: list[Any] = field(default_factory=list)

    def fuse(self, pipeline: Any, adapter_names: list[str], state: tuple[tuple[str, float], ...]) -> None:
        """Merge the named adapters (already loaded and weighted with `set_adapters`) into the base weights."""
        self.restore()
        for layer in lora_layers(pipeline):
            names = [name for name in adapter_names if name in layer.lora_A]
            if not names:
                continue
            if id(layer) not in self._kept:
                base = layer.get_base_layer()
                bias = getattr(base, "bias", None)
                self._kept[id(layer)] = (
                    layer,
                    base.weight.detach().clone(),
                    bias.detach().clone() if bias is not None else None,
                )
            self._merged.append(layer)
            layer.merge(adapter_names=names)
        self.state = state

    def restore(self) -> None:
        """Copy the kept base weights back into every merged layer; the adapters stay loaded, unmerged."""
        import torch

        with torch.no_grad():
            for layer in self._merged:
                _, weight, bias = self._kept[id(layer)]
                base = layer.get_base_layer()
                base.weight.copy_(weight)
                if bias is not None:
                    base.bias.copy_(bias)
                layer.merged_adapters.clear()
        self._merged.clear()
        self.state = None


def lora_layers(pipeline: Any) -> list[Any]:
    """Every peft LoRA layer in the pipeline's torch modules (denoiser and text encoders)."""
    import torch
    from peft.tuners.tuners_utils import BaseTunerLayer

    layers: list[Any] = []
    for component in pipeline.components.values():
        if isinstance(component, torch.nn.Module):
            layers.extend(module for module in component.modules() if isinstance(module, BaseTunerLayer))
    return layers
