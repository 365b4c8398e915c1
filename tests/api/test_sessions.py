"""Web UI sign-in: the session cookie, its CSRF token, what a signed-in user may call, projects and job history."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ember.api.conversions import model_id_from_asset_id
from ember.api.deps import CSRF_HEADER, SESSION_COOKIE
from ember.api.runtime import Runtime
from ember.identity import ClientCredentials, create_user, hash_secret, issue_ui_session
from ember.jobs.records import create_job
from ember.store.database import transaction
from ember.store.tables import CustomModel, JobKind, Organization, User, utcnow

PASSWORD = "correct horse battery staple"
MODEL = {"displayName": "Mascot", "trainingMode": "subject", "conceptId": "zorb"}


@pytest.fixture
def add_user(runtime: Runtime) -> Callable[..., str]:
    def make(org: str = "acme", email: str = "ada@acme.test", password: str = PASSWORD) -> str:
        with transaction(runtime.sessions) as session:
            return create_user(session, org, email, password).email

    return make


def sign_in(http: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    """Signs in and returns the headers a page sends on its API calls (the cookie rides in the client)."""
    response = http.post("/ui/session", data={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return {CSRF_HEADER: response.json()["csrfToken"]}


def model_names(http: TestClient, headers: dict[str, str]) -> list[str]:
    response = http.get("/v3/custom-models", params={"publishedState": "all"}, headers=headers)
    assert response.status_code == 200, response.text
    return [model["displayName"] for model in response.json()["custom_models"]]


def create_model(http: TestClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = http.post("/v3/custom-models", json={**MODEL, **fields}, headers=headers)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def test_sign_in_sets_an_http_only_strict_session_cookie(http: TestClient, add_user: Callable[..., str]) -> None:
    email = add_user()
    response = http.post("/ui/session", data={"email": email, "password": PASSWORD})
    assert response.status_code == 200
    cookie = response.headers["set-cookie"].lower()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "httponly" in cookie and "samesite=strict" in cookie and "max-age=" in cookie
    assert response.json()["email"] == email and response.json()["organization"] == "acme"


def test_sign_in_with_a_wrong_password_is_refused_without_a_cookie(
    http: TestClient, add_user: Callable[..., str]
) -> None:
    response = http.post("/ui/session", data={"email": add_user(), "password": "wrong"})
    assert response.status_code == 401
    assert response.json()["error_code"] == "invalid_credentials"
    assert "set-cookie" not in response.headers


def test_an_unknown_email_gets_the_same_answer_as_a_wrong_password(
    http: TestClient, add_user: Callable[..., str]
) -> None:
    wrong_password = http.post("/ui/session", data={"email": add_user(), "password": "wrong"})
    unknown = http.post("/ui/session", data={"email": "nobody@acme.test", "password": PASSWORD})
    assert (unknown.status_code, unknown.json()) == (wrong_password.status_code, wrong_password.json())


def test_a_disabled_user_cannot_sign_in(http: TestClient, runtime: Runtime, add_user: Callable[..., str]) -> None:
    email = add_user()
    with transaction(runtime.sessions) as session:
        session.scalars(select(User).where(User.email == email)).one().disabled_at = utcnow()
    response = http.post("/ui/session", data={"email": email, "password": PASSWORD})
    assert response.status_code == 401 and "set-cookie" not in response.headers


def test_the_current_session_repeats_the_csrf_token(http: TestClient, add_user: Callable[..., str]) -> None:
    headers = sign_in(http, add_user())
    response = http.get("/ui/session")
    assert response.status_code == 200
    assert response.json()["csrfToken"] == headers[CSRF_HEADER]


def test_a_signed_in_user_lists_its_organizations_models(
    http: TestClient,
    add_user: Callable[..., str],
    credentials: ClientCredentials,
    headers_for: Callable[[ClientCredentials], dict[str, str]],
) -> None:
    create_model(http, headers_for(credentials), displayName="Made by a client")
    headers = sign_in(http, add_user(org=credentials.org))
    assert model_names(http, headers) == ["Made by a client"]


def test_a_signed_in_user_sees_models_shared_with_its_email(
    http: TestClient,
    add_user: Callable[..., str],
    new_client: Callable[..., ClientCredentials],
    headers_for: Callable[[ClientCredentials], dict[str, str]],
) -> None:
    email = add_user(org="acme")
    other = headers_for(new_client("globex"))
    shared = create_model(http, other, displayName="Shared")
    create_model(http, other, displayName="Not shared")
    response = http.post(
        f"/v3/custom-models/{shared['assetId']}/shares", json={"principal": email, "role": "user"}, headers=other
    )
    assert response.status_code == 201, response.text
    assert model_names(http, sign_in(http, email)) == ["Shared"]


def test_a_signed_in_user_creates_a_model_in_its_organization(
    http: TestClient,
    add_user: Callable[..., str],
    credentials: ClientCredentials,
    headers_for: Callable[[ClientCredentials], dict[str, str]],
) -> None:
    created = create_model(http, sign_in(http, add_user(org=credentials.org)), displayName="From the UI")
    assert created["trainingState"] == "draft"
    assert model_names(http, headers_for(credentials)) == ["From the UI"]


def test_a_session_cookie_without_the_csrf_header_is_refused(
    http: TestClient, add_user: Callable[..., str]
) -> None:
    sign_in(http, add_user())
    response = http.get("/v3/custom-models")
    assert response.status_code == 403
    assert response.json()["error_code"] == "access_error"


def test_a_session_cookie_with_another_sessions_csrf_token_is_refused(
    http: TestClient, add_user: Callable[..., str]
) -> None:
    email = add_user()
    earlier = sign_in(http, email)
    sign_in(http, email)
    assert http.get("/v3/custom-models", headers=earlier).status_code == 403


def test_a_cross_origin_request_with_the_session_is_refused(http: TestClient, add_user: Callable[..., str]) -> None:
    headers = sign_in(http, add_user())
    response = http.get("/v3/custom-models", headers={**headers, "origin": "https://evil.test"})
    assert response.status_code == 403


def test_a_same_origin_request_with_the_session_is_accepted(
    http: TestClient, add_user: Callable[..., str]
) -> None:
    headers = sign_in(http, add_user())
    response = http.get("/v3/custom-models", headers={**headers, "origin": "http://testserver"})
    assert response.status_code == 200


def test_a_forged_session_cookie_is_not_valid(http: TestClient, add_user: Callable[..., str]) -> None:
    headers = sign_in(http, add_user())
    forged = http.cookies[SESSION_COOKIE][:-4] + "AAAA"
    http.cookies.clear()
    http.cookies.set(SESSION_COOKIE, forged)
    response = http.get("/v3/custom-models", headers=headers)
    assert response.status_code == 401
    assert response.json()["error_code"] == "401013"


def test_an_expired_session_is_not_valid(http: TestClient, runtime: Runtime, add_user: Callable[..., str]) -> None:
    email = add_user()
    with runtime.sessions() as session:
        user = session.scalars(select(User).where(User.email == email)).one()
        expired = issue_ui_session(user, runtime.token_key, ttl_s=60, now=time.time() - 3600)
    http.cookies.set(SESSION_COOKIE, expired.cookie)
    assert http.get("/v3/custom-models", headers={CSRF_HEADER: expired.csrf_token}).status_code == 401


def test_changing_the_password_ends_earlier_sessions(
    http: TestClient, runtime: Runtime, add_user: Callable[..., str]
) -> None:
    email = add_user()
    headers = sign_in(http, email)
    with transaction(runtime.sessions) as session:
        session.scalars(select(User).where(User.email == email)).one().password_hash = hash_secret("new password")
    assert http.get("/v3/custom-models", headers=headers).status_code == 401


def test_disabling_a_user_ends_its_sessions(http: TestClient, runtime: Runtime, add_user: Callable[..., str]) -> None:
    email = add_user()
    headers = sign_in(http, email)
    with transaction(runtime.sessions) as session:
        session.scalars(select(User).where(User.email == email)).one().disabled_at = utcnow()
    assert http.get("/v3/custom-models", headers=headers).status_code == 401


def test_sign_out_clears_the_cookie(http: TestClient, add_user: Callable[..., str]) -> None:
    headers = sign_in(http, add_user())
    assert http.delete("/ui/session").status_code == 204
    assert SESSION_COOKIE not in http.cookies
    assert http.get("/v3/custom-models", headers=headers).json()["error_code"] == "403010"


def test_a_session_cookie_is_not_an_access_token(http: TestClient, add_user: Callable[..., str]) -> None:
    sign_in(http, add_user())
    cookie = http.cookies[SESSION_COOKIE]
    http.cookies.clear()
    response = http.get("/v3/custom-models", headers={"Authorization": f"Bearer {cookie}", "x-api-key": "x"})
    assert response.status_code == 401


def test_an_authorization_header_takes_precedence_over_the_cookie(
    http: TestClient, add_user: Callable[..., str]
) -> None:
    headers = sign_in(http, add_user())
    response = http.get("/v3/custom-models", headers={**headers, "Authorization": "Bearer nonsense"})
    assert response.json()["error_code"] == "401013"
    assert response.json()["message"] == "Oauth token is not valid"


def test_the_root_redirects_to_the_ui(http: TestClient) -> None:
    response = http.get("/", follow_redirects=False)
    assert response.status_code == 307 and response.headers["location"] == "/ui/"


def test_the_ui_page_is_served_with_a_strict_content_security_policy(http: TestClient) -> None:
    response = http.get("/ui/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert http.get("/ui/static/app.js").status_code == 200


def test_the_base_models_say_which_are_test_models(http: TestClient, add_user: Callable[..., str]) -> None:
    headers = sign_in(http, add_user())
    models = {model["name"]: model for model in http.get("/ui/base-models", headers=headers).json()["baseModels"]}
    assert models["tiny"]["isTestModel"] is True


def test_base_models_without_weights_here_say_how_to_get_them(
    http: TestClient, add_user: Callable[..., str]
) -> None:
    headers = sign_in(http, add_user())
    models = {model["name"]: model for model in http.get("/ui/base-models", headers=headers).json()["baseModels"]}
    assert models["tiny-sdxl"]["unavailableReason"] is None
    assert "ember engine pull flux-dev" in models["flux-dev"]["unavailableReason"]


# --- projects ------------------------------------------------------------------------------------------------


def test_a_created_project_is_listed(http: TestClient, headers: dict[str, str]) -> None:
    created = http.post("/v3/projects", json={"name": "Launch"}, headers=headers)
    assert created.status_code == 201
    listed = http.get("/v3/projects", headers=headers).json()["projects"]
    assert [(project["id"], project["name"]) for project in listed] == [(created.json()["id"], "Launch")]


def test_a_project_name_is_unique_in_its_organization(http: TestClient, headers: dict[str, str]) -> None:
    http.post("/v3/projects", json={"name": "Launch"}, headers=headers)
    again = http.post("/v3/projects", json={"name": "Launch"}, headers=headers)
    assert again.status_code == 409 and again.json()["error_code"] == "project_exists"


def test_projects_of_another_organization_are_not_listed(
    http: TestClient,
    headers: dict[str, str],
    new_client: Callable[..., ClientCredentials],
    headers_for: Callable[[ClientCredentials], dict[str, str]],
) -> None:
    http.post("/v3/projects", json={"name": "Secret"}, headers=headers_for(new_client("globex")))
    assert http.get("/v3/projects", headers=headers).json()["projects"] == []


def test_a_model_saved_to_a_new_project_belongs_to_it(
    http: TestClient, runtime: Runtime, headers: dict[str, str]
) -> None:
    project = http.post("/v3/projects", json={"name": "Launch"}, headers=headers).json()
    model = create_model(http, headers, projectId=project["id"])
    with runtime.sessions() as session:
        stored = session.get(CustomModel, model_id_from_asset_id(model["assetId"]))
        assert stored is not None and str(stored.project_id) == project["id"]


# --- job history ---------------------------------------------------------------------------------------------


def _org_id(runtime: Runtime, name: str) -> Any:
    with runtime.sessions() as session:
        return session.scalars(select(Organization.id).where(Organization.name == name)).one()


def _add_job(runtime: Runtime, org: str, prompt: str) -> str:
    with transaction(runtime.sessions) as session:
        job = create_job(
            session, org_id=_org_id(runtime, org), client_pk=None, kind=JobKind.generate, request={"prompt": prompt}
        )
        return job.id


def test_the_job_history_lists_the_organizations_jobs_newest_first(
    http: TestClient, runtime: Runtime, credentials: ClientCredentials, headers: dict[str, str]
) -> None:
    first = _add_job(runtime, credentials.org, "first")
    second = _add_job(runtime, credentials.org, "second")
    body = http.get("/v3/jobs", headers=headers).json()
    assert [(job["jobId"], job["prompt"], job["status"]) for job in body["jobs"]] == [
        (second, "second", "pending"),
        (first, "first", "pending"),
    ]
    assert body["total_count"] == 2


def test_the_job_history_leaves_out_other_organizations_jobs(
    http: TestClient,
    runtime: Runtime,
    headers: dict[str, str],
    new_client: Callable[..., ClientCredentials],
) -> None:
    other = new_client("globex")
    _add_job(runtime, other.org, "theirs")
    assert http.get("/v3/jobs", headers=headers).json()["jobs"] == []


def test_the_job_history_pages(
    http: TestClient, runtime: Runtime, credentials: ClientCredentials, headers: dict[str, str]
) -> None:
    ids = [_add_job(runtime, credentials.org, f"job {index}") for index in range(3)]
    page = http.get("/v3/jobs", params={"start": "1", "limit": "1"}, headers=headers).json()
    assert [job["jobId"] for job in page["jobs"]] == [ids[1]]


def test_the_job_history_names_the_custom_model_of_a_job(
    http: TestClient, runtime: Runtime, credentials: ClientCredentials, headers: dict[str, str]
) -> None:
    model = create_model(http, headers, displayName="Mascot")
    with transaction(runtime.sessions) as session:
        create_job(
            session,
            org_id=_org_id(runtime, credentials.org),
            client_pk=None,
            kind=JobKind.train,
            request={"samplePrompt": "a zorb"},
            custom_model_id=model_id_from_asset_id(model["assetId"]),
        )
    listed = http.get("/v3/jobs", params={"customModelId": model["assetId"]}, headers=headers).json()["jobs"]
    assert [(job["customModelId"], job["customModelName"], job["kind"]) for job in listed] == [
        (model["assetId"], "Mascot", "train")
    ]


def test_a_non_ascii_csrf_header_is_refused_as_forbidden(http: TestClient, add_user: Callable[..., str]) -> None:
    sign_in(http, add_user())
    response = http.get("/v3/custom-models", headers={CSRF_HEADER: b"\xc3\xa9t\xc3\xa9"})
    assert (response.status_code, response.json()["error_code"]) == (403, "access_error")


def test_a_job_history_offset_past_the_limit_is_a_422(http: TestClient, headers: dict[str, str]) -> None:
    response = http.get("/v3/jobs", params={"start": "9223372036854775808"}, headers=headers)
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["loc"] == ["query", "start"]
