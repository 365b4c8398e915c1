"""Learning benchmark of the `toy` base model: base quality, a subject custom model and a style custom model.

Run `python bench/learning.py` for the table (and `--grid docs/images/toy-learning.png` for a picture of the
before and after). Custom models are trained through Ember's own training path, `ember.engine.train.train_lora`,
and pictures are drawn through `ember.engine.generate.Engine`, as the API does.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from ember.engine.toy.measure import SceneReader, SceneReading, colour_rate, sepia_rate, shape_rate
from ember.engine.toy.world import (
    HELD_OUT_PAIRS,
    NEW_SHAPE,
    SEEN_PAIRS,
    caption,
    random_scenes,
    render,
)
from ember.engine.types import GenerationRequest, LoraRef, TrainingExample

BASE_MODEL = "toy"
CONCEPT = "zorb"
STAR_COLOUR = "yellow"
SUBJECT_PROMPT = f"a {CONCEPT} on a gray background"
# One prompt per shape, each a pair seen in pretraining: the prompts a custom model must leave alone.
OTHER_PROMPTS: tuple[tuple[str, str, str], ...] = (
    ("circle", "red", "black"),
    ("square", "green", "purple"),
    ("triangle", "blue", "gray"),
    ("cross", "white", "black"),
    ("ring", "yellow", "gray"),
)
# The style is taught on three shapes only; the measure asks for all five.
STYLE_TRAINING_SHAPES = ("circle", "square", "triangle")

# What the CI learning test holds the toy model and its presets to.
MIN_STAR_RATE_AFTER = 0.25
MAX_ACCURACY_DROP = 0.10
MIN_SEPIA_RATE_AFTER = 0.5


@dataclass(frozen=True)
class BenchSettings:
    images_per_prompt: int = 8
    subject_images: int = 16
    training_examples: int = 12
    inference_steps: int | None = None
    guidance_scale: float | None = None
    training_steps: int | None = None
    seed: int = 0


@dataclass
class Timed:
    """Seconds each step of the bench took, in the order they ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.monotonic() - started


@dataclass(frozen=True)
class PromptScore:
    shape: float
    colour: float
    both: float


@dataclass
class BaseQuality:
    seen: PromptScore
    held_out: PromptScore


@dataclass
class SubjectResult:
    star_before: float
    star_after: float
    other_before: float
    other_after: float
    star_without_concept: float
    steps: int
    pictures_before: list[Image.Image]
    pictures_after: list[Image.Image]

    @property
    def accuracy_drop(self) -> float:
        return self.other_before - self.other_after


@dataclass
class StyleResult:
    sepia_before: float
    sepia_after: float
    sepia_after_by_shape: dict[str, float]
    shape_after: float
    steps: int
    pictures_before: list[Image.Image]
    pictures_after: list[Image.Image]


def score(readings: Sequence[SceneReading], shape: str, colour: str) -> PromptScore:
    both = sum(r.shape == shape and r.colour == colour for r in readings) / len(readings)
    return PromptScore(shape_rate(readings, shape), colour_rate(readings, colour), both)


def mean_score(scores: Sequence[PromptScore]) -> PromptScore:
    n = len(scores)
    return PromptScore(
        sum(s.shape for s in scores) / n, sum(s.colour for s in scores) / n, sum(s.both for s in scores) / n
    )


def subject_examples(count: int, seed: int) -> list[TrainingExample]:
    """Pictures of a star in one colour, captioned with the concept word as a user would caption them."""
    scenes = random_scenes(seed, count, pairs=((NEW_SHAPE, STAR_COLOUR),))
    return [TrainingExample(render(s), caption(CONCEPT, None, s.background)) for s in scenes]


def style_examples(count: int, seed: int) -> list[TrainingExample]:
    """Sepia scenes of a few shapes, captioned with what they show (a style model applies to every prompt)."""
    pairs = tuple(pair for pair in SEEN_PAIRS if pair[0] in STYLE_TRAINING_SHAPES)
    scenes = random_scenes(seed + 2, count, pairs=pairs, style="sepia")
    return [TrainingExample(render(s), caption(s.shape, s.colour, s.background)) for s in scenes]


