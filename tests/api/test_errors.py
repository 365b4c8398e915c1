"""Every failure answers with a Firefly-style error body, never a framework default or a stack trace."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from ember.api.deps import require_json


class Echo(BaseModel):
    contentClass: str  # noqa: N815 - the wire name


class Boom(Exception):
    """Raised by a test route to stand for any unexpected failure."""


@pytest.fixture
def routes(app: FastAPI) -> FastAPI:
    """The app plus two routes that exist only in these tests: a JSON body route and a crashing one."""

    @app.post("/v3/test-echo", dependencies=[Depends(require_json)])
    def echo(body: Echo) -> dict[str, str]:
        return {"contentClass": body.contentClass}

    @app.get("/v3/test-crash")
    def crash() -> None:
        raise Boom("secret internals at /srv/ember/db.py line 12")

    return app


@pytest.fixture
def test_http(routes: FastAPI) -> Iterator[TestClient]:
    with TestClient(routes, raise_server_exceptions=False) as client:
        yield client


def test_an_unknown_route_is_not_found(http: TestClient) -> None:
    response = http.get("/v3/nothing-here")
    assert response.status_code == 404
    assert response.json() == {"error_code": "not_found", "message": "The requested resource was not found."}


def test_an_unsupported_method_is_method_not_allowed(http: TestClient) -> None:
    response = http.delete("/v3/custom-models")
    assert response.status_code == 405
    assert response.json()["error_code"] == "method_not_allowed"


@pytest.mark.parametrize("settings_overrides", [{"max_request_bytes": 100}])
def test_a_declared_oversized_body_is_413_before_reading_it(http: TestClient) -> None:
    response = http.post(
        "/ims/token/v3", content=b"x" * 101, headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert response.json()["error_code"] == "request_too_large"


@pytest.mark.parametrize("settings_overrides", [{"max_request_bytes": 100}])
def test_a_streamed_body_growing_past_the_limit_is_413(http: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b"grant_type=" + b"x" * 20

    response = http.post(
        "/ims/token/v3", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 413
    assert response.json()["error_code"] == "request_too_large"


def test_a_wrong_content_type_is_415(test_http: TestClient, headers: dict[str, str]) -> None:
    response = test_http.post(
        "/v3/test-echo", content=b'{"contentClass": "photo"}', headers={**headers, "content-type": "text/plain"}
    )
    assert response.status_code == 415
    assert response.json()["error_code"] == "invalid_content_type"


def test_malformed_json_is_bad_request(test_http: TestClient, headers: dict[str, str]) -> None:
    response = test_http.post(
        "/v3/test-echo", content=b'{"contentClass": ', headers={**headers, "content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error_code"] == "bad_request"


def test_an_empty_body_is_empty_input_body(test_http: TestClient, headers: dict[str, str]) -> None:
    response = test_http.post("/v3/test-echo", headers={**headers, "content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error_code"] == "empty_input_body"


def test_a_bad_field_is_a_validation_error_with_its_location(test_http: TestClient, headers: dict[str, str]) -> None:
    response = test_http.post("/v3/test-echo", json={"contentClass": 7}, headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "validation_error"
    [error] = body["validation_errors"]
    assert error["loc"] == ["body", "contentClass"]
    assert error["msg"] and error["type"] == "string_type"
    assert "input" not in error


def test_an_unexpected_exception_is_a_runtime_error_without_internals(
    test_http: TestClient, headers: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="ember.api")
    response = test_http.get("/v3/test-crash", headers={**headers, "x-request-id": "crash-1"})
    assert response.status_code == 500
    assert response.json() == {"error_code": "runtime_error", "message": "An internal error occurred."}
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"] == "crash-1"
    assert any(record.exc_info and "secret internals" in str(record.exc_info[1]) for record in caplog.records)
