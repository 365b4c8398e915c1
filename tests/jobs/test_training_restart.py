"""A server and the engine worker carrying its training job killed hard (the machine went down): the pool takes
the job back, and it resumes from the checkpoint in the blob store and finishes, as the restarted server
reports."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import httpx

from ember.store.database import open_engine, session_factory
from ember.store.tables import Job

from .conftest import stop_pool
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


def kill_worker_of(data_dir: Path, job_id: str) -> None:
    """kill -9, as Ray does it, of the engine worker that runs `job_id` (the server no longer owns it)."""
    import ray

    engine = open_engine(f"sqlite:///{data_dir / 'ember.db'}")
    with session_factory(engine)() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.worker_id is not None
        worker_id = job.worker_id
    engine.dispose()
    ray.kill(ray.get_actor(worker_id, namespace="ember"))


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
    kill_worker_of(data_dir, job_id)
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
        stop_pool(f"sqlite:///{data_dir / 'ember.db'}")
    assert final["status"] == "succeeded", final
    assert final["attempts"] == 2
    assert final["training"]["resumedFrom"] >= checkpoint
    # The curve spans the steps before the stop too: the checkpoint carried them over.
    steps = [point["step"] for point in final["training"]["losses"]]
    assert len(steps) <= 200 and steps == list(range(steps[0], 301, steps[0]))
    assert (item["trainingState"], item["version"]) == ("ready", "1")
