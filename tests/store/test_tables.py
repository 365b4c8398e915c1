"""The tables keep their invariants on every backend: UTC times, enumerated states, cascades."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session, sessionmaker

from ember.store.tables import (
    CustomModel,
    CustomModelVersion,
    Job,
    JobKind,
    JobState,
    Organization,
    PrincipalKind,
    Share,
    ShareRole,
    TrainingImage,
    TrainingMode,
)


def _model(session: Session) -> CustomModel:
    org = Organization(name=f"org-{uuid.uuid4().hex[:6]}")
    session.add(org)
    session.flush()
    model = CustomModel(
        org_id=org.id, display_name="Mascot", training_mode=TrainingMode.subject, base_model_name="tiny"
    )
    session.add(model)
    session.flush()
    return model


def test_datetimes_are_stored_and_returned_in_utc(sessions: sessionmaker[Session]) -> None:
    created = datetime(2026, 3, 1, 12, 30, tzinfo=timezone(timedelta(hours=2)))
    with sessions.begin() as session:
        model = _model(session)
        model.created_at = created
        model_id = model.id
    with sessions() as session:
        loaded = session.get_one(CustomModel, model_id)
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert loaded.created_at == created.astimezone(UTC)


def test_naive_datetimes_are_refused(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(StatementError), sessions.begin() as session:
        model = _model(session)
        model.modified_at = datetime(2026, 1, 1)
        session.flush()


def test_the_database_rejects_an_unknown_training_state(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        _model(session)
    with pytest.raises(IntegrityError), sessions.begin() as session:
        session.execute(text("UPDATE custom_models SET training_state = 'baking'"))


def test_new_models_start_as_never_published_drafts_of_version_zero(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        model = _model(session)
    assert (model.published_state.value, model.training_state.value, model.current_version) == (
        "never",
        "draft",
        0,
    )


def test_deleting_a_model_deletes_its_versions_images_and_shares(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        model = _model(session)
        session.add_all(
            [
                CustomModelVersion(model_id=model.id, number=1, lora_blob_key="loras/a.safetensors"),
                TrainingImage(model_id=model.id, blob_key="images/a.png", errors=[{"code": "too_small"}]),
                Share(
                    model_id=model.id,
                    principal_kind=PrincipalKind.user_email,
                    principal_value="a@example.com",
                    role=ShareRole.user,
                ),
            ]
        )
        model_id = model.id
    with sessions.begin() as session:
        session.execute(text("DELETE FROM custom_models"))
    with sessions() as session:
        for table in (CustomModelVersion, TrainingImage, Share):
            assert session.scalar(select(func.count()).select_from(table).where(table.model_id == model_id)) == 0


def test_jobs_keep_their_request_and_result_as_json(sessions: sessionmaker[Session]) -> None:
    job_id = f"urn:ff:jobs:host:{uuid.uuid4()}"
    request = {"prompt": "a red fox", "seeds": [1, 2], "size": {"width": 1024, "height": 1024}}
    with sessions.begin() as session:
        org = Organization(name="jobs-org")
        session.add(org)
        session.flush()
        session.add(Job(id=job_id, org_id=org.id, kind=JobKind.generate, request=request))
    with sessions() as session:
        job = session.get_one(Job, job_id)
        assert (job.request, job.state, job.result, job.attempts) == (request, JobState.pending, None, 0)
