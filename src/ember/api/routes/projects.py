"""`/v3/projects`: the projects of the caller's organization, which custom models can be saved to."""

from __future__ import annotations

from datetime import UTC

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import Field
from sqlalchemy import select

from ember.api.deps import PrincipalDep, SessionDep, require_json
from ember.api.errors import ApiError
from ember.api.schemas import ErrorBody, StrictWireModel, WireModel
from ember.store.tables import Project, utcnow

router = APIRouter(prefix="/v3/projects", tags=["projects"])
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorBody} for status in (401, 403, 409, 415, 422, 429)
}


class ProjectCreate(StrictWireModel):
    name: str = Field(min_length=1, max_length=200, pattern=r"\S")


class ProjectItem(WireModel):
    id: str
    name: str
    created_date: str = Field(alias="createdDate")


class ProjectList(WireModel):
    projects: list[ProjectItem]
    total_count: int


def _item(project: Project) -> ProjectItem:
    return ProjectItem(
        id=str(project.id), name=project.name, createdDate=project.created_at.astimezone(UTC).isoformat()
    )


@router.get("", response_model=ProjectList, responses=ERROR_RESPONSES, summary="The organization's projects")
def list_projects(principal: PrincipalDep, session: SessionDep) -> ProjectList:
    projects = session.scalars(
        select(Project).where(Project.org_id == principal.org_id).order_by(Project.name, Project.id)
    ).all()
    return ProjectList(projects=[_item(project) for project in projects], total_count=len(projects))


@router.post(
    "",
    status_code=201,
    response_model=ProjectItem,
    responses=ERROR_RESPONSES,
    dependencies=[Depends(require_json)],
    summary="Create a project in the organization",
)
def create_project(body: ProjectCreate, principal: PrincipalDep, session: SessionDep) -> JSONResponse:
    name = body.name.strip()
    taken = session.scalar(select(Project.id).where(Project.org_id == principal.org_id, Project.name == name))
    if taken is not None:
        raise ApiError(409, "project_exists", f"The organization has a project named {name!r} already.")
    project = Project(org_id=principal.org_id, name=name, created_at=utcnow())
    session.add(project)
    session.flush()
    return JSONResponse(_item(project).model_dump(mode="json", by_alias=True), status_code=201)
