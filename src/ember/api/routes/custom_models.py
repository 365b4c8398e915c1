"""`/v3/custom-models`: the Firefly listing, and the lifecycle of one model (create, edit, delete, train,
publish, weights). Images and shares have routers of their own beside this one."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import JSONResponse, Response

from ember.api.conversions import InvalidAssetId, custom_model_item, model_check_item, model_id_from_asset_id
from ember.api.deps import BaseUrlDep, PrincipalDep, RuntimeDep, SessionDep, require_json
from ember.api.errors import validation_error
from ember.api.routes.jobs import url_signer
from ember.api.routes.webhooks import requested_webhook
from ember.api.runtime import Runtime
from ember.api.schemas import (
    CustomModelCreate,
    CustomModelItem,
    CustomModelList,
    CustomModelPatch,
    ErrorBody,
    Link,
    ListingLinks,
    TrainingOverrides,
)
from ember.api.submit import submit_job
from ember.api.wire import JobAccepted
from ember.custom_models.lifecycle import (
    Access,
    ModelNotFound,
    create_model,
    current_checks,
    current_version,
    delete_model,
    find_model,
    publish,
    unpublish,
    update_model,
    weights,
)
from ember.custom_models.training import start_training
from ember.store.custom_models import ListingFilter, SortKey, list_models
from ember.store.tables import CustomModel


def _model_loader(need: Access) -> Callable[[str, PrincipalDep, SessionDep], CustomModel]:
    def load(asset_id: str, principal: PrincipalDep, session: SessionDep) -> CustomModel:
        try:
            model_id: uuid.UUID = model_id_from_asset_id(asset_id)
        except InvalidAssetId:
            raise ModelNotFound(asset_id) from None
        return find_model(session, principal.viewer, model_id, need)

    return load


def model_item(session: SessionDep, runtime: Runtime, base_url: str, model: CustomModel) -> CustomModelItem:
    """The wire body of one model, with its current version's check."""
    version = current_version(session, model)
    check = model_check_item(version.publish_check if version else None, url_signer(runtime, base_url))
    return custom_model_item(model, runtime.settings.region, check)


UsableModel = Annotated[CustomModel, Depends(_model_loader(Access.use))]
EditableModel = Annotated[CustomModel, Depends(_model_loader(Access.edit))]
OwnedModel = Annotated[CustomModel, Depends(_model_loader(Access.own))]

router = APIRouter(prefix="/v3/custom-models", tags=["custom models"])

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
MAX_START = 1_000_000_000
SortBy = Literal["assetName", "-assetName", "createdDate", "-createdDate", "modifiedDate", "-modifiedDate"]
DIGITS = r"^[0-9]+$"
# The exact ranges, as the OpenAPI document states them (the routes check them with range error types).
START_PATTERN = {"pattern": r"^0*([0-9]{1,9}|1000000000)$"}
LIMIT_PATTERN = {"pattern": r"^0*([1-9]|[1-4][0-9]|50)$"}
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {status: {"model": ErrorBody} for status in (401, 403, 422, 429)}
MODEL_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (401, 403, 404, 409, 415, 422, 429)
}


def page_offset(start: str | None) -> int:
    """A listing's `start` as a number, at most MAX_START (a longer string of digits would overflow the query)."""
    start_number = int(start) if start is not None else 0
    if start_number > MAX_START:
        raise validation_error(
            ["query", "start"],
            f"Input should be less than or equal to {MAX_START}",
            "less_than_equal",
            {"le": MAX_START},
        )
    return start_number


def _page_numbers(start: str | None, limit: str | None) -> tuple[int, int]:
    if limit is not None and start is None:
        raise validation_error(["query", "start"], "Field required when limit is given", "missing")
    start_number = page_offset(start)
    limit_number = int(limit) if limit is not None else DEFAULT_LIMIT
    if limit_number < 1:
        raise validation_error(
            ["query", "limit"], "Input should be greater than or equal to 1", "greater_than_equal", {"ge": 1}
        )
    if limit_number > MAX_LIMIT:
        raise validation_error(
            ["query", "limit"],
            f"Input should be less than or equal to {MAX_LIMIT}",
            "less_than_equal",
            {"le": MAX_LIMIT},
        )
    return start_number, limit_number


