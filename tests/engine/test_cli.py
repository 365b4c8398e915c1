"""`ember engine generate | train | caption | check` on local folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from ember.cli import app

from .conftest import encode, triangle_picture

runner = CliRunner()


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    for index in range(10):
        (folder / f"image-{index:02d}.png").write_bytes(encode(triangle_picture(index)))
    return folder


def test_check_accepts_a_valid_folder(image_folder: Path) -> None:
    result = runner.invoke(app, ["engine", "check", str(image_folder)])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok\t") == 10


def test_check_reports_each_broken_rule_with_its_code_and_fails(image_folder: Path) -> None:
    (image_folder / "image-00.png").write_bytes(b"broken")
    result = runner.invoke(app, ["engine", "check", str(image_folder)])
    assert result.exit_code == 1
    assert "corrupt_image\timage-00.png" in result.output


def test_caption_writes_a_caption_beside_every_image(image_folder: Path) -> None:
    result = runner.invoke(
        app,
        [
            "engine",
            "caption",
            str(image_folder),
            "--captioner",
            "builtin",
            "--mode",
            "subject",
            "--concept",
            "zorb",
            "--write",
        ],
    )
    assert result.exit_code == 0, result.output
    captions = [path.read_text() for path in sorted(image_folder.glob("*.txt"))]
    assert len(captions) == 10 and all("zorb" in caption for caption in captions)


def test_train_then_generate_with_the_lora(image_folder: Path, model_dir: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    trained = runner.invoke(
        app,
        [
            "engine",
            "train",
            str(image_folder),
            "--out",
            str(work),
            "--model-dir",
            str(model_dir),
            "--concept",
            "zorb",
            "--steps",
            "2",
            "--resolution",
            "64",
        ],
    )
    assert trained.exit_code == 0, trained.output
    assert (work / "lora.safetensors").is_file() and (work / "lora.kohya.safetensors").is_file()
    out = tmp_path / "out"
    generated = runner.invoke(
        app,
        [
            "engine",
            "generate",
            "a zorb",
            "--out",
            str(out),
            "--model-dir",
            str(model_dir),
            "--seed",
            "1",
            "--seed",
            "2",
            "--width",
            "160",
            "--height",
            "96",
            "--steps",
            "2",
            "--format",
            "webp",
            "--lora",
            f"{work / 'lora.safetensors'}:0.8",
        ],
    )
    assert generated.exit_code == 0, generated.output
    files = sorted(out.glob("*.webp"))
    assert [f.name for f in files] == ["seed-1.webp", "seed-2.webp"]
    assert Image.open(files[0]).size == (160, 96)


def test_train_refuses_a_dataset_that_breaks_the_rules(image_folder: Path, model_dir: Path, tmp_path: Path) -> None:
    for extra in sorted(image_folder.glob("*.png"))[5:]:
        extra.unlink()
    result = runner.invoke(
        app,
        [
            "engine",
            "train",
            str(image_folder),
            "--out",
            str(tmp_path / "w"),
            "--model-dir",
            str(model_dir),
            "--concept",
            "zorb",
            "--steps",
            "1",
        ],
    )
    assert result.exit_code == 1 and "too_few_images" in result.output


def test_models_lists_the_registry() -> None:
    result = runner.invoke(app, ["engine", "models"])
    assert result.exit_code == 0 and "tiny" in result.output and "sdxl" in result.output


def test_models_names_the_device_and_dtype_this_machine_uses() -> None:
    from ember.engine.models import choose_device

    result = runner.invoke(app, ["engine", "models"])
    assert result.output.splitlines()[0].startswith(f"device: {choose_device()} (")


def _model_rows(output: str) -> dict[str, dict[str, str]]:
    lines = output.splitlines()[1:]
    columns = lines[0].split("\t")
    return {line.split("\t")[0]: dict(zip(columns, line.split("\t"), strict=True)) for line in lines[1:]}


def test_models_lists_the_family_models_as_trainable() -> None:
    result = runner.invoke(app, ["engine", "models"])
    rows = _model_rows(result.output)
    for name in ("sdxl", "flux-dev", "tiny-sdxl", "tiny-flux"):
        assert rows[name]["training"] == "trainable"
    assert rows["flux-schnell"]["training"].startswith("generation only")


def test_models_says_whose_weights_are_here_and_how_to_get_the_others(tmp_path: Path) -> None:
    result = runner.invoke(app, ["engine", "models", "--model-dir", str(tmp_path / "empty")])
    assert result.exit_code == 0, result.output
    rows = _model_rows(result.output)
    assert rows["tiny"]["weights"] == "built in"
    assert rows["sd15"]["weights"] == "missing: run `ember engine pull sd15`"


@pytest.mark.slow
@pytest.mark.parametrize("base_model", ["tiny-sdxl", "tiny-flux"])
def test_train_then_generate_on_a_family_model(
    base_model: str, image_folder: Path, model_dir: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    common = ["--model-dir", str(model_dir), "--base-model", base_model]
    trained = runner.invoke(
        app, ["engine", "train", str(image_folder), "--out", str(work), "--concept", "zorb", "--steps", "20", *common]
    )
    assert trained.exit_code == 0, trained.output
    lora = work / "lora.safetensors"
    assert lora.is_file()
    out = tmp_path / "out"
    generated = runner.invoke(
        app, ["engine", "generate", "a zorb", "--out", str(out), "--steps", "2", "--lora", str(lora), *common]
    )
    assert generated.exit_code == 0, generated.output
    assert [f.name for f in out.iterdir()] == ["seed-0.jpg"]