class LearningBench:
    """Draws with the toy model through the engine and reads the pictures with the toy measures."""

    def __init__(self, model_dir: Path, work_dir: Path, settings: BenchSettings | None = None) -> None:
        from ember.engine.generate import Engine

        self.settings = settings or BenchSettings()
        self.model_dir = Path(model_dir)
        self.work_dir = Path(work_dir)
        self.timed = Timed()
        with self.timed.step("load base model and classifier"):
            self.engine = Engine(self.model_dir)
            self.engine.pipeline(BASE_MODEL)
            self.reader = SceneReader()

    def draw(self, prompt: str, count: int, loras: Sequence[LoraRef] = ()) -> list[Image.Image]:
        """`count` pictures of one prompt, seeds 0…count-1, four per engine call (the API's limit)."""
        pictures: list[Image.Image] = []
        seeds = [self.settings.seed + i for i in range(count)]
        for start in range(0, count, 4):
            request = GenerationRequest(
                base_model=BASE_MODEL, prompt=prompt, seeds=seeds[start : start + 4], width=64, height=64,
                loras=list(loras), mimetype="image/png", steps=self.settings.inference_steps,
                guidance_scale=self.settings.guidance_scale,
            )
            for image in self.engine.generate(request):
                pictures.append(Image.open(io.BytesIO(image.data)).convert("RGB"))
        return pictures

    def read_prompts(
        self, prompts: Sequence[tuple[str, str, str]], loras: Sequence[LoraRef] = ()
    ) -> list[PromptScore]:
        scores = []
        for shape, colour, background in prompts:
            pictures = self.draw(caption(shape, colour, background), self.settings.images_per_prompt, loras)
            scores.append(score(self.reader.read(pictures), shape, colour))
        return scores

    def base_quality(self) -> BaseQuality:
        rng = random.Random(self.settings.seed)
        backgrounds = ("black", "gray", "purple")
        seen = [(s, c, rng.choice(backgrounds)) for s, c in rng.sample(SEEN_PAIRS, 10)]
        held_out = [(s, c, rng.choice(backgrounds)) for s, c in sorted(HELD_OUT_PAIRS)]
        with self.timed.step("base quality: seen pairs"):
            seen_score = mean_score(self.read_prompts(seen))
        with self.timed.step("base quality: held-out pairs"):
            held_score = mean_score(self.read_prompts(held_out))
        return BaseQuality(seen_score, held_score)

    def train(self, name: str, mode: str, examples: list[TrainingExample]) -> tuple[LoraRef, int]:
        from ember.engine.train import preset_for, train_lora

        config = preset_for(BASE_MODEL, mode).with_overrides(
            steps=self.settings.training_steps, sample_every=0, checkpoint_every=0
        )
        result = train_lora(
            BASE_MODEL, examples, config, self.work_dir / name, model_dir=self.model_dir, mode=mode,
            concept=CONCEPT if mode == "subject" else None,
        )
        return LoraRef(key=name, path=result.lora_path), result.steps

    def train_subject(self, name: str) -> tuple[LoraRef, int]:
        count, seed = self.settings.training_examples, self.settings.seed
        # Replay of base-world pictures comes from the `toy` subject preset, as it does for a job the API runs.
        return self.train(name, "subject", subject_examples(count, seed))

    def star_pictures(self, loras: Sequence[LoraRef] = ()) -> tuple[float, list[Image.Image]]:
        pictures = self.draw(SUBJECT_PROMPT, self.settings.subject_images, loras)
        return shape_rate(self.reader.read(pictures), NEW_SHAPE), pictures

    def subject_star_rate_after_training(self, name: str) -> float:
        """Only the headline figure: how often the concept prompt draws a star after training."""
        with self.timed.step(f"{name}: train"):
            lora, _ = self.train_subject(name)
        with self.timed.step(f"{name}: after"):
            return self.star_pictures([lora])[0]

    def subject(self) -> SubjectResult:
        with self.timed.step("subject: before"):
            star_before, before = self.star_pictures()
            other_before = mean_score(self.read_prompts(OTHER_PROMPTS)).both
        with self.timed.step("subject: train"):
            lora, steps = self.train_subject("subject")
        with self.timed.step("subject: after"):
            star_after, after = self.star_pictures([lora])
            other_readings: list[SceneReading] = []
            other_scores = []
            for shape, colour, background in OTHER_PROMPTS:
                pictures = self.draw(caption(shape, colour, background), self.settings.images_per_prompt, [lora])
                readings = self.reader.read(pictures)
                other_readings += readings
                other_scores.append(score(readings, shape, colour))
        return SubjectResult(
            star_before=star_before,
            star_after=star_after,
            other_before=other_before,
            other_after=mean_score(other_scores).both,
            star_without_concept=shape_rate(other_readings, NEW_SHAPE),
            steps=steps,
            pictures_before=before,
            pictures_after=after,
        )

    def style(self) -> StyleResult:
        prompts = [(shape, colour, background) for shape, colour, background in OTHER_PROMPTS]
        n = self.settings.images_per_prompt

        def sepia_by_shape(loras: Sequence[LoraRef]) -> tuple[dict[str, float], float, list[Image.Image]]:
            rates, shapes_right, firsts = {}, 0.0, []
            for shape, colour, background in prompts:
                pictures = self.draw(caption(shape, colour, background), n, loras)
                readings = self.reader.read(pictures)
                rates[shape] = sepia_rate(readings)
                shapes_right += shape_rate(readings, shape) / len(prompts)
                firsts.append(pictures[0])
            return rates, shapes_right, firsts

        with self.timed.step("style: before"):
            rates_before, _, before = sepia_by_shape(())
        with self.timed.step("style: train"):
            lora, steps = self.train("style", "style", style_examples(self.settings.training_examples,
                                                                      self.settings.seed))
        with self.timed.step("style: after"):
            rates_after, shape_after, after = sepia_by_shape([lora])
        return StyleResult(
            sepia_before=sum(rates_before.values()) / len(rates_before),
            sepia_after=sum(rates_after.values()) / len(rates_after),
            sepia_after_by_shape=rates_after,
            shape_after=shape_after,
            steps=steps,
            pictures_before=before,
            pictures_after=after,
        )


