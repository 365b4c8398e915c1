"""Training images: upload (checked and captioned per image), listing, captions, deletion, size limits."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from ember.api.runtime import Runtime

from .conftest import MODELS, Caller, image_files, picture


def _codes(item: dict[str, object]) -> list[str]:
    errors = item["errors"]
    assert isinstance(errors, list)
    return [error["code"] for error in errors]


def _blob_files(runtime: Runtime) -> list[Path]:
    root = Path(runtime.settings.data_dir) / "blobs" / "custom-models"
    return [path for path in root.rglob("*") if path.is_file()]


def _bomb_png(width: int, height: int) -> bytes:
    """A valid 1×1 PNG whose header claims width×height pixels."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, format="PNG")
    data = bytearray(out.getvalue())
    header = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    return bytes(data)


def test_each_uploaded_image_comes_back_with_a_caption_that_names_the_concept(owner: Caller) -> None:
    asset_id = owner.create(conceptId="zorb")["assetId"]
    body = owner.upload(asset_id, picture(1), picture(2))
    assert body["total_count"] == 2
    for item in body["images"]:
        assert item["stored"] is True and item["errors"] == []
        assert "zorb" in item["caption"] and item["caption"] == item["autoCaption"]
        assert (item["width"], item["height"]) == (96, 96)


def test_style_captions_describe_the_image_only(owner: Caller) -> None:
    asset_id = owner.create(trainingMode="style")["assetId"]
    [item] = owner.upload(asset_id, picture(1))["images"]
    assert len(item["caption"].split()) >= 3 and "zorb" not in item["caption"]


def test_the_image_listing_keeps_upload_order(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    owner.http.post(
        f"{MODELS}/{asset_id}/images",
        files=image_files(picture(1), picture(2), names=["first.png", "second.png"]),
        headers=owner.headers,
    )
    owner.upload(asset_id, picture(3))
    listing = owner.get(f"/{asset_id}/images").json()
    assert [item["filename"] for item in listing["images"]] == ["first.png", "second.png", "image-0.png"]


def test_an_upload_moves_the_models_modified_date_and_etag(owner: Caller) -> None:
    item = owner.create()
    owner.upload(item["assetId"], picture(1))
    after = owner.get(f"/{item['assetId']}").json()
    assert after["etag"] != item["etag"] and after["modifiedDate"] >= item["modifiedDate"]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_file"),
        (b"this is not an image at all", "corrupt_image"),
        (picture(1)[:200], "corrupt_image"),
        (picture(1, format="GIF"), "unsupported_format"),
        (_bomb_png(9000, 9000), "decompression_bomb"),
    ],
)
def test_a_file_that_is_no_usable_image_is_reported_and_not_kept(
    owner: Caller, runtime: Runtime, data: bytes, code: str
) -> None:
    asset_id = owner.create()["assetId"]
    body = owner.upload(asset_id, data)
    [item] = body["images"]
    assert (item["stored"], item["id"], _codes(item)) == (False, None, [code])
    assert item["errors"][0]["message"]
    assert body["total_count"] == 0 and _blob_files(runtime) == []


