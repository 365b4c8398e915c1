"""API fixtures: an app over a fresh SQLite data directory with Ray disabled, a client, tokens."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from ember.api import create_app
from ember.api.runtime import Runtime
from ember.config import Settings
from ember.identity import ClientCredentials, create_client
from ember.store.database import migrate, open_engine, transaction

SCOPE = "openid,AdobeID,firefly_api,ff_apis"


class FakeClock:
    """Stands in for time.time in the rate limiter, so tests move time instead of sleeping."""

    def __init__(self) -> None:
        # Midday of a fixed date: tests that move the clock by minutes never cross a day window by chance.
        self.now = datetime(2026, 6, 15, 12, 0, tzinfo=UTC).timestamp()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Overridden by tests that need other settings (rate limits, body size)."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, settings_overrides: dict[str, object]) -> Settings:
    values: dict[str, object] = {"data_dir": tmp_path / "data", "ray_address": "disabled"}
    values.update(settings_overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    engine = open_engine(settings.database_url)
    migrate(engine)
    engine.dispose()
    return settings


@pytest.fixture
def app(settings: Settings, clock: FakeClock) -> FastAPI:
    return create_app(settings, clock=clock)


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


@pytest.fixture
def http(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def new_client(runtime: Runtime) -> Callable[..., ClientCredentials]:
    def make(org: str = "acme") -> ClientCredentials:
        with transaction(runtime.sessions) as session:
            return create_client(session, org)

    return make


@pytest.fixture
def credentials(new_client: Callable[..., ClientCredentials]) -> ClientCredentials:
    return new_client()


@pytest.fixture
def token_for(http: TestClient) -> Callable[[ClientCredentials], str]:
    """Gets an access token the way a client does, through the token endpoint."""

    def request_token(credentials: ClientCredentials) -> str:
        response = http.post(
            "/ims/token/v3",
            data={
                "grant_type": "client_credentials",
                "client_id": credentials.client_id,
                "client_secret": credentials.client_secret,
                "scope": SCOPE,
            },
        )
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
        assert isinstance(token, str)
        return token

    return request_token


@pytest.fixture
def headers_for(token_for: Callable[[ClientCredentials], str]) -> Callable[[ClientCredentials], dict[str, str]]:
    def make(credentials: ClientCredentials) -> dict[str, str]:
        return {"Authorization": f"Bearer {token_for(credentials)}", "x-api-key": credentials.client_id}

    return make


@pytest.fixture
def headers(
    headers_for: Callable[[ClientCredentials], dict[str, str]], credentials: ClientCredentials
) -> dict[str, str]:
    return headers_for(credentials)
