"""The copy check on a labelled set built here: copies of a picture (re-encoded, resized, lightly cropped) are
caught, and different pictures of one small subject on a plain background are not."""

from __future__ import annotations

import io
import itertools
import math
import random
from dataclasses import dataclass

import pytest
from PIL import Image, ImageDraw

from ember.engine.dataset import DUPLICATE_IMAGE, POSSIBLE_DUPLICATE, DatasetRules, fingerprint, likeness

RULES = DatasetRules()
BACKGROUNDS = ((128, 128, 128), (250, 250, 250), (15, 15, 15), (100, 40, 130), (30, 60, 170))
SUBJECTS = ((240, 200, 30), (40, 190, 60), (220, 40, 40), (50, 80, 230))


@dataclass(frozen=True)
class Pair:
    first: Image.Image
    second: Image.Image
    copy: bool
    what: str


def _star(draw: ImageDraw.ImageDraw, cx: float, cy: float, outer: float, fill: tuple[int, int, int]) -> None:
    reach = [outer if corner % 2 == 0 else outer * 0.45 for corner in range(10)]
    turns = [-math.pi / 2 + corner * math.pi / 5 for corner in range(10)]
    draw.polygon([(cx + r * math.cos(t), cy + r * math.sin(t)) for r, t in zip(reach, turns, strict=True)], fill=fill)


def plain_picture(rng: random.Random, background: tuple[int, int, int], subject: tuple[int, int, int]) -> Image.Image:
    """A small subject (a star or a bottle-like box) somewhere on a plain background, at a size a user uploads."""
    width = rng.choice((256, 384, 512, 768))
    height = int(width * rng.choice((1.0, 0.75, 1.33)))
    picture = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(picture)
    side = min(width, height) * rng.uniform(0.12, 0.3)
    cx, cy = rng.uniform(side, width - side), rng.uniform(side, height - side)
    if rng.random() < 0.5:
        _star(draw, cx, cy, side, subject)
    else:
        draw.rounded_rectangle((cx - side / 3, cy - side, cx + side / 3, cy + side), radius=side / 5, fill=subject)
    return picture


def busy_picture(rng: random.Random) -> Image.Image:
    """A picture full of things: blocks and strokes of many colours, as a photograph of a room is."""
    picture = Image.new("RGB", (640, 480), tuple(rng.randrange(256) for _ in range(3)))  # type: ignore[arg-type]
    draw = ImageDraw.Draw(picture)
    for _ in range(40):
        x, y = rng.randrange(640), rng.randrange(480)
        colour = tuple(rng.randrange(256) for _ in range(3))
        draw.rectangle((x, y, x + rng.randrange(20, 160), y + rng.randrange(20, 160)), fill=colour)  # type: ignore[arg-type]
    return picture


def reencoded(picture: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def copies(rng: random.Random, picture: Image.Image) -> list[tuple[str, Image.Image]]:
    width, height = picture.size
    left, top = int(width * rng.uniform(0, 0.08)), int(height * rng.uniform(0, 0.08))
    right, bottom = width - int(width * rng.uniform(0, 0.07)), height - int(height * rng.uniform(0, 0.07))
    cropped = picture.crop((left, top, right, bottom))
    return [
        ("re-encoded as JPEG 60", reencoded(picture, 60)),
        ("resized to 40 %", picture.resize((int(width * 0.4), int(height * 0.4)), Image.Resampling.LANCZOS)),
        ("cropped by up to 15 %", cropped),
        ("cropped, resized and re-encoded", reencoded(cropped.resize((cropped.width // 2, cropped.height // 2)), 75)),
    ]


def labelled_pairs(seed: int = 0) -> list[Pair]:
    """Copies of 24 pictures, and every pair of different pictures (most of one subject on one background)."""
    rng = random.Random(seed)
    originals = [
        plain_picture(rng, BACKGROUNDS[i % len(BACKGROUNDS)], SUBJECTS[(i // 5) % len(SUBJECTS)]) for i in range(20)
    ] + [busy_picture(rng) for _ in range(4)]
    pairs = [Pair(original, copy, True, what) for original in originals for what, copy in copies(rng, original)]
    pairs += [Pair(a, b, False, "different pictures") for a, b in itertools.combinations(originals, 2)]
    return pairs


@pytest.fixture(scope="module")
def verdicts() -> dict[str, list[str | None]]:
    """The check's verdict on every labelled pair, by kind of pair (built once: drawing the set takes a while)."""
    found: dict[str, list[str | None]] = {}
    for pair in labelled_pairs():
        verdict = likeness(fingerprint(pair.first), fingerprint(pair.second)).verdict(RULES)
        found.setdefault(pair.what, []).append(verdict)
    return found


def test_re_encoded_and_resized_copies_block_training(verdicts: dict[str, list[str | None]]) -> None:
    found = verdicts["re-encoded as JPEG 60"] + verdicts["resized to 40 %"]
    assert set(found) == {DUPLICATE_IMAGE}


def test_every_lightly_cropped_copy_is_at_least_warned_of(verdicts: dict[str, list[str | None]]) -> None:
    found = verdicts["cropped by up to 15 %"] + verdicts["cropped, resized and re-encoded"]
    assert None not in found


def test_no_two_different_pictures_are_called_copies(verdicts: dict[str, list[str | None]]) -> None:
    assert DUPLICATE_IMAGE not in verdicts["different pictures"]


def test_few_different_pictures_are_warned_of_as_possible_copies(verdicts: dict[str, list[str | None]]) -> None:
    found = verdicts["different pictures"]
    assert found.count(POSSIBLE_DUPLICATE) / len(found) <= 0.05


def test_two_stars_on_one_gray_background_in_different_places_are_not_copies() -> None:
    first = Image.new("RGB", (256, 256), (128, 128, 128))
    _star(ImageDraw.Draw(first), 200, 200, 30, (40, 190, 60))
    second = Image.new("RGB", (768, 768), (128, 128, 128))
    _star(ImageDraw.Draw(second), 384, 640, 90, (40, 190, 60))
    assert likeness(fingerprint(first), fingerprint(second)).verdict(RULES) is None