PROJECT_FILTER_PATTERN = r"^(none|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$"


def _project_filter(value: str | None) -> uuid.UUID | Literal["none"] | None:
    """The listing's `projectId`: a project id, or `none` for the models in no project (Ember's addition)."""
    if value is None:
        return None
    if value == "none":
        return "none"
    try:
        return uuid.UUID(value)
    except ValueError:
        message = "Input should be a project id or `none`"
        raise validation_error(["query", "projectId"], message, "value_error") from None


@router.get(
    "",
    response_model=CustomModelList,
    response_model_exclude_none=True,
    responses=ERROR_RESPONSES,
    summary="List the custom models the caller may use",
)
def list_custom_models(
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    base_url: BaseUrlDep,
    start: Annotated[
        str | None, Query(pattern=DIGITS, json_schema_extra=START_PATTERN, description="Offset: 0–10^9, as digits.")
    ] = None,
    limit: Annotated[
        str | None, Query(pattern=DIGITS, json_schema_extra=LIMIT_PATTERN, description="Page size 1–50; needs start.")
    ] = None,
    sort_by: Annotated[SortBy, Query(alias="sortBy")] = "modifiedDate",
    published_state: Annotated[ListingFilter, Query(alias="publishedState")] = ListingFilter.published,
    project_id: Annotated[
        str | None,
        Query(
            alias="projectId",
            json_schema_extra={"pattern": PROJECT_FILTER_PATTERN},
            description="Only the models of this project (its id), or `none`: only those in no project.",
        ),
    ] = None,
) -> JSONResponse:
    start_number, limit_number = _page_numbers(start, limit)
    project = _project_filter(project_id)
    descending = sort_by.startswith("-")
    page = list_models(
        session,
        principal.viewer,
        published_state,
        SortKey(sort_by.lstrip("-")),
        descending,
        start_number,
        limit_number,
        project,
    )

    checks = current_checks(session, page.models)
    sign = url_signer(runtime, base_url)

    def link(rel: str, page_start: int) -> Link:
        fields: dict[str, str | int] = {"start": page_start, "limit": limit_number, "sortBy": sort_by}
        fields["publishedState"] = published_state.value
        if project_id is not None:
            fields["projectId"] = project_id
        query = urlencode(fields)
        return Link(href=f"{base_url}/v3/custom-models?{query}", rel=rel, templated=False)

    next_start = start_number + limit_number
    listing = CustomModelList.model_validate(
        {
            "custom_models": [
                custom_model_item(model, runtime.settings.region, model_check_item(checks.get(model.id), sign))
                for model in page.models
            ],
            "_links": ListingLinks(
                page=link("page", start_number),
                next=link("next", next_start) if next_start < page.total_count else None,
            ),
            "total_count": page.total_count,
        }
    )
    # Built and validated just above: answering directly skips the framework's second validation pass.
    return JSONResponse(listing.model_dump(mode="json", by_alias=True, exclude_none=True))


@router.post(
    "",
    status_code=201,
    response_model=CustomModelItem,
    responses=MODEL_ERRORS,
    dependencies=[Depends(require_json)],
    summary="Create a draft custom model",
)
def create_custom_model(
    body: CustomModelCreate, principal: PrincipalDep, session: SessionDep, runtime: RuntimeDep
) -> CustomModelItem:
    model = create_model(
        session,
        runtime.settings,
        principal.viewer,
        principal.client_pk,
        display_name=body.display_name,
        training_mode=body.training_mode,
        concept_id=body.concept_id,
        project_id=body.project_id,
        base_model_name=body.base_model.name if body.base_model else None,
        base_model_version=body.base_model.version if body.base_model else None,
        sample_prompt=body.sample_prompt,
    )
    return custom_model_item(model, runtime.settings.region)


