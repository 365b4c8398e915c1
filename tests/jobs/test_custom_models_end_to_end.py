"""Two custom models in one request, through a real local Ray and engine worker, down to the signed image."""

from __future__ import annotations

from ember.worker.provenance import read_credentials

from .conftest import Live, add_trained_model
from .test_end_to_end import wait_final


def test_content_credentials_name_every_custom_model_used(live: Live, tiny_lora: bytes) -> None:
    credentials, headers = live.client()
    one = add_trained_model(live.runtime, credentials, tiny_lora, concept="zorb")
    two = add_trained_model(live.runtime, credentials, tiny_lora, concept="zorb")
    body = {
        "prompt": "a zorb on a table",
        "seeds": [3],
        "size": {"width": 1024, "height": 1024},
        "customModels": [{"id": one, "weight": 0.7}, {"id": two, "weight": 1.4}],
    }
    accepted = live.http.post(
        "/v3/images/generate-async", json=body, headers={**headers, "x-model-version": "image3_custom"}
    )
    assert accepted.status_code == 202, accepted.text
    status = wait_final(live.http, headers, accepted.json()["statusUrl"])
    assert status["status"] == "succeeded", status
    image = live.http.get(status["result"]["outputs"][0]["image"]["url"]).content
    report = str(read_credentials(image, "image/jpeg"))
    assert one in report and two in report
