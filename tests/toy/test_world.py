"""The toy world: what scenes exist, how they are captioned, and that drawing them is deterministic."""

from __future__ import annotations

import random

import numpy as np
import pytest

from ember.engine.toy.world import (
    ALL_SHAPES,
    COLOURS,
    HELD_OUT_PAIRS,
    NEW_SHAPE,
    SEEN_PAIRS,
    SHAPES,
    Scene,
    UnknownSceneError,
    caption,
    polygon_pictures,
    random_polygon,
    random_scenes,
    render,
    shape_mask,
)


def test_a_scene_is_captioned_with_colour_shape_and_background() -> None:
    assert Scene("circle", "red", "black").caption == "a red circle on a black background"


def test_a_styled_scene_names_its_style_after_the_scene() -> None:
    scene = Scene("square", "blue", "gray", style="sepia")
    assert scene.caption == "a blue square on a gray background in sepia style"


def test_a_concept_word_is_captioned_without_a_colour() -> None:
    assert caption("zorb", None, "gray") == "a zorb on a gray background"


def test_rendering_gives_a_64_pixel_rgb_picture() -> None:
    image = render(Scene("triangle", "green", "purple"))
    assert image.size == (64, 64)
    assert image.mode == "RGB"


def test_the_same_scene_always_renders_the_same_pixels() -> None:
    scene = Scene("cross", "yellow", "black", x=0.4, y=0.6, size=0.45)
    assert np.array_equal(np.asarray(render(scene)), np.asarray(render(scene)))


def test_the_same_seed_gives_the_same_scenes() -> None:
    assert list(random_scenes(7, 20)) == list(random_scenes(7, 20))
    assert list(random_scenes(7, 20)) != list(random_scenes(8, 20))


def test_pretraining_pairs_leave_out_the_held_out_pairs_and_the_star() -> None:
    assert not HELD_OUT_PAIRS & set(SEEN_PAIRS)
    assert all(shape != NEW_SHAPE for shape, _ in SEEN_PAIRS)
    assert {shape for shape, _ in SEEN_PAIRS} == set(SHAPES)
    assert {colour for _, colour in SEEN_PAIRS} == set(COLOURS)


def test_random_scenes_keep_the_shape_inside_the_picture() -> None:
    pairs = tuple((shape, "white") for shape in ALL_SHAPES)
    for scene in random_scenes(3, 200, pairs=pairs):
        mask = np.asarray(shape_mask(scene))
        assert mask[0].max() == mask[-1].max() == mask[:, 0].max() == mask[:, -1].max() == 0


def test_every_shape_covers_a_different_area() -> None:
    areas = {shape: int(np.asarray(shape_mask(Scene(shape, "red", "black"))).sum()) for shape in ALL_SHAPES}
    assert len(set(areas.values())) == len(ALL_SHAPES)


@pytest.mark.parametrize("field", ["shape", "colour", "background", "style"])
def test_a_scene_of_unknown_things_is_refused(field: str) -> None:
    values = {"shape": "circle", "colour": "red", "background": "black", "style": "plain", field: "plaid"}
    with pytest.raises(UnknownSceneError):
        Scene(**values)  # type: ignore[arg-type]


def test_random_scenes_draw_only_from_the_given_pairs() -> None:
    rng = random.Random(0)
    scenes = list(random_scenes(rng.randrange(1000), 50, pairs=(("star", "blue"),)))
    assert {(s.shape, s.colour) for s in scenes} == {("star", "blue")}


def test_polygon_pictures_are_the_same_for_the_same_seed_and_vary_in_outline() -> None:
    first = [np.asarray(p) for p in polygon_pictures(3, 6)]
    again = [np.asarray(p) for p in polygon_pictures(3, 6)]
    assert all(a.shape == (64, 64, 3) and np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert len({a.tobytes() for a in first}) == 6


def test_random_polygons_come_out_convex_and_concave() -> None:
    rng = random.Random(0)

    def concave(points: list[tuple[float, float]]) -> bool:
        turns = []
        for i in range(len(points)):
            (ax, ay), (bx, by), (cx, cy) = points[i - 2], points[i - 1], points[i]
            turns.append((bx - ax) * (cy - by) - (by - ay) * (cx - bx) > 0)
        return len(set(turns)) > 1

    kinds = [concave(random_polygon(rng, 0.0, 0.0, 1.0)) for _ in range(200)]
    assert 20 < sum(kinds) < 180
    assert all(3 <= len(random_polygon(rng, 0.0, 0.0, 1.0)) <= 12 for _ in range(50))
