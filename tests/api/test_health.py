"""`/healthz`, `/readyz` (database, blob store, Ray, a checked engine worker) and `/metrics`."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ember.api import create_app
from ember.api.runtime import Runtime
from ember.config import Settings
from ember.store.database import transaction
from ember.store.tables import Job, JobKind, JobState, Organization


def test_healthz_says_the_process_is_up(http: TestClient) -> None:
    response = http.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


def test_readyz_is_ready_when_database_and_blob_store_answer_and_ray_is_disabled(http: TestClient) -> None:
    response = http.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "blob_store": "ok", "ray": "disabled"}


def test_readyz_names_an_unusable_blob_store(tmp_path: Path, settings: Settings) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the blob directory should be")
    broken = settings.model_copy(update={"blob_url": f"file://{blocker}/blobs"})
    with TestClient(create_app(broken)) as http:
        response = http.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["error_code"] == "service_unavailable" and "blob_store" in body["message"]
    assert body["checks"]["database"] == "ok" and body["checks"]["blob_store"] != "ok"


def test_readyz_names_an_unreachable_database(settings: Settings) -> None:
    broken = settings.model_copy(
        update={"database_url": "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none?connect_timeout=1"}
    )
    with TestClient(create_app(broken)) as http:
        response = http.get("/readyz")
    assert response.status_code == 503
    assert "database" in response.json()["message"] and response.json()["checks"]["database"] != "ok"


def test_readyz_names_ray_while_it_is_not_connected(settings: Settings) -> None:
    app = create_app(settings.model_copy(update={"ray_address": "127.0.0.1:1"}))
    # Not entering the lifespan: the connection never starts, as if Ray were still coming up.
    response = TestClient(app).get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["ray"].startswith("starting")


READYZ_WITH_LOCAL_RAY = """
import json, sys
from fastapi.testclient import TestClient
from ember.api import create_app
from ember.config import Settings
from ember.store.database import migrate, open_engine

settings = Settings(data_dir=sys.argv[1], ray_address="", ray_num_cpus=1)
engine = open_engine(settings.database_url)
migrate(engine)
engine.dispose()
app = create_app(settings)
runtime = app.state.runtime
runtime.ray.start()
runtime.ray.wait(timeout=120)
response = TestClient(app).get("/readyz")
print(json.dumps({"status": response.status_code, "body": response.json()}), flush=True)
runtime.ray.stop()
"""


@pytest.mark.slow
def test_readyz_reports_a_real_local_ray(tmp_path: Path) -> None:
    # In a child process, so the Ray session is this test's alone; only the Ray link is started
    # (nothing runs on Ray), and it must shut down cleanly.
    result = subprocess.run(
        [sys.executable, "-c", READYZ_WITH_LOCAL_RAY, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines, result.stdout + result.stderr
    answer = json.loads(lines[-1])
    # Ray is up, but no engine pool was started: no worker has passed its own check, so not ready.
    assert answer["status"] == 503
    assert answer["body"]["checks"]["ray"] == "ok"
    assert answer["body"]["checks"]["engine_workers"] == "no engine worker yet"
    assert result.returncode == 0, result.stderr[-2000:]


def test_metrics_count_requests_by_route_template_and_status(http: TestClient, headers: dict[str, str]) -> None:
    http.get("/v3/custom-models", headers=headers)
    http.get("/v3/custom-models")
    text = http.get("/metrics").text
    assert 'ember_http_requests_total{method="GET",route="/v3/custom-models",status="200"} 1.0' in text
    assert 'ember_http_requests_total{method="GET",route="/v3/custom-models",status="403"} 1.0' in text
    assert 'ember_http_request_duration_seconds_bucket{le="0.005",method="GET",route="/v3/custom-models"}' in text


def test_metrics_report_jobs_by_kind_and_state_from_the_database(http: TestClient, runtime: Runtime) -> None:
    with transaction(runtime.sessions) as session:
        org = Organization(name="acme")
        session.add(org)
        session.flush()
        for state in (JobState.pending, JobState.pending, JobState.running):
            session.add(Job(id=f"urn:ff:jobs:test:{uuid.uuid4()}", org_id=org.id, kind=JobKind.generate, state=state))
    text = http.get("/metrics").text
    assert 'ember_jobs{kind="generate",state="pending"} 2.0' in text
    assert 'ember_jobs{kind="generate",state="running"} 1.0' in text


def test_metrics_are_prometheus_text(http: TestClient) -> None:
    assert http.get("/metrics").headers["content-type"].startswith("text/plain")
