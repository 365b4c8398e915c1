"""The check before publishing: what Ember can measure of a newly trained custom model.

The training job runs it once the LoRA is written. A base model whose registry entry names a `checker` (the
`toy` model: ember.engine.toy.check) measures what it can read in pictures: whether samples show the subject,
whether other prompts still draw what they did, whether a style is carried. Every base model also draws a few
samples of the sample prompt with and without the custom model and says how near they come to the training
pictures; without a checker of its own that figure is shown for the owner to judge, and nothing is blocked.

A failed check is no error: the model is ready and can be used; publishing it asks for `force` (see
docs/custom-models.md).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ember.engine.registry import BaseModelSpec, import_reference
from ember.engine.types import GenerationRequest, LoraRef

PASSED = "passed"
FAILED = "failed"
UNMEASURED = "unmeasured"
STATUSES = (PASSED, FAILED, UNMEASURED)

# Samples of the sample prompt drawn with the custom model (kept with the version) and without it.
SAMPLE_COUNT = 4
# Seeds of the check's pictures: fixed, so the same LoRA always gets the same check.
_SEED = 1000
# The side of the thumbnails compared by `likeness_to`.
_THUMBNAIL = 16


@dataclass(frozen=True)
class CheckMeasure:
    """One figure of the check: `value` with the custom model, `before` with the base model alone (where
    it means something), the condition it is held to (`target`, words), and whether it holds (None: shown, not
    held to anything)."""

    name: str
    label: str
    value: float
    target: str
    passed: bool | None
    before: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "value": round(self.value, 4),
            "before": None if self.before is None else round(self.before, 4),
            "target": self.target,
            "passed": self.passed,
        }


@dataclass
class ModelCheck:
    """The result: `status` passed / failed / unmeasured, a one-line `summary` for people, the measures, and
    the samples of the sample prompt drawn with the custom model (PNG bytes; stored beside the version)."""

    status: str
    summary: str
    measures: list[CheckMeasure] = field(default_factory=list)
    samples: list[bytes] = field(default_factory=list)
    prompt: str = ""

    def as_json(self, sample_keys: Sequence[str] = ()) -> dict[str, Any]:
        """The stored form (the version's `check` column); samples by their blob keys."""
        return {
            "status": self.status,
            "summary": self.summary,
            "prompt": self.prompt,
            "measures": [measure.as_json() for measure in self.measures],
            "sampleKeys": list(sample_keys),
        }


class Drawer(Protocol):
    """What a check draws with: ember.engine.generate.Engine, or anything with its `generate`."""

    def generate(self, request: GenerationRequest) -> Sequence[Any]: ...


@dataclass(frozen=True)
class CheckInput:
    """Everything a check needs: the trained LoRA, the training pictures (decoded) and the model's words."""

    spec: BaseModelSpec
    lora: LoraRef
    mode: str
    concept: str | None
    sample_prompt: str
    training_images: Sequence[Image.Image]


class BaseModelCheck(Protocol):
    """A base model's own measures (the registry entry's `checker`, "module:Class")."""

    def measure(self, drawer: Drawer, check: CheckInput) -> tuple[list[CheckMeasure], str] | None:
        """The measures and a summary; None when the pictures are not of a kind it can read."""


def draw(
    drawer: Drawer, spec: BaseModelSpec, prompt: str, count: int, loras: Sequence[LoraRef] = (), seed: int = _SEED
) -> list[Image.Image]:
    """`count` pictures of `prompt` at the base model's first native size, fixed seeds, PNG, `check_batch` of
    them an engine call."""
    width, height = spec.native_resolutions[0]
    pictures: list[Image.Image] = []
    seeds = [seed + i for i in range(count)]
    for start in range(0, count, spec.check_batch):
        request = GenerationRequest(
            base_model=spec.name, prompt=prompt, seeds=seeds[start : start + spec.check_batch], width=width,
            height=height,
            loras=list(loras), mimetype="image/png",
        )
        for image in drawer.generate(request):
            pictures.append(Image.open(io.BytesIO(image.data)).convert("RGB"))
    return pictures


def _thumbnail(picture: Image.Image) -> np.ndarray:
    small = picture.convert("RGB").resize((_THUMBNAIL, _THUMBNAIL), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def likeness_to(samples: Sequence[Image.Image], training: Sequence[Image.Image]) -> float:
    """How near samples come to the training pictures, 0…1: for each sample, one minus the mean colour
    difference of 16×16 thumbnails to the nearest training picture; the mean over samples. A coarse figure of
    colours and layout, not of identity: shown beside the pictures, never held to a threshold."""
    if not samples or not training:
        return 0.0
    references = np.stack([_thumbnail(picture) for picture in training])
    nearest = [1.0 - float(np.abs(references - _thumbnail(sample)).mean(axis=(1, 2, 3)).min()) for sample in samples]
    return float(np.mean(nearest))


def check_prompt(check: CheckInput) -> str:
    """The prompt of the check's samples: the model's sample prompt, else its concept word."""
    return check.sample_prompt.strip() or (check.concept or "").strip()


def run_check(drawer: Drawer, check: CheckInput) -> ModelCheck:
    """Measure a trained custom model: its base model's own measures where it has them, and for every base
    model the samples of the sample prompt beside the training pictures."""
    prompt = check_prompt(check)
    samples = draw(drawer, check.spec, prompt, SAMPLE_COUNT, [check.lora]) if prompt else []
    before = draw(drawer, check.spec, prompt, SAMPLE_COUNT) if prompt else []
    likeness = CheckMeasure(
        name="likeness",
        label="samples' likeness to the training pictures (colours and layout)",
        value=likeness_to(samples, check.training_images),
        before=likeness_to(before, check.training_images) if before else None,
        target="shown, not held to a threshold",
        passed=None,
    )
    encoded = [_png(picture) for picture in samples]
    own = None
    if check.spec.checker is not None:
        checker: BaseModelCheck = import_reference(check.spec.checker)()
        own = checker.measure(drawer, check)
    if own is None:
        summary = (
            f"not measured for {check.spec.display_name}: compare the samples with the training pictures"
            if prompt
            else "not measured: the model has no sample prompt"
        )
        return ModelCheck(UNMEASURED, summary, [likeness], encoded, prompt)
    measures, summary = own
    held = [measure.passed for measure in measures if measure.passed is not None]
    status = UNMEASURED if not held else PASSED if all(held) else FAILED
    return ModelCheck(status, summary, [*measures, likeness], encoded, prompt)


def _png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()
