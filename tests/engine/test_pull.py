"""`ember engine pull`: a base model's weights from a local folder into the model directory, checked."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ember.cli import app
from ember.engine.models import ModelPullError, pull_model, resolve_model_path
from ember.engine.registry import get_base_model

runner = CliRunner()


@pytest.fixture
def sdxl_folder(model_dir: Path, tmp_path: Path) -> Path:
    """An SDXL-architecture pipeline folder, as a user's copy or mirror would be."""
    folder = tmp_path / "mirror" / "sdxl"
    shutil.copytree(resolve_model_path(get_base_model("tiny-sdxl"), model_dir), folder)
    return folder


def test_pull_from_a_local_folder_puts_the_pipeline_under_the_model_name(sdxl_folder: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    result = runner.invoke(app, ["engine", "pull", "sdxl", "--source", str(sdxl_folder), "--model-dir", str(models)])
    assert result.exit_code == 0, result.output
    assert (models / "sdxl" / "unet" / "config.json").is_file()
    assert resolve_model_path(get_base_model("sdxl"), models) == models / "sdxl"


def test_pull_refuses_a_folder_of_another_family_and_leaves_nothing(sdxl_folder: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    with pytest.raises(ModelPullError, match="FluxPipeline"):
        pull_model("flux-dev", models, str(sdxl_folder))
    assert list(models.iterdir()) == []


def test_pull_refuses_a_folder_with_damaged_weights(sdxl_folder: Path, tmp_path: Path) -> None:
    weights = next((sdxl_folder / "unet").glob("*.safetensors"))
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(ModelPullError, match="cannot be read"):
        pull_model("sdxl", tmp_path / "models", str(sdxl_folder))


def test_pulling_flux_dev_offline_explains_its_licence_and_token(tmp_path: Path) -> None:
    result = runner.invoke(app, ["engine", "pull", "flux-dev", "--model-dir", str(tmp_path / "models")])
    assert result.exit_code == 1
    assert "Non-Commercial License" in result.output and "HF_TOKEN" in result.output
