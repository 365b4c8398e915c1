"""Captions for training images: each base model's captioner (its own, florence2 / blip when present, or the
built-in fallback), caption rules, and checks against a base model's vocabulary."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from ember.engine.registry import BaseModelSpec, import_reference
from ember.engine.types import EngineError

MIN_CAPTION_WORDS = 3
MAX_CAPTION_WORDS = 40
CAPTIONER_HUB_IDS = {
    "florence2": "florence-community/Florence-2-base",
    "blip": "Salesforce/blip-image-captioning-base",
}


class CaptionerUnavailable(EngineError):
    """A named captioner whose weights are not on this machine."""


# What the built-in captioner's captions carry: they describe pixels, not what a picture shows.
FALLBACK_REVIEW_NOTE = "Written without a captioning model: review them."


class Captioner(Protocol):
    """Writes one caption per picture. `review_note` is said beside every caption it writes when they need a
    person's eye (None when they do not)."""

    name: str
    review_note: str | None

    def caption(self, image: Image.Image, mode: str = "style", concept: str | None = None) -> str: ...


@dataclass(frozen=True)
class CaptionIssue:
    """One broken caption rule: a stable `code` and a message for people."""

    code: str
    message: str


def _words(text: str) -> list[str]:
    return re.findall(r"\S+", text)


def contains_concept(caption: str, concept: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(concept.strip())}(?!\w)", caption, flags=re.IGNORECASE) is not None


def check_caption(caption: str | None, mode: str, concept: str | None = None) -> list[CaptionIssue]:
    """SPEC §2: a caption needs 3–40 words; in subject mode it must carry the concept word."""
    text = (caption or "").strip()
    if not text:
        return [CaptionIssue("caption_missing", "The image has no caption; write one of 3 to 40 words.")]
    issues: list[CaptionIssue] = []
    count = len(_words(text))
    if count < MIN_CAPTION_WORDS:
        issues.append(
            CaptionIssue(
                "caption_too_short",
                f"The caption has {count} word{'s' if count != 1 else ''}; at least {MIN_CAPTION_WORDS} are needed.",
            )
        )
    if count > MAX_CAPTION_WORDS:
        issues.append(
            CaptionIssue("caption_too_long", f"The caption has {count} words; at most {MAX_CAPTION_WORDS} are allowed.")
        )
    if mode == "subject" and concept and not contains_concept(text, concept):
        issues.append(
            CaptionIssue(
                "caption_missing_concept", f"In subject mode every caption must contain the concept word {concept!r}."
            )
        )
    return issues


def ensure_concept(caption: str, concept: str | None) -> str:
    """The caption with the concept word bound to it: unchanged when present, else prefixed."""
    if not concept or contains_concept(caption, concept):
        return caption
    text = caption.strip()
    if not text:
        return f"a photo of {concept}"
    return f"{concept}, {text}"


# How vision-language captioners open a description; a prompt names what is shown instead.
_NARRATION = re.compile(
    r"^(?:(?:in )?(?:the|this) (?:image|picture|photo(?:graph)?|illustration|drawing|scene)"
    r"(?:,| (?:shows|depicts|features|contains|displays|is of|we can see|there is|there are))\s*"
    r"|(?:there (?:is|are))\s+"
    r"|(?:an? )?(?:close-up |closeup )?(?:image|picture|photo(?:graph)?|illustration|drawing) of\s+)",
    re.IGNORECASE,
)
PROMPT_WORDS = 30


def prompt_shaped(description: str, max_words: int = PROMPT_WORDS) -> str:
    """A vision-language description made into a prompt, as people write them for Firefly: what is shown, in
    comma-separated phrases, without the narration ("The image shows …", "there is …", "a picture of …"),
    without full stops, at most `max_words` words. "The image shows a red sneaker on a white table. The
    background is plain." → "a red sneaker on a white table, the background is plain"."""
    phrases = []
    for sentence in re.split(r"(?<=[.!?])\s+|\n+", description.strip()):
        text = sentence.strip().rstrip(".!?").strip()
        while True:
            stripped = _NARRATION.sub("", text, count=1).strip()
            if stripped == text:
                break
            text = stripped
        if text:
            phrases.append(text[0].lower() + text[1:] if not text[:2].isupper() else text)
    return trim_caption(", ".join(phrases), max_words)


