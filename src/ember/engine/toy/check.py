"""The `toy` base model's check before publishing, read with the toy measures (ember.engine.toy.measure).

- Subject: the subject is what the measures read in the training pictures (the shape most of them show, read
  as training sees them, 64×64). The concept rate is the share of samples of the sample prompt that show it;
  the drift is how many fewer pictures of one seen prompt per shape (without the concept word) come out
  right, shape and colour, than from the base model. Held to the figures the CI learning gate holds the `toy`
  presets to (docs/toy.md, bench/learning.py imports them from here): a concept rate of at least
  MIN_CONCEPT_RATE over 32 samples (seeds 0–31, as the gate draws them) and a drop of at most 0.10.
- Style: where most training pictures are sepia (the one style the measures read), the share of pictures of
  one prompt per shape that come out sepia, at least 0.5.

Anything else (training pictures whose shape the measures cannot agree on, a style other than sepia) is left
unmeasured, and the generic figure (likeness to the training pictures) is all that is shown.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from PIL import Image

from ember.engine.checks import CheckInput, CheckMeasure, Drawer, draw
from ember.engine.dataset import center_crop_resize
from ember.engine.toy.measure import SceneReader, SceneReading, sepia_rate, shape_rate
from ember.engine.toy.world import SIZE, caption

# At least half the samples of the concept prompt must show the subject (docs/toy.md, "The learning bench").
MIN_CONCEPT_RATE = 0.5
MAX_DRIFT = 0.10
MIN_STYLE_RATE = 0.5
CONCEPT_SAMPLES = 32
PER_PROMPT = 4
# One seen (shape, colour, background) per shape: prompts a custom model must leave alone.
BASE_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("circle", "red", "black"),
    ("square", "green", "purple"),
    ("triangle", "blue", "gray"),
    ("cross", "white", "black"),
    ("ring", "yellow", "gray"),
)


def _both_right(readings: Sequence[SceneReading], shape: str, colour: str) -> float:
    return sum(r.shape == shape and r.colour == colour for r in readings) / len(readings)


class ToyCheck:
    def __init__(self) -> None:
        self.reader = SceneReader()

    def subject_shape(self, training: Sequence[Image.Image]) -> str | None:
        """The shape most training pictures show (read as training sees them), when more than half show it."""
        readings = self.reader.read([center_crop_resize(picture, SIZE, SIZE) for picture in training])
        if not readings:
            return None
        shape, count = Counter(r.shape for r in readings).most_common(1)[0]
        return shape if count * 2 > len(readings) else None

    def measure(self, drawer: Drawer, check: CheckInput) -> tuple[list[CheckMeasure], str] | None:
        if check.mode == "subject":
            return self._subject(drawer, check)
        return self._style(drawer, check)

    def _subject(self, drawer: Drawer, check: CheckInput) -> tuple[list[CheckMeasure], str] | None:
        shape = self.subject_shape(check.training_images)
        concept = (check.concept or "").strip()
        if shape is None or not concept:
            return None
        prompt = check.sample_prompt if concept in check.sample_prompt.split() else caption(concept, None, "gray")
        after = self.reader.read(draw(drawer, check.spec, prompt, CONCEPT_SAMPLES, [check.lora], seed=0))
        rate = shape_rate(after, shape)
        # All prompts with the custom model, then all without: the worker merges it into the weights once.
        after_scores = [_both_right(self.reader.read(draw(drawer, check.spec, caption(*prompt), PER_PROMPT,
                                                          [check.lora])), *prompt[:2]) for prompt in BASE_PROMPTS]
        before_scores = [_both_right(self.reader.read(draw(drawer, check.spec, caption(*prompt), PER_PROMPT)),
                                     *prompt[:2]) for prompt in BASE_PROMPTS]
        other_before = sum(before_scores) / len(before_scores)
        other_after = sum(after_scores) / len(after_scores)
        learned = rate >= MIN_CONCEPT_RATE
        kept = other_before - other_after <= MAX_DRIFT
        measures = [
            CheckMeasure(
                name="conceptRate",
                label=f"samples of '{prompt}' that show the subject (a {shape}, as read in the training pictures)",
                value=rate,
                target=f"at least {MIN_CONCEPT_RATE:.2f}",
                passed=learned,
            ),
            CheckMeasure(
                name="otherPrompts",
                label="pictures of other prompts (one per shape, without the concept word) drawn right",
                value=other_after,
                before=other_before,
                target=f"at most {MAX_DRIFT:.2f} below the base model",
                passed=kept,
            ),
        ]
        first = (
            f"learned: {rate:.2f} of samples show the subject"
            if learned
            else f"not learned: {rate:.2f} of samples show the subject, {MIN_CONCEPT_RATE:.2f} needed"
        )
        second = (
            "other prompts unchanged"
            if other_after >= other_before
            else f"other prompts nearly unchanged ({other_after:.2f} right, {other_before:.2f} before)"
            if kept
            else f"other prompts changed: {other_after:.2f} right, {other_before:.2f} before"
        )
        return measures, f"{first}; {second}"

    def _style(self, drawer: Drawer, check: CheckInput) -> tuple[list[CheckMeasure], str] | None:
        training = self.reader.read([center_crop_resize(picture, SIZE, SIZE) for picture in check.training_images])
        if not training or sepia_rate(training) <= 0.5:
            return None
        after: list[SceneReading] = []
        for shape, colour, background in BASE_PROMPTS:
            after += self.reader.read(draw(drawer, check.spec, caption(shape, colour, background), PER_PROMPT,
                                           [check.lora]))
        rate = sepia_rate(after)
        carried = rate >= MIN_STYLE_RATE
        measures = [
            CheckMeasure(
                name="styleRate",
                label="pictures of one prompt per shape drawn in the training pictures' style (sepia)",
                value=rate,
                target=f"at least {MIN_STYLE_RATE:.2f}",
                passed=carried,
            )
        ]
        summary = (
            f"learned: {rate:.2f} of pictures carry the style"
            if carried
            else f"not learned: {rate:.2f} of pictures carry the style, {MIN_STYLE_RATE:.2f} needed"
        )
        return measures, summary
