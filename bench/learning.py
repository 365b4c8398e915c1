"""Learning benchmark of the `toy` base model: base quality, a subject custom model and a style custom model.

Run `python bench/learning.py` for the table (and `--grid docs/images/toy-learning.png` for a picture of the
before and after). Custom models are trained the way a user trains them: pictures drawn here (not by the toy
world's renderer) are uploaded without captions through the HTTP API of an Ember app on a local Ray, captioned
by the base model's captioner, and trained by `train-async` with the default settings; the LoRA is downloaded
through the API and pictures are drawn with it through `ember.engine.generate.Engine`, as the API does.

The subject and style models train at once, each by an engine worker of its own on one of the machine's two
cores (`--workers 2`, the default unless `--skip-style`), as two users' trainings run in a deployment with a
worker per core; the bench draws with the cores the trainings leave free.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from ember.cluster import AttachedRay
from ember.engine.registry import get_base_model
from ember.engine.toy.check import BASE_PROMPTS, MAX_DRIFT, MIN_CONCEPT_RATE, MIN_STYLE_RATE
from ember.engine.toy.measure import SceneReader, SceneReading, colour_rate, sepia_rate, shape_rate
from ember.engine.toy.world import HELD_OUT_PAIRS, NEW_SHAPE, SEEN_PAIRS, caption
from ember.engine.types import GenerationRequest, LoraRef

BASE_MODEL = "toy"
CONCEPT = "zorb"
STAR_COLOUR = "yellow"
SUBJECT_PROMPT = f"a {CONCEPT} on a gray background"
ENDED = frozenset({"succeeded", "failed", "cancelled", "timeout"})
# One prompt per shape, each a pair seen in pretraining: the prompts a custom model must leave alone (the same
# ones the check after training draws).
OTHER_PROMPTS = BASE_PROMPTS
# The style is taught on three shapes only; the measure asks for all five.
STYLE_TRAINING_SHAPES = ("circle", "square", "triangle")

# What the CI learning test holds the toy model and its presets to: the figures of the check after training.
MIN_STAR_RATE_AFTER = MIN_CONCEPT_RATE
MAX_ACCURACY_DROP = MAX_DRIFT
MIN_SEPIA_RATE_AFTER = MIN_STYLE_RATE
# A style changes how things are drawn, not what: under the style model at least this share of the pictures of
# one prompt per shape still show their shape (the base model draws every one of them right: 1.00).
MIN_SHAPE_UNDER_STYLE = 0.7


@dataclass(frozen=True)
class BenchSettings:
    images_per_prompt: int = 8
    subject_images: int = 32
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
    check: dict[str, Any] | None = None  # the check after training, as the API shows it with the model

    @property
    def accuracy_drop(self) -> float:
        return self.other_before - self.other_after


@dataclass(frozen=True)
class SubjectBefore:
    """What the base model draws before the subject model is trained."""

    star: float
    pictures: list[Image.Image]
    other: float


@dataclass(frozen=True)
class StyleBefore:
    """What the base model draws before the style model is trained."""

    sepia: float
    pictures: list[Image.Image]


@dataclass
class StyleResult:
    sepia_before: float
    sepia_after: float
    sepia_after_by_shape: dict[str, float]
    shape_after: float
    steps: int
    pictures_before: list[Image.Image]
    pictures_after: list[Image.Image]
    check: dict[str, Any] | None = None


def score(readings: Sequence[SceneReading], shape: str, colour: str) -> PromptScore:
    both = sum(r.shape == shape and r.colour == colour for r in readings) / len(readings)
    return PromptScore(shape_rate(readings, shape), colour_rate(readings, colour), both)


def mean_score(scores: Sequence[PromptScore]) -> PromptScore:
    n = len(scores)
    return PromptScore(
        sum(s.shape for s in scores) / n, sum(s.colour for s in scores) / n, sum(s.both for s in scores) / n
    )


# --- the user's pictures: drawn here, as a drawing program draws them -------------------------------------

# Backgrounds in the toy world (black, gray, purple) and outside it (navy, teal, dark green).
DRAWN_BACKGROUNDS = ((12, 12, 12), (128, 128, 128), (100, 40, 130), (30, 50, 160), (20, 110, 110), (30, 80, 30))
DRAWN_SIDES = (64, 256, 512, 1024, 768, 4096)
STAR_RGB = (250, 205, 30)
# Colours of the style pictures' shapes before the style is applied, and the shapes drawn.
STYLE_COLOURS = ((220, 40, 40), (40, 190, 60), (50, 80, 230), (240, 220, 40), (245, 245, 245))


def _encoded(picture: Image.Image, index: int) -> tuple[str, bytes, str]:
    """Every other picture a JPEG, the rest PNG: (file name, bytes, media type)."""
    buffer = io.BytesIO()
    if index % 2:
        picture.save(buffer, format="JPEG", quality=92)
        return f"picture-{index:02d}.jpg", buffer.getvalue(), "image/jpeg"
    picture.save(buffer, format="PNG")
    return f"picture-{index:02d}.png", buffer.getvalue(), "image/png"


def _drawn_shape(shape: str, side: int, rng: random.Random, fill: tuple[int, int, int],
                 background: tuple[int, int, int]) -> Image.Image:
    """One shape somewhere off-centre, its size varied, drawn at twice the size and downscaled (anti-aliased;
    past 1024 px the edges are fine enough as drawn)."""
    canvas = side * 2 if side <= 1024 else side
    picture = Image.new("RGB", (canvas, canvas), background)
    draw = ImageDraw.Draw(picture)
    radius = canvas * rng.uniform(0.17, 0.3)
    margin = radius + canvas * 0.03
    cx, cy = rng.uniform(margin, canvas - margin), rng.uniform(margin, canvas - margin)
    if shape == "star":
        points = []
        for corner in range(10):
            reach = radius if corner % 2 == 0 else radius * 0.45
            angle = -math.pi / 2 + corner * math.pi / 5
            points.append((cx + reach * math.cos(angle), cy + reach * math.sin(angle)))
        draw.polygon(points, fill=fill)
    elif shape == "circle":
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=fill)
    elif shape == "square":
        half = radius * 0.85
        draw.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    else:
        draw.polygon([(cx, cy - radius), (cx + radius, cy + radius * 0.8), (cx - radius, cy + radius * 0.8)], fill=fill)
    return picture.resize((side, side), Image.Resampling.LANCZOS)


def drawn_star_pictures(count: int, seed: int) -> list[tuple[str, bytes, str]]:
    """A yellow star in several sizes, off-centre, on backgrounds in and out of the toy world, 64–4096 px."""
    rng = random.Random(seed)
    return [
        _encoded(_drawn_shape("star", DRAWN_SIDES[i % len(DRAWN_SIDES)], rng, STAR_RGB,
                              DRAWN_BACKGROUNDS[i % len(DRAWN_BACKGROUNDS)]), i)
        for i in range(count)
    ]


def in_sepia(picture: Image.Image) -> Image.Image:
    """The style the bench teaches: every pixel's brightness onto a brown palette (the one the toy measure reads)."""
    grey = picture.convert("L")
    bands = [grey.point(lambda v, o=offset, g=gain: min(255, int(o + v * g)))
             for offset, gain in ((70, 0.78), (45, 0.62), (20, 0.40))]
    return Image.merge("RGB", bands)


