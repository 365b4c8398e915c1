"""The base model registry: entries, lookups, native resolutions."""

from __future__ import annotations

import pytest

from ember.engine.registry import (
    BaseModelSpec,
    UnknownBaseModel,
    get_base_model,
    list_base_models,
    nearest_native_resolution,
)


def test_registry_lists_the_builtin_and_real_models() -> None:
    names = {spec.name for spec in list_base_models()}
    assert {"tiny", "toy", "sd15", "sdxl", "flux-schnell", "flux-dev"} <= names


def test_unknown_name_raises_unknown_base_model_naming_it() -> None:
    with pytest.raises(UnknownBaseModel, match="nope"):
        get_base_model("nope")


def test_toy_entry_matches_the_toy_world() -> None:
    toy = get_base_model("toy")
    assert (toy.family, toy.native_resolutions, toy.min_train_side, toy.is_test_model) == ("sd", ((64, 64),), 64, False)
    assert toy.builder == "ember.engine.toy.model:materialize"
    assert {"to_q", "proj_in", "ff.net.2", "conv1", "conv2"} <= set(toy.lora_target_modules)


def test_tiny_is_a_builtin_test_model() -> None:
    tiny = get_base_model("tiny")
    assert tiny.is_test_model and tiny.builder is not None and tiny.source == "builtin"


def test_every_model_has_training_limits_and_lora_targets() -> None:
    for spec in list_base_models():
        assert isinstance(spec, BaseModelSpec)
        assert spec.min_train_side > 0 and spec.lora_target_modules and spec.native_resolutions


@pytest.mark.parametrize(
    ("requested", "expected"),
    [
        ((2048, 2048), (1024, 1024)),
        ((2688, 1512), (1344, 768)),
        ((1792, 2304), (896, 1152)),
        ((1440, 2560), (768, 1344)),
    ],
)
def test_nearest_native_resolution_follows_the_aspect_ratio(
    requested: tuple[int, int], expected: tuple[int, int]
) -> None:
    assert nearest_native_resolution(get_base_model("sdxl"), *requested) == expected