def test_a_file_over_50_mb_is_reported_and_not_kept(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    [item] = owner.upload(asset_id, picture(1) + bytes(50 * 1024 * 1024))["images"]
    assert (item["stored"], _codes(item)) == (False, ["file_too_large"])


@pytest.mark.parametrize(
    ("size", "code"),
    [
        ((48, 96), "image_too_small"),
        ((400, 100), "aspect_ratio_out_of_range"),
        ((100, 400), "aspect_ratio_out_of_range"),
    ],
)
def test_an_image_breaking_a_rule_is_kept_and_flagged(owner: Caller, size: tuple[int, int], code: str) -> None:
    asset_id = owner.create()["assetId"]
    [item] = owner.upload(asset_id, picture(1, *size))["images"]
    assert item["stored"] is True and code in _codes(item)
    assert code in _codes(owner.get(f"/{asset_id}/images").json()["images"][0])


@pytest.mark.parametrize("settings_overrides", [{"training_min_image_side": 200}])
def test_the_minimum_image_side_is_configurable(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    [item] = owner.upload(asset_id, picture(1, 150, 150))["images"]
    assert _codes(item) == ["image_too_small"]


def test_an_image_already_in_the_model_is_flagged_as_a_duplicate(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(1))
    [item] = owner.upload(asset_id, picture(1))["images"]
    assert _codes(item) == ["duplicate_image"]


def test_a_re_encoded_copy_is_flagged_as_a_near_duplicate(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(1, 192, 192))
    [item] = owner.upload(asset_id, picture(1, 160, 160, format="JPEG"))["images"]
    assert _codes(item) == ["duplicate_image"]


def test_deleting_the_original_clears_its_duplicates_flag(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    first, second = owner.upload(asset_id, picture(1), picture(1))["images"]
    assert owner.delete(f"/{asset_id}/images/{first['id']}").status_code == 204
    [remaining] = owner.get(f"/{asset_id}/images").json()["images"]
    assert (remaining["id"], remaining["errors"]) == (second["id"], [])


@pytest.mark.parametrize("settings_overrides", [{"training_max_images": 3}])
def test_files_past_the_image_limit_are_refused(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    owner.upload(asset_id, picture(1), picture(2))
    body = owner.upload(asset_id, picture(3), picture(4))
    assert [(item["stored"], _codes(item)) for item in body["images"]] == [(True, []), (False, ["too_many_images"])]
    assert body["total_count"] == 3


def test_editing_a_caption_keeps_the_automatic_one(owner: Caller) -> None:
    item = owner.create()
    [image] = owner.upload(item["assetId"], picture(1))["images"]
    response = owner.patch(f"/{item['assetId']}/images/{image['id']}", json={"caption": "a zorb  on a red chair"})
    assert response.status_code == 200
    edited = response.json()
    assert (edited["caption"], edited["autoCaption"], edited["errors"]) == (
        "a zorb on a red chair",
        image["autoCaption"],
        [],
    )
    assert owner.get(f"/{item['assetId']}").json()["etag"] != item["etag"]


@pytest.mark.parametrize(
    ("caption", "code"),
    [("", "caption_missing"), ("a zorb", "caption_too_short"), (" ".join(["zorb"] * 41), "caption_too_long")],
)
def test_a_caption_breaking_the_length_rules_is_kept_and_reported(owner: Caller, caption: str, code: str) -> None:
    asset_id = owner.create()["assetId"]
    [image] = owner.upload(asset_id, picture(1))["images"]
    edited = owner.patch(f"/{asset_id}/images/{image['id']}", json={"caption": caption}).json()
    assert _codes(edited) == [code]
    assert _codes(owner.get(f"/{asset_id}/images").json()["images"][0]) == [code]


@pytest.mark.parametrize("body", [{"caption": 5}, {"caption": "ok words here", "tags": []}, {}])
def test_a_bad_caption_edit_is_a_422(owner: Caller, body: dict[str, object]) -> None:
    asset_id = owner.create()["assetId"]
    [image] = owner.upload(asset_id, picture(1))["images"]
    assert owner.patch(f"/{asset_id}/images/{image['id']}", json=body).status_code == 422


@pytest.mark.parametrize("image_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_an_unknown_image_is_a_404(owner: Caller, image_id: str) -> None:
    asset_id = owner.create()["assetId"]
    response = owner.patch(f"/{asset_id}/images/{image_id}", json={"caption": "a zorb on a chair"})
    assert response.status_code == 404
    assert owner.delete(f"/{asset_id}/images/{image_id}").status_code == 404


def test_an_image_of_another_model_is_a_404(owner: Caller) -> None:
    first = owner.create()["assetId"]
    second = owner.create()["assetId"]
    [image] = owner.upload(first, picture(1))["images"]
    assert owner.delete(f"/{second}/images/{image['id']}").status_code == 404
    assert owner.get(f"/{first}/images").json()["total_count"] == 1


def test_deleting_an_image_removes_its_file(owner: Caller, runtime: Runtime) -> None:
    asset_id = owner.create()["assetId"]
    [image] = owner.upload(asset_id, picture(1))["images"]
    assert owner.delete(f"/{asset_id}/images/{image['id']}").status_code == 204
    assert owner.get(f"/{asset_id}/images").json()["images"] == []
    assert _blob_files(runtime) == []


def test_images_cannot_change_while_the_model_trains(owner: Caller) -> None:
    asset_id = owner.trainable()
    image = owner.get(f"/{asset_id}/images").json()["images"][0]
    owner.post(f"/{asset_id}/train-async")
    responses = [
        owner.post(f"/{asset_id}/images", files=image_files(picture(50))),
        owner.patch(f"/{asset_id}/images/{image['id']}", json={"caption": "a zorb on a red chair"}),
        owner.delete(f"/{asset_id}/images/{image['id']}"),
    ]
    assert [(r.status_code, r.json()["error_code"]) for r in responses] == [(409, "training_in_progress")] * 3
    assert owner.get(f"/{asset_id}/images").json()["total_count"] == 10


@pytest.mark.parametrize("settings_overrides", [{"max_request_bytes": 100_000}])
def test_a_huge_upload_is_a_413_and_leaves_nothing_behind(owner: Caller, runtime: Runtime) -> None:
    asset_id = owner.create()["assetId"]
    big = picture(1, 400, 400, format="BMP")
    response = owner.post(f"/{asset_id}/images", files=image_files(picture(2), big))
    assert (response.status_code, response.json()["error_code"]) == (413, "request_too_large")
    assert owner.get(f"/{asset_id}/images").json()["total_count"] == 0
    assert _blob_files(runtime) == []


@pytest.mark.parametrize("settings_overrides", [{"max_request_bytes": 100_000}])
def test_a_huge_streamed_upload_is_cut_off_with_a_413(owner: Caller, runtime: Runtime) -> None:
    asset_id = owner.create()["assetId"]
    boundary = "lifecycle-boundary"
    part = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    ).encode()

    def chunks() -> object:
        yield part + picture(2)
        for _ in range(40):
            yield bytes(8192)  # no Content-Length: the server counts as the body streams in

    response = owner.post(
        f"/{asset_id}/images",
        content=chunks(),
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413
    assert owner.get(f"/{asset_id}/images").json()["total_count"] == 0
    assert _blob_files(runtime) == []


def test_an_upload_that_is_not_multipart_is_a_415(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    response = owner.post(f"/{asset_id}/images", content=picture(1), headers={"content-type": "image/png"})
    assert (response.status_code, response.json()["error_code"]) == (415, "invalid_content_type")


def test_an_upload_with_a_misnamed_part_is_a_422(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    response = owner.post(f"/{asset_id}/images", files=[("file", ("a.png", picture(1), "image/png"))])
    assert response.status_code == 422
    assert response.json()["validation_errors"][0]["loc"] == ["body", "file"]


def test_a_text_part_named_files_is_a_422(owner: Caller) -> None:
    asset_id = owner.create()["assetId"]
    response = owner.post(
        f"/{asset_id}/images", data={"files": "not a file"}, files=[("files", ("a.png", picture(1), "image/png"))]
    )
    assert response.status_code == 422
    assert owner.get(f"/{asset_id}/images").json()["total_count"] == 0


def _warnings(item: dict[str, object]) -> list[str]:
    warnings = item["warnings"]
    assert isinstance(warnings, list)
    return [warning["code"] for warning in warnings]


def _drawn_star(side: int, background: tuple[int, int, int]) -> bytes:
    from PIL import ImageDraw

    image = Image.new("RGB", (side, side), background)
    ImageDraw.Draw(image).regular_polygon((side * 0.65, side * 0.7, side * 0.2), 5, fill=(250, 205, 30))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def test_toy_captions_a_subject_image_in_its_own_words_with_the_concept_word(owner: Caller) -> None:
    asset_id = owner.create(conceptId="zorb", baseModel={"name": "toy"})["assetId"]
    [item] = owner.upload(asset_id, _drawn_star(512, (100, 40, 130)))["images"]
    assert item["caption"] == "a zorb on a purple background"
    assert _warnings(item) == []


def test_a_fallback_caption_left_as_written_is_to_review_until_edited(owner: Caller) -> None:
    asset_id = owner.create(conceptId="zorb")["assetId"]
    [item] = owner.upload(asset_id, picture(1))["images"]
    assert _warnings(item) == ["caption_needs_review"]
    assert "Written without a captioning model: review them." in item["warnings"][0]["message"]
    edited = owner.patch(f"/{asset_id}/images/{item['id']}", json={"caption": "a zorb on a wooden desk"}).json()
    assert _warnings(edited) == []


def test_a_caption_in_words_toy_does_not_know_is_warned_of(owner: Caller) -> None:
    asset_id = owner.create(conceptId="zorb", baseModel={"name": "toy"})["assetId"]
    [item] = owner.upload(asset_id, _drawn_star(256, (128, 128, 128)))["images"]
    edited = owner.patch(
        f"/{asset_id}/images/{item['id']}", json={"caption": "zorb, a softly lit picture of a glowing thing"}
    ).json()
    assert _warnings(edited) == ["caption_unknown_words"]
    assert "softly" in edited["warnings"][0]["message"]


def test_a_lightly_cropped_copy_is_a_warning_not_an_error(owner: Caller) -> None:
    asset_id = owner.create(conceptId="zorb")["assetId"]
    original = Image.open(io.BytesIO(picture(3, 400, 400))).convert("RGB")
    cropped = io.BytesIO()
    original.crop((24, 16, 388, 392)).save(cropped, format="PNG")
    body = owner.upload(asset_id, picture(3, 400, 400), cropped.getvalue())
    assert [_codes(item) for item in body["images"]] == [[], []]
    assert "possible_duplicate" in _warnings(body["images"][1])


def test_two_small_stars_in_different_places_on_one_background_are_not_duplicates(owner: Caller) -> None:
    from PIL import ImageDraw

    asset_id = owner.create(conceptId="zorb")["assetId"]
    pictures = []
    for side, centre in ((256, (200, 200)), (768, (384, 640))):
        image = Image.new("RGB", (side, side), (128, 128, 128))
        ImageDraw.Draw(image).regular_polygon((*centre, side * 0.1), 5, fill=(40, 190, 60))
        out = io.BytesIO()
        image.save(out, format="PNG")
        pictures.append(out.getvalue())
    body = owner.upload(asset_id, *pictures)
    assert [_codes(item) for item in body["images"]] == [[], []]
    assert [code for item in body["images"] for code in _warnings(item) if "duplicate" in code] == []


def test_a_concept_word_toy_cannot_read_as_one_token_is_refused_at_creation(owner: Caller) -> None:
    response = owner.post(json={"displayName": "Stars", "trainingMode": "subject", "conceptId": "starly",
                                "baseModel": {"name": "toy"}})
    assert response.status_code == 422
    assert "concept_not_one_token" in response.text and "'starly'" in response.text and "'zorb'" in response.text
