"""Training image previews: the listing gives each image a signed URL of a small WebP; the URL opens that image of
that model of that organization only, expires, and is refused when altered; the summary says what blocks training."""

from __future__ import annotations

import io
import time
from urllib.parse import parse_qs, urlencode, urlsplit

from fastapi.testclient import TestClient
from PIL import Image

from .conftest import MODELS, Caller, image_files, picture


def _preview_path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return f"{parts.path}?{urlencode(query)}"


def test_each_listed_image_has_a_preview_url_that_serves_a_small_webp_without_credentials(
    owner: Caller, http: TestClient
) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(1, width=900, height=600))
    [item] = owner.get(f"/{asset_id}/images").json()["images"]
    response = http.get(_preview_path(item["previewUrl"]))  # no token, no API key, no cookie
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/webp"
    preview = Image.open(io.BytesIO(response.content))
    assert preview.format == "WEBP" and preview.size == (256, 171)
    assert len(response.content) < 20_000


def test_the_upload_answer_and_a_caption_edit_carry_preview_urls_too(owner: Caller, http: TestClient) -> None:
    asset_id = owner.create()["assetId"]
    [uploaded] = owner.upload(asset_id, picture(2))["images"]
    assert http.get(_preview_path(uploaded["previewUrl"])).status_code == 200
    edited = owner.patch(f"/{asset_id}/images/{uploaded['id']}", json={"caption": "a zorb on a red table"}).json()
    assert http.get(_preview_path(edited["previewUrl"])).status_code == 200


def test_a_preview_url_is_the_same_on_a_reload_so_the_browser_cache_serves_it(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(3))
    first = owner.get(f"/{asset_id}/images").json()["images"][0]["previewUrl"]
    again = owner.get(f"/{asset_id}/images").json()["images"][0]["previewUrl"]
    assert first == again


def test_an_altered_preview_url_is_refused(owner: Caller, http: TestClient) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(4), picture(5))
    first, second = owner.get(f"/{asset_id}/images").json()["images"]
    url = first["previewUrl"]
    query = parse_qs(urlsplit(url).query)
    altered = [
        _with_query(url, signature="0" * 64),
        _with_query(url, expires=str(int(query["expires"][0]) + 3600)),
        _with_query(url, signature="é" * 64),
        _preview_path(url).replace(first["id"], second["id"]),  # another image, the first one's signature
    ]
    for path in altered:
        response = http.get(path)
        assert response.status_code == 403, path
        assert response.json()["error_code"] == "access_error"


def test_a_preview_url_signed_for_one_organization_opens_nothing_for_another(
    owner: Caller, stranger: Caller, http: TestClient
) -> None:
    mine = owner.create()["assetId"]
    owner.upload(mine, picture(6))
    theirs = stranger.create()["assetId"]
    stranger.upload(theirs, picture(7))
    url = owner.get(f"/{mine}/images").json()["images"][0]["previewUrl"]
    their_org = parse_qs(urlsplit(stranger.get(f"/{theirs}/images").json()["images"][0]["previewUrl"]).query)["org"][0]
    assert http.get(_with_query(url, org=their_org)).status_code == 403
    # The other organization cannot list the images to get URLs at all.
    refused = stranger.get(f"/{mine}/images")
    assert refused.status_code == 404 and refused.json()["error_code"] == "not_found"


def test_an_expired_preview_url_is_refused(owner: Caller, http: TestClient) -> None:
    from ember.custom_models.previews import preview_url

    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(8))
    url = owner.get(f"/{asset_id}/images").json()["images"][0]["previewUrl"]
    query = parse_qs(urlsplit(url).query)
    # Re-signed exactly as the server would have three hours ago: a real signature, past its expiry.
    runtime = http.app.state.runtime  # type: ignore[attr-defined]
    from ember.api.conversions import model_id_from_asset_id
    from ember.custom_models.previews import preview_key

    image_id = urlsplit(url).path.split("/")[-2]
    import uuid

    old = preview_url(
        preview_key(runtime.token_key),
        "",
        asset_id,
        uuid.UUID(query["org"][0]),
        model_id_from_asset_id(asset_id),
        uuid.UUID(image_id),
        now=time.time() - 3 * 3600,
    )
    assert http.get(old).status_code == 403


def test_a_deleted_image_has_no_preview(owner: Caller, http: TestClient) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(9))
    [item] = owner.get(f"/{asset_id}/images").json()["images"]
    assert owner.delete(f"/{asset_id}/images/{item['id']}").status_code == 204
    response = http.get(_preview_path(item["previewUrl"]))
    assert response.status_code == 404 and response.json()["error_code"] == "not_found"


def test_preview_parameters_of_the_wrong_type_are_a_422(owner: Caller, http: TestClient) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(10))
    url = owner.get(f"/{asset_id}/images").json()["images"][0]["previewUrl"]
    for change, field in (({"expires": "soon"}, "expires"), ({"org": "acme"}, "org"), ({"expires": "-5"}, "expires")):
        response = http.get(_with_query(url, **change))
        assert response.status_code == 422, change
        body = response.json()
        assert body["error_code"] == "validation_error"
        assert body["validation_errors"][0]["loc"] == ["query", field]
    missing = http.get(urlsplit(url).path)
    assert missing.status_code == 422 and missing.json()["error_code"] == "validation_error"


def test_a_malformed_asset_or_image_id_in_a_preview_url_is_refused(owner: Caller, http: TestClient) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(11))
    [item] = owner.get(f"/{asset_id}/images").json()["images"]
    path = _preview_path(item["previewUrl"])
    for broken in (path.replace(asset_id, "not-an-asset"), path.replace(item["id"], "123")):
        response = http.get(broken)
        assert response.status_code == 403 and response.json()["error_code"] == "access_error"


def test_the_summary_names_what_blocks_training_and_scores_the_usable_images(owner: Caller) -> None:
    asset_id = owner.create(samplePrompt="a zorb on a beach")["assetId"]
    owner.http.post(
        f"{MODELS}/{asset_id}/images",
        files=image_files(picture(20), picture(20), picture(21), names=["a.png", "copy-of-a.png", "b.png"]),
        headers=owner.headers,
    )
    summary = owner.get(f"/{asset_id}/images").json()["summary"]
    assert summary["readyToTrain"] is False
    assert (summary["imageCount"], summary["usableCount"], summary["minImages"]) == (3, 2, 10)
    assert summary["score"] == 20  # 2 usable of the 10 needed
    kinds = {error["type"]: error for error in summary["blocking"]}
    assert "too_few_images" in kinds
    assert kinds["duplicate_image"]["msg"].startswith("copy-of-a.png: ")


def test_a_set_that_passes_every_rule_is_ready_to_train(owner: Caller) -> None:
    asset_id = owner.trainable()
    summary = owner.get(f"/{asset_id}/images").json()["summary"]
    assert summary["readyToTrain"] is True and summary["blocking"] == []
    assert summary["score"] == 100 and summary["usableCount"] == 10
