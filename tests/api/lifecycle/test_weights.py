"""`GET .../weights`: the current version's LoRA, as stored (diffusers) or converted to the kohya format."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pytest
from safetensors.numpy import load, save

from ember.api.runtime import Runtime
from ember.store.database import transaction
from ember.store.tables import CustomModelVersion

from .conftest import Caller

MODULES = (
    "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
    "unet.mid_block.attentions.0.proj_in",
)


def diffusers_lora(rank: int = 4, alpha: float | None = 8.0) -> bytes:
    """A diffusers-format LoRA file (peft key names), as the trainer saves it."""
    rng = np.random.default_rng(0)
    tensors = {}
    for module in MODULES:
        tensors[f"{module}.lora_A.weight"] = rng.standard_normal((rank, 32)).astype(np.float32)
        tensors[f"{module}.lora_B.weight"] = rng.standard_normal((32, rank)).astype(np.float32)
    metadata = {"format": "pt"}
    if alpha is not None:
        metadata["lora_adapter_metadata"] = json.dumps({"r": rank, "lora_alpha": alpha})
    return save(tensors, metadata=metadata)


def test_an_untrained_model_has_no_weights(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    response = owner.get(f"/{asset_id}/weights")
    assert (response.status_code, response.json()["error_code"]) == (409, "model_not_trained")


def test_the_diffusers_weights_are_the_stored_file_as_an_attachment(
    owner: Caller, trained: Callable[[str, bytes], None]
) -> None:
    asset_id = owner.create(displayName="My Mascot")["assetId"]
    lora = diffusers_lora()
    trained(asset_id, lora)
    response = owner.get(f"/{asset_id}/weights", params={"format": "diffusers"})
    assert response.status_code == 200
    assert response.content == lora
    assert response.headers["content-disposition"] == 'attachment; filename="My_Mascot-v1.safetensors"'


def test_kohya_weights_rename_every_module_and_carry_its_alpha(
    owner: Caller, trained: Callable[[str, bytes], None]
) -> None:
    asset_id = owner.create()["assetId"]
    lora = diffusers_lora(rank=4, alpha=8.0)
    trained(asset_id, lora)
    response = owner.get(f"/{asset_id}/weights", params={"format": "kohya"})
    assert response.headers["content-disposition"].endswith('-v1.kohya.safetensors"')
    kohya = load(response.content)
    source = load(lora)
    prefix = "lora_unet_mid_block_attentions_0_proj_in"
    np.testing.assert_array_equal(kohya[f"{prefix}.lora_down.weight"], source[f"{MODULES[1]}.lora_A.weight"])
    np.testing.assert_array_equal(kohya[f"{prefix}.lora_up.weight"], source[f"{MODULES[1]}.lora_B.weight"])
    assert float(kohya[f"{prefix}.alpha"]) == 8.0
    assert len(kohya) == 6


def flux_lora(modules: list[tuple[str, int]], rank: int = 2, alpha: float = 4.0) -> bytes:
    """A diffusers-format FLUX LoRA on `(module, output width)` layers of 16 inputs."""
    rng = np.random.default_rng(1)
    tensors = {}
    for module, width in modules:
        tensors[f"transformer.{module}.lora_A.weight"] = rng.standard_normal((rank, 16)).astype(np.float32)
        tensors[f"transformer.{module}.lora_B.weight"] = rng.standard_normal((width, rank)).astype(np.float32)
    return save(tensors, metadata={"lora_adapter_metadata": json.dumps({"transformer.lora_alpha": alpha})})


def test_flux_kohya_weights_fuse_q_k_v_as_bfl_does(owner: Caller, trained: Callable[[str, bytes], None]) -> None:
    """One kohya layer for the single block's q, k, v and MLP input: the down matrices stacked, the up matrices
    on the diagonal, alpha times four; the attention output keeps its own layer."""
    layers = [("attn.to_q", 16), ("attn.to_k", 16), ("attn.to_v", 16), ("proj_mlp", 64), ("proj_out", 16)]
    lora = flux_lora([(f"single_transformer_blocks.3.{layer}", width) for layer, width in layers])
    asset_id = owner.create()["assetId"]
    trained(asset_id, lora)
    response = owner.get(f"/{asset_id}/weights", params={"format": "kohya"})
    assert response.status_code == 200, response.text
    kohya, source = load(response.content), load(lora)
    fused, names = "lora_unet_single_blocks_3_linear1", ("single_blocks_3_linear1", "single_blocks_3_linear2")
    parts = ("alpha", "lora_down.weight", "lora_up.weight")
    assert sorted(kohya) == sorted(f"lora_unet_{name}.{part}" for name in names for part in parts)
    downs = [source[f"transformer.single_transformer_blocks.3.{layer}.lora_A.weight"] for layer, _ in layers[:4]]
    np.testing.assert_array_equal(kohya[f"{fused}.lora_down.weight"], np.concatenate(downs))
    up, row = kohya[f"{fused}.lora_up.weight"], 0
    assert up.shape == (16 * 3 + 64, 8)
    for index, (layer, width) in enumerate(layers[:4]):
        block = np.zeros((width, 8), dtype=np.float32)
        block[:, 2 * index : 2 * index + 2] = source[f"transformer.single_transformer_blocks.3.{layer}.lora_B.weight"]
        np.testing.assert_array_equal(up[row : row + width], block)
        row += width
    assert (float(kohya[f"{fused}.alpha"]), float(kohya["lora_unet_single_blocks_3_linear2.alpha"])) == (16.0, 4.0)


def test_a_flux_lora_on_part_of_a_fused_layer_cannot_be_converted(
    owner: Caller, trained: Callable[[str, bytes], None]
) -> None:
    asset_id = owner.create()["assetId"]
    trained(asset_id, flux_lora([("transformer_blocks.0.attn.to_q", 16), ("transformer_blocks.0.attn.to_k", 16)]))
    response = owner.get(f"/{asset_id}/weights", params={"format": "kohya"})
    assert (response.status_code, response.json()["error_code"]) == (409, "weights_not_convertible")


def test_kohya_conversion_matches_diffusers_own_conversion() -> None:
    """The torch-free converter names and fills every entry as diffusers' `convert_state_dict_to_kohya` does,
    with the file's alpha (else the rank, as diffusers writes it)."""
    import torch
    from diffusers.utils.state_dict_utils import convert_state_dict_to_kohya
    from safetensors.torch import load as load_torch

    from ember.lora_formats import to_kohya

    for alpha in (8.0, None):
        source = diffusers_lora(rank=4, alpha=alpha)
        expected = convert_state_dict_to_kohya(load_torch(source))
        if alpha is not None:
            expected.update({key: torch.tensor(alpha) for key in expected if key.endswith(".alpha")})
        converted = load_torch(to_kohya(source))
        assert converted.keys() == expected.keys()
        for key, value in expected.items():
            assert converted[key].dtype == value.dtype, key
            assert torch.equal(converted[key], value), key


