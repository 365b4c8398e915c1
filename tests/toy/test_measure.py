"""The measures: colour and background from pixels, sepia from the palette, shape from the classifier."""

from __future__ import annotations

import random

import pytest

from ember.engine.toy.measure import (
    SceneReader,
    SceneReading,
    colour_rate,
    is_sepia,
    read_background,
    read_colour,
    sepia_rate,
    shape_rate,
)
from ember.engine.toy.world import ALL_SHAPES, BACKGROUNDS, COLOURS, Scene, random_scenes, render

EVERY_PAIR = tuple((shape, colour) for shape in ALL_SHAPES for colour in COLOURS)


@pytest.mark.parametrize("colour", sorted(COLOURS))
@pytest.mark.parametrize("background", sorted(BACKGROUNDS))
def test_the_colour_measure_reads_shape_colour_and_background(colour: str, background: str) -> None:
    assert read_colour(render(Scene("triangle", colour, background, size=0.4))) == (colour, background)


def test_a_picture_of_only_background_has_no_shape_colour() -> None:
    tiny = Scene("circle", "red", "gray", size=0.04)
    assert read_colour(render(tiny))[0] is None


def test_sepia_pictures_are_told_from_plain_ones() -> None:
    scenes = list(random_scenes(5, 60, pairs=EVERY_PAIR))
    assert not any(is_sepia(render(scene)) for scene in scenes)
    assert all(is_sepia(render(Scene(s.shape, s.colour, s.background, s.x, s.y, s.size, "sepia"))) for s in scenes)


@pytest.mark.parametrize("background", sorted(BACKGROUNDS))
def test_the_background_is_named_as_the_world_names_it_plain_or_in_sepia(background: str) -> None:
    """A sepia scene's caption names the background it had before the style; so does the background measure,
    from the brightness the sepia palette keeps (in RGB a sepia purple is nearer gray)."""
    for colour in ("red", "white"):
        plain = Scene("circle", colour, background, size=0.4)
        styled = Scene("circle", colour, background, size=0.4, style="sepia")
        assert (read_background(render(plain)), read_background(render(styled))) == (background, background)


@pytest.fixture(scope="module")
def reader() -> SceneReader:
    return SceneReader()


def test_the_committed_classifier_reads_the_shape_of_renders(reader: SceneReader) -> None:
    scenes = list(random_scenes(11, 120, pairs=EVERY_PAIR))
    readings = reader.read([render(scene) for scene in scenes])
    correct = sum(reading.shape == scene.shape for reading, scene in zip(readings, scenes, strict=True))
    assert correct / len(scenes) >= 0.95


def test_the_classifier_reads_stars_it_must_detect_after_training(reader: SceneReader) -> None:
    rng = random.Random(3)
    stars = [render(Scene("star", rng.choice(list(COLOURS)), "gray", size=0.5)) for _ in range(10)]
    assert shape_rate(reader.read(stars), "star") == 1.0


def test_rates_count_the_share_of_matching_readings() -> None:
    readings = [
        SceneReading("star", 0.9, "blue", "gray", sepia=True),
        SceneReading("circle", 0.8, "red", "gray", sepia=False),
        SceneReading("star", 0.7, "red", "black", sepia=False),
        SceneReading("ring", 0.6, None, "black", sepia=False),
    ]
    assert shape_rate(readings, "star") == 0.5
    assert colour_rate(readings, "red") == 0.5
    assert sepia_rate(readings) == 0.25
    assert shape_rate([], "star") == 0.0
