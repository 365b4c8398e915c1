"""A 2xx means saved: a write whose commit the database refuses answers 503 and leaves nothing changed."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from ember.api import create_app
from ember.config import Settings
from ember.store import database

from ..conftest import FakeClock
from .conftest import Caller


@pytest.fixture
def app(settings: Settings, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> FastAPI:
    # A short busy timeout, so a locked database refuses a write in a fraction of a second instead of 10 s.
    monkeypatch.setattr(database, "SQLITE_BUSY_TIMEOUT_MS", 200)
    return create_app(settings, clock=clock)


@pytest.fixture
def write_lock(settings: Settings) -> Iterator[sqlite3.Connection]:
    """Another connection holding SQLite's write lock (reads still go through, as in WAL mode they do)."""
    path = settings.database_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, timeout=5)
    holder.execute("BEGIN IMMEDIATE")
    yield holder
    holder.execute("ROLLBACK")
    holder.close()


def test_a_patch_the_database_cannot_commit_answers_503_and_changes_nothing(
    owner: Caller, request: pytest.FixtureRequest
) -> None:
    asset_id = owner.create(displayName="Before")["assetId"]
    request.getfixturevalue("write_lock")  # taken only now: creating the model above needs the lock
    response = owner.patch(f"/{asset_id}", json={"displayName": "After"})
    assert response.status_code == 503, response.text
    assert response.json()["error_code"] == "service_unavailable"
    assert response.headers["retry-after"] == "1"
    assert owner.get(f"/{asset_id}").json()["displayName"] == "Before"


def test_a_share_revocation_the_database_cannot_commit_answers_503_and_the_share_stays(
    owner: Caller, stranger: Caller, request: pytest.FixtureRequest
) -> None:
    asset_id = owner.create()["assetId"]
    principal = stranger.credentials.technical_account_id
    shared = owner.post(f"/{asset_id}/shares", json={"principal": principal, "role": "editor"})
    assert shared.status_code == 201, shared.text
    request.getfixturevalue("write_lock")  # taken only now: creating the model above needs the lock
    response = owner.delete(f"/{asset_id}/shares/{principal}")
    assert response.status_code == 503, response.text
    assert stranger.get(f"/{asset_id}").status_code == 200


def test_a_patch_of_a_model_another_request_deletes_meanwhile_answers_409(
    owner: Caller, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import create_engine, delete

    from ember.api.routes import custom_models as routes
    from ember.store.tables import CustomModel

    asset_id = owner.create(displayName="Before")["assetId"]
    update_model = routes.update_model

    def deleted_meanwhile(session: object, model: CustomModel, **fields: object) -> None:
        # Another request deletes the model after this one has loaded it and before it commits.
        other = create_engine(settings.database_url)
        with other.begin() as connection:
            connection.execute(delete(CustomModel).where(CustomModel.id == model.id))
        other.dispose()
        update_model(session, model, **fields)  # type: ignore[arg-type]

    monkeypatch.setattr(routes, "update_model", deleted_meanwhile)
    response = owner.patch(f"/{asset_id}", json={"displayName": "After"})
    assert response.status_code == 409, response.text
    assert response.json()["error_code"] == "conflict"
    assert owner.get(f"/{asset_id}").status_code == 404
