"""POST /v2/storage/image and signed output URLs (expiring, tamper-evident, S3 presigned where available)."""

from __future__ import annotations

import io
import time
from datetime import timedelta
from urllib.parse import parse_qs

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import select

from ember.api.links import output_url, url_key
from ember.api.runtime import Runtime
from ember.blobs import S3BlobStore
from ember.store.database import transaction
from ember.store.tables import Upload, utcnow

from .conftest import Headers, png_bytes

UPLOAD = "/v2/storage/image"


def jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_an_uploaded_image_gets_a_uuid_and_lasts_seven_days(
    http: TestClient, headers: Headers, runtime: Runtime
) -> None:
    response = http.post(UPLOAD, content=jpeg_bytes(), headers={**headers, "content-type": "image/jpeg"})
    assert response.status_code == 200, response.text
    [image] = response.json()["images"]
    with runtime.sessions() as session:
        upload = session.scalars(select(Upload)).one()
    assert str(upload.id) == image["id"]
    assert upload.mimetype == "image/jpeg"
    assert timedelta(days=6, hours=23) < upload.expires_at - utcnow() <= timedelta(days=7)
    assert runtime.blobs.get(upload.blob_key) == jpeg_bytes()


def test_an_upload_of_another_type_is_415(http: TestClient, headers: Headers) -> None:
    response = http.post(UPLOAD, content=b"GIF89a", headers={**headers, "content-type": "image/gif"})
    assert (response.status_code, response.json()["error_code"]) == (415, "invalid_content_type")


def test_an_upload_over_15_mb_is_413(http: TestClient, headers: Headers) -> None:
    too_big = b"\0" * (15 * 1024 * 1024 + 1)
    response = http.post(UPLOAD, content=too_big, headers={**headers, "content-type": "image/png"})
    assert response.status_code == 413


def test_an_upload_that_is_not_the_declared_image_is_400(http: TestClient, headers: Headers) -> None:
    response = http.post(UPLOAD, content=png_bytes(), headers={**headers, "content-type": "image/jpeg"})
    assert (response.status_code, response.json()["error_code"]) == (400, "bad_request")


def test_an_empty_upload_is_empty_input_body(http: TestClient, headers: Headers) -> None:
    response = http.post(UPLOAD, content=b"", headers={**headers, "content-type": "image/png"})
    assert (response.status_code, response.json()["error_code"]) == (400, "empty_input_body")


def test_an_upload_is_usable_only_by_its_organization(
    http: TestClient, headers: Headers, other_org_headers: Headers
) -> None:
    upload_id = http.post(UPLOAD, content=png_bytes(), headers={**headers, "content-type": "image/png"}).json()[
        "images"
    ][0]["id"]
    body = {"prompt": "a cat", "style": {"imageReference": {"source": {"uploadId": upload_id}}}}
    assert http.post("/v3/images/generate-async", json=body, headers=headers).status_code == 202
    assert http.post("/v3/images/generate-async", json=body, headers=other_org_headers).status_code == 422


def test_an_expired_upload_is_refused(http: TestClient, headers: Headers, runtime: Runtime) -> None:
    upload_id = http.post(UPLOAD, content=png_bytes(), headers={**headers, "content-type": "image/png"}).json()[
        "images"
    ][0]["id"]
    with transaction(runtime.sessions) as session:
        session.scalars(select(Upload)).one().expires_at = utcnow() - timedelta(seconds=1)
    body = {"prompt": "a cat", "structure": {"imageReference": {"source": {"uploadId": upload_id}}}}
    assert http.post("/v3/images/generate-async", json=body, headers=headers).status_code == 422


def signed(runtime: Runtime, key: str, now: float | None = None) -> str:
    return output_url(runtime.blobs, "http://testserver", key, runtime.settings.output_url_ttl_s,
                      url_key(runtime.token_key), now=now)


def test_a_signed_output_url_serves_the_image_without_a_token(http: TestClient, runtime: Runtime) -> None:
    runtime.blobs.put("outputs/job1/0-5.png", png_bytes())
    response = http.get(signed(runtime, "outputs/job1/0-5.png"))
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == png_bytes()


def test_an_expired_output_url_is_403(http: TestClient, runtime: Runtime) -> None:
    runtime.blobs.put("outputs/job1/0-5.png", png_bytes())
    issued_long_ago = time.time() - runtime.settings.output_url_ttl_s - 1
    response = http.get(signed(runtime, "outputs/job1/0-5.png", now=issued_long_ago))
    assert (response.status_code, response.json()["error_code"]) == (403, "access_error")


def test_an_output_url_lasts_one_hour(runtime: Runtime) -> None:
    url = signed(runtime, "outputs/job1/0-5.png", now=1000.0)
    assert f"expires={1000 + 3600}" in url


def test_an_altered_output_url_is_403(http: TestClient, runtime: Runtime) -> None:
    runtime.blobs.put("outputs/job1/0-5.png", png_bytes())
    runtime.blobs.put("outputs/job1/1-6.png", png_bytes())
    url = signed(runtime, "outputs/job1/0-5.png")
    assert http.get(url.replace("0-5.png", "1-6.png")).status_code == 403
    later = url.replace("expires=", "expires=9")
    assert http.get(later).status_code == 403


def test_an_s3_blob_store_hands_out_presigned_urls() -> None:
    import boto3
    from moto import mock_aws

    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket="outputs")
        store = S3BlobStore("outputs", "ember", client=client)
        issued = time.time()
        url = output_url(store, "http://ember.example", "outputs/job1/0-5.png", 3600, b"k" * 32)
    address, _, query = url.partition("?")
    fields = parse_qs(query)
    assert address.endswith("/ember/outputs/job1/0-5.png")
    assert "Signature" in fields
    assert abs(int(fields["Expires"][0]) - (issued + 3600)) < 5


def test_a_non_ascii_output_signature_is_403(http: TestClient, runtime: Runtime) -> None:
    runtime.blobs.put("outputs/job1/0-5.png", png_bytes())
    expires = int(time.time()) + 60
    response = http.get("/outputs/outputs/job1/0-5.png", params={"expires": expires, "signature": "é" * 64})
    assert (response.status_code, response.json()["error_code"]) == (403, "access_error")


def test_an_upload_declaring_more_pixels_than_training_accepts_is_400(http: TestClient, headers: Headers) -> None:
    bomb = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(bomb, format="PNG")  # about 100 KB for 10^8 pixels
    response = http.post(UPLOAD, content=bomb.getvalue(), headers={**headers, "content-type": "image/png"})
    assert (response.status_code, response.json()["error_code"]) == (400, "bad_request")
    assert "pixels" in response.json()["message"]
