"""Creating, reading, editing, deleting, publishing and unpublishing a custom model."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from ember.api.runtime import Runtime

from .conftest import MODELS, Caller, picture


def _files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def test_a_new_model_is_a_never_published_draft_in_the_listing_shape(owner: Caller) -> None:
    item = owner.create(displayName="Mascot", trainingMode="subject", conceptId="zorb")
    assert item["assetId"].startswith("urn:aaid:sc:VA6C2:")
    assert item["repo:assetId"] == item["assetId"]
    assert (item["assetName"], item["publishedState"], item["trainingState"]) == (
        "Mascot.ffcustommodel",
        "never",
        "draft",
    )
    assert (item["version"], item["size"], item["conceptId"]) == ("0", 0, "zorb")
    assert item["baseModel"] == {"name": "tiny", "version": "1"}
    assert item["mediaType"] == "application/vnd.adobe.ffmodel+dcx"


def test_a_new_model_appears_in_the_listing_of_all_models(owner: Caller) -> None:
    item = owner.create()
    listed = owner.get("", params={"start": "0", "limit": "10", "publishedState": "all"}).json()["custom_models"]
    assert [entry["assetId"] for entry in listed] == [item["assetId"]]


def test_style_models_have_no_concept_word(owner: Caller) -> None:
    assert owner.create(trainingMode="style", conceptId="ignored")["conceptId"] == ""


def test_a_named_base_model_and_version_are_kept(owner: Caller) -> None:
    item = owner.create(baseModel={"name": "toy", "version": "1"})
    assert item["baseModel"] == {"name": "toy", "version": "1"}


@pytest.mark.parametrize(
    ("body", "loc", "type_"),
    [
        ({"baseModel": {"name": "no-such-model"}}, ["body", "baseModel", "name"], "unknown_base_model"),
        (
            {"baseModel": {"name": "tiny", "version": "9"}},
            ["body", "baseModel", "version"],
            "unknown_base_model_version",
        ),
        ({"baseModel": {"name": "flux-schnell"}}, ["body", "baseModel", "name"], "not_trainable"),
        ({"conceptId": ""}, ["body", "conceptId"], "missing"),
        ({"conceptId": "two!words"}, ["body", "conceptId"], "string_pattern_mismatch"),
        ({"samplePrompt": "a dog on a beach"}, ["body", "samplePrompt"], "sample_prompt_missing_concept"),
        ({"projectId": "00000000-0000-0000-0000-000000000000"}, ["body", "projectId"], "unknown_project"),
        ({"displayName": 5}, ["body", "displayName"], "string_type"),
        ({"displayName": "   "}, ["body", "displayName"], "string_pattern_mismatch"),
        ({"trainingMode": "portrait"}, ["body", "trainingMode"], "literal_error"),
        ({"colour": "red"}, ["body", "colour"], "extra_forbidden"),
    ],
)
def test_a_bad_create_request_is_a_422_naming_the_field(
    owner: Caller, body: dict[str, object], loc: list[str], type_: str
) -> None:
    request = {"displayName": "Mascot", "trainingMode": "subject", "conceptId": "zorb", **body}
    response = owner.post("", json=request)
    assert response.status_code == 422, response.text
    assert response.json()["error_code"] == "validation_error"
    assert {"loc": loc, "type": type_} in [
        {"loc": error["loc"], "type": error["type"]} for error in response.json()["validation_errors"]
    ]
    assert owner.get("", params={"publishedState": "all"}).json()["total_count"] == 0


def test_creating_without_a_json_body_type_is_a_415(owner: Caller) -> None:
    response = owner.post("", content=b"displayName=x", headers={"content-type": "text/plain"})
    assert response.status_code == 415


def test_get_returns_the_model(owner: Caller) -> None:
    item = owner.create()
    assert owner.get(f"/{item['assetId']}").json() == item


@pytest.mark.parametrize("asset_id", ["not-an-asset-id", "urn:aaid:sc:VA6C2:00000000-0000-0000-0000-000000000000"])
def test_an_unknown_or_malformed_asset_id_is_a_404(owner: Caller, asset_id: str) -> None:
    response = owner.get(f"/{asset_id}")
    assert (response.status_code, response.json()["error_code"]) == (404, "not_found")


def test_patching_the_display_name_moves_the_modified_date_and_etag(owner: Caller) -> None:
    item = owner.create()
    patched = owner.patch(f"/{item['assetId']}", json={"displayName": "Renamed"}).json()
    assert (patched["displayName"], patched["assetName"]) == ("Renamed", "Renamed.ffcustommodel")
    assert patched["etag"] != item["etag"]
    assert patched["modifiedDate"] >= item["modifiedDate"]
    assert patched["createdDate"] == item["createdDate"]


def test_a_subject_sample_prompt_must_contain_the_concept_word(owner: Caller) -> None:
    item = owner.create()
    response = owner.patch(f"/{item['assetId']}", json={"samplePrompt": "a dog on a beach"})
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["loc"] == ["body", "samplePrompt"]
    assert owner.get(f"/{item['assetId']}").json()["samplePrompt"] == ""


def test_a_sample_prompt_with_the_concept_word_is_kept(owner: Caller) -> None:
    item = owner.create()
    patched = owner.patch(f"/{item['assetId']}", json={"samplePrompt": "a Zorb on a beach"}).json()
    assert patched["samplePrompt"] == "a Zorb on a beach"


def test_a_style_sample_prompt_needs_no_concept_word(owner: Caller) -> None:
    item = owner.create(trainingMode="style")
    assert owner.patch(f"/{item['assetId']}", json={"samplePrompt": "a city at dusk"}).status_code == 200


def test_the_concept_word_changes_while_the_model_is_a_draft(owner: Caller) -> None:
    item = owner.create()
    assert owner.patch(f"/{item['assetId']}", json={"conceptId": "blip"}).json()["conceptId"] == "blip"


def test_the_concept_word_is_fixed_once_training_was_asked_for(owner: Caller) -> None:
    asset_id = owner.trainable()
    assert owner.post(f"/{asset_id}/train-async").status_code == 202
    response = owner.patch(f"/{asset_id}", json={"conceptId": "blip"})
    assert (response.status_code, response.json()["error_code"]) == (409, "model_not_draft")


@pytest.mark.parametrize("body", [{"displayName": 3}, {"trainingMode": "style"}, {"samplePrompt": None}])
def test_a_bad_patch_is_a_422(owner: Caller, body: dict[str, object]) -> None:
    item = owner.create()
    assert owner.patch(f"/{item['assetId']}", json=body).status_code == 422
    assert owner.get(f"/{item['assetId']}").json() == item


def test_deleting_a_model_removes_it_and_its_image_files(owner: Caller, runtime: Runtime, settings: object) -> None:
    item = owner.create()
    owner.upload(item["assetId"], picture(1), picture(2))
    blob_root = Path(runtime.settings.data_dir) / "blobs" / "custom-models"
    assert len(_files_under(blob_root)) == 2
    assert owner.delete(f"/{item['assetId']}").status_code == 204
    assert owner.get(f"/{item['assetId']}").status_code == 404
    assert _files_under(blob_root) == []


def test_deleting_a_model_removes_its_lora_versions(
    owner: Caller, runtime: Runtime, trained: Callable[[str, bytes], None]
) -> None:
    item = owner.create()
    trained(item["assetId"], b"lora bytes")
    blob_root = Path(runtime.settings.data_dir) / "blobs" / "custom-models"
    assert owner.delete(f"/{item['assetId']}").status_code == 204
    assert _files_under(blob_root) == []


def test_a_model_in_training_cannot_be_deleted(owner: Caller) -> None:
    asset_id = owner.trainable()
    owner.post(f"/{asset_id}/train-async")
    response = owner.delete(f"/{asset_id}")
    assert (response.status_code, response.json()["error_code"]) == (409, "training_in_progress")
    assert owner.get(f"/{asset_id}").status_code == 200


def test_publishing_an_untrained_model_is_a_409(owner: Caller) -> None:
    item = owner.create()
    response = owner.post(f"/{item['assetId']}/publish")
    assert (response.status_code, response.json()["error_code"]) == (409, "model_not_trained")
    assert owner.get(f"/{item['assetId']}").json()["publishedState"] == "never"


def test_a_published_model_is_in_the_default_listing(owner: Caller, trained: Callable[[str, bytes], None]) -> None:
    item = owner.create()
    trained(item["assetId"], b"lora")
    published = owner.post(f"/{item['assetId']}/publish").json()
    assert published["publishedState"] == "published"
    assert published["etag"] != item["etag"]
    assert [entry["assetId"] for entry in owner.get("").json()["custom_models"]] == [item["assetId"]]


def test_unpublishing_takes_the_model_out_of_the_published_listing(
    owner: Caller, trained: Callable[[str, bytes], None]
) -> None:
    item = owner.create()
    trained(item["assetId"], b"lora")
    owner.post(f"/{item['assetId']}/publish")
    assert owner.post(f"/{item['assetId']}/unpublish").json()["publishedState"] == "unpublished"
    assert owner.get("").json()["total_count"] == 0


def test_unpublishing_a_never_published_model_is_a_409(owner: Caller) -> None:
    item = owner.create()
    response = owner.post(f"/{item['assetId']}/unpublish")
    assert (response.status_code, response.json()["error_code"]) == (409, "model_not_published")


# Every lifecycle endpoint, as (method, path after the asset id, JSON body or multipart files).
ENDPOINTS = [
    ("GET", "", None),
    ("PATCH", "", {"displayName": "Taken"}),
    ("DELETE", "", None),
    ("POST", "/images", "files"),
    ("GET", "/images", None),
    ("PATCH", "/images/{image}", {"caption": "a new caption for the image"}),
    ("DELETE", "/images/{image}", None),
    ("POST", "/train-async", None),
    ("POST", "/publish", None),
    ("POST", "/unpublish", None),
    ("GET", "/shares", None),
    ("POST", "/shares", {"principal": "{principal}", "role": "editor"}),
    ("DELETE", "/shares/{principal}", None),
    ("GET", "/weights", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_another_organizations_model_is_unknown_and_unchanged(
    owner: Caller,
    stranger: Caller,
    trained: Callable[[str, bytes], None],
    method: str,
    path: str,
    body: object,
) -> None:
    asset_id = owner.trainable(images=1)
    trained(asset_id, b"lora")
    owner.post(f"/{asset_id}/publish")
    image = owner.get(f"/{asset_id}/images").json()["images"][0]["id"]
    principal = stranger.credentials.technical_account_id
    before = (owner.get(f"/{asset_id}").json(), owner.get(f"/{asset_id}/images").json())
    url = f"{MODELS}/{asset_id}{path}".format(image=image, principal=principal)
    kwargs: dict[str, object] = {}
    if body == "files":
        kwargs["files"] = [("files", ("x.png", picture(99), "image/png"))]
    elif isinstance(body, dict):
        kwargs["json"] = {key: str(value).format(principal=principal) for key, value in body.items()}
    response = stranger.http.request(method, url, headers=stranger.headers, **kwargs)  # type: ignore[arg-type]
    assert (response.status_code, response.json()["error_code"]) == (404, "not_found")
    assert (owner.get(f"/{asset_id}").json(), owner.get(f"/{asset_id}/images").json()) == before
