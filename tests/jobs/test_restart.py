"""A server killed hard with jobs pending and running: the engine pool it used is the deployment's, not the
server's, so every job goes on and reaches a final state in its first attempt; a restarted server answers."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from ember.store.database import open_engine, session_factory
from ember.store.tables import Job, JobState

from .conftest import stop_pool

FINAL = {"succeeded", "failed", "cancelled", "timeout"}
JOBS = 12  # enough that some still wait while the first ones run, however fast the worker is


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    data_dir: Path, port: int, ray_address: str, model_dir: Path, **settings: str
) -> subprocess.Popen[bytes]:
    """`ember serve` in its own process; `settings` are more EMBER_* variables (lower-case names)."""
    env = {
        **os.environ,
        "EMBER_MODEL_DIR": str(model_dir),
        "EMBER_HEARTBEAT_TIMEOUT_S": "3",
        "EMBER_REAPER_INTERVAL_S": "0.5",
        "EMBER_RATE_LIMIT_PER_MINUTE": "0",
        **{f"EMBER_{name.upper()}": value for name, value in settings.items()},
    }
    env.pop("EMBER_DATA_DIR", None)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ember"), "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--ray-address", ray_address],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.1)  # polling a port: another process offers no event to await
    process.kill()
    raise AssertionError("the server did not start")


def first_client_headers(base: str, data_dir: Path) -> dict[str, str]:
    """Request headers of the API client `ember serve` made on first start."""
    credentials = json.loads((data_dir / "credentials.json").read_text())
    token = httpx.post(f"{base}/ims/token/v3", data={
        "grant_type": "client_credentials", "client_id": credentials["client_id"],
        "client_secret": credentials["client_secret"], "scope": "firefly_api,ff_apis",
    }).json()["access_token"]
    return {"Authorization": f"Bearer {token}", "x-api-key": credentials["client_id"]}


def job_states(data_dir: Path) -> dict[str, JobState]:
    engine = open_engine(f"sqlite:///{data_dir / 'ember.db'}")
    try:
        with session_factory(engine)() as session:
            return {job.id: job.state for job in session.scalars(select(Job))}
    finally:
        engine.dispose()


def test_after_a_hard_stop_every_job_reaches_a_final_state(
    tmp_path: Path, ray_address: str, model_dir: Path
) -> None:
    data_dir, port = tmp_path / "data", free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port, ray_address, model_dir)
    try:
        headers = first_client_headers(base, data_dir)
        job_ids = [
            httpx.post(f"{base}/v3/images/generate-async", json={"prompt": f"a cat {n}", "numVariations": 4},
                       headers=headers, timeout=30).json()["jobId"]
            for n in range(JOBS)
        ]
        # Stop the server the moment one job runs while another still waits: whichever the worker took first.
        deadline = time.monotonic() + 90
        while not {JobState.running, JobState.pending} <= set(job_states(data_dir).values()):
            assert time.monotonic() < deadline, "no moment with a job running and another pending"
            time.sleep(0.02)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=30)
    before = job_states(data_dir)
    assert JobState.running in before.values() and JobState.pending in before.values()

    server = start_server(data_dir, port, ray_address, model_dir)
    try:
        deadline = time.monotonic() + 150
        statuses: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            statuses = [httpx.get(f"{base}/v3/status/{job_id}", headers=headers).json() for job_id in job_ids]
            if all(status["status"] in FINAL for status in statuses):
                break
            time.sleep(0.2)
    finally:
        server.terminate()
        server.wait(timeout=60)
        stop_pool(f"sqlite:///{data_dir / 'ember.db'}")
    assert [status["status"] for status in statuses] == ["succeeded"] * JOBS
    assert [status["attempts"] for status in statuses] == [1] * JOBS
