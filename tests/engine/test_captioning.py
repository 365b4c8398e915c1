"""Captions: the built-in captioner tells the truth offline, the caption rules of SPEC §2 hold."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from ember.engine.captioning import (
    MAX_CAPTION_WORDS,
    BuiltinCaptioner,
    CaptionerUnavailable,
    caption_images,
    check_caption,
    ensure_concept,
    get_captioner,
)

from .conftest import triangle_picture


def issue_codes(caption: str | None, mode: str = "style", concept: str | None = None) -> list[str]:
    return [issue.code for issue in check_caption(caption, mode, concept)]


def test_builtin_caption_names_the_subject_colour_position_and_background() -> None:
    image = Image.new("RGB", (300, 200), (250, 250, 250))
    ImageDraw.Draw(image).ellipse((20, 20, 90, 90), fill=(200, 20, 20))
    caption = BuiltinCaptioner().caption(image)
    assert "red" in caption and "top left" in caption and "white background" in caption and "landscape" in caption


def test_builtin_caption_describes_a_uniform_dark_image() -> None:
    caption = BuiltinCaptioner().caption(Image.new("RGB", (200, 300), (10, 30, 120)))
    assert "dark" in caption and "portrait" in caption and "blue" in caption


def test_every_image_gets_a_caption_within_the_rules() -> None:
    images = [triangle_picture(i) for i in range(10)] + [Image.new("RGB", (64, 64), (0, 0, 0))]
    captions = caption_images(images, BuiltinCaptioner())
    assert len(captions) == len(images)
    assert all(issue_codes(caption) == [] for caption in captions)


def test_subject_mode_captions_carry_the_concept_word() -> None:
    captions = caption_images([triangle_picture(0)], BuiltinCaptioner(), mode="subject", concept="zorb")
    assert issue_codes(captions[0], "subject", "zorb") == []


def test_missing_caption_is_reported() -> None:
    assert issue_codes(None) == ["caption_missing"]
    assert issue_codes("   ") == ["caption_missing"]


def test_caption_under_three_words_is_too_short() -> None:
    assert issue_codes("red mug") == ["caption_too_short"]
    assert issue_codes("a red mug") == []


def test_caption_over_forty_words_is_too_long() -> None:
    assert issue_codes(" ".join(["word"] * MAX_CAPTION_WORDS)) == []
    assert issue_codes(" ".join(["word"] * (MAX_CAPTION_WORDS + 1))) == ["caption_too_long"]


def test_subject_caption_without_the_concept_is_reported() -> None:
    assert issue_codes("a green triangle on grey", "subject", "zorb") == ["caption_missing_concept"]
    assert issue_codes("a green zorb on grey", "subject", "zorb") == []


def test_style_mode_needs_no_concept() -> None:
    assert issue_codes("a green triangle on grey", "style", None) == []


def test_ensure_concept_adds_the_word_once() -> None:
    bound = ensure_concept("a green triangle", "zorb")
    assert "zorb" in bound and ensure_concept(bound, "zorb") == bound


def test_concept_match_is_a_whole_word() -> None:
    assert issue_codes("three zorbish shapes here", "subject", "zorb") == ["caption_missing_concept"]


def test_auto_captioner_without_model_weights_is_the_builtin_one(tmp_path: Path) -> None:
    assert get_captioner("auto", model_dir=tmp_path).name == "builtin"


@pytest.mark.parametrize("name", ["florence2", "blip"])
def test_named_captioner_without_weights_says_how_to_provide_them(name: str, tmp_path: Path) -> None:
    with pytest.raises(CaptionerUnavailable, match=name):
        get_captioner(name, model_dir=tmp_path)


def test_captions_of_the_fallback_captioner_carry_a_review_note() -> None:
    from ember.engine.captioning import FALLBACK_REVIEW_NOTE, captioner_for
    from ember.engine.registry import get_base_model

    assert captioner_for(get_base_model("sd15")).review_note == FALLBACK_REVIEW_NOTE


def test_a_caption_mostly_out_of_the_base_vocabulary_is_flagged_naming_the_unknown_words() -> None:
    from ember.engine.captioning import check_vocabulary
    from ember.engine.registry import get_base_model

    caption = (
        "zorb, a softly lit square image of a small yellow subject at the bottom right on a plain grey background, "
        "mostly grey, low contrast"
    )
    issues = check_vocabulary(caption, get_base_model("toy"), "zorb")
    assert [issue.code for issue in issues] == ["caption_unknown_words"]
    assert "softly" in issues[0].message and "grey" in issues[0].message and "yellow," not in issues[0].message


def test_a_caption_in_the_base_vocabulary_is_not_flagged() -> None:
    from ember.engine.captioning import check_vocabulary
    from ember.engine.registry import get_base_model

    assert check_vocabulary("a zorb on a gray background", get_base_model("toy"), "zorb") == []


def test_a_concept_word_of_several_tokens_is_refused_with_the_words_that_work() -> None:
    from ember.engine.captioning import concept_refusal
    from ember.engine.registry import get_base_model

    reason = concept_refusal("starly", get_base_model("toy"))
    assert reason is not None and "'starly'" in reason and "'zorb'" in reason
    assert concept_refusal("zorb", get_base_model("toy")) is None
