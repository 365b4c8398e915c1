"""The published Firefly custom-models tutorial, run unchanged except for its two base URLs, over real HTTP."""

from __future__ import annotations

import time

import requests

from .conftest import Live, add_trained_model

# --- the tutorial's code (only IMS_BASE and FIREFLY_BASE differ from the published version) ---------------

SCOPES = "openid,AdobeID,session,additional_info,read_organizations,firefly_api,ff_apis"


def retrieve_access_token(ims_base: str, client_id: str, client_secret: str) -> str:
    token_url = f"{ims_base}/ims/token/v3"
    payload = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
        "scope": SCOPES,
    }
    response = requests.post(token_url, data=payload)
    response.raise_for_status()
    token_data = response.json()
    print("Access Token Retrieved")
    return str(token_data["access_token"])


def list_custom_models(firefly_base: str, client_id: str, access_token: str) -> dict:  # type: ignore[type-arg]
    headers = {"X-Api-Key": client_id, "Authorization": f"Bearer {access_token}"}
    response = requests.get(f"{firefly_base}/v3/custom-models", headers=headers)
    response.raise_for_status()
    return dict(response.json())


def generate_image(firefly_base: str, client_id: str, access_token: str, custom_model_id: str) -> str:
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "x-model-version": "image3_custom",
        "x-accept-mimetype": "image/jpeg",
        "X-Api-Key": client_id,
        "Authorization": f"Bearer {access_token}",
    }
    data = {
        "customModelId": custom_model_id,
        "prompt": "a zorb sitting on a windowsill",
        "size": {"width": 2048, "height": 2048},
    }
    response = requests.post(f"{firefly_base}/v3/images/generate-async", headers=headers, json=data)
    response.raise_for_status()
    job = response.json()
    status_url = job["statusUrl"]
    while True:
        status_response = requests.get(status_url, headers=headers)
        status_response.raise_for_status()
        status = status_response.json()
        print(f"Job status: {status['status']}")
        if status["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.2)  # the tutorial sleeps between polls (shortened here)
    if status["status"] != "succeeded":
        raise RuntimeError(f"job ended as {status['status']}")
    return str(status["result"]["outputs"][0]["image"]["url"])


# --- running it against Ember ---------------------------------------------------------------------------------


def test_the_tutorial_flow_runs_against_ember(live: Live, tiny_lora: bytes, live_url: str) -> None:
    credentials, _ = live.client()
    add_trained_model(live.runtime, credentials, tiny_lora, concept="zorb")

    base_url = live_url
    access_token = retrieve_access_token(base_url, credentials.client_id, credentials.client_secret)
    models = list_custom_models(base_url, credentials.client_id, access_token)
    custom_model_id = models["custom_models"][0]["repo:assetId"]
    image_url = generate_image(base_url, credentials.client_id, access_token, custom_model_id)

    image = requests.get(image_url)
    assert image.status_code == 200
    assert image.headers["content-type"] == "image/jpeg"
    assert image.content[:3] == b"\xff\xd8\xff"