def drawn_style_pictures(count: int, seed: int) -> list[tuple[str, bytes, str]]:
    """Circles, squares and triangles of many colours in sepia, on backgrounds in and out of the toy world."""
    rng = random.Random(seed + 2)
    pictures = []
    for i in range(count):
        shape = STYLE_TRAINING_SHAPES[i % len(STYLE_TRAINING_SHAPES)]
        side = DRAWN_SIDES[(i + 1) % len(DRAWN_SIDES)] if i % 5 else 256
        plain = _drawn_shape(shape, min(side, 1024), rng, STYLE_COLOURS[i % len(STYLE_COLOURS)],
                             DRAWN_BACKGROUNDS[(i // 3) % 3])
        pictures.append(_encoded(in_sepia(plain), i))
    return pictures


# --- an Ember app on a local Ray, driven over HTTP ------------------------------------------------------------

class EmberApi:
    """An Ember app with its engine worker on Ray and one API client of a fresh organization."""

    MODELS = "/v3/custom-models"

    def __init__(self, model_dir: Path, data_dir: Path, workers: int = 1) -> None:
        import ray
        from fastapi.testclient import TestClient

        from ember.api import create_app
        from ember.config import Settings
        from ember.identity import create_client
        from ember.store.database import migrate, open_engine, transaction

        self._exit = ExitStack()
        self.models: dict[str, str] = {}  # asset id by the bench's name for each model it trained
        if not ray.is_initialized():
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
            self._exit.callback(ray.shutdown)
        # `workers` engine workers that share the machine's cores (2 here) between them, as a deployment on this
        # machine would be configured: one worker training on every core, or one worker per core so that two
        # trainings run at once. Ray reserves for them the CPUs that are free (in the test suite Ray is shared
        # with earlier tests, whose actors may still hold one; a worker asking for more than is free would never
        # start), and each runs its share of the cores as torch threads either way.
        cores = os.cpu_count() or 1
        free = float(ray.available_resources().get("CPU", 1.0))
        self.threads_per_worker = max(1, cores // workers)
        settings = Settings(data_dir=data_dir, model_dir=model_dir, default_base_model="toy",
                            rate_limit_per_minute=0, rate_limit_per_day=0, job_timeout_s=1800,
                            engine_workers=workers,
                            engine_worker_num_cpus=max(0.1, min(float(self.threads_per_worker), free / workers)),
                            engine_worker_torch_threads=self.threads_per_worker)
        engine = open_engine(settings.database_url)
        migrate(engine)
        engine.dispose()
        app = create_app(settings)
        runtime = app.state.runtime
        runtime.ray = runtime.dispatcher.ray = AttachedRay(ray.get_runtime_context().gcs_address)
        self.http = self._exit.enter_context(TestClient(app, raise_server_exceptions=False))
        if not runtime.dispatcher.wait_started(120):
            raise RuntimeError("the engine worker did not start")
        with transaction(runtime.sessions) as session:
            credentials = create_client(session, "learning-bench")
        token = self.http.post("/ims/token/v3", data={
            "grant_type": "client_credentials", "client_id": credentials.client_id,
            "client_secret": credentials.client_secret, "scope": "openid,AdobeID,firefly_api,ff_apis",
        })
        token.raise_for_status()
        self.headers = {"Authorization": f"Bearer {token.json()['access_token']}", "x-api-key": credentials.client_id}

    def close(self) -> None:
        self._exit.close()

    def model(self, name: str) -> dict[str, Any]:
        """The model body of a model this bench trained, its `check` included."""
        response = self._ok(self.http.get(f"{self.MODELS}/{self.models[name]}", headers=self.headers))
        body: dict[str, Any] = response.json()
        return body

    def publish(self, name: str, force: bool = False) -> Any:
        """POST .../publish (with force=true when asked): the response, whatever its status."""
        params = {"force": "true"} if force else {}
        return self.http.post(f"{self.MODELS}/{self.models[name]}/publish", params=params, headers=self.headers)

    def _ok(self, response: Any, status: int = 200) -> Any:
        if response.status_code != status:
            raise RuntimeError(f"{response.request.method} {response.request.url}: {response.status_code} "
                               f"{response.text[:2000]}")
        return response

    def train(self, name: str, mode: str, files: list[tuple[str, bytes, str]], work_dir: Path,
              steps: int | None = None) -> tuple[LoraRef, int]:
        """Create a model, upload the pictures without captions, train it with the defaults (steps only when
        asked: the preset search), wait, and download its LoRA into `work_dir`."""
        return self.trained(name, self.start_training(name, mode, files, steps), work_dir)

    def start_training(self, name: str, mode: str, files: list[tuple[str, bytes, str]],
                       steps: int | None = None) -> str:
        """Create a model, upload the pictures without captions and start its training with the defaults (steps
        only when asked: the preset search); the training job's id."""
        body = {"displayName": name, "trainingMode": mode, "samplePrompt": SUBJECT_PROMPT if mode == "subject"
                else "a red circle on a black background", **({"conceptId": CONCEPT} if mode == "subject" else {})}
        asset_id = self._ok(self.http.post(self.MODELS, json=body, headers=self.headers), 201).json()["assetId"]
        self.models[name] = asset_id
        parts = [("files", part) for part in files]
        self._ok(self.http.post(f"{self.MODELS}/{asset_id}/images", files=parts, headers=self.headers))
        overrides = {"steps": steps} if steps else {}
        accepted = self._ok(self.http.post(f"{self.MODELS}/{asset_id}/train-async", json=overrides,
                                           headers=self.headers), 202).json()
        job_id: str = accepted["jobId"]
        return job_id

    def status(self, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = self.http.get(f"/v3/status/{job_id}", headers=self.headers).json()
        return body

    def first_ended(self, jobs: Sequence[str]) -> str:
        """Wait until one of the training jobs ends; its id."""
        deadline = time.monotonic() + 1800
        while True:
            for job_id in jobs:
                if self.status(job_id)["status"] in ENDED:
                    return job_id
            if time.monotonic() > deadline:
                raise RuntimeError(f"none of the trainings {list(jobs)} ended in time")
            time.sleep(0.5)  # polling is how a client follows a job

    def trained(self, name: str, job_id: str, work_dir: Path) -> tuple[LoraRef, int]:
        """Wait for the training job of model `name` to end, and download its LoRA into `work_dir`."""
        self.first_ended([job_id])
        status = self.status(job_id)
        if status["status"] != "succeeded":
            raise RuntimeError(f"training {name} ended {status['status']}: {status}")
        lora = self._ok(self.http.get(f"{self.MODELS}/{self.models[name]}/weights", headers=self.headers)).content
        path = Path(work_dir) / f"{name}.safetensors"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lora)
        return LoraRef(key=name, path=path), int(status["training"]["totalSteps"])


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """Draw with `count` torch threads in this process for a while (while an engine worker trains beside it)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def old_captioner() -> Iterator[None]:
    """Break captioning on purpose: `toy` images are captioned by the built-in captioner again (pixel words the
    toy text encoder does not know), as they were before the base model named its own captioner."""
    from ember.engine import registry

    original = registry._MODELS["toy"]
    registry._MODELS["toy"] = dataclasses.replace(original, captioner="builtin")
    try:
        yield
    finally:
        registry._MODELS["toy"] = original


def draw(engine: Any, prompt: str, seeds: Sequence[int], loras: Sequence[LoraRef] = (), steps: int | None = None,
         guidance_scale: float | None = None) -> list[Image.Image]:
    """Pictures of one prompt with the toy model through `Engine.generate`, one per seed, as many seeds a call
    as the check after training draws at once (an API request asks for at most 4; a batch of them draws the same
    pictures, faster)."""
    pictures: list[Image.Image] = []
    batch = get_base_model(BASE_MODEL).check_batch
    for start in range(0, len(seeds), batch):
        request = GenerationRequest(
            base_model=BASE_MODEL, prompt=prompt, seeds=list(seeds[start : start + batch]), width=64, height=64,
            loras=list(loras), mimetype="image/png", steps=steps, guidance_scale=guidance_scale,
        )
        pictures += [Image.open(io.BytesIO(image.data)).convert("RGB") for image in engine.generate(request)]
    return pictures


def base_quality_prompts(seed: int) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """The base-quality rows' prompts for `seed`: ten seen (shape, colour) pairs and the held-out pairs, each on
    one of the world's backgrounds."""
    rng = random.Random(seed)
    backgrounds = ("black", "gray", "purple")
    seen = [(s, c, rng.choice(backgrounds)) for s, c in rng.sample(SEEN_PAIRS, 10)]
    held_out = [(s, c, rng.choice(backgrounds)) for s, c in sorted(HELD_OUT_PAIRS)]
    return seen, held_out


class LearningBench:
    """Draws with the toy model through the engine and reads the pictures with the toy measures."""

    def __init__(self, model_dir: Path, work_dir: Path, settings: BenchSettings | None = None,
                 workers: int = 1) -> None:
        from ember.engine.generate import Engine

        self.settings = settings or BenchSettings()
        self.model_dir = Path(model_dir)
        self.work_dir = Path(work_dir)
        self.timed = Timed()
        self._base_pictures: dict[tuple[str, int], list[Image.Image]] = {}
        with self.timed.step("load base model and classifier"):
            self.engine = Engine(self.model_dir)
            self.engine.pipeline(BASE_MODEL)
            self.reader = SceneReader()
        with self.timed.step("start Ember (API, Ray, engine worker)"):
            self.api = EmberApi(self.model_dir, self.work_dir / "ember", workers)

    def close(self) -> None:
        self.api.close()

    def draw(self, prompt: str, count: int, loras: Sequence[LoraRef] = ()) -> list[Image.Image]:
        """`count` pictures of one prompt, seeds from the bench's seed on. The base model's are drawn once: the
        subject's and the style's "before" share prompts."""
        if not loras and (prompt, count) in self._base_pictures:
            return self._base_pictures[(prompt, count)]
        seeds = [self.settings.seed + i for i in range(count)]
        pictures = draw(self.engine, prompt, seeds, loras, self.settings.inference_steps, self.settings.guidance_scale)
        if not loras:
            self._base_pictures[(prompt, count)] = pictures
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
        seen, held_out = base_quality_prompts(self.settings.seed)
        with self.timed.step("base quality: seen pairs"):
            seen_score = mean_score(self.read_prompts(seen))
        with self.timed.step("base quality: held-out pairs"):
            held_score = mean_score(self.read_prompts(held_out))
        return BaseQuality(seen_score, held_score)

    def train(self, name: str, mode: str, files: list[tuple[str, bytes, str]]) -> tuple[LoraRef, int]:
        return self.api.train(name, mode, files, self.work_dir / "loras", self.settings.training_steps)

    def _star_pictures(self) -> list[tuple[str, bytes, str]]:
        return drawn_star_pictures(self.settings.training_examples, self.settings.seed)

    def train_subject(self, name: str) -> tuple[LoraRef, int]:
        return self.train(name, "subject", self._star_pictures())

    def star_pictures(self, loras: Sequence[LoraRef] = ()) -> tuple[float, list[Image.Image]]:
        pictures = self.draw(SUBJECT_PROMPT, self.settings.subject_images, loras)
        return shape_rate(self.reader.read(pictures), NEW_SHAPE), pictures

    def subject_star_rate_after_training(self, name: str) -> float:
        """Only the headline figure: how often the concept prompt draws a star after training."""
        with self.timed.step(f"{name}: train"):
            lora, _ = self.train_subject(name)
        with self.timed.step(f"{name}: after"):
            return self.star_pictures([lora])[0]

    def _subject_before(self) -> SubjectBefore:
        with self.timed.step("subject: before"):
            star_before, before = self.star_pictures()
            other_before = mean_score(self.read_prompts(OTHER_PROMPTS)).both
        return SubjectBefore(star_before, before, other_before)

    def _subject_after(self, before: SubjectBefore, lora: LoraRef, steps: int) -> SubjectResult:
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
            star_before=before.star,
            star_after=star_after,
            other_before=before.other,
            other_after=mean_score(other_scores).both,
            star_without_concept=shape_rate(other_readings, NEW_SHAPE),
            steps=steps,
            pictures_before=before.pictures,
            pictures_after=after,
            check=self.api.model("subject").get("check"),
        )

    def subject(self) -> SubjectResult:
        before = self._subject_before()
        with self.timed.step("subject: train"):
            lora, steps = self.train_subject("subject")
        return self._subject_after(before, lora, steps)

    def _sepia_by_shape(self, loras: Sequence[LoraRef]) -> tuple[dict[str, float], float, list[Image.Image]]:
        """The sepia rate of each shape's prompt, the share of shapes drawn right, and a picture per prompt."""
        rates, shapes_right, firsts = {}, 0.0, []
        for shape, colour, background in OTHER_PROMPTS:
            pictures = self.draw(caption(shape, colour, background), self.settings.images_per_prompt, loras)
            readings = self.reader.read(pictures)
            rates[shape] = sepia_rate(readings)
            shapes_right += shape_rate(readings, shape) / len(OTHER_PROMPTS)
            firsts.append(pictures[0])
        return rates, shapes_right, firsts

    def _style_before(self) -> StyleBefore:
        with self.timed.step("style: before"):
            rates, _, pictures = self._sepia_by_shape(())
        return StyleBefore(sum(rates.values()) / len(rates), pictures)

    def _style_pictures(self) -> list[tuple[str, bytes, str]]:
        return drawn_style_pictures(self.settings.training_examples, self.settings.seed)

    def _style_after(self, before: StyleBefore, lora: LoraRef, steps: int) -> StyleResult:
        with self.timed.step("style: after"):
            rates_after, shape_after, after = self._sepia_by_shape([lora])
        return StyleResult(
            sepia_before=before.sepia,
            sepia_after=sum(rates_after.values()) / len(rates_after),
            sepia_after_by_shape=rates_after,
            shape_after=shape_after,
            steps=steps,
            pictures_before=before.pictures,
            pictures_after=after,
            check=self.api.model("style").get("check"),
        )

    def style(self) -> StyleResult:
        before = self._style_before()
        with self.timed.step("style: train"):
            lora, steps = self.train("style", "style", self._style_pictures())
        return self._style_after(before, lora, steps)

    def subject_and_style(self) -> tuple[SubjectResult, StyleResult]:
        """Both models trained at once, each by an engine worker of its own, as two users' trainings run where a
        deployment has a worker per core (EmberApi's `workers`). Once the first model is trained, the base
        model's pictures (before training) and that model's pictures are drawn with the cores the other
        model's training leaves free; the other model's pictures, as soon as it is trained."""
        with self.timed.step("subject and style: upload, start training"):
            training = {
                self.api.start_training("subject", "subject", self._star_pictures(), self.settings.training_steps):
                    "subject",
                self.api.start_training("style", "style", self._style_pictures(), self.settings.training_steps):
                    "style",
            }
        subject_before: SubjectBefore | None = None
        style_before: StyleBefore | None = None
        subject: SubjectResult | None = None
        style: StyleResult | None = None
        cores = os.cpu_count() or 1
        while training:
            with self.timed.step(f"training, until {'both are' if subject or style else 'one is'} trained"):
                job_id = self.api.first_ended(list(training))
            name = training.pop(job_id)
            lora, steps = self.api.trained(name, job_id, self.work_dir / "loras")
            # Torch threads beside a worker that still trains: more threads than cores slows both many times.
            with torch_threads(max(1, cores - self.api.threads_per_worker * len(training))):
                subject_before = subject_before or self._subject_before()
                style_before = style_before or self._style_before()
                if name == "subject":
                    subject = self._subject_after(subject_before, lora, steps)
                else:
                    style = self._style_after(style_before, lora, steps)
        assert subject is not None and style is not None
        return subject, style


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
            *check_rows("subject", subject.check),
        ]
    if style is not None:
        rows += [
            ("style: sepia rate, every shape, before", f"{style.sepia_before:.2f}", "= 0"),
            (f"style: same, after {style.steps} steps", f"{style.sepia_after:.2f}",
             f">= {MIN_SEPIA_RATE_AFTER:.2f}"),
            ("style: lowest sepia rate of one shape, after", f"{min(style.sepia_after_by_shape.values()):.2f}",
             "> 0 for every shape"),
            ("style: shape right under the style", f"{style.shape_after:.2f}", f">= {MIN_SHAPE_UNDER_STYLE:.2f}"),
            *check_rows("style", style.check),
        ]
    return rows


def shape_probabilities(reader: SceneReader, pictures: Sequence[Image.Image]) -> list[dict[str, float]]:
    """The shape classifier's probability of each shape for each picture, by name, before the measure's star
    threshold is applied (the measure reads a star only at `STAR_CONFIDENCE`)."""
    return [dict(zip(reader.shapes, row, strict=True)) for row in reader.probabilities(pictures).tolist()]


def write_samples(reader: SceneReader, pictures: Sequence[Image.Image], folder: Path) -> str:
    """Each picture as `sample-NN.png` and `probabilities.tsv` (the reading, the classifier's top shape and its
    probability, the star's probability, every shape's) in `folder`; returns a one-line summary."""
    folder.mkdir(parents=True, exist_ok=True)
    readings = reader.read(pictures)
    probabilities = shape_probabilities(reader, pictures)
    shapes = list(reader.shapes)
    lines = ["\t".join(["sample", "reading", "top", "top_p", "star_p", *shapes])]
    for index, (picture, reading, row) in enumerate(zip(pictures, readings, probabilities, strict=True)):
        picture.save(folder / f"sample-{index:02d}.png")
        top = max(row, key=row.__getitem__)
        lines.append("\t".join([f"{index:02d}", reading.shape, top, f"{row[top]:.3f}", f"{row['star']:.3f}",
                                *(f"{row[s]:.3f}" for s in shapes)]))
    (folder / "probabilities.tsv").write_text("\n".join(lines) + "\n")
    contact_sheet(pictures, [row[NEW_SHAPE] for row in probabilities]).save(folder / "samples.png")
    tops = sum(max(row, key=row.__getitem__) == NEW_SHAPE for row in probabilities)
    return (f"{len(pictures)} samples written to {folder}: read as stars {shape_rate(readings, NEW_SHAPE):.2f}, "
            f"star the classifier's top class {tops / len(pictures):.2f}")


def contact_sheet(pictures: Sequence[Image.Image], star: Sequence[float], columns: int = 8,
                  cell: int = 96) -> Image.Image:
    """The pictures in rows of `columns`, each with its index and the classifier's star probability below."""
    label = 16
    rows = math.ceil(len(pictures) / columns)
    sheet = Image.new("RGB", (columns * cell, rows * (cell + label)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for index, (picture, p) in enumerate(zip(pictures, star, strict=True)):
        x, y = (index % columns) * cell, (index // columns) * (cell + label)
        sheet.paste(picture.resize((cell, cell), Image.Resampling.NEAREST), (x, y))
        draw.text((x + 4, y + cell + 2), f"{index:02d}  star {p:.2f}", fill=(0, 0, 0))
    return sheet


def check_rows(name: str, check: dict[str, Any] | None) -> list[tuple[str, str, str]]:
    """The check after training as the API shows it: its status, then each measure held to a threshold."""
    if check is None:
        return [(f"{name}: check after training", "none", "")]
    rows = [(f"{name}: check after training: {check['summary']}", check["status"], "")]
    rows += [(f"{name}: check: {m['name']}", f"{m['value']:.2f}", m["target"]) for m in check["measures"]
             if m["passed"] is not None]
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


def grid_image(subject: SubjectResult, style: StyleResult | None, columns: int = 5, cell: int = 128) -> Image.Image:
    """Rows: the concept prompt before and after, one prompt per shape before and after the style model (when
    there is one)."""
    label_width = 260
    rows = [
        (f"'{SUBJECT_PROMPT}': base", subject.pictures_before[:columns]),
        (f"'{SUBJECT_PROMPT}': zorb model", subject.pictures_after[:columns]),
    ]
    if style is not None:
        rows += [
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


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="base model folder (default: a temporary one)")
    parser.add_argument("--work-dir", type=Path, default=None, help="training folders (default: a temporary one)")
    parser.add_argument("--images-per-prompt", type=int, default=BenchSettings.images_per_prompt)
    parser.add_argument("--training-steps", type=int, default=None, help="override the preset's steps")
    parser.add_argument("--seed", type=int, default=BenchSettings.seed,
                        help="another seed draws other training pictures and samples")
    parser.add_argument("--grid", type=Path, default=None, help="write the before/after grid PNG here")
    parser.add_argument("--samples", type=Path, default=None,
                        help="write the subject model's samples of the concept prompt and the classifier's "
                             "probabilities for each here")
    parser.add_argument("--skip-base", action="store_true", help="skip the base-quality rows")
    parser.add_argument("--skip-style", action="store_true", help="skip the style model (a subject preset search)")
    parser.add_argument("--workers", type=int, default=None,
                        help="engine workers sharing the cores (default: 2, each training one of the two models at "
                             "once; 1 with --skip-style)")
    parser.add_argument("--broken", action="store_true",
                        help="also train with the old captioner plugged back in (captions toy cannot read)")
    args = parser.parse_args(argv)
    settings = BenchSettings(images_per_prompt=args.images_per_prompt, training_steps=args.training_steps,
                             seed=args.seed)
    with tempfile.TemporaryDirectory(prefix="ember-learning-") as scratch:
        workers = args.workers or (1 if args.skip_style else 2)
        bench = LearningBench(args.model_dir or Path(scratch) / "models", args.work_dir or Path(scratch) / "work",
                              settings, workers)
        try:
            quality = None if args.skip_base else bench.base_quality()
            if args.skip_style:
                subject, style = bench.subject(), None
            else:
                subject, style = bench.subject_and_style()
            rows = table_rows(quality, subject, style)
            if args.broken:
                with old_captioner():
                    broken = bench.subject_star_rate_after_training("broken")
                rows.append(("old captioner plugged back in: star rate after", f"{broken:.2f}",
                             f"< {MIN_STAR_RATE_AFTER:.2f}"))
                rows += check_rows("old captioner", bench.api.model("broken").get("check"))
        finally:
            bench.close()
        print_table(rows, bench.timed.seconds, print)
        if args.samples is not None:
            print(write_samples(bench.reader, subject.pictures_after, args.samples))
        if args.grid is not None:
            args.grid.parent.mkdir(parents=True, exist_ok=True)
            grid_image(subject, style).save(args.grid)
            print(f"grid written to {args.grid}")


if __name__ == "__main__":
    main()
