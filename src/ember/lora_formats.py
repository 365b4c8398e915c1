"""LoRA file formats: diffusers (peft keys) to kohya (ComfyUI, AUTOMATIC1111, Forge), on the file's bytes.

This is Ember's one kohya converter. It serves the API's weights download, which must not need torch, so it
works on the safetensors bytes (any dtype, no torch; numpy only to lay out FLUX's fused blocks):

- `unet.` keys (SD 1.5, SDXL): a renaming plus one `alpha` scalar per module, named exactly as diffusers'
  `convert_state_dict_to_kohya` names them (tests compare the two);
- `transformer.` keys (FLUX.1): kohya's sd-scripts naming, which follows BFL's checkpoint. BFL fuses the
  attention's q, k and v (and, in single blocks, the MLP's input) into one linear layer, so those LoRAs are
  written as one LoRA of the summed rank whose down matrices are stacked and whose up matrix is
  block-diagonal: it computes exactly the separate LoRAs, and diffusers' kohya FLUX conversion splits it
  back into them (tests compare key for key on FLUX.1-dev's shapes). The fused alpha is the module alpha
  times the number of fused layers, so alpha / rank is unchanged.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

HEADER_LENGTH = struct.Struct("<Q")
METADATA_KEY = "__metadata__"
ITEM_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}

# diffusers' FLUX module (inside transformer_blocks.N) → sd-scripts' name (after lora_unet_double_blocks_N_);
# a tuple of modules is one fused BFL layer, in its order.
FLUX_DOUBLE_BLOCK: dict[str, tuple[str, ...]] = {
    "img_attn_qkv": ("attn.to_q", "attn.to_k", "attn.to_v"),
    "img_attn_proj": ("attn.to_out.0",),
    "img_mlp_0": ("ff.net.0.proj",),
    "img_mlp_2": ("ff.net.2",),
    "img_mod_lin": ("norm1.linear",),
    "txt_attn_qkv": ("attn.add_q_proj", "attn.add_k_proj", "attn.add_v_proj"),
    "txt_attn_proj": ("attn.to_add_out",),
    "txt_mlp_0": ("ff_context.net.0.proj",),
    "txt_mlp_2": ("ff_context.net.2",),
    "txt_mod_lin": ("norm1_context.linear",),
}
FLUX_SINGLE_BLOCK: dict[str, tuple[str, ...]] = {
    "linear1": ("attn.to_q", "attn.to_k", "attn.to_v", "proj_mlp"),
    "linear2": ("proj_out",),
    "modulation_lin": ("norm.linear",),
}
FLUX_BLOCKS = {
    "transformer_blocks": ("double_blocks", FLUX_DOUBLE_BLOCK),
    "single_transformer_blocks": ("single_blocks", FLUX_SINGLE_BLOCK),
}


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
    if not isinstance(adapter, dict):
        return None
    alpha = adapter.get("unet.lora_alpha", adapter.get("transformer.lora_alpha", adapter.get("lora_alpha")))
    return float(alpha) if isinstance(alpha, int | float) else None


@dataclass
class _Entry:
    dtype: str
    shape: list[int]
    raw: bytes


def _alpha_entry(name: str, alpha: float | None, rank: int) -> tuple[str, str, list[int], bytes]:
    """`alpha` as diffusers writes it: the adapter's alpha, else the module's rank."""
    if alpha is not None:
        return (f"{name}.alpha", "F32", [], struct.pack("<f", alpha))
    return (f"{name}.alpha", "I64", [], struct.pack("<q", rank))


def to_kohya(data: bytes) -> bytes:
    """The kohya-format file of a diffusers-format LoRA (SD 1.5, SDXL or FLUX.1)."""
    header, start = read_header(data)
    metadata = header.pop(METADATA_KEY, None) or {}
    if not any(".lora_A." in name for name in header):
        raise InvalidLoraFile("the file holds no LoRA weights in the diffusers (peft) naming")
    entries = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        entries[name] = _Entry(entry["dtype"], list(entry["shape"]), data[start + begin : start + end])
    alpha = _adapter_alpha(metadata)
    if any(name.startswith("transformer.") for name in entries):
        return write_file(_flux_to_kohya(entries, alpha))
    tensors: list[tuple[str, str, list[int], bytes]] = []
    for name, entry in entries.items():
        renamed = kohya_key(name)
        tensors.append((renamed, entry.dtype, entry.shape, entry.raw))
        if "lora_down" in renamed:
            tensors.append(_alpha_entry(renamed.split(".")[0], alpha, int(entry.shape[0])))
    return write_file(tensors)


def _flux_to_kohya(entries: dict[str, _Entry], alpha: float | None) -> list[tuple[str, str, list[int], bytes]]:
    """sd-scripts' FLUX names, with q/k/v (and the single blocks' MLP input) fused as BFL fuses them."""
    modules = sorted({name.removesuffix(".lora_A.weight") for name in entries if name.endswith(".lora_A.weight")})
    converted: set[str] = set()
    tensors: list[tuple[str, str, list[int], bytes]] = []
    for module in modules:
        if module in converted:
            continue
        parts = module.split(".")
        if len(parts) < 4 or parts[0] != "transformer" or parts[1] not in FLUX_BLOCKS or not parts[2].isdigit():
            raise InvalidLoraFile(f"{module} has no name in kohya's FLUX format (only the blocks' layers do)")
        block_name, layers = FLUX_BLOCKS[parts[1]]
        inner = ".".join(parts[3:])
        fused = next((kohya for kohya, group in layers.items() if inner in group), None)
        if fused is None:
            raise InvalidLoraFile(f"{module} has no name in kohya's FLUX format")
        prefix = ".".join(parts[:3])
        group = [f"{prefix}.{layer}" for layer in layers[fused]]
        missing = [name for name in group if f"{name}.lora_A.weight" not in entries]
        if missing:
            fuses, lacks = ", ".join(group), ", ".join(missing)
            raise InvalidLoraFile(f"kohya's FLUX format fuses {fuses}; the file lacks {lacks}")
        converted.update(group)
        name = f"lora_unet_{block_name}_{parts[2]}_{fused}"
        downs = [entries[f"{member}.lora_A.weight"] for member in group]
        ups = [entries[f"{member}.lora_B.weight"] for member in group]
        rank = sum(down.shape[0] for down in downs)
        down = b"".join(down.raw for down in downs)
        tensors.append((f"{name}.lora_down.weight", downs[0].dtype, [rank, downs[0].shape[1]], down))
        outputs = sum(up.shape[0] for up in ups)
        tensors.append((f"{name}.lora_up.weight", ups[0].dtype, [outputs, rank], _block_diagonal(ups)))
        tensors.append(_alpha_entry(name, None if alpha is None else alpha * len(group), rank))
    return tensors


def _block_diagonal(ups: list[_Entry]) -> bytes:
    """The up matrices [out_i, rank_i] placed on the diagonal of one [Σ out_i, Σ rank_i] matrix of zeros."""
    import numpy as np

    if len(ups) == 1:
        return ups[0].raw
    dtypes = {up.dtype for up in ups}
    if len(dtypes) != 1 or next(iter(dtypes)) not in ITEM_SIZES:
        raise InvalidLoraFile(f"cannot fuse LoRA layers of dtypes {sorted(dtypes)}")
    size = ITEM_SIZES[ups[0].dtype]
    fused = np.zeros((sum(up.shape[0] for up in ups), sum(up.shape[1] for up in ups) * size), dtype=np.uint8)
    row = column = 0
    for up in ups:
        rows, width = up.shape[0], up.shape[1] * size
        fused[row : row + rows, column : column + width] = np.frombuffer(up.raw, dtype=np.uint8).reshape(rows, width)
        row, column = row + rows, column + width
    return fused.tobytes()
