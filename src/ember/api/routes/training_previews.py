"""`GET /v3/custom-models/{assetId}/images/{imageId}/preview`: a small WebP of a training image, behind the
signed URL that the image listing gives (`previewUrl`), so a page shows it in an `<img>` without credentials."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from ember.api.conversions import ASSET_ID_PATTERN, InvalidAssetId, model_id_from_asset_id
from ember.api.deps import RuntimeDep, SessionDep
from ember.api.errors import ApiError
from ember.api.schemas import ErrorBody
from ember.blobs import BlobNotFound, InvalidBlobKey
from ember.custom_models.previews import (
    PREVIEW_MEDIA_TYPE,
    NoPreview,
    preview_key,
    render_preview,
    valid_signature,
)
from ember.store.tables import CustomModel, TrainingImage

router = APIRouter(tags=["custom models"])
UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"


def _refused() -> ApiError:
    return ApiError(403, "access_error", "The preview URL has expired or is not valid.")


def _gone() -> ApiError:
    return ApiError(404, "not_found", "The training image no longer exists.")


@router.get(
    "/v3/custom-models/{asset_id}/images/{image_id}/preview",
    summary="A training image's preview, at most 256 px on its longest side (signed URL from the image listing)",
    response_class=Response,
    responses={
        200: {"content": {PREVIEW_MEDIA_TYPE: {}}},
        403: {"model": ErrorBody, "description": "The URL has expired, or it was altered."},
        404: {"model": ErrorBody, "description": "The image no longer exists."},
    },
)
async def training_image_preview(
    asset_id: Annotated[str, Path(json_schema_extra={"pattern": ASSET_ID_PATTERN})],
    image_id: Annotated[str, Path(json_schema_extra={"pattern": UUID_PATTERN})],
    session: SessionDep,
    runtime: RuntimeDep,
    expires: Annotated[int, Query(ge=0, le=2**53)],
    signature: Annotated[str, Query(max_length=128)],
    org: Annotated[uuid.UUID, Query(description="The organization the URL was signed for.")],
) -> Response:
    try:
        model_id = model_id_from_asset_id(asset_id)
        wanted = uuid.UUID(image_id)
    except (InvalidAssetId, ValueError):
        raise _refused() from None
    if not valid_signature(preview_key(runtime.token_key), org, model_id, wanted, expires, signature):
        raise _refused()
    data = await run_in_threadpool(_image_bytes, session, runtime, org, model_id, wanted)
    try:
        preview = await run_in_threadpool(render_preview, data)
    except NoPreview:
        raise _gone() from None
    return Response(preview, media_type=PREVIEW_MEDIA_TYPE, headers={"cache-control": "private, max-age=3600"})


def _image_bytes(
    session: SessionDep, runtime: RuntimeDep, org_id: uuid.UUID, model_id: uuid.UUID, image_id: uuid.UUID
) -> bytes:
    """The stored image, when it is still an image of that model of that organization."""
    blob_key = session.scalar(
        select(TrainingImage.blob_key)
        .join(CustomModel, CustomModel.id == TrainingImage.model_id)
        .where(TrainingImage.id == image_id, CustomModel.id == model_id, CustomModel.org_id == org_id)
    )
    if blob_key is None:
        raise _gone()
    try:
        return runtime.blobs.get(blob_key)
    except (BlobNotFound, InvalidBlobKey):
        raise _gone() from None
