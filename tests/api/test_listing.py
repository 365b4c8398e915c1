"""`GET /v3/custom-models`: query parameters, their bad values, item fields, links and tenant scoping."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from ember.api.runtime import Runtime
from ember.identity import ClientCredentials
from ember.store.database import transaction
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

LISTING = "/v3/custom-models"
T0 = datetime(2026, 2, 3, 4, 5, 6, 789000, tzinfo=UTC)


@pytest.fixture
def seed(runtime: Runtime) -> Callable[..., uuid.UUID]:
    """Inserts a model row directly, in the named organization."""

    def add(org: str = "acme", name: str = "model", minutes: int = 0, **columns: object) -> uuid.UUID:
        with transaction(runtime.sessions) as session:
            org_row = session.scalar(select(Organization).where(Organization.name == org))
            if org_row is None:
                org_row = Organization(name=org)
                session.add(org_row)
                session.flush()
            values: dict[str, object] = {
                "org_id": org_row.id,
                "display_name": name,
                "training_mode": TrainingMode.style,
                "base_model_name": "tiny",
                "published_state": PublishedState.published,
                "training_state": TrainingState.ready,
                "created_at": T0 + timedelta(minutes=minutes),
                "modified_at": T0 + timedelta(minutes=minutes),
            }
            values.update(columns)
            model = CustomModel(**values)
            session.add(model)
            session.flush()
            return model.id

    return add


def _names(http: TestClient, headers: dict[str, str], query: str = "") -> list[str]:
    response = http.get(f"{LISTING}{query}", headers=headers)
    assert response.status_code == 200, response.text
    return [item["displayName"] for item in response.json()["custom_models"]]


def test_an_empty_organization_lists_nothing(http: TestClient, headers: dict[str, str]) -> None:
    body = http.get(LISTING, headers=headers).json()
    assert (body["custom_models"], body["total_count"]) == ([], 0)
    assert "next" not in body["_links"]


def test_an_item_has_every_firefly_field(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    model_id = seed(
        name="Mascot",
        training_mode=TrainingMode.subject,
        concept_id="zorb",
        sample_prompt="a zorb on a beach",
        base_model_version="1.0",
        current_version=2,
        size=12345,
        etag="abc123",
    )
    [item] = http.get(LISTING, headers=headers).json()["custom_models"]
    assert item == {
        "assetId": f"urn:aaid:sc:VA6C2:{model_id}",
        "repo:assetId": f"urn:aaid:sc:VA6C2:{model_id}",
        "assetName": "Mascot.ffcustommodel",
        "displayName": "Mascot",
        "version": "2",
        "size": 12345,
        "etag": '"abc123"',
        "trainingMode": "subject",
        "conceptId": "zorb",
        "mediaType": "application/vnd.adobe.ffmodel+dcx",
        "createdDate": "2026-02-03T04:05:06.789Z",
        "modifiedDate": "2026-02-03T04:05:06.789Z",
        "publishedState": "published",
        "trainingState": "ready",
        "baseModel": {"name": "tiny", "version": "1.0"},
        "samplePrompt": "a zorb on a beach",
    }


def test_style_models_report_an_empty_concept_id(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    seed(training_mode=TrainingMode.style, concept_id="ignored")
    [item] = http.get(LISTING, headers=headers).json()["custom_models"]
    assert item["conceptId"] == ""


@pytest.mark.parametrize("settings_overrides", [{"region": "EU1"}])
def test_asset_ids_carry_the_configured_region(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    model_id = seed()
    [item] = http.get(LISTING, headers=headers).json()["custom_models"]
    assert item["assetId"] == f"urn:aaid:sc:EU1:{model_id}"


def test_the_default_lists_published_models_by_modified_date_ascending(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    seed(name="late", minutes=5)
    seed(name="early", minutes=1)
    seed(name="draft", minutes=3, published_state=PublishedState.never, training_state=TrainingState.draft)
    assert _names(http, headers) == ["early", "late"]


@pytest.mark.parametrize(
    ("sort_by", "expected"),
    [
        ("assetName", ["alpha", "Bravo", "charlie"]),
        ("-assetName", ["charlie", "Bravo", "alpha"]),
        ("createdDate", ["Bravo", "charlie", "alpha"]),
        ("-createdDate", ["alpha", "charlie", "Bravo"]),
        ("modifiedDate", ["charlie", "alpha", "Bravo"]),
        ("-modifiedDate", ["Bravo", "alpha", "charlie"]),
    ],
)
def test_sort_by_orders_the_listing(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID], sort_by: str, expected: list[str]
) -> None:
    for name, created, modified in (("alpha", 3, 2), ("Bravo", 1, 3), ("charlie", 2, 1)):
        seed(name=name, created_at=T0 + timedelta(minutes=created), modified_at=T0 + timedelta(minutes=modified))
    assert _names(http, headers, f"?sortBy={sort_by}") == expected


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("all", {"published", "unpublished", "draft", "queued", "failed"}),
        ("published", {"published"}),
        ("unpublished", {"unpublished", "draft", "queued", "failed"}),
        ("ready", {"published", "unpublished"}),
        ("queued", {"queued"}),
        ("training", set()),
        ("failed", {"failed"}),
        ("cancelled", set()),
    ],
)
def test_published_state_filters_the_listing(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID], state: str, expected: set[str]
) -> None:
    seed(name="published")
    seed(name="unpublished", published_state=PublishedState.unpublished)
    never = PublishedState.never
    seed(name="draft", published_state=never, training_state=TrainingState.draft)
    seed(name="queued", published_state=never, training_state=TrainingState.queued)
    seed(name="failed", published_state=never, training_state=TrainingState.failed)
    assert set(_names(http, headers, f"?publishedState={state}")) == expected


def test_start_and_limit_page_through_the_models_with_links(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    for index in range(5):
        seed(name=f"m{index}", minutes=index)
    body = http.get(f"{LISTING}?start=2&limit=2&sortBy=createdDate", headers=headers).json()
    assert [item["displayName"] for item in body["custom_models"]] == ["m2", "m3"]
    assert body["total_count"] == 5
    page, following = body["_links"]["page"], body["_links"]["next"]
    assert (page["rel"], page["templated"], following["rel"], following["templated"]) == ("page", False, "next", False)
    assert parse_qs(urlsplit(page["href"]).query) == {
        "start": ["2"],
        "limit": ["2"],
        "sortBy": ["createdDate"],
        "publishedState": ["published"],
    }
    assert urlsplit(following["href"]).path == LISTING
    assert parse_qs(urlsplit(following["href"]).query)["start"] == ["4"]


def test_the_last_page_has_no_next_link(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    for index in range(3):
        seed(name=f"m{index}", minutes=index)
    body = http.get(f"{LISTING}?start=2&limit=2", headers=headers).json()
    assert len(body["custom_models"]) == 1 and "next" not in body["_links"]


def test_links_are_absolute_urls_of_the_request_host(http: TestClient, headers: dict[str, str]) -> None:
    href = http.get(LISTING, headers=headers).json()["_links"]["page"]["href"]
    assert href.startswith("http://testserver/v3/custom-models?")


@pytest.mark.parametrize("settings_overrides", [{"public_base_url": "https://ember.example.com/"}])
def test_links_use_the_configured_public_base_url(http: TestClient, headers: dict[str, str]) -> None:
    href = http.get(LISTING, headers=headers).json()["_links"]["page"]["href"]
    assert href.startswith("https://ember.example.com/v3/custom-models?")


def test_a_start_past_the_end_is_an_empty_page(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    seed()
    body = http.get(f"{LISTING}?start=10&limit=5", headers=headers).json()
    assert (body["custom_models"], body["total_count"]) == ([], 1)


@pytest.mark.parametrize(
    ("query", "loc", "error_type"),
    [
        ("?start=abc&limit=5", ["query", "start"], "string_pattern_mismatch"),
        ("?start=-1&limit=5", ["query", "start"], "string_pattern_mismatch"),
        ("?start=1.5&limit=5", ["query", "start"], "string_pattern_mismatch"),
        ("?start=99999999999&limit=5", ["query", "start"], "less_than_equal"),
        ("?start=0&limit=0", ["query", "limit"], "greater_than_equal"),
        ("?start=0&limit=51", ["query", "limit"], "less_than_equal"),
        ("?start=0&limit=ten", ["query", "limit"], "string_pattern_mismatch"),
        ("?start=0&limit=", ["query", "limit"], "string_pattern_mismatch"),
        ("?limit=5", ["query", "start"], "missing"),
        ("?sortBy=size", ["query", "sortBy"], "literal_error"),
        ("?sortBy=--assetName", ["query", "sortBy"], "literal_error"),
        ("?publishedState=everything", ["query", "publishedState"], "enum"),
        ("?publishedState=draft", ["query", "publishedState"], "enum"),
    ],
)
def test_bad_query_values_are_validation_errors(
    http: TestClient, headers: dict[str, str], query: str, loc: list[str], error_type: str
) -> None:
    response = http.get(f"{LISTING}{query}", headers=headers)
    assert response.status_code == 422
    body = response.json()
    assert body["error_code"] == "validation_error"
    assert [(error["loc"], error["type"]) for error in body["validation_errors"]] == [(loc, error_type)]
    assert all(error["msg"] for error in body["validation_errors"])


def test_start_alone_is_accepted(http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]) -> None:
    for index in range(3):
        seed(name=f"m{index}", minutes=index)
    assert _names(http, headers, "?start=1") == ["m1", "m2"]


def test_limit_fifty_is_the_largest_page(http: TestClient, headers: dict[str, str]) -> None:
    assert http.get(f"{LISTING}?start=0&limit=50", headers=headers).status_code == 200


def test_models_of_other_organizations_are_invisible(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    seed(org="acme", name="ours")
    seed(org="globex", name="theirs")
    assert _names(http, headers, "?publishedState=all") == ["ours"]


@pytest.mark.parametrize("kind", [PrincipalKind.technical_account_id, PrincipalKind.technical_account_email])
def test_models_shared_with_the_callers_technical_account_are_visible(
    http: TestClient,
    headers: dict[str, str],
    credentials: ClientCredentials,
    seed: Callable[..., uuid.UUID],
    runtime: Runtime,
    kind: PrincipalKind,
) -> None:
    shared = seed(org="globex", name="shared", minutes=1)
    seed(org="globex", name="private", minutes=2)
    value = {
        PrincipalKind.technical_account_id: credentials.technical_account_id,
        PrincipalKind.technical_account_email: credentials.technical_account_email,
    }[kind]
    with transaction(runtime.sessions) as session:
        session.add(Share(model_id=shared, principal_kind=kind, principal_value=value, role=ShareRole.user))
    assert _names(http, headers, "?publishedState=all") == ["shared"]


def test_a_model_shared_with_another_client_stays_invisible(
    http: TestClient,
    headers: dict[str, str],
    new_client: Callable[..., ClientCredentials],
    seed: Callable[..., uuid.UUID],
    runtime: Runtime,
) -> None:
    other = new_client("initech")
    shared = seed(org="globex", name="shared with initech")
    with transaction(runtime.sessions) as session:
        session.add(
            Share(
                model_id=shared,
                principal_kind=PrincipalKind.technical_account_id,
                principal_value=other.technical_account_id,
                role=ShareRole.user,
            )
        )
    assert _names(http, headers, "?publishedState=all") == []


def test_item_dates_are_iso_8601_utc_strings(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID]
) -> None:
    seed()
    [item] = http.get(LISTING, headers=headers).json()["custom_models"]
    pattern = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
    assert re.match(pattern, item["createdDate"]) and re.match(pattern, item["modifiedDate"])


def test_the_openapi_document_describes_the_listing_in_wire_names(http: TestClient) -> None:
    spec = http.get("/openapi.json").json()
    parameters = [parameter["name"] for parameter in spec["paths"][LISTING]["get"]["parameters"]]
    item = spec["components"]["schemas"]["CustomModelItem"]["properties"]
    assert parameters == ["start", "limit", "sortBy", "publishedState", "projectId"]  # projectId: Ember's
    assert {"assetId", "repo:assetId", "trainingState", "baseModel", "samplePrompt", "projectId"} <= set(item)


@pytest.mark.parametrize("spelling", ["cancelled", "canceled"])
def test_cancelled_filter_accepts_both_spellings_and_links_emit_cancelled(
    http: TestClient, headers: dict[str, str], seed: Callable[..., uuid.UUID], spelling: str
) -> None:
    seed(name="stopped", published_state=PublishedState.never, training_state=TrainingState.cancelled)
    seed(name="published")
    response = http.get(f"{LISTING}?publishedState={spelling}", headers=headers)
    assert response.status_code == 200
    body = response.json()
    assert [item["displayName"] for item in body["custom_models"]] == ["stopped"]
    assert parse_qs(urlsplit(body["_links"]["page"]["href"]).query)["publishedState"] == ["cancelled"]
