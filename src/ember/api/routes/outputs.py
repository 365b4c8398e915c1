"""`GET /outputs/{key}`: generated images behind HMAC-signed URLs that expire (403 once expired or altered)."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query, Response

from ember.api.deps import RuntimeDep
from ember.api.errors import ApiError
from ember.api.links import OUTPUTS_PATH, url_key, valid_signature
from ember.api.schemas import ErrorBody
from ember.blobs import BlobNotFound, InvalidBlobKey

router = APIRouter(tags=["outputs"])


def _refused() -> ApiError:
    return ApiError(403, "access_error", "The URL has expired or is not valid.")


@router.get(
    OUTPUTS_PATH + "/{blob_key:path}",
    summary="A generated image (signed URL)",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}, "image/jpeg": {}, "image/webp": {}}},
        403: {"model": ErrorBody, "description": "The URL has expired or its signature does not match."},
        404: {"model": ErrorBody, "description": "The image no longer exists."},
    },
)
def get_output(
    blob_key: str,
    runtime: RuntimeDep,
    expires: Annotated[int | None, Query()] = None,
    signature: Annotated[str | None, Query()] = None,
) -> Response:
    key = url_key(runtime.token_key)
    if expires is None or signature is None or not valid_signature(key, blob_key, expires, signature):
        raise _refused()
    try:
        data = runtime.blobs.get(blob_key)
    except (BlobNotFound, InvalidBlobKey):
        raise ApiError(404, "not_found", "The image no longer exists.") from None
    media_type = mimetypes.guess_type(blob_key)[0] or "application/octet-stream"
    return Response(data, media_type=media_type, headers={"cache-control": "private, max-age=3600"})
