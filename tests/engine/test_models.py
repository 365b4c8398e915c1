"""Base model weights: materializing `tiny`, the clear error for absent real weights, device and dtype."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ember.engine.models import ModelWeightsMissing, choose_device, choose_dtype, resolve_model_path
from ember.engine.registry import get_base_model


def _digest(directory: Path) -> dict[str, str]:
    return {
        str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_tiny_is_materialized_into_the_model_dir_as_a_pipeline(model_dir: Path) -> None:
    assert (model_dir / "tiny" / "model_index.json").is_file()
    assert resolve_model_path(get_base_model("tiny"), model_dir) == model_dir / "tiny"


def test_materializing_tiny_twice_gives_identical_weights(model_dir: Path, tmp_path: Path) -> None:
    again = resolve_model_path(get_base_model("tiny"), tmp_path)
    assert _digest(again) == _digest(model_dir / "tiny")


def test_sdxl_without_weights_offline_names_the_model_and_how_to_provide_it(tmp_path: Path) -> None:
    code = (
        "from pathlib import Path\n"
        "from ember.engine.models import ModelWeightsMissing, load_pipeline, choose_dtype\n"
        f"try:\n    load_pipeline('sdxl', Path({str(tmp_path)!r}), 'cpu', choose_dtype('cpu'))\n"
        "except ModelWeightsMissing as error:\n    print(error)\n"
    )
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    environment.pop("EMBER_MODEL_SOURCE_SDXL", None)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120)
    message = result.stdout
    assert "'sdxl'" in message and "EMBER_MODEL_SOURCE_SDXL" in message and str(tmp_path / "sdxl") in message


def test_a_configured_local_directory_is_used_for_a_real_model(model_dir: Path, tmp_path: Path) -> None:
    spec = get_base_model("sd15")
    assert resolve_model_path(spec, tmp_path, {"sd15": str(model_dir / "tiny")}) == model_dir / "tiny"


def test_a_configured_path_without_a_pipeline_is_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(ModelWeightsMissing, match="sd15"):
        resolve_model_path(get_base_model("sd15"), tmp_path, {"sd15": str(tmp_path / "empty")})


def test_cpu_runs_in_float32_and_explicit_choices_win() -> None:
    import torch

    assert choose_dtype("cpu") == torch.float32
    assert choose_dtype("cpu", "bf16") == torch.bfloat16
    assert choose_device("cpu") == "cpu"


def test_device_is_chosen_automatically_on_this_machine() -> None:
    import torch

    expected = "cuda" if torch.cuda.is_available() else ("mps" if torch.backends.mps.is_available() else "cpu")
    assert choose_device() == expected


def test_a_machine_with_cuda_runs_on_it_in_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert choose_device() == "cuda" and choose_dtype("cuda") == torch.bfloat16


def test_a_builtin_model_whose_builder_fails_reports_missing_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("ember_test_failing_builder")

    def materialize(directory: Path) -> None:
        raise FileNotFoundError("no committed weights")

    module.materialize = materialize  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    spec = dataclasses.replace(get_base_model("tiny"), name="broken", builder=f"{module.__name__}:materialize")
    with pytest.raises(ModelWeightsMissing, match="broken.*no committed weights"):
        resolve_model_path(spec, tmp_path)
    assert not any(tmp_path.iterdir())
