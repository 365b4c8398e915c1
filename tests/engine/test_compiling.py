"""EMBER_COMPILE: when it applies, what it compiles, and that switching loaded custom models does not recompile.

Compiled with dynamo's `eager` backend: the graphs, guards and recompilations are torch.compile's own, without
minutes of C++ kernel builds on a CPU."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ember.engine.compiling import InvalidCompileSetting, compile_wanted
from ember.engine.types import LoraRef

Request = Callable[..., Any]


@pytest.mark.parametrize(
    ("setting", "device", "wanted"),
    [
        ("auto", "cuda", True), ("auto", "cpu", False), ("auto", "mps", False), ("on", "cpu", True),
        ("off", "cuda", False),
    ],
)
def test_auto_compiles_on_cuda_only_and_on_off_force_it(setting: str, device: str, wanted: bool) -> None:
    assert compile_wanted(setting, device) is wanted


def test_an_unknown_compile_setting_is_refused() -> None:
    with pytest.raises(InvalidCompileSetting, match="EMBER_COMPILE"):
        compile_wanted("fast", "cuda")


def test_the_environment_sets_compilation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBER_COMPILE", "on")
    assert compile_wanted(None, "cpu") is True


@pytest.fixture(scope="module")
def compiled_engine(model_dir: Path) -> Any:
    from ember.engine.generate import Engine

    return Engine(model_dir, compile="on", compile_backend="eager")


@pytest.fixture(scope="module")
def two_loras(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from ember.engine.generate import Engine
    from ember.engine.random_lora import write_random_lora
    from ember.engine.registry import get_base_model

    unet = Engine(model_dir, compile="off").pipeline("tiny").unet
    targets = get_base_model("tiny").lora_target_modules
    folder = tmp_path_factory.mktemp("compile-loras")
    return (
        write_random_lora(unet, "unet", targets, folder / "a.safetensors", rank=4, seed=3, scale=0.1),
        write_random_lora(unet, "unet", targets, folder / "b.safetensors", rank=4, seed=4, scale=0.1),
    )


def test_the_vae_decoder_and_the_repeated_blocks_are_compiled(compiled_engine: Any, model_dir: Path) -> None:
    pipeline = compiled_engine.pipeline("tiny")
    blocks = [m for m in pipeline.unet.modules() if type(m).__name__ == "BasicTransformerBlock"]
    assert blocks and all(block._compiled_call_impl is not None for block in blocks)
    assert pipeline.vae.decoder._compiled_call_impl is not None
    assert (model_dir / ".compile-cache").is_dir()


def test_compiled_generation_draws_what_the_uncompiled_engine_draws(
    compiled_engine: Any, engine: Any, make_request: Request
) -> None:
    from .test_generate import render

    compiled, plain = render(compiled_engine, make_request())[0], render(engine, make_request())[0]
    assert np.abs(compiled - plain).max() <= 2


@pytest.mark.slow
def test_switching_loaded_custom_models_does_not_recompile(
    compiled_engine: Any, make_request: Request, two_loras: tuple[Path, Path]
) -> None:
    from torch._dynamo.utils import counters

    a, b = LoraRef("a", two_loras[0]), LoraRef("b", two_loras[1])
    for loras in ([], [a], [b], [a, b], []):  # loads both and sees each kind of state once
        compiled_engine.generate(make_request(steps=1, loras=loras))
    graphs = counters["stats"]["unique_graphs"]
    for loras in ([a], [b], [a, b], [b], [], [a]):
        compiled_engine.generate(make_request(steps=1, loras=loras))
    assert counters["stats"]["unique_graphs"] == graphs
