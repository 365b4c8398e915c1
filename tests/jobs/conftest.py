"""Job fixtures: an API over a fresh data directory, clients and tokens, custom models with weights; a real
local Ray (started once per session) with a tiny LoRA trained by the engine, and a live app on it."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from ember.api import create_app
from ember.api.runtime import Runtime
from ember.cluster import AttachedRay
from ember.config import Settings
from ember.identity import ClientCredentials, create_client
from ember.store.database import migrate, open_engine, transaction
from ember.store.tables import (
    ApiClient,
    CustomModel,
    CustomModelVersion,
    PrincipalKind,
    PublishedState,
    Share,
    ShareRole,
    TrainingMode,
    TrainingState,
)

SCOPE = "openid,AdobeID,firefly_api,ff_apis"
Headers = dict[str, str]


def wait_for(what: str, condition: Any, timeout: float, interval: float = 0.05) -> Any:
    """The first true value of `condition()`, asked every `interval` s; fails after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)  # another process's or thread's state: polled against a deadline
    raise AssertionError(f"not within {timeout} s: {what}")


def migrated_settings(**values: Any) -> Settings:
    settings = Settings(**values)
    engine = open_engine(settings.database_url)
    migrate(engine)
    engine.dispose()
    return settings


def token_headers(http: TestClient, credentials: ClientCredentials) -> Headers:
    response = http.post(
        "/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "scope": SCOPE,
        },
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}", "x-api-key": credentials.client_id}


def add_client(runtime: Runtime, org: str) -> ClientCredentials:
    with transaction(runtime.sessions) as session:
        return create_client(session, org)


def org_of(runtime: Runtime, credentials: ClientCredentials) -> uuid.UUID:
    with runtime.sessions() as session:
        org_id = session.scalar(select(ApiClient.org_id).where(ApiClient.client_id == credentials.client_id))
    assert org_id is not None
    return org_id


def add_trained_model(
    runtime: Runtime,
    credentials: ClientCredentials,
    lora: bytes = b"not read by validation",
    *,
    mode: TrainingMode = TrainingMode.subject,
    concept: str = "zorb",
    trained: bool = True,
    shared_with: ClientCredentials | None = None,
) -> str:
    """A custom model of `credentials`' organization (with a stored LoRA when `trained`); its asset id."""
    model_id = uuid.uuid4()
    client_org = org_of(runtime, credentials)
    with transaction(runtime.sessions) as session:
        session.add(
            CustomModel(
                id=model_id, org_id=client_org, display_name=f"model {model_id.hex[:6]}", training_mode=mode,
                concept_id=concept if mode is TrainingMode.subject else "", base_model_name="tiny",
                sample_prompt=f"a photo of {concept}",
                published_state=PublishedState.published,
                training_state=TrainingState.ready if trained else TrainingState.draft,
                current_version=1 if trained else 0,
            )
        )
        session.flush()
        if trained:
            key = f"models/{model_id.hex}/v1/lora.safetensors"
            runtime.blobs.put(key, lora)
            session.add(CustomModelVersion(model_id=model_id, number=1, lora_blob_key=key, size=len(lora)))
        if shared_with is not None:
            session.add(
                Share(model_id=model_id, principal_kind=PrincipalKind.technical_account_id,
                      principal_value=shared_with.technical_account_id, role=ShareRole.user)
            )
    return f"urn:aaid:sc:{runtime.settings.region}:{model_id}"


def stop_pool(database_url: str) -> None:
    """Stop the engine pool `ember serve` processes of a test left on the session's Ray: it outlives them."""
    import ray

    from ember.worker.pool import NAMESPACE, pool_name

    try:
        pool = ray.get_actor(pool_name(Settings(database_url=database_url)), namespace=NAMESPACE)
    except ValueError:
        return
    ray.get(pool.shutdown.remote(), timeout=60)
    ray.kill(pool)


