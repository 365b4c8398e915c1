"""Plain inputs and outputs of the engine: requests, LoRA references, images, progress, cancellation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image


class EngineError(Exception):
    """Base class of the engine's own errors."""


class Cancelled(EngineError):
    """The caller's cancel flag was seen at a step boundary; the work stopped there."""


class InvalidRequest(EngineError, ValueError):
    """A request the engine cannot carry out as given (bad size, unknown preset, too many seeds…)."""


@dataclass(frozen=True)
class LoraRef:
    """A LoRA to apply: `key` names it in the adapter cache (one key, one file), `weight` scales it."""

    key: str
    path: Path
    weight: float = 1.0


@dataclass
class GenerationRequest:
    """One generation call: every field of SPEC §3 the engine acts on, already resolved to plain values."""

    base_model: str
    prompt: str
    negative_prompt: str | None = None
    seeds: list[int] = field(default_factory=lambda: [0])
    width: int = 1024
    height: int = 1024
    content_class: str | None = None
    visual_intensity: int | None = None
    style_presets: list[str] = field(default_factory=list)
    style_strength: int = 50
    style_image: bytes | None = None
    structure_image: bytes | None = None
    structure_strength: int | None = None
    loras: list[LoraRef] = field(default_factory=list)
    mimetype: str = "image/jpeg"
    steps: int | None = None
    guidance_scale: float | None = None


@dataclass(frozen=True)
class GeneratedImage:
    """One encoded output image and the seed that made it."""

    seed: int
    data: bytes
    mimetype: str
    width: int
    height: int


@dataclass(frozen=True)
class Progress:
    """A step report: `preview` is an encoded image (training samples), `loss` only during training."""

    step: int
    total: int
    eta_s: float | None
    loss: float | None = None
    preview: bytes | None = None
    message: str = ""


@dataclass
class TrainingExample:
    """One training image (encoded bytes or a PIL image) and its caption."""

    image: bytes | Image.Image
    caption: str


ProgressCallback = Callable[[Progress], None]
CancelCheck = Callable[[], bool]


def check_cancel(should_cancel: CancelCheck | None, where: str = "") -> None:
    """Raise `Cancelled` when the caller asked to stop; called at every step."""
    if should_cancel is not None and should_cancel():
        raise Cancelled(f"cancelled{' ' + where if where else ''}")


def report(progress: ProgressCallback | None, event: Progress) -> None:
    if progress is not None:
        progress(event)
