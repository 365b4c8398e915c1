"""Training-set rules of SPEC §2 (per-image error codes) and preparation: EXIF transpose, crop, buckets.

PIL and numpy only: the control plane validates uploads with this module without importing torch.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps

from ember.engine.images import MAX_IMAGE_PIXELS, InvalidImage, TooManyPixels, UnreadableImage, open_image, read_header
from ember.engine.registry import BaseModelSpec

MB = 1024 * 1024

# Stable error codes: the API returns them, the UI and clients match on them.
TOO_FEW_IMAGES = "too_few_images"
TOO_MANY_IMAGES = "too_many_images"
EMPTY_FILE = "empty_file"
FILE_TOO_LARGE = "file_too_large"
UNSUPPORTED_FORMAT = "unsupported_format"
CORRUPT_IMAGE = "corrupt_image"
DECOMPRESSION_BOMB = "decompression_bomb"
IMAGE_TOO_SMALL = "image_too_small"
ASPECT_RATIO_OUT_OF_RANGE = "aspect_ratio_out_of_range"
DUPLICATE_IMAGE = "duplicate_image"
POSSIBLE_DUPLICATE = "possible_duplicate"

FORMAT_NAMES = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP"}


@dataclass(frozen=True)
class DatasetRules:
    """Limits for a training set; `min_side` None means the base model's own minimum."""

    min_count: int = 10
    max_count: int = 30
    max_bytes: int = 50 * MB
    formats: tuple[str, ...] = ("JPEG", "PNG", "WEBP")
    min_aspect: float = 9 / 16
    max_aspect: float = 16 / 9
    min_side: int | None = None
    max_pixels: int = MAX_IMAGE_PIXELS
    # The most unlike two pictures may be (see `likeness`) and still be copies; measured on the labelled set of
    # tests/engine/test_duplicates.py (docs/custom-models.md). Copies as they are block training; copies only
    # after a light crop are said as a warning, because a subject moved a little on a plain background looks
    # the same as a cropped copy.
    copy_likeness: float = 0.3

    def min_side_for(self, spec: BaseModelSpec) -> int:
        return self.min_side if self.min_side is not None else spec.min_train_side


@dataclass(frozen=True)
class DatasetIssue:
    code: str
    message: str


@dataclass
class ImageReport:
    """The result of checking one image; `width`/`height` are after EXIF orientation."""

    name: str
    errors: list[DatasetIssue] = field(default_factory=list)
    format: str | None = None
    width: int | None = None
    height: int | None = None
    fingerprint: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass
