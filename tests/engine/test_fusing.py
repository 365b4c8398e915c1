"""Custom models fused into the weights: same images as the unfused path, and exact base weights after switches."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from ember.engine.types import LoraRef

Request = Callable[..., Any]


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.int16)


def render(engine: Any, request: Any) -> np.ndarray:
    return pixels(engine.generate(request)[0].data)


@pytest.fixture(scope="module")
def lora_files(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two random rank-4 LoRAs on tiny's attention and projection layers, strong enough to see."""
    from ember.engine.generate import Engine
    from ember.engine.random_lora import write_random_lora
    from ember.engine.registry import get_base_model

    unet = Engine(model_dir).pipeline("tiny").unet
    targets = get_base_model("tiny").lora_target_modules
    folder = tmp_path_factory.mktemp("random-loras")
    return (
        write_random_lora(unet, "unet", targets, folder / "a.safetensors", rank=4, seed=1, scale=0.1),
        write_random_lora(unet, "unet", targets, folder / "b.safetensors", rank=4, seed=2, scale=0.1),
    )


@pytest.fixture
def fresh_engine(model_dir: Path) -> Callable[..., Any]:
    from ember.engine.generate import Engine

    return lambda **options: Engine(model_dir, **options)


def test_fused_and_unfused_outputs_agree_within_rounding(
    fresh_engine: Callable[..., Any], make_request: Request, lora_files: tuple[Path, Path]
) -> None:
    request = make_request(loras=[LoraRef("a", lora_files[0], 0.8), LoraRef("b", lora_files[1], 0.6)])
    fused = render(fresh_engine(), request)
    unfused = render(fresh_engine(fuse_loras=False), request)
    assert np.abs(fused - unfused).max() <= 2


def test_a_run_of_requests_for_the_same_loras_stays_fused(
    fresh_engine: Callable[..., Any], make_request: Request, lora_files: tuple[Path, Path]
) -> None:
    from ember.engine.fusing import lora_layers

    engine = fresh_engine()
    request = make_request(steps=1, loras=[LoraRef("a", lora_files[0])])
    engine.generate(request)
    merged_before = [layer for layer in lora_layers(engine.pipeline("tiny")) if layer.merged]
    engine.generate(request)
    merged_after = [layer for layer in lora_layers(engine.pipeline("tiny")) if layer.merged]
    assert engine.fused_loras("tiny") == (("a", 1.0),)
    assert merged_before and merged_after == merged_before


def test_a_base_request_after_a_custom_one_unfuses(
    fresh_engine: Callable[..., Any], make_request: Request, lora_files: tuple[Path, Path]
) -> None:
    from ember.engine.fusing import lora_layers

    engine = fresh_engine()
    engine.generate(make_request(steps=1, loras=[LoraRef("a", lora_files[0])]))
    engine.generate(make_request(steps=1))
    assert engine.fused_loras("tiny") == ()
    assert not any(layer.merged for layer in lora_layers(engine.pipeline("tiny")))


def test_two_custom_models_each_change_the_output(
    engine: Any, make_request: Request, lora_files: tuple[Path, Path]
) -> None:
    a, b = LoraRef("a", lora_files[0]), LoraRef("b", lora_files[1])
    both = render(engine, make_request(loras=[a, b]))
    assert not np.array_equal(both, render(engine, make_request(loras=[a])))
    assert not np.array_equal(both, render(engine, make_request(loras=[b])))


def test_the_weights_of_combined_custom_models_matter(
    engine: Any, make_request: Request, lora_files: tuple[Path, Path]
) -> None:
    even = render(engine, make_request(loras=[LoraRef("a", lora_files[0], 1.0), LoraRef("b", lora_files[1], 1.0)]))
    tilted = render(engine, make_request(loras=[LoraRef("a", lora_files[0], 1.6), LoraRef("b", lora_files[1], 0.3)]))
    assert not np.array_equal(even, tilted)


def test_switches_restore_the_exact_base_weights(
    fresh_engine: Callable[..., Any], make_request: Request, lora_files: tuple[Path, Path]
) -> None:
    engine = fresh_engine()
    for index in range(6):
        lora = LoraRef("ab"[index % 2], lora_files[index % 2])
        engine.generate(make_request(steps=1, width=64, height=64, loras=[lora]))
    engine.generate(make_request(steps=1, width=64, height=64))
    worn = {name: value for name, value in engine.pipeline("tiny").unet.state_dict().items() if "lora_" not in name}
    pristine = fresh_engine().pipeline("tiny").unet.state_dict()
    assert all(torch_equal(value, pristine[name.replace(".base_layer", "")]) for name, value in worn.items())


def torch_equal(one: Any, two: Any) -> bool:
    import torch

    return bool(torch.equal(one, two))


@pytest.mark.slow
def test_after_50_switches_images_equal_a_fresh_engines(
    fresh_engine: Callable[..., Any], make_request: Request, lora_files: tuple[Path, Path]
) -> None:
    a, b = LoraRef("a", lora_files[0], 0.9), LoraRef("b", lora_files[1], 1.3)
    base_request, custom_request = make_request(), make_request(loras=[a])
    worn = fresh_engine()
    for index in range(50):
        worn.generate(make_request(steps=1, width=64, height=64, loras=[[a], [b], [a, b]][index % 3]))
    worn_base, worn_custom = render(worn, base_request), render(worn, custom_request)
    fresh = fresh_engine()
    fresh_base, fresh_custom = render(fresh, base_request), render(fresh, custom_request)
    assert np.array_equal(worn_base, fresh_base) and np.array_equal(worn_custom, fresh_custom)