def png_bytes(width: int = 64, height: int = 64, color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass
class RecordingDispatcher:
    """Stands in for dispatch over Ray where a test looks only at what the control plane records."""

    accepting: bool = True
    submitted: list[tuple[str, str | None]] = field(default_factory=list)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def submit(self, job_id: str, lora_key: str | None = None) -> None:
        self.submitted.append((job_id, lora_key))


# --- the control plane alone -------------------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return migrated_settings(data_dir=tmp_path / "data", ray_address="disabled")


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def runtime(app: FastAPI) -> Runtime:
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


@pytest.fixture
def dispatcher(runtime: Runtime) -> RecordingDispatcher:
    recording = RecordingDispatcher()
    runtime.dispatcher = recording  # type: ignore[assignment]
    return recording


@pytest.fixture
def http(app: FastAPI, dispatcher: RecordingDispatcher) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def credentials(runtime: Runtime) -> ClientCredentials:
    return add_client(runtime, "acme")


@pytest.fixture
def headers(http: TestClient, credentials: ClientCredentials) -> Headers:
    return token_headers(http, credentials)


@pytest.fixture
def other_org_headers(http: TestClient, runtime: Runtime) -> Headers:
    return token_headers(http, add_client(runtime, "globex"))


# --- a real Ray, a trained LoRA, a live app ------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_address() -> Iterator[str]:
    import ray

    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield str(context.address_info["gcs_address"])
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def tiny_lora(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A LoRA trained by the engine on `tiny` from images made here (a few steps: enough to be a real file)."""
    from ember.engine.train import preset_for, train_lora
    from ember.engine.types import TrainingExample

    colors = [(220, 40, 40), (40, 200, 60), (30, 60, 220), (230, 200, 40)]
    examples = [
        TrainingExample(png_bytes(128, 128, color), f"a photo of zorb toy number {index}")
        for index, color in enumerate(colors)
    ]
    config = preset_for("tiny", "subject").with_overrides(steps=4, sample_every=0, checkpoint_every=0, batch_size=2)
    result = train_lora(
        "tiny", examples, config, tmp_path_factory.mktemp("train"), model_dir=model_dir, mode="subject",
        concept="zorb",
    )
    return result.lora_path.read_bytes()


@dataclass
class Live:
    """A running app on the session's Ray; each test makes its own organization inside it."""

    http: TestClient
    runtime: Runtime

    def client(self, org: str | None = None) -> tuple[ClientCredentials, Headers]:
        credentials = add_client(self.runtime, org or f"org-{uuid.uuid4().hex[:8]}")
        return credentials, token_headers(self.http, credentials)


def live_settings(data_dir: Path, ray_address: str, model_dir: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "ray_address": ray_address,
        "model_dir": model_dir,
        "engine_workers": 1,
        "engine_worker_num_cpus": 1,
        "heartbeat_timeout_s": 5,
        "reaper_interval_s": 0.5,
        "job_timeout_s": 120,
        "rate_limit_per_minute": 0,
        "rate_limit_per_day": 0,
    }
    values.update(extra)
    return migrated_settings(**values)


@contextmanager
def live_app(settings: Settings, ray_address: str, start_timeout_s: float = 60) -> Iterator[Live]:
    """An app with `settings` on the session's Ray, its pool started."""
    app = create_app(settings)
    runtime = app.state.runtime
    attached = AttachedRay(ray_address)
    runtime.ray = attached
    runtime.dispatcher.ray = attached
    with TestClient(app, raise_server_exceptions=False) as client:
        assert runtime.dispatcher.wait_started(start_timeout_s)
        yield Live(http=client, runtime=runtime)


@pytest.fixture(scope="session")
def live(
    ray_address: str, model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    with live_app(live_settings(tmp_path_factory.mktemp("live") / "data", ray_address, model_dir), ray_address) as app:
        yield app



@pytest.fixture(scope="session")
def live_url(live: Live) -> Iterator[str]:
    """The live app served over a real socket (its lifespan already runs under the test client)."""
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(live.http.app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)  # uvicorn offers no event for "listening"
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
