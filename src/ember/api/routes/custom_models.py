"""`/v3/custom-models`: the Firefly listing of the custom models a caller may use."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from ember.api.conversions import custom_model_item
from ember.api.deps import BaseUrlDep, PrincipalDep, RuntimeDep, SessionDep
from ember.api.errors import validation_error
from ember.api.schemas import CustomModelList, ErrorBody, Link, ListingLinks
from ember.store.custom_models import ListingFilter, SortKey, list_models

router = APIRouter(prefix="/v3/custom-models", tags=["custom models"])

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
MAX_START = 1_000_000_000
SortBy = Literal["assetName", "-assetName", "createdDate", "-createdDate", "modifiedDate", "-modifiedDate"]
DIGITS = r"^[0-9]+$"
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {status: {"model": ErrorBody} for status in (401, 403, 422, 429)}


def _page_numbers(start: str | None, limit: str | None) -> tuple[int, int]:
    if limit is not None and start is None:
        raise validation_error(["query", "start"], "Field required when limit is given", "missing")
    start_number = int(start) if start is not None else 0
    if start_number > MAX_START:
        raise validation_error(
            ["query", "start"],
            f"Input should be less than or equal to {MAX_START}",
            "less_than_equal",
            {"le": MAX_START},
        )
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
    start: Annotated[str | None, Query(pattern=DIGITS, description="Offset: a string of digits.")] = None,
    limit: Annotated[str | None, Query(pattern=DIGITS, description="Page size 1–50; needs start.")] = None,
    sort_by: Annotated[SortBy, Query(alias="sortBy")] = "modifiedDate",
    published_state: Annotated[ListingFilter, Query(alias="publishedState")] = ListingFilter.published,
) -> JSONResponse:
    start_number, limit_number = _page_numbers(start, limit)
    descending = sort_by.startswith("-")
    page = list_models(
        session,
        principal.viewer,
        published_state,
        SortKey(sort_by.lstrip("-")),
        descending,
        start_number,
        limit_number,
    )

    def link(rel: str, page_start: int) -> Link:
        query = urlencode(
            {"start": page_start, "limit": limit_number, "sortBy": sort_by, "publishedState": published_state.value}
        )
        return Link(href=f"{base_url}/v3/custom-models?{query}", rel=rel, templated=False)

    next_start = start_number + limit_number
    listing = CustomModelList.model_validate(
        {
            "custom_models": [custom_model_item(model, runtime.settings.region) for model in page.models],
            "_links": ListingLinks(
                page=link("page", start_number),
                next=link("next", next_start) if next_start < page.total_count else None,
            ),
            "total_count": page.total_count,
        }
    )
    # Built and validated just above: answering directly skips the framework's second validation pass.
    return JSONResponse(listing.model_dump(mode="json", by_alias=True, exclude_none=True))
