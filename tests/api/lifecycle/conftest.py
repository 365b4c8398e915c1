"""Lifecycle fixtures: images made in code, and a caller that creates models, uploads and trains over HTTP."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from ember.identity import ClientCredentials

MODELS = "/v3/custom-models"


def picture(seed: int, width: int = 96, height: int = 96, format: str = "PNG") -> bytes:
    """An image unlike any other seed's: coarse random blocks, so perceptual hashes differ widely."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
    image = Image.fromarray(blocks).resize((width, height), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, format=format)
    return out.getvalue()


def image_files(*contents: bytes, names: list[str] | None = None) -> list[tuple[str, tuple[str, bytes, str]]]:
    """Multipart parts, all named `files`, as httpx takes them."""
    return [
        ("files", ((names[index] if names else f"image-{index}.png"), data, "image/png"))
        for index, data in enumerate(contents)
    ]


@dataclass
class Caller:
    """One API client of one organization, talking to the app through the test client."""

    http: TestClient
    headers: dict[str, str]
    credentials: ClientCredentials

    def create(self, **fields: Any) -> dict[str, Any]:
        body = {"displayName": "Mascot", "trainingMode": "subject", "conceptId": "zorb"}
        body.update(fields)
        response = self.http.post(MODELS, json=body, headers=self.headers)
        assert response.status_code == 201, response.text
        item: dict[str, Any] = response.json()
        return item

    def upload(self, asset_id: str, *contents: bytes) -> dict[str, Any]:
        response = self.http.post(f"{MODELS}/{asset_id}/images", files=image_files(*contents), headers=self.headers)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def trainable(self, images: int = 10, **fields: Any) -> str:
        """A subject model that passes every training rule: `images` distinct images, a sample prompt."""
        fields.setdefault("samplePrompt", "a zorb on a beach")
        asset_id = str(self.create(**fields)["assetId"])
        self.upload(asset_id, *(picture(seed) for seed in range(images)))
        return asset_id

    def request(self, method: str, path: str = "", headers: dict[str, str] | None = None, **kwargs: Any) -> Any:
        return self.http.request(method, f"{MODELS}{path}", headers={**self.headers, **(headers or {})}, **kwargs)

    def get(self, path: str = "", **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str = "", **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str = "", **kwargs: Any) -> Any:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str = "", **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)


@pytest.fixture
def caller_in(
    http: TestClient,
    new_client: Callable[..., ClientCredentials],
    headers_for: Callable[[ClientCredentials], dict[str, str]],
) -> Callable[[str], Caller]:
    def make(org: str) -> Caller:
        credentials = new_client(org)
        return Caller(http, headers_for(credentials), credentials)

    return make


@pytest.fixture
def owner(caller_in: Callable[[str], Caller]) -> Caller:
    return caller_in("acme")


@pytest.fixture
def stranger(caller_in: Callable[[str], Caller]) -> Caller:
    return caller_in("globex")


@pytest.fixture
def trained(runtime: Any) -> Callable[..., None]:
    """Records a trained version of a model the way a training worker does: a LoRA blob and a version row, with
    the check after training (`check`, as ember.engine.checks.ModelCheck.as_json stores it) when given."""
    import uuid

    from sqlalchemy import select

    from ember.api.conversions import model_id_from_asset_id
    from ember.blobs import new_key
    from ember.store.database import transaction
    from ember.store.tables import CustomModel, CustomModelVersion, TrainingState

    def record(asset_id: str, lora: bytes, check: dict[str, Any] | None = None) -> None:
        model_id: uuid.UUID = model_id_from_asset_id(asset_id)
        with transaction(runtime.sessions) as session:
            model = session.scalar(select(CustomModel).where(CustomModel.id == model_id))
            assert model is not None
            number = model.current_version + 1
            key = new_key(f"custom-models/{model_id.hex}/versions/{number}", ".safetensors")
            runtime.blobs.put(key, lora)
            session.add(
                CustomModelVersion(
                    model_id=model_id, number=number, lora_blob_key=key, size=len(lora), publish_check=check
                )
            )
            model.current_version = number
            model.size = len(lora)
            model.training_state = TrainingState.ready

    return record