def trim_caption(caption: str, max_words: int = MAX_CAPTION_WORDS) -> str:
    words = _words(caption)
    return caption.strip() if len(words) <= max_words else " ".join(words[:max_words])


# Reference colours for naming; hue in degrees, chosen so every hue band has a plain English name.
_HUE_NAMES = (
    (15, "red"),
    (40, "orange"),
    (70, "yellow"),
    (160, "green"),
    (200, "teal"),
    (255, "blue"),
    (290, "purple"),
    (335, "pink"),
    (360, "red"),
)


def colour_name(rgb: np.ndarray) -> str:
    """A plain colour word for one RGB triple (0–255)."""
    r, g, b = (float(c) / 255.0 for c in rgb)
    high, low = max(r, g, b), min(r, g, b)
    saturation = 0.0 if high == 0 else (high - low) / high
    if high < 0.2:
        return "black"
    if saturation < 0.18:
        return "white" if high > 0.85 else ("grey" if high > 0.35 else "black")
    if high - low == 0:
        hue = 0.0
    elif high == r:
        hue = (60 * ((g - b) / (high - low)) + 360) % 360
    elif high == g:
        hue = 60 * ((b - r) / (high - low)) + 120
    else:
        hue = 60 * ((r - g) / (high - low)) + 240
    if 15 <= hue < 45 and high < 0.65:
        return "brown"
    return next(name for limit, name in _HUE_NAMES if hue < limit)


def _pixels(image: Image.Image, side: int = 48) -> np.ndarray:
    small = image.convert("RGB").resize((side, side), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.float32)


def _dominant_colours(pixels: np.ndarray, limit: int = 2, min_share: float = 0.12) -> list[str]:
    counts: dict[str, int] = {}
    for rgb in pixels.reshape(-1, 3):
        name = colour_name(rgb)
        counts[name] = counts.get(name, 0) + 1
    total = sum(counts.values()) or 1
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    names = [name for name, count in ranked if count / total >= min_share][:limit]
    return names or [ranked[0][0]]


@dataclass(frozen=True)
class ImageDescription:
    """Measurable properties of an image, from which the built-in captioner writes its sentence."""

    orientation: str
    brightness: str
    contrast: str
    colours: list[str]
    background: str
    subject_colour: str | None
    subject_size: str | None
    subject_position: str | None
    background_texture: str


def describe(image: Image.Image) -> ImageDescription:
    width, height = image.size
    ratio = width / height
    orientation = "square" if 0.9 <= ratio <= 1.1 else ("landscape" if ratio > 1 else "portrait")
    pixels = _pixels(image)
    luminance = pixels @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    mean = float(luminance.mean())
    brightness = "dark" if mean < 85 else ("bright" if mean > 170 else "softly lit")
    contrast = "high contrast" if float(luminance.std()) > 60 else "low contrast"
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background_rgb = np.median(border, axis=0)
    background = colour_name(background_rgb)
    background_texture = "plain" if float(border.std(axis=0).mean()) < 20 else "busy"
    # The subject is what differs from the border's colour; its centre of mass gives the composition.
    distance = np.linalg.norm(pixels - background_rgb, axis=2)
    mask = distance > 60
    share = float(mask.mean())
    subject_colour = subject_size = subject_position = None
    if 0.01 <= share <= 0.9:
        subject_colour = _dominant_colours(pixels[mask], limit=1, min_share=0.0)[0]
        subject_size = "small" if share < 0.12 else ("large" if share > 0.4 else "medium-sized")
        ys, xs = np.nonzero(mask)
        cx, cy = xs.mean() / mask.shape[1], ys.mean() / mask.shape[0]
        horizontal = "left" if cx < 0.38 else ("right" if cx > 0.62 else "")
        vertical = "top" if cy < 0.38 else ("bottom" if cy > 0.62 else "")
        if horizontal or vertical:
            subject_position = "at the " + " ".join(p for p in (vertical, horizontal) if p)
        else:
            subject_position = "in the centre"
    return ImageDescription(
        orientation=orientation,
        brightness=brightness,
        contrast=contrast,
        colours=_dominant_colours(pixels),
        background=background,
        subject_colour=subject_colour,
        subject_size=subject_size,
        subject_position=subject_position,
        background_texture=background_texture,
    )


