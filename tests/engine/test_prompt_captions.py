"""Vision-language descriptions made into prompts, as Firefly users write them (the captioner of real bases)."""

from __future__ import annotations

import pytest

from ember.engine.captioning import prompt_shaped


@pytest.mark.parametrize(
    ("description", "prompt"),
    [
        # Florence-2's <DETAILED_CAPTION> style
        ("The image shows a red sneaker on a white table. The background is plain white.",
         "a red sneaker on a white table, the background is plain white"),
        ("In this image we can see a dog sitting on a sofa.", "a dog sitting on a sofa"),
        ("This image is of a yellow star on a gray background.", "a yellow star on a gray background"),
        # BLIP style
        ("a picture of a ceramic mug with a blue handle", "a ceramic mug with a blue handle"),
        ("there is a small robot toy standing on a desk", "a small robot toy standing on a desk"),
        ("arafed image of a cat", "arafed image of a cat"),
        # names and acronyms keep their capitals
        ("The image shows NASA's logo on a flag.", "NASA's logo on a flag"),
    ],
)
def test_a_description_becomes_a_prompt(description: str, prompt: str) -> None:
    assert prompt_shaped(description) == prompt


def test_a_long_description_is_cut_to_thirty_words() -> None:
    description = "The image shows " + " ".join(["a tall tree"] * 30) + "."
    assert len(prompt_shaped(description).split()) == 30


def test_an_empty_description_stays_empty() -> None:
    assert prompt_shaped("  ") == ""
