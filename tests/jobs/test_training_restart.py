"""A server killed hard while it trains: started again, it resumes the training job from the checkpoint in the
blob store and finishes it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from .test_restart import free_port, start_server
from .trainable import MODELS, follow, start_training, trainable_model


def client_for(base: str, data_dir: Path) -> httpx.Client:
    credentials = json.loads((data_dir / "credentials.json").read_text())
    token = httpx.post(f"{base}/ims/token/v3", data={
        "grant_type": "client_credentials", "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"], "scope": "firefly_api,ff_apis",
    }).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}", "x-api-key": credentials["client_id"]}
    return httpx.Client(base_url=base, headers=headers, timeout=30)


def test_training_resumes_from_its_checkpoint_after_a_hard_stop(
    tmp_path: Path, ray_address: str, model_dir: Path
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port, ray_address, model_dir)
    try:
        with client_for(base, data_dir) as http:
            asset_id = trainable_model(http, {})
            job_id = start_training(http, {}, asset_id, steps=300)
            seen = follow(http, {}, job_id, until=lambda status: bool(status.get("training", {}).get("checkpointStep")))
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    checkpoint = seen[-1]["training"]["checkpointStep"]
    assert seen[-1]["status"] == "running" and checkpoint >= 100

    server = start_server(data_dir, port, ray_address, model_dir)
    try:
        with client_for(base, data_dir) as http:
            final = follow(http, {}, job_id, limit_s=180)[-1]
            item = http.get(f"{MODELS}/{asset_id}").json()
    finally:
        server.terminate()
        server.wait(timeout=60)
    assert final["status"] == "succeeded", final
    assert final["training"]["resumedFrom"] >= checkpoint
    # The curve spans the steps before the stop too: the checkpoint carried them over.
    steps = [point["step"] for point in final["training"]["losses"]]
    assert len(steps) <= 200 and steps == list(range(steps[0], 301, steps[0]))
    assert (item["trainingState"], item["version"]) == ("ready", "1")
