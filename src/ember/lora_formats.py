"""LoRA file formats: diffusers (peft keys) to kohya (ComfyUI, AUTOMATIC1111), by renaming safetensors entries.

The conversion is a renaming plus one `alpha` scalar per module, so it works on the file's bytes: no torch,
no numpy, any dtype. It names keys exactly as diffusers' `convert_state_dict_to_kohya` does (and as
`ember.engine.train.export_kohya` writes them).
"""

from __future__ import annotations

import json
import struct
from typing import Any

HEADER_LENGTH = struct.Struct("<Q")
METADATA_KEY = "__metadata__"


class InvalidLoraFile(ValueError):
    """Not a safetensors file, or not a LoRA in the diffusers (peft) naming."""


def read_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The JSON header of a safetensors file and the offset where tensor data starts."""
    if len(data) < HEADER_LENGTH.size:
        raise InvalidLoraFile("the file is too short to be safetensors")
    (length,) = HEADER_LENGTH.unpack_from(data)
    start = HEADER_LENGTH.size + length
    if start > len(data):
        raise InvalidLoraFile("the safetensors header runs past the end of the file")
    try:
        header = json.loads(data[HEADER_LENGTH.size : start])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidLoraFile("the safetensors header is not JSON") from error
    if not isinstance(header, dict):
        raise InvalidLoraFile("the safetensors header is not a JSON object")
    return header, start


def write_file(tensors: list[tuple[str, str, list[int], bytes]], metadata: dict[str, str] | None = None) -> bytes:
    """A safetensors file from (name, dtype, shape, raw little-endian bytes) entries."""
    header: dict[str, Any] = {}
    if metadata:
        header[METADATA_KEY] = metadata
    offset = 0
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    return HEADER_LENGTH.pack(len(encoded)) + encoded + b"".join(raw for _, _, _, raw in tensors)


def kohya_key(key: str) -> str:
    """E.g. `unet.mid_block.attentions.0.proj_in.lora_A.weight` →
    `lora_unet_mid_block_attentions_0_proj_in.lora_down.weight`."""
    renamed = key.replace(".processor.", ".")
    if "lora_A" in renamed:
        renamed = renamed.replace("lora_A", "lora_down")
    elif "lora_B" in renamed:
        renamed = renamed.replace("lora_B", "lora_up")
    if "text_encoder_2." in renamed:
        renamed = renamed.replace("text_encoder_2.", "lora_te2.")
    elif "text_encoder." in renamed:
        renamed = renamed.replace("text_encoder.", "lora_te1.")
    elif "unet" in renamed:
        renamed = renamed.replace("unet", "lora_unet")
    elif "lora_magnitude_vector" in renamed:
        renamed = renamed.replace("lora_magnitude_vector", "dora_scale")
    # Only the last two dots (before lora_down/lora_up and weight) survive.
    return renamed.replace(".", "_", renamed.count(".") - 2)


def _adapter_alpha(metadata: dict[str, str]) -> float | None:
    raw = metadata.get("lora_adapter_metadata")
    if not raw:
        return None
    try:
        adapter = json.loads(raw)
    except json.JSONDecodeError:
        return None
    alpha = adapter.get("unet.lora_alpha", adapter.get("lora_alpha")) if isinstance(adapter, dict) else None
    return float(alpha) if isinstance(alpha, int | float) else None


def to_kohya(data: bytes) -> bytes:
    """The kohya-format file of a diffusers-format LoRA: renamed entries, and an `alpha` per module (the
    adapter's alpha from the file's metadata, else its rank, as diffusers does)."""
    header, start = read_header(data)
    metadata = header.pop(METADATA_KEY, None) or {}
    if not any(".lora_A." in name for name in header):
        raise InvalidLoraFile("the file holds no LoRA weights in the diffusers (peft) naming")
    alpha = _adapter_alpha(metadata)
    tensors: list[tuple[str, str, list[int], bytes]] = []
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        renamed = kohya_key(name)
        tensors.append((renamed, entry["dtype"], list(entry["shape"]), data[start + begin : start + end]))
        if "lora_down" in renamed:
            alpha_name = f"{renamed.split('.')[0]}.alpha"
            if alpha is not None:
                tensors.append((alpha_name, "F32", [], struct.pack("<f", alpha)))
            else:
                tensors.append((alpha_name, "I64", [], struct.pack("<q", int(entry["shape"][0]))))
    return write_file(tensors)
