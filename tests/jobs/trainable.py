"""Training over HTTP for the job tests: a subject model with distinct images made in code, training started
through the API, and its status followed the way a client follows it."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from PIL import Image

MODELS = "/v3/custom-models"
FINAL = {"succeeded", "failed", "cancelled", "timeout"}


class Http(Protocol):
    """What the tests need of an HTTP client: FastAPI's TestClient and an httpx.Client both fit."""

    def get(self, url: str, **kwargs: Any) -> Any: ...

    def post(self, url: str, **kwargs: Any) -> Any: ...

    def put(self, url: str, **kwargs: Any) -> Any: ...


def picture(seed: int, side: int = 96) -> bytes:
    """An image unlike any other seed's (coarse random blocks), so the duplicate check passes."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(blocks).resize((side, side), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()


def trainable_model(http: Http, headers: dict[str, str], images: int = 10, base_model: str | None = None) -> str:
    """A subject model (concept `zorb`) that passes every training rule; its asset id."""
    body: dict[str, Any] = {
        "displayName": "Mascot", "trainingMode": "subject", "conceptId": "zorb", "samplePrompt": "a zorb on a beach"
    }
    if base_model is not None:
        body["baseModel"] = {"name": base_model}
    created = http.post(MODELS, json=body, headers=headers)
    assert created.status_code == 201, created.text
    asset_id = str(created.json()["assetId"])
    files = [("files", (f"image-{seed}.png", picture(seed), "image/png")) for seed in range(images)]
    uploaded = http.post(f"{MODELS}/{asset_id}/images", files=files, headers=headers)
    assert uploaded.status_code == 200, uploaded.text
    return asset_id


def start_training(http: Http, headers: dict[str, str], asset_id: str, **overrides: Any) -> str:
    response = http.post(f"{MODELS}/{asset_id}/train-async", json=overrides, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["jobId"])


def follow(
    http: Http,
    headers: dict[str, str],
    job_id: str,
    *,
    until: Callable[[dict[str, Any]], bool] = lambda status: status["status"] in FINAL,
    limit_s: float = 150,
) -> list[dict[str, Any]]:
    """Every status body seen while polling, up to the first one `until` accepts (a final one by default)."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        body: dict[str, Any] = http.get(f"/v3/status/{job_id}", headers=headers).json()
        seen.append(body)
        if until(body):
            return seen
        if body["status"] in FINAL:
            raise AssertionError(f"job {job_id} ended before the awaited status: {body}")
        time.sleep(0.1)  # polling is how a client follows a job
    raise AssertionError(f"job {job_id} did not reach the awaited status in {limit_s} s: {seen[-1:]}")
