"""`ember clients …`, `ember users …` and `ember config show` on a data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ember.cli import app
from ember.config import Settings
from ember.identity import UnknownClient, authenticate_client
from ember.store.database import open_engine, session_factory

runner = CliRunner()


def _run(*args: str) -> str:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def _create(data_dir: Path, org: str = "acme", *extra: str) -> dict[str, str]:
    created = json.loads(_run("clients", "create", "--org", org, "--json", "--data-dir", str(data_dir), *extra))
    assert isinstance(created, dict)
    return created


def _authenticates(data_dir: Path, client_id: str, secret: str) -> bool:
    engine = open_engine(Settings(data_dir=data_dir).database_url)
    try:
        with session_factory(engine)() as session:
            authenticate_client(session, client_id, secret)
        return True
    except UnknownClient:
        return False
    finally:
        engine.dispose()


def test_clients_create_prints_the_credentials_as_json(tmp_path: Path) -> None:
    created = _create(tmp_path, "acme", "--project", "console")
    assert set(created) == {"client_id", "client_secret", "technical_account_id", "technical_account_email", "org"}
    assert created["org"] == "acme"
    assert _authenticates(tmp_path, created["client_id"], created["client_secret"])


def test_clients_list_shows_clients_but_never_secrets(tmp_path: Path) -> None:
    created = _create(tmp_path)
    listed = json.loads(_run("clients", "list", "--json", "--data-dir", str(tmp_path)))
    assert [row["client_id"] for row in listed] == [created["client_id"]]
    assert created["client_secret"] not in json.dumps(listed)


def test_clients_rotate_prints_a_new_secret_and_voids_the_old_one(tmp_path: Path) -> None:
    created = _create(tmp_path)
    rotated = json.loads(_run("clients", "rotate", created["client_id"], "--json", "--data-dir", str(tmp_path)))
    assert rotated["client_id"] == created["client_id"] and rotated["client_secret"] != created["client_secret"]
    assert not _authenticates(tmp_path, created["client_id"], created["client_secret"])
    assert _authenticates(tmp_path, rotated["client_id"], rotated["client_secret"])


def test_clients_revoke_disables_the_client(tmp_path: Path) -> None:
    created = _create(tmp_path)
    _run("clients", "revoke", created["client_id"], "--data-dir", str(tmp_path))
    assert not _authenticates(tmp_path, created["client_id"], created["client_secret"])
    listed = json.loads(_run("clients", "list", "--json", "--data-dir", str(tmp_path)))
    assert listed[0]["revoked"] is True


def test_revoking_an_unknown_client_fails(tmp_path: Path) -> None:
    result = runner.invoke(app, ["clients", "revoke", "nope", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1


def test_users_create_adds_a_user_once(tmp_path: Path) -> None:
    args = ["users", "create", "--org", "acme", "--email", "ada@example.com", "--password", "pw", "--data-dir"]
    assert json.loads(_run(*args, str(tmp_path)))["email"] == "ada@example.com"
    assert runner.invoke(app, [*args, str(tmp_path)]).exit_code == 1


def test_config_show_prints_effective_settings_with_secrets_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBER_TOKEN_SECRET", "super-secret-value")
    monkeypatch.setenv("EMBER_DATABASE_URL", "postgresql+psycopg://ember:hunter2@db:5432/ember")
    shown = json.loads(_run("config", "show", "--data-dir", str(tmp_path)))
    assert shown["data_dir"] == str(tmp_path.resolve())
    assert shown["token_secret"] == "********"
    assert shown["database_url"] == "postgresql+psycopg://ember:********@db:5432/ember"
    assert "super-secret-value" not in json.dumps(shown) and "hunter2" not in json.dumps(shown)
