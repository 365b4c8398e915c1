"""What the benchmarks share: a seeded data directory and a real `ember serve` on a free loopback port."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from ember.config import Settings
from ember.identity import ClientCredentials, create_client
from ember.store.database import migrate, open_engine, session_factory, transaction
from ember.store.tables import Job

SCOPE = "openid,AdobeID,firefly_api,ff_apis"

# No quota may throttle a benchmark's own load.
BENCH_ENV = {
    "EMBER_RATE_LIMIT_PER_MINUTE": "0",
    "EMBER_RATE_LIMIT_PER_DAY": "0",
    "EMBER_LOG_LEVEL": "warning",
    "RAY_USAGE_STATS_ENABLED": "0",
    "HF_HUB_OFFLINE": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed_clients(data_dir: Path, orgs: list[str]) -> list[ClientCredentials]:
    """Migrate a fresh data directory and create one API client in each organization."""
    engine = open_engine(Settings(data_dir=data_dir).database_url)
    migrate(engine)
    with transaction(session_factory(engine)) as session:
        clients = [create_client(session, org) for org in orgs]
    engine.dispose()
    return clients


def start_server(data_dir: Path, port: int, env: dict[str, str], log: Path | None = None) -> subprocess.Popen[bytes]:
    """`ember serve` on 127.0.0.1:`port`, returned once /healthz answers; `env` adds to the bench settings."""
    full_env = {**os.environ, **BENCH_ENV, **env}
    full_env.pop("EMBER_DATA_DIR", None)
    out = log.open("wb") if log else subprocess.DEVNULL
    try:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ember"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=full_env,
            stdout=out,
            stderr=out,
        )
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"the server did not start{'; see ' + str(log) if log else ''}")


def engine_env(model_dir: Path, threads: int) -> dict[str, str]:
    """Settings for a server whose one engine worker uses `threads` CPU threads and the bench's model dir, with
    `tiny` as the base model of requests that name none (the benches' baselines call the engine on tiny; the
    server's own default is toy)."""
    return {
        "EMBER_DEFAULT_BASE_MODEL": "tiny",
        "EMBER_MODEL_DIR": str(model_dir),
        "EMBER_RAY_NUM_CPUS": str(max(2, threads)),
        "EMBER_ENGINE_WORKER_NUM_CPUS": str(threads),
    }


def headers_for(base: str, credentials: ClientCredentials) -> dict[str, str]:
    """The two gateway headers of an access token fetched for `credentials`."""
    form = {
        "grant_type": "client_credentials",
        "client_id": credentials.client_id,
        "client_secret": credentials.client_secret,
        "scope": SCOPE,
    }
    token = httpx.post(f"{base}/ims/token/v3", data=form).json()["access_token"]
    return {"Authorization": f"Bearer {token}", "x-api-key": credentials.client_id}


@functools.cache
def bench_database(data_dir: Path) -> Any:
    """One connection pool per data directory for the whole run: the bench's own reads stay cheap."""
    return session_factory(open_engine(Settings(data_dir=data_dir).database_url))


def stored_request(data_dir: Path, job_id: str) -> dict[str, Any]:
    """The request a job's row holds, as the worker reads it."""
    with bench_database(data_dir)() as session:
        request = session.scalar(select(Job.request).where(Job.id == job_id))
    if request is None:
        raise SystemExit(f"job {job_id} is not recorded")
    return dict(request)


def require_base_model(data_dir: Path, job_id: str, base_model: str) -> None:
    """Stop the bench unless the job ran on `base_model`, the one its baseline calls: a ratio of two base
    models' times measures the models, not Ember."""
    ran = stored_request(data_dir, job_id).get("baseModel")
    if ran != base_model:
        raise SystemExit(f"job {job_id} ran on {ran!r}, its baseline on {base_model!r}")


def finished_job(data_dir: Path, job_id: str) -> Job:
    """A finished job's row, read from the database: it was claimed and it ended."""
    with bench_database(data_dir)() as session:
        job = session.get(Job, job_id)
    assert job is not None and job.started_at is not None and job.finished_at is not None
    return job