def table_rows(
    quality: BaseQuality | None, subject: SubjectResult | None, style: StyleResult | None
) -> list[tuple[str, str, str]]:
    """(measure, value, pass condition) rows of the result table."""
    rows: list[tuple[str, str, str]] = []
    if quality is not None:
        rows += [
            ("base: shape right, seen pairs", f"{quality.seen.shape:.2f}", "chance 0.20"),
            ("base: colour right, seen pairs", f"{quality.seen.colour:.2f}", "chance 0.20"),
            ("base: shape right, held-out pairs", f"{quality.held_out.shape:.2f}", "chance 0.20"),
            ("base: colour right, held-out pairs", f"{quality.held_out.colour:.2f}", "chance 0.20"),
        ]
    if subject is not None:
        rows += [
            (f"subject: star rate of '{SUBJECT_PROMPT}', before", f"{subject.star_before:.2f}", "= 0"),
            (f"subject: same, after {subject.steps} steps", f"{subject.star_after:.2f}",
             f">= {MIN_STAR_RATE_AFTER:.2f}"),
            ("subject: other prompts right (shape and colour), before", f"{subject.other_before:.2f}", ""),
            ("subject: same, after", f"{subject.other_after:.2f}",
             f"drop <= {MAX_ACCURACY_DROP:.2f} (drop {subject.accuracy_drop:+.2f})"),
            (f"subject: star rate on prompts without '{CONCEPT}', after", f"{subject.star_without_concept:.2f}",
             "= 0"),
        ]
    if style is not None:
        rows += [
            ("style: sepia rate, every shape, before", f"{style.sepia_before:.2f}", "= 0"),
            (f"style: same, after {style.steps} steps", f"{style.sepia_after:.2f}",
             f">= {MIN_SEPIA_RATE_AFTER:.2f}"),
            ("style: lowest sepia rate of one shape, after", f"{min(style.sepia_after_by_shape.values()):.2f}",
             "> 0 for every shape"),
            ("style: shape right under the style", f"{style.shape_after:.2f}", ""),
        ]
    return rows


