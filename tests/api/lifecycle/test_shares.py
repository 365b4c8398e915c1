"""Shares: who outside the owning organization sees a model, and what each role may do with it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ember.api.runtime import Runtime
from ember.identity import create_user
from ember.store.database import transaction

from .conftest import Caller, image_files, picture


def _share(owner: Caller, asset_id: str, principal: str, role: str = "user") -> dict[str, object]:
    response = owner.post(f"/{asset_id}/shares", json={"principal": principal, "role": role})
    assert response.status_code in (200, 201), response.text
    body: dict[str, object] = response.json()
    return body


def _listed(caller: Caller) -> list[str]:
    return [item["assetId"] for item in caller.get("", params={"publishedState": "all"}).json()["custom_models"]]


def test_a_model_shared_by_technical_account_id_appears_in_the_sharees_listing(owner: Caller, stranger: Caller) -> None:
    asset_id = owner.create()["assetId"]
    share = _share(owner, asset_id, stranger.credentials.technical_account_id)
    assert (share["principalKind"], share["role"]) == ("technical_account_id", "user")
    assert _listed(stranger) == [asset_id]
    assert stranger.get(f"/{asset_id}").json()["assetId"] == asset_id


def test_a_model_can_be_shared_by_technical_account_email_in_any_case(owner: Caller, stranger: Caller) -> None:
    asset_id = owner.create()["assetId"]
    share = _share(owner, asset_id, stranger.credentials.technical_account_email.upper())
    assert (share["principal"], share["principalKind"]) == (
        stranger.credentials.technical_account_email,
        "technical_account_email",
    )
    assert _listed(stranger) == [asset_id]


def test_a_model_can_be_shared_with_a_user_email(owner: Caller, runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        create_user(session, "initech", "ada@initech.example", "a long enough password")
    asset_id = owner.create()["assetId"]
    share = _share(owner, asset_id, "ada@initech.example", "editor")
    assert (share["principalKind"], share["role"]) == ("user_email", "editor")


def test_sharing_with_an_unknown_principal_is_a_422(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    response = owner.post(f"/{asset_id}/shares", json={"principal": "nobody@nowhere.example", "role": "user"})
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["type"] == "unknown_principal"


def test_sharing_with_the_owning_organization_is_a_422(owner: Caller, caller_in: Callable[[str], Caller]) -> None:
    colleague = caller_in("acme")
    asset_id = owner.create()["assetId"]
    response = owner.post(
        f"/{asset_id}/shares", json={"principal": colleague.credentials.technical_account_id, "role": "user"}
    )
    assert response.json()["validation_errors"][0]["type"] == "principal_in_owning_organization"


@pytest.mark.parametrize(
    "body", [{"principal": "x", "role": "admin"}, {"principal": 5, "role": "user"}, {"role": "user"}]
)
def test_a_bad_share_request_is_a_422(owner: Caller, body: dict[str, object]) -> None:
    asset_id = owner.create()["assetId"]
    assert owner.post(f"/{asset_id}/shares", json=body).status_code == 422


def test_sharing_again_changes_the_role(owner: Caller, stranger: Caller) -> None:
    asset_id = owner.create()["assetId"]
    principal = stranger.credentials.technical_account_id
    _share(owner, asset_id, principal, "user")
    response = owner.post(f"/{asset_id}/shares", json={"principal": principal, "role": "editor"})
    assert (response.status_code, response.json()["role"]) == (200, "editor")
    shares = owner.get(f"/{asset_id}/shares").json()["shares"]
    assert [(share["principal"], share["role"]) for share in shares] == [(principal, "editor")]


def test_unsharing_hides_the_model_again(owner: Caller, stranger: Caller) -> None:
    asset_id = owner.create()["assetId"]
    principal = stranger.credentials.technical_account_id
    _share(owner, asset_id, principal)
    assert owner.delete(f"/{asset_id}/shares/{principal}").status_code == 204
    assert _listed(stranger) == []
    assert stranger.get(f"/{asset_id}").status_code == 404


def test_unsharing_a_principal_without_a_share_is_a_404(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    assert owner.delete(f"/{asset_id}/shares/nobody@nowhere.example").status_code == 404


def test_sharing_moves_the_models_etag(owner: Caller, stranger: Caller) -> None:
    item = owner.create()
    _share(owner, item["assetId"], stranger.credentials.technical_account_id)
    assert owner.get(f"/{item['assetId']}").json()["etag"] != item["etag"]


@pytest.fixture
def shared_with(owner: Caller, stranger: Caller, trained: Callable[[str, bytes], None]) -> Callable[[str], str]:
    """A trained model of the owner with one image, shared with the stranger in the given role."""

    def make(role: str) -> str:
        asset_id = owner.trainable(images=1)
        trained(asset_id, b"lora")
        _share(owner, asset_id, stranger.credentials.technical_account_id, role)
        return asset_id

    return make


# (method, path after the asset id, JSON body or multipart files) of every action a `user` share may not take.
EDITS = [
    ("PATCH", "", {"displayName": "Taken"}),
    ("POST", "/images", "files"),
    ("GET", "/images", None),
    ("POST", "/train-async", None),
    ("POST", "/publish", None),
    ("POST", "/unpublish", None),
    ("GET", "/weights", None),
    ("GET", "/shares", None),
]
OWNER_ONLY = [
    ("DELETE", "", None),
    ("POST", "/shares", {"principal": "someone", "role": "editor"}),
    ("DELETE", "/shares/someone", None),
]


def _call(caller: Caller, asset_id: str, method: str, path: str, body: object) -> object:
    kwargs: dict[str, object] = {}
    if body == "files":
        kwargs["files"] = image_files(picture(99))
    elif isinstance(body, dict):
        kwargs["json"] = body
    return caller.request(method, f"/{asset_id}{path}", **kwargs)


@pytest.mark.parametrize(("method", "path", "body"), EDITS + OWNER_ONLY)
def test_a_user_role_sharee_may_not_change_the_model(
    owner: Caller, stranger: Caller, shared_with: Callable[[str], str], method: str, path: str, body: object
) -> None:
    asset_id = shared_with("user")
    before = owner.get(f"/{asset_id}").json()
    response = _call(stranger, asset_id, method, path, body)
    assert (response.status_code, response.json()["error_code"]) == (403, "access_error")  # type: ignore[attr-defined]
    assert owner.get(f"/{asset_id}").json() == before


@pytest.mark.parametrize(("method", "path", "body"), OWNER_ONLY)
def test_an_editor_sharee_may_not_delete_or_share(
    owner: Caller, stranger: Caller, shared_with: Callable[[str], str], method: str, path: str, body: object
) -> None:
    asset_id = shared_with("editor")
    response = _call(stranger, asset_id, method, path, body)
    assert (response.status_code, response.json()["error_code"]) == (403, "access_error")  # type: ignore[attr-defined]
    assert owner.get(f"/{asset_id}").status_code == 200


def test_an_editor_sharee_may_edit(stranger: Caller, shared_with: Callable[[str], str]) -> None:
    asset_id = shared_with("editor")
    assert stranger.patch(f"/{asset_id}", json={"displayName": "Edited"}).json()["displayName"] == "Edited"


def test_an_editor_sharee_may_publish(stranger: Caller, shared_with: Callable[[str], str]) -> None:
    asset_id = shared_with("editor")
    assert stranger.post(f"/{asset_id}/publish").json()["publishedState"] == "published"


@pytest.mark.parametrize("settings_overrides", [{"training_min_images": 1}])
def test_an_editor_sharee_may_retrain(stranger: Caller, shared_with: Callable[[str], str]) -> None:
    asset_id = shared_with("editor")
    assert stranger.post(f"/{asset_id}/train-async").status_code == 202


def test_an_editor_sharee_may_download_the_weights(stranger: Caller, shared_with: Callable[[str], str]) -> None:
    asset_id = shared_with("editor")
    assert stranger.get(f"/{asset_id}/weights").content == b"lora"


def test_a_user_role_sharee_may_read_the_model(stranger: Caller, shared_with: Callable[[str], str]) -> None:
    asset_id = shared_with("user")
    assert stranger.get(f"/{asset_id}").json()["assetId"] == asset_id
