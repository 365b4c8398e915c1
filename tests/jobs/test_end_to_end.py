"""A real local Ray and engine worker: upload, generate-async with a trained custom model, poll, download."""

from __future__ import annotations

import io
import time
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from ember.worker.provenance import read_credentials

from .conftest import Headers, Live, add_trained_model, png_bytes

FINAL = {"succeeded", "failed", "cancelled", "timeout"}


def wait_final(http: TestClient, headers: Headers, status_url: str, limit_s: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + limit_s
    while True:
        body: dict[str, Any] = http.get(status_url, headers=headers).json()
        if body["status"] in FINAL or time.monotonic() > deadline:
            return body
        time.sleep(0.1)  # polling is how a Firefly client follows a job


def test_a_custom_model_job_produces_signed_images_at_the_requested_size_and_type(
    live: Live, tiny_lora: bytes
) -> None:
    credentials, headers = live.client()
    model = add_trained_model(live.runtime, credentials, tiny_lora, concept="zorb")
    upload = live.http.post("/v2/storage/image", content=png_bytes(), headers={**headers, "content-type": "image/png"})
    assert upload.status_code == 200, upload.text
    upload_id = upload.json()["images"][0]["id"]
    body = {
        "prompt": "a zorb on a table",
        "seeds": [11, 12],
        "size": {"width": 1152, "height": 896},
        "style": {"presets": ["bw"], "imageReference": {"source": {"uploadId": upload_id}}},
        "customModelId": model,
    }
    extra = {"x-model-version": "image3_custom", "x-accept-mimetype": "image/png"}

    def run() -> list[bytes]:
        accepted = live.http.post("/v3/images/generate-async", json=body, headers={**headers, **extra})
        assert accepted.status_code == 202, accepted.text
        status = wait_final(live.http, headers, accepted.json()["statusUrl"])
        assert status["status"] == "succeeded", status
        assert status["result"]["size"] == {"width": 1152, "height": 896}
        assert [output["seed"] for output in status["result"]["outputs"]] == [11, 12]
        pixels = []
        for output in status["result"]["outputs"]:
            image_response = live.http.get(output["image"]["url"])
            assert image_response.headers["content-type"] == "image/png"
            image = Image.open(io.BytesIO(image_response.content))
            assert (image.format, image.size) == ("PNG", (1152, 896))
            credentials_report = read_credentials(image_response.content, "image/png")
            assert "org.ember.generation" in str(credentials_report)
            pixels.append(image.convert("RGB").tobytes())
        return pixels

    first, second = run(), run()
    assert first == second
    assert first[0] != first[1]


def test_the_concept_warning_reaches_the_status_result(live: Live, tiny_lora: bytes) -> None:
    credentials, headers = live.client()
    model = add_trained_model(live.runtime, credentials, tiny_lora, concept="zorb")
    accepted = live.http.post(
        "/v3/images/generate-async",
        json={"prompt": "a red car", "customModelId": model, "size": {"width": 1024, "height": 1024}},
        headers={**headers, "x-model-version": "image3_custom"},
    )
    status = wait_final(live.http, headers, accepted.json()["statusUrl"])
    assert [warning["code"] for warning in status["result"]["warnings"]] == ["concept_missing"]


def test_synchronous_generate_answers_with_the_result(live: Live) -> None:
    _, headers = live.client()
    response = live.http.post(
        "/v3/images/generate",
        json={"prompt": "a cat", "seeds": [5], "size": {"width": 1024, "height": 1024}},
        headers={**headers, "x-accept-mimetype": "image/webp"},
    )
    assert response.status_code == 200, response.text
    [output] = response.json()["outputs"]
    image = Image.open(io.BytesIO(live.http.get(output["image"]["url"]).content))
    assert (output["seed"], image.format, image.size) == (5, "WEBP", (1024, 1024))


def test_synchronous_generate_past_its_timeout_is_408(live: Live, monkeypatch: Any) -> None:
    _, headers = live.client()
    monkeypatch.setattr(live.runtime.settings, "sync_generate_timeout_s", 0.01)
    response = live.http.post(
        "/v3/images/generate", json={"prompt": "a cat", "numVariations": 4}, headers=headers
    )
    assert (response.status_code, response.json()["error_code"]) == (408, "timeout_error")
