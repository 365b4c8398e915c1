"""Checking an uploaded reference image before it is stored: the engine's image validator
(`ember.engine.images`, PIL only, no torch) and the declared media type. The API reaches the engine's validator
through here, so `ember.api` itself imports nothing of the engine; PIL is imported on the first upload."""

from __future__ import annotations

from ember.media import PIL_FORMATS


class UploadRefused(ValueError):
    """The bytes are not a picture of the declared media type; the message says why, for people."""


def check_upload(data: bytes, mimetype: str) -> None:
    from ember.engine.images import InvalidImage, TooManyPixels, validate_image

    try:
        header = validate_image(data)
    except TooManyPixels as refused:
        raise UploadRefused(str(refused)) from None
    except InvalidImage:
        raise UploadRefused("The body is not a readable image.") from None
    if header.format != PIL_FORMATS[mimetype]:
        raise UploadRefused(f"The body is not {mimetype} (it reads as {header.format}).")
