"""Queries over custom models: what a caller may see, filtered, sorted and paged."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from sqlalchemy import ColumnElement, Select, SQLColumnExpression, exists, func, or_, select
from sqlalchemy.orm import Session

from ember.store.tables import CustomModel, PublishedState, Share, TrainingState


class ListingFilter(StrEnum):
    """The `publishedState` values of the listing; see docs/api.md for what each selects."""

    all = "all"
    ready = "ready"
    published = "published"
    unpublished = "unpublished"
    queued = "queued"
    training = "training"
    failed = "failed"
    cancelled = "cancelled"

    @classmethod
    def _missing_(cls, value: object) -> ListingFilter | None:
        # Firefly spells it both ways on input; Ember always emits "cancelled".
        return cls.cancelled if value == "canceled" else None


class SortKey(StrEnum):
    assetName = "assetName"
    createdDate = "createdDate"
    modifiedDate = "modifiedDate"


@dataclass(frozen=True)
class Viewer:
    """Who is asking: an organization plus the principal names models can be shared with."""

    org_id: uuid.UUID
    principal_names: Collection[str]


@dataclass(frozen=True)
class ModelPage:
    models: Sequence[CustomModel]
    total_count: int


def visible_to(viewer: Viewer) -> ColumnElement[bool]:
    """Models of the viewer's organization, or shared with one of its principal names."""
    shared = exists().where(Share.model_id == CustomModel.id, Share.principal_value.in_(list(viewer.principal_names)))
    if not viewer.principal_names:
        return CustomModel.org_id == viewer.org_id
    return or_(CustomModel.org_id == viewer.org_id, shared)


def _selects(selection: ListingFilter) -> ColumnElement[bool] | None:
    if selection is ListingFilter.all:
        return None
    if selection is ListingFilter.published:
        return CustomModel.published_state == PublishedState.published
    if selection is ListingFilter.unpublished:
        return CustomModel.published_state != PublishedState.published
    return CustomModel.training_state == TrainingState(selection.value)


# Names sort case-insensitively first so SQLite and PostgreSQL (whatever its collation) agree on the order.
_SORT_COLUMNS: dict[SortKey, tuple[SQLColumnExpression[Any], ...]] = {
    SortKey.assetName: (func.lower(CustomModel.display_name), CustomModel.display_name),
    SortKey.createdDate: (CustomModel.created_at,),
    SortKey.modifiedDate: (CustomModel.modified_at,),
}


def list_models(
    session: Session,
    viewer: Viewer,
    selection: ListingFilter,
    sort_key: SortKey,
    descending: bool,
    start: int,
    limit: int,
    project: uuid.UUID | Literal["none"] | None = None,
) -> ModelPage:
    """One page of the models `viewer` may see (in `project`, or in none for "none"); the id breaks ties so
    pages never overlap."""
    conditions = [visible_to(viewer)]
    if project == "none":
        conditions.append(CustomModel.project_id.is_(None))
    elif project is not None:
        conditions.append(CustomModel.project_id == project)
    selected = _selects(selection)
    if selected is not None:
        conditions.append(selected)
    columns = (*_SORT_COLUMNS[sort_key], CustomModel.id)
    order = [column.desc() if descending else column.asc() for column in columns]
    # The total rides along as a window count, saving a second query on every page that has rows.
    query: Select[CustomModel, int] = (
        select(CustomModel, func.count().over().label("total"))
        .where(*conditions)
        .order_by(*order)
        .offset(start)
        .limit(limit)
    )
    rows = session.execute(query).all()
    if rows:
        return ModelPage(models=[row[0] for row in rows], total_count=int(rows[0][1]))
    total = session.scalar(select(func.count()).select_from(CustomModel).where(*conditions)) or 0
    return ModelPage(models=[], total_count=total)
