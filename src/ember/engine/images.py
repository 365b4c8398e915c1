"""The one image validator: every picture Ember decodes (uploads, training images, references) passes here.

PIL only, no torch: the control plane checks uploads with it and the engine decodes with it, so both refuse
the same pictures. The pixel limit is read from the header before any pixel is decoded: a small file can
declare a huge canvas (a 20 KB 1-bit PNG of 13000×13000 decodes to gigabytes).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

MAX_IMAGE_PIXELS = 8192 * 8192
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP")


class InvalidImage(ValueError):
    """Bytes that are not a picture Ember will decode (unreadable, damaged, or of a refused format)."""


class UnreadableImage(InvalidImage):
    """The bytes are not an image in any format PIL knows."""


class UnsupportedFormat(InvalidImage):
    """A readable image in a format Ember does not accept."""


class TooManyPixels(InvalidImage):
    """The image declares more pixels than the limit: refused before decoding (a decompression bomb)."""


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares, read without decoding its pixels."""

    format: str
    width: int
    height: int


def read_header(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageHeader:
    """The declared format and size; raises TooManyPixels over `max_pixels`, UnreadableImage for non-images."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                header = ImageHeader(str(image.format or ""), image.width, image.height)
    except UnidentifiedImageError:
        raise UnreadableImage("The file is not a readable image.") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise TooManyPixels("The image declares too many pixels to decode safely.") from None
    except Exception as error:  # PIL raises many types for broken headers
        raise InvalidImage(f"The image file is damaged and cannot be read ({error}).") from error
    if header.width * header.height > max_pixels:
        raise TooManyPixels(
            f"The image declares {header.width}×{header.height} pixels, over the limit of {max_pixels}."
        )
    return header


def validate_image(
    data: bytes, formats: tuple[str, ...] = ACCEPTED_FORMATS, max_pixels: int = MAX_IMAGE_PIXELS
) -> ImageHeader:
    """The header checks, the accepted formats and PIL's integrity check, without decoding the pixels: what a
    stored upload must pass (it is decoded later, by `open_image`, wherever it is used)."""
    header = read_header(data, max_pixels)
    if header.format not in formats:
        raise UnsupportedFormat(f"{header.format or 'This'} images are not accepted.")
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except Exception as error:  # PIL raises many types for broken files
        raise InvalidImage(f"The image file is damaged and cannot be read ({error}).") from error
    return header


def open_image(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """Decode with EXIF orientation applied, after the header check; raises InvalidImage for anything bad."""
    read_header(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            image.load()
            return ImageOps.exif_transpose(image)
    except Exception as error:  # PIL raises many types for broken pixel data
        raise InvalidImage(f"The image file is damaged and cannot be decoded ({error}).") from error


def open_rgb(data: bytes, max_pixels: int = MAX_IMAGE_PIXELS) -> Image.Image:
    """`open_image` converted to RGB, as the pipelines take it."""
    return open_image(data, max_pixels).convert("RGB")
