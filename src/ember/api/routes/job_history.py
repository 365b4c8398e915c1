"""`GET /v3/jobs`: the organization's jobs, newest first, each as its status body plus what it was for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from ember.api.conversions import ASSET_ID_PATTERN, InvalidAssetId, asset_id, model_id_from_asset_id
from ember.api.deps import BaseUrlDep, PrincipalDep, RuntimeDep, SessionDep
from ember.api.errors import validation_error
from ember.api.routes.custom_models import LIMIT_PATTERN, START_PATTERN, page_offset
from ember.api.routes.jobs import ERROR_RESPONSES, url_signer
from ember.api.views import job_status
from ember.store.tables import CustomModel, Job, JobKind

router = APIRouter(tags=["jobs"])
DIGITS = r"^[0-9]+$"
MAX_LIMIT = 50


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment is not None else None


@router.get("/v3/jobs", responses=ERROR_RESPONSES, summary="The organization's jobs, newest first")
def list_jobs(
    principal: PrincipalDep,
    session: SessionDep,
    runtime: RuntimeDep,
    base_url: BaseUrlDep,
    start: Annotated[
        str, Query(pattern=DIGITS, json_schema_extra=START_PATTERN, description="Offset: 0–10^9, as digits.")
    ] = "0",
    limit: Annotated[str, Query(pattern=DIGITS, json_schema_extra=LIMIT_PATTERN, description="Page size 1–50.")] = "20",
    kind: Annotated[Literal["generate", "train"] | None, Query()] = None,
    custom_model_id: Annotated[
        str | None, Query(alias="customModelId", json_schema_extra={"pattern": ASSET_ID_PATTERN})
    ] = None,
) -> JSONResponse:
    start_number, limit_number = page_offset(start), int(limit)
    if not 1 <= limit_number <= MAX_LIMIT:
        raise validation_error(["query", "limit"], f"Input should be between 1 and {MAX_LIMIT}", "value_error")
    conditions: list[Any] = [Job.org_id == principal.org_id]
    if kind is not None:
        conditions.append(Job.kind == JobKind(kind))
    if custom_model_id is not None:
        try:
            conditions.append(Job.custom_model_id == model_id_from_asset_id(custom_model_id))
        except InvalidAssetId:
            raise validation_error(["query", "customModelId"], "Not a custom model asset id", "value_error") from None
    total = session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0
    rows = session.scalars(
        select(Job).where(*conditions).order_by(Job.created_at.desc(), Job.id).offset(start_number).limit(limit_number)
    ).all()
    model_ids = {job.custom_model_id for job in rows if job.custom_model_id is not None}
    names: dict[uuid.UUID, str] = {}
    if model_ids:
        query = select(CustomModel.id, CustomModel.display_name).where(CustomModel.id.in_(model_ids))
        names = {model_id: name for model_id, name in session.execute(query)}
    sign = url_signer(runtime, base_url)
    region = runtime.settings.region
    jobs = []
    for job in rows:
        item = job_status(job, sign).model_dump(mode="json", exclude_none=True)
        item.update(
            {
                "kind": job.kind.value,
                "prompt": job.request.get("prompt") or job.request.get("samplePrompt") or "",
                "createdDate": _iso(job.created_at),
                "finishedDate": _iso(job.finished_at),
            }
        )
        if job.custom_model_id is not None:
            item["customModelId"] = asset_id(job.custom_model_id, region)
            if job.custom_model_id in names:
                item["customModelName"] = names[job.custom_model_id]
        jobs.append(item)
    return JSONResponse({"jobs": jobs, "total_count": total})