def test_a_file_that_is_no_diffusers_lora_cannot_be_converted(
    owner: Caller, trained: Callable[[str, bytes], None]
) -> None:
    asset_id = owner.create()["assetId"]
    trained(asset_id, save({"weight": np.zeros((2, 2), dtype=np.float32)}))
    response = owner.get(f"/{asset_id}/weights", params={"format": "kohya"})
    assert (response.status_code, response.json()["error_code"]) == (409, "weights_not_convertible")


def test_missing_weight_files_are_a_404(owner: Caller, runtime: Runtime, trained: Callable[[str, bytes], None]) -> None:
    asset_id = owner.create()["assetId"]
    trained(asset_id, b"lora")
    with transaction(runtime.sessions) as session:
        for version in session.query(CustomModelVersion):
            runtime.blobs.delete(version.lora_blob_key)
    response = owner.get(f"/{asset_id}/weights")
    assert (response.status_code, response.json()["error_code"]) == (404, "weights_not_found")


@pytest.mark.parametrize("format", ["onnx", ""])
def test_an_unknown_format_is_a_422(owner: Caller, trained: Callable[[str, bytes], None], format: str) -> None:
    asset_id = owner.create()["assetId"]
    trained(asset_id, b"lora")
    assert owner.get(f"/{asset_id}/weights", params={"format": format}).status_code == 422