class DatasetReport:
    images: list[ImageReport]
    errors: list[DatasetIssue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(image.ok for image in self.images)


def _ratio_text(value: float) -> str:
    return f"{value:.2f}"


def check_image(name: str, data: bytes, spec: BaseModelSpec, rules: DatasetRules | None = None) -> ImageReport:
    """Every per-image rule; stops at the first rule that makes further checks meaningless."""
    rules = rules or DatasetRules()
    report = ImageReport(name=name)
    if not data:
        report.errors.append(DatasetIssue(EMPTY_FILE, "The file is empty."))
        return report
    if len(data) > rules.max_bytes:
        report.errors.append(
            DatasetIssue(
                FILE_TOO_LARGE, f"The file is {len(data) / MB:.1f} MB; the limit is {rules.max_bytes / MB:.0f} MB."
            )
        )
        return report
    allowed = ", ".join(FORMAT_NAMES.get(f, f) for f in rules.formats)
    try:
        header = read_header(data, rules.max_pixels)
    except UnreadableImage:
        report.errors.append(DatasetIssue(CORRUPT_IMAGE, f"The file is not a readable image ({allowed})."))
        return report
    except TooManyPixels as refused:
        report.errors.append(DatasetIssue(DECOMPRESSION_BOMB, str(refused)))
        return report
    except InvalidImage:
        report.errors.append(DatasetIssue(CORRUPT_IMAGE, "The image file is damaged and cannot be read."))
        return report
    report.format = header.format
    if header.format not in rules.formats:
        report.errors.append(
            DatasetIssue(UNSUPPORTED_FORMAT, f"{header.format or 'This'} images are not accepted; use {allowed}.")
        )
        return report
    try:
        image = open_image(data, rules.max_pixels)
    except InvalidImage:
        report.errors.append(DatasetIssue(CORRUPT_IMAGE, "The image file is damaged and cannot be decoded."))
        return report
    report.width, report.height = image.size
    report.fingerprint = fingerprint(image)
    min_side = rules.min_side_for(spec)
    if min(image.size) < min_side:
        report.errors.append(
            DatasetIssue(
                IMAGE_TOO_SMALL,
                f"The image is {image.width}×{image.height}; its shortest side must be at least {min_side} pixels "
                f"for {spec.display_name}.",
            )
        )
    aspect = image.width / image.height
    if not rules.min_aspect - 1e-6 <= aspect <= rules.max_aspect + 1e-6:
        report.errors.append(
            DatasetIssue(
                ASPECT_RATIO_OUT_OF_RANGE,
                f"The aspect ratio {_ratio_text(aspect)} is outside {_ratio_text(rules.min_aspect)}…"
                f"{_ratio_text(rules.max_aspect)} (9:16 to 16:9).",
            )
        )
    return report


def check_dataset(
    files: list[tuple[str, bytes]], spec: BaseModelSpec, rules: DatasetRules | None = None
) -> DatasetReport:
    """Per-image checks, copies (by `likeness`) across images, and the dataset's image count."""
    rules = rules or DatasetRules()
    reports = [check_image(name, data, spec, rules) for name, data in files]
    seen: list[ImageReport] = []
    for report in reports:
        if report.fingerprint is None:
            continue
        original = next(
            (
                earlier
                for earlier in seen
                if likeness(earlier.fingerprint or "", report.fingerprint).verdict(rules) == DUPLICATE_IMAGE
            ),
            None,
        )
        if original is not None:
            report.errors.append(DatasetIssue(DUPLICATE_IMAGE, f"The image is a duplicate of {original.name!r}."))
        else:
            seen.append(report)
    errors: list[DatasetIssue] = []
    if len(files) < rules.min_count:
        errors.append(
            DatasetIssue(TOO_FEW_IMAGES, f"{len(files)} images were given; at least {rules.min_count} are needed.")
        )
    if len(files) > rules.max_count:
        errors.append(
            DatasetIssue(TOO_MANY_IMAGES, f"{len(files)} images were given; at most {rules.max_count} are allowed.")
        )
    return DatasetReport(images=reports, errors=errors)


# --- copies: fingerprints and their likeness ----------------------------------------------------------------

_THUMBNAIL = 32
_COMPARED = 16
# A lightly cropped copy keeps at least 84 % of each side; the crops tried, per axis, as (kept share, offset).
_CROPS = tuple(
    (kept, offset * (1 - kept))
    for kept in (1.0, 0.96, 0.92, 0.88, 0.84)
    for offset in ((0.5,) if kept == 1.0 else (0, 0.33, 0.67, 1))
)
# Below this much content (mean distance from the background colour, 0–255) a picture counts as plain.
_MIN_CONTENT = 6.0


def fingerprint(image: Image.Image) -> str:
    """A 32×32 colour thumbnail of the whole picture (aspect ratio dropped), base64: what `likeness` compares."""
    thumbnail = image.convert("RGB").resize((_THUMBNAIL, _THUMBNAIL), Image.Resampling.BOX)
    return base64.b64encode(thumbnail.tobytes()).decode("ascii")


def _thumbnail(value: str) -> np.ndarray:
    raw = np.frombuffer(base64.b64decode(value), dtype=np.uint8)
    return raw.reshape(_THUMBNAIL, _THUMBNAIL, 3).astype(np.float32)


def _weights(x0: float, kept: float) -> np.ndarray:
    """The bilinear resampling matrix (compared size × thumbnail size) of one axis's window."""
    centres = np.clip((x0 + (np.arange(_COMPARED) + 0.5) / _COMPARED * kept) * _THUMBNAIL - 0.5, 0, _THUMBNAIL - 1)
    low = np.floor(centres).astype(int)
    high = np.minimum(low + 1, _THUMBNAIL - 1)
    matrix = np.zeros((_COMPARED, _THUMBNAIL), dtype=np.float32)
    rows = np.arange(_COMPARED)
    np.add.at(matrix, (rows, low), 1 - (centres - low))
    np.add.at(matrix, (rows, high), centres - low)
    return matrix


_AXIS_WEIGHTS = np.stack([_weights(x0, kept) for kept, x0 in _CROPS])
_WHOLE = _weights(0.0, 1.0)


@lru_cache(maxsize=256)
def _crops(value: str) -> np.ndarray:
    """Every light crop of one fingerprinted picture (crops × compared × compared × RGB); cached, as each
    picture is compared with all the others."""
    rows = np.einsum("ayi,ijc->ayjc", _AXIS_WEIGHTS, _thumbnail(value))
    crops: np.ndarray = np.einsum("ayjc,bxj->abyxc", rows, _AXIS_WEIGHTS)
    return crops.reshape(-1, _COMPARED, _COMPARED, 3)


def _whole(value: str) -> np.ndarray:
    picture: np.ndarray = np.einsum("yjc,xj->yxc", np.einsum("yi,ijc->yjc", _WHOLE, _thumbnail(value)), _WHOLE)
    return picture


def _content(picture: np.ndarray) -> float:
    """How far the picture strays from its background (the border's median colour), on average."""
    border = np.concatenate([picture[0], picture[-1], picture[:, 0], picture[:, -1]])
    return float(np.abs(picture - np.median(border, axis=0)).mean())


@dataclass(frozen=True)
class Likeness:
    """How unlike two pictures are, as they are (`whole`) and after the best light crop of either (`cropped`)."""

    whole: float
    cropped: float

    def verdict(self, rules: DatasetRules) -> str | None:
        """DUPLICATE_IMAGE for a copy, POSSIBLE_DUPLICATE for a copy only once cropped, None for two pictures."""
        if self.whole <= rules.copy_likeness:
            return DUPLICATE_IMAGE
        return POSSIBLE_DUPLICATE if self.cropped <= rules.copy_likeness else None


def likeness(a: str, b: str) -> Likeness:
    """The mean colour difference of two fingerprinted pictures divided by how much they show beside their
    background. Copies (re-encoded, resized) come out near 0 as they are, lightly cropped ones once cropped;
    two pictures of one small subject in different places on one plain background come out near 1 or above,
    because the difference is measured against the subject, not the whole picture (a whole-picture measure
    such as a difference hash calls every plain picture a copy of every other)."""
    whole = _whole(a), _whole(b)
    content = max(_MIN_CONTENT, (_content(whole[0]) + _content(whole[1])) / 2)
    cropped = min(
        float(np.abs(_crops(a) - whole[1]).mean(axis=(1, 2, 3)).min()),
        float(np.abs(_crops(b) - whole[0]).mean(axis=(1, 2, 3)).min()),
    )
    return Likeness(float(np.abs(whole[0] - whole[1]).mean()) / content, cropped / content)


def center_crop_resize(image: Image.Image, width: int, height: int) -> Image.Image:
    """Scale so the image covers width×height, then crop the centre."""
    image = image.convert("RGB")
    scale = max(width / image.width, height / image.height)
    resized = image.resize(
        (max(width, round(image.width * scale)), max(height, round(image.height * scale))),
        Image.Resampling.LANCZOS,
    )
    left = (resized.width - width) // 2
    top = (resized.height - height) // 2
    return resized.crop((left, top, left + width, top + height))


def bucket_sizes(resolution: int, multiple: int = 64) -> list[tuple[int, int]]:
    """Sizes of about resolution² pixels for the aspect ratios 1:1, 4:3, 3:2, 16:9 and their portraits."""
    sizes: list[tuple[int, int]] = []
    for ratio in (1.0, 4 / 3, 3 / 2, 16 / 9, 3 / 4, 2 / 3, 9 / 16):
        width = max(multiple, round(resolution * ratio**0.5 / multiple) * multiple)
        height = max(multiple, round(resolution / ratio**0.5 / multiple) * multiple)
        if (width, height) not in sizes:
            sizes.append((width, height))
    return sizes


def nearest_bucket(width: int, height: int, buckets: list[tuple[int, int]]) -> tuple[int, int]:
    aspect = np.log(width / height)
    return min(buckets, key=lambda size: abs(np.log(size[0] / size[1]) - aspect))


def prepare_image(
    image: bytes | Image.Image, resolution: int, buckets: list[tuple[int, int]] | None = None
) -> Image.Image:
    """An RGB training image: EXIF-oriented, then centre-cropped to resolution² or to its nearest bucket."""
    picture = open_image(image) if isinstance(image, bytes) else ImageOps.exif_transpose(image)
    if buckets:
        width, height = nearest_bucket(picture.width, picture.height, buckets)
    else:
        width = height = resolution
    return center_crop_resize(picture, width, height)
