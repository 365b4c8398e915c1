"""Organizations, API clients and users in the store: hashed secrets, rotation and revocation."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ember.identity import (
    UnknownClient,
    UserExists,
    authenticate_client,
    create_client,
    create_user,
    list_clients,
    revoke_client,
    rotate_client,
)
from ember.store.tables import ApiClient, Organization, Project


def test_creating_a_client_creates_its_missing_organization_and_project(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        credentials = create_client(session, "acme", "console")
    with sessions() as session:
        org = session.scalar(select(Organization).where(Organization.name == "acme"))
        assert org is not None
        project = session.scalar(select(Project).where(Project.org_id == org.id))
        assert project is not None and project.name == "console"
        assert credentials.org == "acme"


def test_a_second_client_joins_the_existing_organization(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        first = create_client(session, "acme")
        second = create_client(session, "acme")
    with sessions() as session:
        assert len(session.scalars(select(Organization)).all()) == 1
        assert {client.client_id for client in list_clients(session, "acme")} == {first.client_id, second.client_id}


def test_the_client_secret_is_stored_only_as_an_argon2_hash(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        credentials = create_client(session, "acme")
    with sessions() as session:
        stored = session.scalars(select(ApiClient)).one()
        assert credentials.client_secret not in stored.secret_hash
        assert stored.secret_hash.startswith("$argon2id$")


def test_a_client_authenticates_with_its_secret_only(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        credentials = create_client(session, "acme")
    with sessions() as session:
        assert authenticate_client(session, credentials.client_id, credentials.client_secret).client_id == (
            credentials.client_id
        )
        with pytest.raises(UnknownClient):
            authenticate_client(session, credentials.client_id, credentials.client_secret + "x")
        with pytest.raises(UnknownClient):
            authenticate_client(session, "no-such-client", credentials.client_secret)


def test_rotation_replaces_the_secret_and_bumps_the_token_generation(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        old = create_client(session, "acme")
    with sessions.begin() as session:
        new = rotate_client(session, old.client_id)
    with sessions() as session:
        with pytest.raises(UnknownClient):
            authenticate_client(session, old.client_id, old.client_secret)
        client = authenticate_client(session, new.client_id, new.client_secret)
        assert (new.client_id, client.token_generation) == (old.client_id, 2)


def test_a_revoked_client_cannot_authenticate_or_be_rotated(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        credentials = create_client(session, "acme")
    with sessions.begin() as session:
        revoke_client(session, credentials.client_id)
    with sessions() as session:
        with pytest.raises(UnknownClient):
            authenticate_client(session, credentials.client_id, credentials.client_secret)
        with pytest.raises(UnknownClient):
            rotate_client(session, credentials.client_id)


def test_user_emails_are_unique_regardless_of_case(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        user = create_user(session, "acme", "Ada@Example.com", "correct horse")
        assert user.email == "ada@example.com" and user.password_hash.startswith("$argon2id$")
    with pytest.raises(UserExists), sessions.begin() as session:
        create_user(session, "acme", "ada@example.COM", "another")
