"""`POST /ims/token/v3`: the IMS client-credentials exchange, its success and every error."""

from __future__ import annotations

import base64

import pytest
from fastapi.testclient import TestClient

from ember.api.runtime import Runtime
from ember.identity import ClientCredentials, decode_token, revoke_client
from ember.store.database import transaction

SCOPE = "openid,AdobeID,firefly_api,ff_apis"


def _form(credentials: ClientCredentials, **changes: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "scope": SCOPE,
    }
    form.update(changes)
    return {key: value for key, value in form.items() if value != "<omit>"}


def test_valid_credentials_get_a_bearer_token_for_a_day(http: TestClient, credentials: ClientCredentials) -> None:
    response = http.post("/ims/token/v3", data=_form(credentials))
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert (body["token_type"], body["expires_in"]) == ("bearer", 86399)
    assert response.headers["cache-control"] == "no-store"


def test_the_token_carries_the_client_its_organization_and_scopes(
    http: TestClient, credentials: ClientCredentials, runtime: Runtime
) -> None:
    token = http.post("/ims/token/v3", data=_form(credentials)).json()["access_token"]
    claims = decode_token(token, runtime.token_key)
    assert claims.client_id == credentials.client_id
    assert {"firefly_api", "ff_apis", "openid", "AdobeID"} == claims.scopes


@pytest.mark.parametrize("settings_overrides", [{"token_expires_in": 600}])
def test_the_token_lifetime_is_configurable(http: TestClient, credentials: ClientCredentials) -> None:
    assert http.post("/ims/token/v3", data=_form(credentials)).json()["expires_in"] == 600


def test_http_basic_client_authentication_is_accepted(http: TestClient, credentials: ClientCredentials) -> None:
    basic = base64.b64encode(f"{credentials.client_id}:{credentials.client_secret}".encode()).decode()
    form = _form(credentials, client_id="<omit>", client_secret="<omit>")
    response = http.post("/ims/token/v3", data=form, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200


def test_space_separated_scopes_are_accepted(http: TestClient, credentials: ClientCredentials) -> None:
    response = http.post("/ims/token/v3", data=_form(credentials, scope="firefly_api ff_apis"))
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("changes", "status", "error"),
    [
        ({"grant_type": "<omit>"}, 400, "invalid_request"),
        ({"grant_type": "password"}, 400, "unsupported_grant_type"),
        ({"client_id": "<omit>"}, 400, "invalid_request"),
        ({"client_secret": "<omit>"}, 400, "invalid_request"),
        ({"client_secret": "p8e-wrong"}, 401, "invalid_client"),
        ({"client_id": "0123456789abcdef0123456789abcdef"}, 401, "invalid_client"),
        ({"scope": "<omit>"}, 400, "invalid_scope"),
        ({"scope": "openid,firefly_api"}, 400, "invalid_scope"),
        ({"scope": "openid,ff_apis"}, 400, "invalid_scope"),
        ({"scope": "firefly_api,ff_apis,launch_missiles"}, 400, "invalid_scope"),
    ],
    ids=[
        "missing grant_type",
        "other grant_type",
        "missing client_id",
        "missing client_secret",
        "wrong secret",
        "unknown client",
        "missing scope",
        "without ff_apis",
        "without firefly_api",
        "unknown scope",
    ],
)
def test_bad_token_requests_get_an_ims_error(
    http: TestClient, credentials: ClientCredentials, changes: dict[str, str], status: int, error: str
) -> None:
    response = http.post("/ims/token/v3", data=_form(credentials, **changes))
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error and body["error_description"]


def test_a_revoked_client_gets_no_token(http: TestClient, credentials: ClientCredentials, runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        revoke_client(session, credentials.client_id)
    response = http.post("/ims/token/v3", data=_form(credentials))
    assert (response.status_code, response.json()["error"]) == (401, "invalid_client")


def test_basic_credentials_that_contradict_the_form_are_refused(
    http: TestClient, credentials: ClientCredentials
) -> None:
    basic = base64.b64encode(f"someone-else:{credentials.client_secret}".encode()).decode()
    response = http.post("/ims/token/v3", data=_form(credentials), headers={"Authorization": f"Basic {basic}"})
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")


def test_a_json_token_request_is_an_unsupported_content_type(http: TestClient, credentials: ClientCredentials) -> None:
    response = http.post("/ims/token/v3", json=_form(credentials))
    assert response.status_code == 415
    assert response.json()["error_code"] == "invalid_content_type"


def test_basic_credentials_that_are_not_even_ascii_are_a_400(http: TestClient, credentials: ClientCredentials) -> None:
    garbled = {"Authorization": b"Basic \xc3\xa9t\xc3\xa9"}
    response = http.post("/ims/token/v3", data=_form(credentials), headers=garbled)
    assert (response.status_code, response.json()["error"]) == (400, "invalid_request")
