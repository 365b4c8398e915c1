"""The one table of image media types and the seed range, for every package outside the engine: the API (its
headers, uploads and wire rules), the SDK and CLI, the workers and the custom-model package. It imports nothing.

The engine keeps its own copy (`ember.engine.generate.MIMETYPES`, `MAX_SEED`), since it imports nothing else of
Ember; tests/test_architecture.py keeps the two equal."""

from __future__ import annotations

# media type → (Pillow format, file extension), in the order the API lists them
IMAGE_TYPES: dict[str, tuple[str, str]] = {
    "image/jpeg": ("JPEG", "jpg"),
    "image/png": ("PNG", "png"),
    "image/webp": ("WEBP", "webp"),
}
MIMETYPES: tuple[str, ...] = tuple(IMAGE_TYPES)
DEFAULT_MIMETYPE = "image/jpeg"
PIL_FORMATS: dict[str, str] = {mimetype: fmt for mimetype, (fmt, _) in IMAGE_TYPES.items()}
EXTENSIONS: dict[str, str] = {mimetype: ext for mimetype, (_, ext) in IMAGE_TYPES.items()}
# Pillow format → file suffix, for files Ember names after what they hold
SUFFIXES: dict[str, str] = {fmt: f".{ext}" for fmt, ext in IMAGE_TYPES.values()}
MAX_SEED = 2**31 - 1
