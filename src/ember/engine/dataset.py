"""Training-set rules of SPEC §2 (per-image error codes) and preparation: EXIF transpose, crop, buckets.

PIL and numpy only: the control plane validates uploads with this module without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageOps

from ember.engine.registry import BaseModelSpec
from ember.images import MAX_IMAGE_PIXELS, InvalidImage, TooManyPixels, UnreadableImage, open_image, read_header

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
    duplicate_distance: int = 6

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
    dhash: int | None = None

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
    report.dhash = dhash(image)
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
    """Per-image checks, near-duplicates (dHash) across images, and the dataset's image count."""
    rules = rules or DatasetRules()
    reports = [check_image(name, data, spec, rules) for name, data in files]
    seen: list[ImageReport] = []
    for report in reports:
        if report.dhash is None:
            continue
        original = next(
            (earlier for earlier in seen if hamming(earlier.dhash or 0, report.dhash) <= rules.duplicate_distance),
            None,
        )
        if original is not None:
            report.errors.append(
                DatasetIssue(DUPLICATE_IMAGE, f"The image is a duplicate or near-duplicate of {original.name!r}.")
            )
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


def dhash(image: Image.Image, size: int = 8) -> int:
    """Difference hash: 64 bits saying whether each pixel of a 9×8 grey thumbnail is brighter than its
    right neighbour; robust to scaling and re-encoding, so near-duplicates sit a few bits apart."""
    grey = np.asarray(image.convert("L").resize((size + 1, size), Image.Resampling.LANCZOS), dtype=np.int16)
    bits = (grey[:, 1:] > grey[:, :-1]).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return value


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


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