@router.get("/{asset_id}", response_model=CustomModelItem, responses=MODEL_ERRORS, summary="One custom model")
def get_custom_model(
    model: UsableModel, session: SessionDep, runtime: RuntimeDep, base_url: BaseUrlDep
) -> CustomModelItem:
    return model_item(session, runtime, base_url, model)


@router.patch(
    "/{asset_id}",
    response_model=CustomModelItem,
    responses=MODEL_ERRORS,
    dependencies=[Depends(require_json)],
    summary="Change the display name, sample prompt or (while a draft) the concept word",
)
def patch_custom_model(
    body: CustomModelPatch, model: EditableModel, session: SessionDep, runtime: RuntimeDep, base_url: BaseUrlDep
) -> CustomModelItem:
    update_model(
        session, model, display_name=body.display_name, sample_prompt=body.sample_prompt, concept_id=body.concept_id
    )
    return model_item(session, runtime, base_url, model)


@router.delete("/{asset_id}", status_code=204, responses=MODEL_ERRORS, summary="Delete a custom model and its files")
def delete_custom_model(model: OwnedModel, session: SessionDep, runtime: RuntimeDep) -> Response:
    delete_model(session, runtime.blobs, model)
    return Response(status_code=204)


@router.post(
    "/{asset_id}/train-async",
    status_code=202,
    response_model=JobAccepted,
    responses=MODEL_ERRORS,
    dependencies=[Depends(require_json)],
    summary="Check the training rules and start training (returns a job)",
)
def train_custom_model(
    model: EditableModel,
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    base_url: BaseUrlDep,
    body: Annotated[TrainingOverrides | None, Body()] = None,
) -> JobAccepted:
    overrides = body.engine_settings() if body is not None else {}
    webhook = requested_webhook(body, runtime.settings) if body is not None else None
    job = submit_job(
        session,
        runtime,
        lambda: start_training(
            session, runtime.settings, model, org_id=principal.org_id, client_pk=principal.client_pk,
            overrides=overrides,
        ),
        waits_for_engine=False,
        webhook=webhook,
        base_url=base_url,
    )
    return JobAccepted.for_job(job.id, base_url)


@router.post(
    "/{asset_id}/publish", response_model=CustomModelItem, responses=MODEL_ERRORS, summary="Publish a trained model"
)
def publish_custom_model(
    model: EditableModel,
    session: SessionDep,
    runtime: RuntimeDep,
    base_url: BaseUrlDep,
    force: Annotated[
        bool,
        Query(
            description="Publish even though the current version's check after training failed (without it such "
            "a model is a 409 model_check_failed). true or false."
        ),
    ] = False,
) -> CustomModelItem:
    return model_item(session, runtime, base_url, publish(session, model, force=force))


@router.post(
    "/{asset_id}/unpublish", response_model=CustomModelItem, responses=MODEL_ERRORS, summary="Unpublish a model"
)
def unpublish_custom_model(
    model: EditableModel, session: SessionDep, runtime: RuntimeDep, base_url: BaseUrlDep
) -> CustomModelItem:
    return model_item(session, runtime, base_url, unpublish(model))


@router.get(
    "/{asset_id}/weights",
    response_class=Response,
    responses={**MODEL_ERRORS, 200: {"content": {"application/octet-stream": {}}}},
    summary="Download the current version's LoRA as .safetensors",
)
def download_weights(
    model: EditableModel,
    session: SessionDep,
    runtime: RuntimeDep,
    format: Annotated[Literal["diffusers", "kohya"], Query()] = "diffusers",
) -> Response:
    file = weights(session, runtime.blobs, model, kohya=format == "kohya")
    return Response(
        file.data,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{file.filename}"'},
    )
