"""`POST /v2/storage/image`: a raw JPEG, PNG or WebP body (≤ 15 MB) becomes an upload usable for 7 days."""

from __future__ import annotations

import uuid
from datetime import timedelta

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from ember.api.deps import PrincipalDep, RuntimeDep
from ember.api.errors import ApiError
from ember.api.runtime import Runtime
from ember.api.schemas import ErrorBody
from ember.api.wire import UploadedImage, UploadResponse
from ember.media import IMAGE_TYPES
from ember.store.database import transaction
from ember.store.tables import Upload, utcnow
from ember.uploads import UploadRefused, check_upload

router = APIRouter(tags=["storage"])
MAX_UPLOAD_BYTES = 15 * 1024 * 1024
UPLOAD_LIFETIME = timedelta(days=7)
FORMATS = IMAGE_TYPES
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (400, 401, 403, 413, 415, 429)
}


def _check_image(data: bytes, mimetype: str) -> None:
    try:
        check_upload(data, mimetype)
    except UploadRefused as refused:
        raise ApiError(400, "bad_request", str(refused)) from None


def _store(runtime: Runtime, principal_org: uuid.UUID, data: bytes, mimetype: str) -> uuid.UUID:
    _check_image(data, mimetype)
    upload_id = uuid.uuid4()
    key = f"uploads/{upload_id.hex}.{FORMATS[mimetype][1]}"
    runtime.blobs.put(key, data, mimetype)
    now = utcnow()
    with transaction(runtime.sessions) as session:
        session.add(
            Upload(
                id=upload_id,
                org_id=principal_org,
                blob_key=key,
                mimetype=mimetype,
                size=len(data),
                expires_at=now + UPLOAD_LIFETIME,
                created_at=now,
            )
        )
    return upload_id


@router.post(
    "/v2/storage/image",
    response_model=UploadResponse,
    responses=ERROR_RESPONSES,
    summary="Upload an image for use as a style or structure reference",
    openapi_extra={
        "requestBody": {
            "content": {mimetype: {"schema": {"type": "string", "format": "binary"}} for mimetype in FORMATS},
            "required": True,
        }
    },
)
async def upload_image(request: Request, principal: PrincipalDep, runtime: RuntimeDep) -> UploadResponse:
    mimetype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if mimetype not in FORMATS:
        raise ApiError(415, "invalid_content_type", "The body must be image/jpeg, image/png or image/webp.")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "request_too_large", "Images up to 15 MB can be uploaded.")
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ApiError(413, "request_too_large", "Images up to 15 MB can be uploaded.")
    if not data:
        raise ApiError(400, "empty_input_body", "The request body is empty.")
    upload_id = await run_in_threadpool(_store, runtime, principal.org_id, bytes(data), mimetype)
    return UploadResponse(images=[UploadedImage(id=str(upload_id))])
