"""The LoRAs a stored generation job asks for, and the key that routes it to the worker holding them."""

from __future__ import annotations

from typing import Any


def stored_loras(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """The LoRAs of a stored job spec (`{"key", "blobKey", "weight"}` each), jobs stored with one `lora` too."""
    if spec.get("loras"):
        return list(spec["loras"])
    return [spec["lora"]] if spec.get("lora") else []


def affinity_key(loras: list[dict[str, Any]]) -> str | None:
    """What a worker holds after running these LoRAs, for routing: one model at weight 1 is its key, so jobs for
    that model go where it is loaded; a weighted combination is fused as a whole, so it is its own key."""
    if not loras:
        return None
    if len(loras) == 1 and float(loras[0].get("weight", 1.0)) == 1.0:
        return str(loras[0]["key"])
    return "+".join(f"{lora['key']}@{float(lora.get('weight', 1.0)):g}" for lora in loras)
