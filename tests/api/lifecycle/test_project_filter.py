"""The listing's `projectId` filter and the item's `projectId`: a project's models, or those in none; a value of
the wrong type is a 422; another organization's project id finds nothing of it."""

from __future__ import annotations

from typing import Any

from .conftest import Caller


def _project(caller: Caller, name: str) -> str:
    response = caller.http.post("/v3/projects", json={"name": name}, headers=caller.headers)
    assert response.status_code == 201, response.text
    project_id: str = response.json()["id"]
    return project_id


def _names(caller: Caller, query: str) -> list[str]:
    response = caller.get(f"?start=0&limit=50&publishedState=all&sortBy=assetName{query}")
    assert response.status_code == 200, response.text
    return [model["displayName"] for model in response.json()["custom_models"]]


def test_a_model_saved_to_a_project_says_which(owner: Caller) -> None:
    project_id = _project(owner, "Launch")
    in_project = owner.create(displayName="Router", projectId=project_id)
    loose = owner.create(displayName="Loose")
    assert in_project["projectId"] == project_id
    assert loose.get("projectId") is None  # null on one model, left out of the listing
    assert owner.get(f"/{in_project['assetId']}").json()["projectId"] == project_id


def test_the_listing_filters_on_a_project_or_on_none(owner: Caller) -> None:
    launch, later = _project(owner, "Launch"), _project(owner, "Later")
    owner.create(displayName="Router", projectId=launch)
    owner.create(displayName="Switch", projectId=launch)
    owner.create(displayName="Modem", projectId=later)
    owner.create(displayName="Loose")
    assert _names(owner, f"&projectId={launch}") == ["Router", "Switch"]
    assert _names(owner, f"&projectId={later}") == ["Modem"]
    assert _names(owner, "&projectId=none") == ["Loose"]
    assert _names(owner, "") == ["Loose", "Modem", "Router", "Switch"]


def test_the_next_page_link_keeps_the_project_filter(owner: Caller) -> None:
    launch = _project(owner, "Launch")
    for name in ("A", "B", "C"):
        owner.create(displayName=name, projectId=launch)
    body: dict[str, Any] = owner.get(f"?start=0&limit=2&publishedState=all&projectId={launch}").json()
    assert body["total_count"] == 3
    assert f"projectId={launch}" in body["_links"]["next"]["href"]


def test_a_project_filter_of_the_wrong_type_is_a_422(owner: Caller) -> None:
    for value in ("launch", "12", "None"):
        response = owner.get(f"?publishedState=all&projectId={value}")
        assert response.status_code == 422, value
        body = response.json()
        assert body["error_code"] == "validation_error"
        assert body["validation_errors"][0]["loc"] == ["query", "projectId"]


def test_another_organizations_project_id_finds_none_of_its_models(owner: Caller, stranger: Caller) -> None:
    theirs = _project(stranger, "Secret")
    stranger.create(displayName="Hidden", projectId=theirs)
    assert _names(owner, f"&projectId={theirs}") == []
    # Nor can a model be saved to it.
    response = owner.post("", json={"displayName": "Sneaky", "trainingMode": "style", "projectId": theirs})
    assert response.status_code in (404, 422), response.text
