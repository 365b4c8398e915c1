"""The `toy` base model's captioner writes captions in the toy world's words from what the measures read."""

from __future__ import annotations

import math

from PIL import Image, ImageDraw

from ember.engine.captioning import caption_images, captioner_for, check_caption, check_vocabulary
from ember.engine.registry import get_base_model

TOY = get_base_model("toy")


def drawn_star(side: int, background: tuple[int, int, int], at: tuple[float, float] = (0.7, 0.7)) -> Image.Image:
    """A yellow star drawn off-centre, as a drawing program would, at any size."""
    picture = Image.new("RGB", (side, side), background)
    cx, cy, outer = at[0] * side, at[1] * side, side * 0.2
    points = []
    for corner in range(10):
        radius = outer if corner % 2 == 0 else outer * 0.45
        angle = -math.pi / 2 + corner * math.pi / 5
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    ImageDraw.Draw(picture).polygon(points, fill=(250, 205, 30))
    return picture


def drawn_circle(side: int, colour: tuple[int, int, int], background: tuple[int, int, int]) -> Image.Image:
    picture = Image.new("RGB", (side, side), background)
    ImageDraw.Draw(picture).ellipse((side * 0.25, side * 0.3, side * 0.7, side * 0.75), fill=colour)
    return picture


def test_the_toy_entry_names_its_own_captioner() -> None:
    assert captioner_for(TOY).name == "toy"


def test_a_subject_caption_names_the_subject_by_the_concept_word_and_the_background() -> None:
    caption = captioner_for(TOY).caption(drawn_star(1024, (100, 40, 130)), "subject", "zorb")
    assert caption == "a zorb on a purple background"


def test_a_background_outside_the_toy_world_is_named_by_the_nearest_toy_background() -> None:
    caption = captioner_for(TOY).caption(drawn_star(256, (8, 8, 20)), "subject", "zorb")
    assert caption == "a zorb on a black background"


def test_a_style_caption_names_the_shape_and_the_background_and_neither_the_colour_nor_the_style() -> None:
    caption = captioner_for(TOY).caption(drawn_circle(512, (220, 40, 40), (15, 15, 15)), "style")
    assert caption == "a circle on a black background"


def test_style_captions_are_kept_as_the_toy_captioner_writes_them_not_replaced_by_the_fallback() -> None:
    """A caption shorter than the 3 words training needs is replaced by the built-in captioner's, whose words
    toy cannot read; the toy captioner's own must pass."""
    pictures = [drawn_circle(256, (220, 40, 40), (15, 15, 15)), drawn_circle(700, (40, 190, 60), (128, 128, 128))]
    captions = caption_images(pictures, captioner_for(TOY), "style")
    assert captions == ["a circle on a black background", "a circle on a gray background"]
    assert all(check_caption(text, "style") == [] for text in captions)


def test_a_sepia_picture_s_background_is_named_as_it_was_before_the_style() -> None:
    from ember.engine.toy.world import sepia

    for rgb, name in (((12, 12, 12), "black"), ((100, 40, 130), "purple"), ((128, 128, 128), "gray")):
        picture = sepia(drawn_circle(400, (220, 40, 40), rgb))
        assert captioner_for(TOY).caption(picture, "style") == f"a circle on a {name} background"


def test_toy_captions_are_in_the_toy_vocabulary() -> None:
    caption = captioner_for(TOY).caption(drawn_circle(300, (40, 190, 60), (128, 128, 128)), "style")
    assert check_vocabulary(caption, TOY) == []
    assert captioner_for(TOY).review_note is None
