"""`/v3/custom-models/{assetId}/shares`: who outside the owning organization may use or edit a model."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response

from ember.api.conversions import share_item
from ember.api.deps import SessionDep, require_json
from ember.api.routes.custom_models import MODEL_ERRORS, EditableModel, OwnedModel
from ember.api.schemas import ShareCreate, ShareItem, ShareList
from ember.custom_models.shares import add_share, list_shares, remove_share

router = APIRouter(prefix="/v3/custom-models/{asset_id}/shares", tags=["custom models"])


@router.get("", response_model=ShareList, responses=MODEL_ERRORS, summary="The model's shares")
def get_shares(model: EditableModel, session: SessionDep) -> ShareList:
    return ShareList(shares=[share_item(share) for share in list_shares(session, model)])


@router.post(
    "",
    status_code=201,
    response_model=ShareItem,
    responses={**MODEL_ERRORS, 200: {"model": ShareItem, "description": "The role of an existing share changed"}},
    dependencies=[Depends(require_json)],
    summary="Share with a technical account (id or email) or a user (email), as user or editor",
)
def post_share(body: ShareCreate, model: OwnedModel, session: SessionDep) -> JSONResponse:
    share, created = add_share(session, model, body.principal, body.role)
    return JSONResponse(share_item(share).model_dump(mode="json", by_alias=True), status_code=201 if created else 200)


@router.delete("/{principal}", status_code=204, responses=MODEL_ERRORS, summary="Stop sharing with a principal")
def delete_share(principal: str, model: OwnedModel, session: SessionDep) -> Response:
    remove_share(session, model, principal)
    return Response(status_code=204)
