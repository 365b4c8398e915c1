"""`/v3/custom-models/{assetId}/images`: upload training images (checked and captioned), list, recaption, delete."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from ember.api.conversions import refused_image_item, training_image_item
from ember.api.deps import RuntimeDep, SessionDep, require_json
from ember.api.errors import ApiError, validation_error
from ember.api.routes.custom_models import MODEL_ERRORS, EditableModel
from ember.api.runtime import Runtime
from ember.api.schemas import CaptionPatch, TrainingImageItem, TrainingImageList
from ember.custom_models.images import add_images, delete_image, find_image, image_findings, list_images, update_caption
from ember.custom_models.lifecycle import ImageNotFound
from ember.store.tables import CustomModel, TrainingImage

router = APIRouter(prefix="/v3/custom-models/{asset_id}/images", tags=["custom models"])
UPLOAD_ERRORS: dict[int | str, dict[str, object]] = {**MODEL_ERRORS, 413: MODEL_ERRORS[409]}
FILES_FIELD = "files"


def _listing(session: Session, runtime: Runtime, model: CustomModel) -> TrainingImageList:
    images = list_images(session, model)
    issues = image_findings(model, images, runtime.settings)
    return TrainingImageList(
        images=[training_image_item(image, issues[image.id]) for image in images], total_count=len(images)
    )


def _upload(
    session: Session, runtime: Runtime, model: CustomModel, files: list[tuple[str, bytes]]
) -> TrainingImageList:
    outcomes = add_images(session, runtime.blobs, runtime.settings, model, files)
    images = list_images(session, model)
    issues = image_findings(model, images, runtime.settings)
    items: list[TrainingImageItem] = [
        training_image_item(outcome.image, issues[outcome.image.id])
        if outcome.image is not None
        else refused_image_item(outcome.filename, outcome.issues)
        for outcome in outcomes
    ]
    return TrainingImageList(images=items, total_count=len(images))


async def _read_files(request: Request) -> list[tuple[str, bytes]]:
    """The `files` parts of a multipart body. The body counts against the request size limit while it
    streams in; a body cut off there has stored nothing yet."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "multipart/form-data":
        raise ApiError(415, "invalid_content_type", "Upload images as multipart/form-data, one `files` part each.")
    form = await request.form()
    try:
        unknown = sorted({key for key in form.keys() if key != FILES_FIELD})
        if unknown:
            message = f"Unknown field; send images as `{FILES_FIELD}`."
            raise validation_error(["body", unknown[0]], message, "extra_forbidden")
        parts: list[Any] = form.getlist(FILES_FIELD)
        if not parts:
            raise validation_error(["body", FILES_FIELD], "At least one image file is required.", "missing")
        files: list[tuple[str, bytes]] = []
        for index, part in enumerate(parts):
            if not isinstance(part, UploadFile):
                raise validation_error(["body", FILES_FIELD, index], "Each part must be a file.", "file_type")
            files.append((part.filename or f"image-{index + 1}", await part.read()))
        return files
    finally:
        await form.close()


@router.post(
    "",
    response_model=TrainingImageList,
    responses=UPLOAD_ERRORS,
    summary="Upload training images; each comes back with its caption and its problems",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {FILES_FIELD: {"type": "array", "items": {"type": "string", "format": "binary"}}},
                        "required": [FILES_FIELD],
                    }
                }
            },
        }
    },
)
async def upload_images(
    request: Request, model: EditableModel, session: SessionDep, runtime: RuntimeDep
) -> TrainingImageList:
    files = await _read_files(request)
    return await run_in_threadpool(_upload, session, runtime, model, files)


@router.get("", response_model=TrainingImageList, responses=MODEL_ERRORS, summary="The model's training images")
def get_images(model: EditableModel, session: SessionDep, runtime: RuntimeDep) -> TrainingImageList:
    return _listing(session, runtime, model)


def _image(session: Session, model: CustomModel, image_id: str) -> TrainingImage:
    try:
        wanted = uuid.UUID(image_id)
    except ValueError:
        raise ImageNotFound(image_id) from None
    return find_image(session, model, wanted)


@router.patch(
    "/{image_id}",
    response_model=TrainingImageItem,
    responses=MODEL_ERRORS,
    dependencies=[Depends(require_json)],
    summary="Edit an image's caption (3–40 words to train; other lengths are reported as errors)",
)
def patch_image(
    image_id: str, body: CaptionPatch, model: EditableModel, session: SessionDep, runtime: RuntimeDep
) -> TrainingImageItem:
    image = update_caption(session, model, _image(session, model, image_id), body.caption)
    issues = image_findings(model, list_images(session, model), runtime.settings)
    return training_image_item(image, issues[image.id])


@router.delete("/{image_id}", status_code=204, responses=MODEL_ERRORS, summary="Delete a training image")
def remove_image(image_id: str, model: EditableModel, session: SessionDep, runtime: RuntimeDep) -> Response:
    delete_image(session, runtime.blobs, model, _image(session, model, image_id))
    return Response(status_code=204)
