"""Signed, expiring output URLs: presigned by S3 where the blob store can, else an HMAC-signed Ember URL."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote, urlencode

from ember.blobs import BlobStore

OUTPUTS_PATH = "/outputs"


def url_key(token_key: bytes) -> bytes:
    """A key of its own for URL signatures, derived from the server secret (never the token key itself)."""
    return hmac.new(token_key, b"ember output urls", hashlib.sha256).digest()


def signature(key: bytes, blob_key: str, expires: int) -> str:
    return hmac.new(key, f"{blob_key}\n{expires}".encode(), hashlib.sha256).hexdigest()


def output_url(
    blobs: BlobStore, base_url: str, blob_key: str, ttl_s: int, key: bytes, now: float | None = None
) -> str:
    presigned = blobs.presigned_url(blob_key, ttl_s)
    if presigned is not None:
        return presigned
    expires = int((time.time() if now is None else now) + ttl_s)
    query = urlencode({"expires": expires, "signature": signature(key, blob_key, expires)})
    return f"{base_url}{OUTPUTS_PATH}/{quote(blob_key)}?{query}"


def valid_signature(key: bytes, blob_key: str, expires: int, given: str, now: float | None = None) -> bool:
    """True for an unaltered URL that has not expired yet."""
    if expires < (time.time() if now is None else now):
        return False
    # compare_digest raises on non-ASCII str: such a signature is simply wrong.
    return given.isascii() and hmac.compare_digest(signature(key, blob_key, expires), given)