def describe_style(image: Image.Image) -> str:
    """A style phrase from measurable properties: palette, light and contrast."""
    found = describe(image)
    return f"{' and '.join(found.colours)} palette, {found.brightness}, {found.contrast}"


class BuiltinCaptioner:
    """Describes what can be measured (colours, light, orientation, composition); true, offline, instant."""

    name = "builtin"
    review_note: str | None = FALLBACK_REVIEW_NOTE

    def caption(self, image: Image.Image, mode: str = "style", concept: str | None = None) -> str:
        found = describe(image)
        palette = " and ".join(found.colours)
        if found.subject_colour is not None:
            text = (
                f"a {found.brightness} {found.orientation} image of a {found.subject_size} "
                f"{found.subject_colour} subject {found.subject_position} on a {found.background_texture} "
                f"{found.background} background, mostly {palette}, {found.contrast}"
            )
        else:
            text = (
                f"a {found.brightness} {found.orientation} image filled with {palette}, "
                f"{found.background_texture} texture, {found.contrast}"
            )
        return trim_caption(text)


def _local_weights(name: str, model_dir: Path | None) -> str | None:
    """A directory with the captioner's weights: `<model_dir>/captioners/<name>`, else the hub cache."""
    if model_dir is not None and (Path(model_dir) / "captioners" / name / "config.json").is_file():
        return str(Path(model_dir) / "captioners" / name)
    configured = os.environ.get(f"EMBER_CAPTIONER_{name.upper()}")
    if configured and Path(configured, "config.json").is_file():
        return configured
    try:
        from huggingface_hub import snapshot_download

        path = snapshot_download(CAPTIONER_HUB_IDS[name], local_files_only=True)
    except Exception:  # "not in cache" surfaces as several exception types
        return None
    return path if Path(path, "config.json").is_file() else None


class TransformersCaptioner:
    """florence2 or blip through transformers; loaded lazily from local weights."""

    review_note: str | None = None

    def __init__(self, name: str, weights: str, device: str | None = None) -> None:
        self.name = name
        self._weights = weights
        self._device = device
        self._model: Any = None
        self._processor: Any = None

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor, BlipForConditionalGeneration

        device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
        self._processor = AutoProcessor.from_pretrained(self._weights)
        model_class = BlipForConditionalGeneration if self.name == "blip" else AutoModelForImageTextToText
        self._model = model_class.from_pretrained(self._weights).to(device).eval()  # type: ignore[arg-type]  # transformers stubs type .to() oddly
        self._device = device

    def caption(self, image: Image.Image, mode: str = "style", concept: str | None = None) -> str:
        import torch

        if self._model is None:
            self._load()
        rgb = image.convert("RGB")
        if self.name == "florence2":
            inputs = self._processor(text="<DETAILED_CAPTION>", images=rgb, return_tensors="pt")
        else:
            inputs = self._processor(images=rgb, return_tensors="pt")
        inputs = inputs.to(self._device)
        with torch.inference_mode():
            tokens = self._model.generate(**inputs, max_new_tokens=60, num_beams=3)
        text = self._processor.batch_decode(tokens, skip_special_tokens=True)[0].strip()
        return prompt_shaped(text)


