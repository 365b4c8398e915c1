"""The gateway checks on `/v2/*` and `/v3/*`: token, API key, scopes, revocation, rate limits, request ids."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ember.api.request_context import configure_logging
from ember.api.runtime import Runtime
from ember.identity import ClientCredentials, issue_token, revoke_client, rotate_client
from ember.store.database import transaction
from ember.store.tables import ApiClient

LISTING = "/v3/custom-models"


def _client_row(runtime: Runtime, client_id: str) -> ApiClient:
    with runtime.sessions() as session:
        row = session.scalar(select(ApiClient).where(ApiClient.client_id == client_id))
        assert row is not None
        return row


def _error(response_json: dict[str, object]) -> tuple[object, object]:
    return response_json["error_code"], response_json["message"]


def test_a_valid_token_and_api_key_pass(http: TestClient, headers: dict[str, str]) -> None:
    assert http.get(LISTING, headers=headers).status_code == 200


def test_a_missing_token_is_403010(http: TestClient, credentials: ClientCredentials) -> None:
    response = http.get(LISTING, headers={"x-api-key": credentials.client_id})
    assert response.status_code == 403
    assert _error(response.json()) == ("403010", "Oauth token is missing.")


@pytest.mark.parametrize("authorization", ["Bearer not-a-jwt", "Basic abc", "Bearer "])
def test_a_malformed_token_is_401013(http: TestClient, credentials: ClientCredentials, authorization: str) -> None:
    response = http.get(LISTING, headers={"Authorization": authorization, "x-api-key": credentials.client_id})
    assert response.status_code == 401
    assert _error(response.json()) == ("401013", "Oauth token is not valid")


def test_a_token_signed_with_another_key_is_401013(
    http: TestClient, credentials: ClientCredentials, runtime: Runtime
) -> None:
    forged = issue_token(
        _client_row(runtime, credentials.client_id), frozenset({"firefly_api", "ff_apis"}), b"x" * 32, 60
    )
    response = http.get(LISTING, headers={"Authorization": f"Bearer {forged}", "x-api-key": credentials.client_id})
    assert (response.status_code, response.json()["error_code"]) == (401, "401013")


def test_an_expired_token_is_401013(http: TestClient, credentials: ClientCredentials, runtime: Runtime) -> None:
    client = _client_row(runtime, credentials.client_id)
    expired = issue_token(
        client, frozenset({"firefly_api", "ff_apis"}), runtime.token_key, expires_in=60, now=time.time() - 120
    )
    response = http.get(LISTING, headers={"Authorization": f"Bearer {expired}", "x-api-key": credentials.client_id})
    assert (response.status_code, response.json()["error_code"]) == (401, "401013")


def test_a_missing_api_key_is_403000(http: TestClient, headers: dict[str, str]) -> None:
    response = http.get(LISTING, headers={"Authorization": headers["Authorization"]})
    assert response.status_code == 403
    assert _error(response.json()) == ("403000", "Api Key is required")


def test_an_api_key_of_another_client_is_403003(
    http: TestClient, headers: dict[str, str], new_client: Callable[..., ClientCredentials]
) -> None:
    other = new_client()
    response = http.get(LISTING, headers={**headers, "x-api-key": other.client_id})
    assert response.status_code == 403
    assert _error(response.json()) == ("403003", "Api Key is invalid")


def test_a_token_without_the_firefly_scopes_is_an_access_error(
    http: TestClient, credentials: ClientCredentials, runtime: Runtime
) -> None:
    client = _client_row(runtime, credentials.client_id)
    token = issue_token(client, frozenset({"openid", "firefly_api"}), runtime.token_key, 600)
    response = http.get(LISTING, headers={"Authorization": f"Bearer {token}", "x-api-key": credentials.client_id})
    assert response.status_code == 403
    assert response.json()["error_code"] == "access_error"
    assert response.headers["x-access-error"] == "invalid_ims_scope"


def test_revoking_a_client_voids_its_tokens(
    http: TestClient, headers: dict[str, str], credentials: ClientCredentials, runtime: Runtime
) -> None:
    with transaction(runtime.sessions) as session:
        revoke_client(session, credentials.client_id)
    response = http.get(LISTING, headers=headers)
    assert (response.status_code, response.json()["error_code"]) == (401, "401013")


def test_rotating_a_client_voids_old_tokens_and_new_ones_work(
    http: TestClient,
    headers: dict[str, str],
    credentials: ClientCredentials,
    runtime: Runtime,
    headers_for: Callable[[ClientCredentials], dict[str, str]],
) -> None:
    with transaction(runtime.sessions) as session:
        rotated = rotate_client(session, credentials.client_id)
    assert http.get(LISTING, headers=headers).status_code == 401
    assert http.get(LISTING, headers=headers_for(rotated)).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_per_minute": 3, "rate_limit_per_day": 0}])
def test_the_per_minute_limit_answers_429_with_retry_after(http: TestClient, headers: dict[str, str]) -> None:
    statuses = [http.get(LISTING, headers=headers).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = http.get(LISTING, headers=headers)
    assert response.json()["error_code"] == "rate_limited" and response.json()["message"]
    assert 1 <= int(response.headers["retry-after"]) <= 60


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_per_minute": 2, "rate_limit_per_day": 0}])
def test_the_per_minute_limit_resets_in_the_next_minute(http: TestClient, headers: dict[str, str], clock: Any) -> None:
    for _ in range(2):
        http.get(LISTING, headers=headers)
    assert http.get(LISTING, headers=headers).status_code == 429
    clock.advance(60)
    assert http.get(LISTING, headers=headers).status_code == 200


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_per_minute": 0, "rate_limit_per_day": 2}])
def test_the_per_day_limit_holds_across_minutes(http: TestClient, headers: dict[str, str], clock: Any) -> None:
    for _ in range(2):
        assert http.get(LISTING, headers=headers).status_code == 200
        clock.advance(61)
    response = http.get(LISTING, headers=headers)
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 60


@pytest.mark.parametrize("settings_overrides", [{"rate_limit_per_minute": 1, "rate_limit_per_day": 0}])
def test_rate_limits_count_per_organization(
    http: TestClient,
    headers: dict[str, str],
    new_client: Callable[..., ClientCredentials],
    headers_for: Callable[[ClientCredentials], dict[str, str]],
) -> None:
    same_org = headers_for(new_client("acme"))
    other_org = headers_for(new_client("globex"))
    assert http.get(LISTING, headers=headers).status_code == 200
    assert http.get(LISTING, headers=same_org).status_code == 429
    assert http.get(LISTING, headers=other_org).status_code == 200


def test_a_request_id_sent_by_the_caller_is_echoed(http: TestClient) -> None:
    assert http.get("/healthz", headers={"x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"


def test_a_request_id_is_generated_when_absent_and_differs_per_request(http: TestClient) -> None:
    first = http.get("/healthz").headers["x-request-id"]
    second = http.get("/healthz").headers["x-request-id"]
    assert first and second and first != second


def test_error_responses_carry_the_request_id_too(http: TestClient) -> None:
    response = http.get(LISTING, headers={"x-request-id": "req-42"})
    assert (response.status_code, response.headers["x-request-id"]) == (403, "req-42")


def test_log_lines_of_a_request_carry_its_request_id(http: TestClient, capfd: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("info")
        http.get("/healthz", headers={"x-request-id": "trace-me"})
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
    lines = [line for line in capfd.readouterr().err.splitlines() if "GET /healthz" in line]
    assert lines and all("request_id=trace-me" in line for line in lines)