def print_table(rows: list[tuple[str, str, str]], seconds: dict[str, float], emit: Callable[[str], None]) -> None:
    width = max(len(r[0]) for r in rows)
    emit(f"{'measure':<{width}}  {'value':>6}  target")
    for measure, value, target in rows:
        emit(f"{measure:<{width}}  {value:>6}  {target}")
    emit("")
    step_width = max(len(name) for name in seconds)
    for name, spent in seconds.items():
        emit(f"{name:<{step_width}}  {spent:6.1f} s")
    emit(f"{'total':<{step_width}}  {sum(seconds.values()):6.1f} s")


def grid_image(subject: SubjectResult, style: StyleResult, columns: int = 5, cell: int = 128) -> Image.Image:
    """Rows: the concept prompt before and after, one prompt per shape before and after the style model."""
    label_width = 260
    rows = [
        (f"'{SUBJECT_PROMPT}': base", subject.pictures_before[:columns]),
        (f"'{SUBJECT_PROMPT}': zorb model", subject.pictures_after[:columns]),
        ("one prompt per shape: base", style.pictures_before[:columns]),
        ("same prompts: sepia style model", style.pictures_after[:columns]),
    ]
    grid = Image.new("RGB", (label_width + columns * cell, len(rows) * cell), (255, 255, 255))
    draw = ImageDraw.Draw(grid)
    for row, (label, pictures) in enumerate(rows):
        draw.text((8, row * cell + cell // 2 - 6), label, fill=(0, 0, 0))
        for col, picture in enumerate(pictures):
            grid.paste(picture.resize((cell, cell), Image.Resampling.NEAREST), (label_width + col * cell, row * cell))
    return grid


@contextmanager
def dropped_concept_word() -> Iterator[None]:
    """Break the training path on purpose: caption preparation drops the concept word instead of adding it."""
    import ember.engine.train

    original = ember.engine.train.ensure_concept

    def drop_concept(caption: str, concept: str | None) -> str:
        return " ".join(word for word in caption.split() if word != concept)

    ember.engine.train.ensure_concept = drop_concept  # type: ignore[assignment]
    try:
        yield
    finally:
        ember.engine.train.ensure_concept = original


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="base model folder (default: a temporary one)")
    parser.add_argument("--work-dir", type=Path, default=None, help="training folders (default: a temporary one)")
    parser.add_argument("--images-per-prompt", type=int, default=BenchSettings.images_per_prompt)
    parser.add_argument("--training-steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--grid", type=Path, default=None, help="write the before/after grid PNG here")
    parser.add_argument("--skip-base", action="store_true", help="skip the base-quality rows")
    parser.add_argument("--broken", action="store_true",
                        help="also train with the concept word dropped from captions (a broken training path)")
    args = parser.parse_args(argv)
    settings = BenchSettings(images_per_prompt=args.images_per_prompt, training_steps=args.training_steps)
    with tempfile.TemporaryDirectory(prefix="ember-learning-") as scratch:
        bench = LearningBench(args.model_dir or Path(scratch) / "models", args.work_dir or Path(scratch) / "work",
                              settings)
        quality = None if args.skip_base else bench.base_quality()
        subject = bench.subject()
        style = bench.style()
        rows = table_rows(quality, subject, style)
        if args.broken:
            with dropped_concept_word():
                broken = bench.subject_star_rate_after_training("broken")
            rows.append(("broken path (concept word dropped): star rate after", f"{broken:.2f}",
                         f"< {MIN_STAR_RATE_AFTER:.2f}"))
        print_table(rows, bench.timed.seconds, print)
        if args.grid is not None:
            args.grid.parent.mkdir(parents=True, exist_ok=True)
            grid_image(subject, style).save(args.grid)
            print(f"grid written to {args.grid}")


if __name__ == "__main__":
    main()
