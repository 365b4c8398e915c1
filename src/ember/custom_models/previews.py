"""Small previews of training images behind signed URLs, so a page can show them in plain `<img>` tags.

A preview URL names the organization, the model and the image, and is signed over all three with its expiry:
it opens one image of one model of one organization, and nothing else. The expiry is rounded to a window, so
the URL of an image stays the same for a while and the browser's cache serves a reloaded page. Previews are
made when asked for (a few milliseconds each) and cached by the browser, not stored: nothing to delete when an
image or a model goes.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import time
import uuid
from urllib.parse import urlencode

from PIL import Image

PREVIEW_SIDE = 256  # the longest side of a preview, in pixels
PREVIEW_QUALITY = 80
PREVIEW_MEDIA_TYPE = "image/webp"
# A URL stays the same for one window and is valid for one more: a reload within the hour hits the cache.
PREVIEW_WINDOW_S = 3600


def preview_key(token_key: bytes) -> bytes:
    """A key of its own for preview signatures, derived from the server secret."""
    return hmac.new(token_key, b"ember training image previews", hashlib.sha256).digest()


def signature(key: bytes, org_id: uuid.UUID, model_id: uuid.UUID, image_id: uuid.UUID, expires: int) -> str:
    message = f"{org_id}\n{model_id}\n{image_id}\n{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def preview_expiry(now: float | None = None) -> int:
    current = int(time.time() if now is None else now)
    return (current // PREVIEW_WINDOW_S + 2) * PREVIEW_WINDOW_S


def preview_url(
    key: bytes,
    base_url: str,
    asset_id: str,
    org_id: uuid.UUID,
    model_id: uuid.UUID,
    image_id: uuid.UUID,
    now: float | None = None,
) -> str:
    expires = preview_expiry(now)
    query = urlencode(
        {"org": str(org_id), "expires": expires, "signature": signature(key, org_id, model_id, image_id, expires)}
    )
    return f"{base_url}/v3/custom-models/{asset_id}/images/{image_id}/preview?{query}"


def valid_signature(
    key: bytes,
    org_id: uuid.UUID,
    model_id: uuid.UUID,
    image_id: uuid.UUID,
    expires: int,
    given: str,
    now: float | None = None,
) -> bool:
    """True for an unaltered URL that has not expired yet."""
    if expires < (time.time() if now is None else now):
        return False
    # compare_digest raises on non-ASCII str: such a signature is simply wrong.
    return given.isascii() and hmac.compare_digest(signature(key, org_id, model_id, image_id, expires), given)


class NoPreview(ValueError):
    """The stored file no longer decodes as a picture."""


def render_preview(data: bytes) -> bytes:
    """The picture at most PREVIEW_SIDE on its longest side, upright (EXIF orientation applied), as WebP."""
    from ember.engine.images import InvalidImage, open_rgb

    try:
        picture = open_rgb(data)
    except InvalidImage as error:
        raise NoPreview(str(error)) from error
    picture.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="WEBP", quality=PREVIEW_QUALITY)
    return out.getvalue()
