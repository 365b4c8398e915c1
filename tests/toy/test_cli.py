"""`ember engine toy render`: a folder of captioned scenes, usable as a training set."""

from __future__ import annotations

from pathlib import Path

from PIL import Image
from typer.testing import CliRunner

from ember.cli import app


def test_render_writes_pictures_with_their_captions(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["engine", "toy", "render", str(tmp_path), "--count", "3", "--shape", "star", "--colour", "blue"]
    )
    assert result.exit_code == 0, result.output
    pictures = sorted(tmp_path.glob("*.png"))
    assert len(pictures) == 3
    assert Image.open(pictures[0]).size == (64, 64)
    assert pictures[0].with_suffix(".txt").read_text().startswith("a blue star on a ")


def test_render_refuses_a_shape_the_world_does_not_have(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["engine", "toy", "render", str(tmp_path), "--shape", "hexagon"])
    assert result.exit_code != 0
