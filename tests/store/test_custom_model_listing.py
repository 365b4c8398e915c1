"""Listing queries: tenant scoping, shares, filters, sorting and paging, on every backend."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from ember.store.custom_models import ListingFilter, SortKey, Viewer, list_models
from ember.store.tables import (
    CustomModel,
    Organization,
    PrincipalKind,
    PublishedState,
    Share,
    ShareRole,
    TrainingMode,
    TrainingState,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _org(session: Session, name: str) -> uuid.UUID:
    org = Organization(name=name)
    session.add(org)
    session.flush()
    return org.id


def _add_model(
    session: Session,
    org_id: uuid.UUID,
    name: str,
    minutes: int = 0,
    published: PublishedState = PublishedState.published,
    training: TrainingState = TrainingState.ready,
) -> uuid.UUID:
    model = CustomModel(
        org_id=org_id,
        display_name=name,
        training_mode=TrainingMode.style,
        base_model_name="tiny",
        published_state=published,
        training_state=training,
        created_at=T0 + timedelta(minutes=minutes),
        modified_at=T0 + timedelta(minutes=minutes),
    )
    session.add(model)
    session.flush()
    return model.id


def _names(session: Session, viewer: Viewer, **options: object) -> list[str]:
    arguments: dict[str, object] = {
        "selection": ListingFilter.all,
        "sort_key": SortKey.createdDate,
        "descending": False,
        "start": 0,
        "limit": 50,
    }
    arguments.update(options)
    page = list_models(session, viewer, **arguments)  # type: ignore[arg-type]
    return [model.display_name for model in page.models]


def test_a_viewer_sees_only_its_own_organizations_models(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        mine, theirs = _org(session, "mine"), _org(session, "theirs")
        _add_model(session, mine, "ours")
        _add_model(session, theirs, "not ours")
        assert _names(session, Viewer(mine, ())) == ["ours"]


@pytest.mark.parametrize("principal_kind", [PrincipalKind.technical_account_id, PrincipalKind.technical_account_email])
def test_a_model_shared_with_one_of_the_viewers_names_is_visible(
    sessions: sessionmaker[Session], principal_kind: PrincipalKind
) -> None:
    names = {
        PrincipalKind.technical_account_id: "ABC@techacct.ember.local",
        PrincipalKind.technical_account_email: "abc@techacct.ember.local",
    }
    with sessions.begin() as session:
        mine, theirs = _org(session, "mine"), _org(session, "theirs")
        shared = _add_model(session, theirs, "shared")
        _add_model(session, theirs, "private")
        session.add(
            Share(
                model_id=shared,
                principal_kind=principal_kind,
                principal_value=names[principal_kind],
                role=ShareRole.user,
            )
        )
        session.flush()
        assert _names(session, Viewer(mine, tuple(names.values()))) == ["shared"]


def test_a_share_with_someone_else_does_not_make_a_model_visible(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        mine, theirs = _org(session, "mine"), _org(session, "theirs")
        model = _add_model(session, theirs, "shared elsewhere")
        session.add(
            Share(
                model_id=model,
                principal_kind=PrincipalKind.user_email,
                principal_value="someone@example.com",
                role=ShareRole.editor,
            )
        )
        session.flush()
        assert _names(session, Viewer(mine, ("me@example.com",))) == []


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        (ListingFilter.all, {"draft", "published ready", "unpublished ready", "queued", "training", "failed", "gone"}),
        (ListingFilter.published, {"published ready"}),
        (ListingFilter.unpublished, {"draft", "unpublished ready", "queued", "training", "failed", "gone"}),
        (ListingFilter.ready, {"published ready", "unpublished ready"}),
        (ListingFilter.queued, {"queued"}),
        (ListingFilter.training, {"training"}),
        (ListingFilter.failed, {"failed"}),
        (ListingFilter.cancelled, {"gone"}),
    ],
)
def test_each_published_state_filter_selects_its_models(
    sessions: sessionmaker[Session], selection: ListingFilter, expected: set[str]
) -> None:
    with sessions.begin() as session:
        org = _org(session, "org")
        never, published, unpublished = PublishedState.never, PublishedState.published, PublishedState.unpublished
        _add_model(session, org, "draft", published=never, training=TrainingState.draft)
        _add_model(session, org, "published ready", published=published, training=TrainingState.ready)
        _add_model(session, org, "unpublished ready", published=unpublished, training=TrainingState.ready)
        _add_model(session, org, "queued", published=never, training=TrainingState.queued)
        _add_model(session, org, "training", published=never, training=TrainingState.training)
        _add_model(session, org, "failed", published=never, training=TrainingState.failed)
        _add_model(session, org, "gone", published=never, training=TrainingState.cancelled)
        assert set(_names(session, Viewer(org, ()), selection=selection)) == expected


@pytest.mark.parametrize("sort_key", list(SortKey))
@pytest.mark.parametrize("descending", [False, True])
def test_sorting_orders_by_the_key_and_reverses_when_descending(
    sessions: sessionmaker[Session], sort_key: SortKey, descending: bool
) -> None:
    with sessions.begin() as session:
        org = _org(session, "org")
        # Names, creation and modification order all differ, so each key gives its own order.
        rows = [("banana", 2, 0), ("Apple", 0, 1), ("cherry", 1, 2)]
        for name, created, modified in rows:
            model_id = _add_model(session, org, name, minutes=created)
            model = session.get_one(CustomModel, model_id)
            model.modified_at = T0 + timedelta(hours=modified)
        session.flush()
        by = {
            SortKey.assetName: lambda row: row[0].lower(),
            SortKey.createdDate: lambda row: row[1],
            SortKey.modifiedDate: lambda row: row[2],
        }[sort_key]
        expected = [row[0] for row in sorted(rows, key=by, reverse=descending)]
        assert _names(session, Viewer(org, ()), sort_key=sort_key, descending=descending) == expected


def test_pages_cover_every_model_once_even_with_equal_sort_values(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        org = _org(session, "org")
        for index in range(7):
            _add_model(session, org, f"model {index}", minutes=0)
        viewer = Viewer(org, ())
        pages = [_names(session, viewer, start=start, limit=3) for start in (0, 3, 6)]
        assert [len(page) for page in pages] == [3, 3, 1]
        assert sorted(name for page in pages for name in page) == [f"model {index}" for index in range(7)]


def test_total_count_counts_all_matching_models_not_just_the_page(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        org = _org(session, "org")
        for index in range(5):
            _add_model(session, org, f"m{index}")
        _add_model(session, org, "draft", published=PublishedState.never, training=TrainingState.draft)
        page = list_models(session, Viewer(org, ()), ListingFilter.published, SortKey.createdDate, False, 4, 2)
        assert (len(page.models), page.total_count) == (1, 5)