def get_captioner(name: str = "auto", model_dir: Path | None = None, device: str | None = None) -> Captioner:
    """`auto`: florence2, then blip, where their weights are present; else the built-in captioner."""
    if name == "builtin":
        return BuiltinCaptioner()
    if name == "auto":
        for candidate in ("florence2", "blip"):
            weights = _local_weights(candidate, model_dir)
            if weights is not None:
                return TransformersCaptioner(candidate, weights, device)
        return BuiltinCaptioner()
    if name not in CAPTIONER_HUB_IDS:
        raise CaptionerUnavailable(f"unknown captioner {name!r}; use auto, builtin, florence2 or blip")
    weights = _local_weights(name, model_dir)
    if weights is None:
        raise CaptionerUnavailable(
            f"The {name} captioner's weights are not on this machine: put them in "
            f"<model_dir>/captioners/{name}, set EMBER_CAPTIONER_{name.upper()}, or download "
            f"{CAPTIONER_HUB_IDS[name]} into the Hugging Face cache."
        )
    return TransformersCaptioner(name, weights, device)


def review_note_of(captioner_name: str | None) -> str | None:
    """The review note said beside captions a captioner of this name wrote (stored with each image)."""
    return BuiltinCaptioner.review_note if captioner_name == BuiltinCaptioner.name else None


def captioner_for(spec: BaseModelSpec, model_dir: Path | None = None, device: str | None = None) -> Captioner:
    """The captioner a base model's registry entry names: its own class, or one of get_captioner's names."""
    if ":" in spec.captioner:
        captioner: Captioner = import_reference(spec.captioner)()
        return captioner
    return get_captioner(spec.captioner, model_dir, device)


def caption_images(
    images: list[Image.Image], captioner: Captioner, mode: str = "style", concept: str | None = None
) -> list[str]:
    """A caption for every image, concept-bound in subject mode, falling back to the built-in captioner
    when a model's caption breaks the length rules."""
    fallback = BuiltinCaptioner()
    captions = []
    for image in images:
        text = captioner.caption(image, mode, concept)
        if any(issue.code in {"caption_missing", "caption_too_short"} for issue in check_caption(text, "style")):
            text = fallback.caption(image)
        if mode == "subject":
            text = trim_caption(ensure_concept(text, concept))
        captions.append(text)
    return captions


def base_model_vocabulary(spec: BaseModelSpec) -> frozenset[str] | None:
    """Every word the base model's text encoder reads as one token, where the registry names that closed set."""
    if spec.vocabulary is None:
        return None
    return frozenset(word.lower() for word in import_reference(spec.vocabulary))


def caption_words(caption: str) -> list[str]:
    return re.findall(r"[^\W_]+(?:['-][^\W_]+)*", caption.lower())


def check_vocabulary(caption: str | None, spec: BaseModelSpec, concept: str | None = None) -> list[CaptionIssue]:
    """A warning when most of a caption's words are unknown to the base model: it reads them as letters, so
    the caption teaches it nothing it can be prompted with."""
    vocabulary = base_model_vocabulary(spec)
    words = caption_words(caption or "")
    if vocabulary is None or not words:
        return []
    known = vocabulary | ({concept.strip().lower()} if concept else set())
    unknown = list(dict.fromkeys(word for word in words if word not in known))
    if sum(word not in known for word in words) * 2 <= len(words):
        return []
    return [
        CaptionIssue(
            "caption_unknown_words",
            f"Most words of this caption are unknown to {spec.display_name} and are read as letters: "
            f"{', '.join(unknown)}. Describe the picture in words it knows, such as "
            f"{', '.join(sorted(vocabulary)[:12])}.",
        )
    ]


def concept_refusal(concept: str, spec: BaseModelSpec) -> str | None:
    """Why a concept word cannot be learned on this base model (None when it can): a word its text encoder
    does not read as one token is split into letters, which the base model already uses for other words."""
    vocabulary = base_model_vocabulary(spec)
    if vocabulary is None or concept.strip().lower() in vocabulary:
        return None
    free = ", ".join(repr(word) for word in spec.concept_words) or "a word of its vocabulary"
    return (
        f"{concept.strip()!r} is not one token of {spec.display_name}'s text encoder (it would be split into "
        f"pieces), so a custom model cannot learn it; choose {free}."
    )
