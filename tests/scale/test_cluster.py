"""Ember scaled out on one machine, as docs/jobs.md "Scaling out" describes: PostgreSQL, an S3-compatible store
(moto's server), a two-node Ray cluster on loopback (one CPU, so one engine worker, per node) and two
`ember serve` replicas sharing the token secret; the Ray nodes get no AWS credentials and no Ember settings of
their own (the pool's `runtime_env` carries them). The cases run in order on one cluster; each says what it
leaves behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select, text

from ember.store.tables import Job

from . import cluster
from .cluster import Process

pytestmark = [pytest.mark.scale, pytest.mark.postgres]

FINAL = {"succeeded", "failed", "cancelled", "timeout"}
SECRET = "scale-test-token-secret-of-the-deployment-0123456789"
ASK_POOL = """
import json, sys, ray
from ember.config import Settings
from ember.worker.pool import NAMESPACE, pool_name
ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)
pool = ray.get_actor(pool_name(Settings(database_url=sys.argv[2])), namespace=NAMESPACE)
head = next(node["NodeID"] for node in ray.nodes() if node["Alive"] and "node:__internal_head__" in node["Resources"])
print(json.dumps({"head": head, "workers": ray.get(pool.workers.remote(True), timeout=60)}))
"""


@dataclass
class Deployment:
    tmp: Path
    address: str
    database_url: str
    database: Engine
    env: dict[str, str]
    head: Process
    node: Process
    started: list[Process]
    replicas: dict[str, tuple[Process, str]] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    def url(self, replica: str) -> str:
        return self.replicas[replica][1]

    def start_replica(self, name: str) -> None:
        self.replicas[name] = cluster.ember_serve(self.tmp / name, self.env, self.tmp / f"{name}.log")
        self.started.append(self.replicas[name][0])

    def submit(self, replica: str, prompt: str, **body: Any) -> str:
        response = httpx.post(
            f"{self.url(replica)}/v3/images/generate-async",
            json={"prompt": prompt, "size": {"width": 1024, "height": 1024}, **body},
            headers={**self.headers, "x-accept-mimetype": "image/png",
                     **({"x-model-version": "image3_custom"} if "customModelId" in body else {})},
            timeout=30,
        )
        assert response.status_code == 202, response.text
        return str(response.json()["jobId"])

    def status(self, replica: str, job_id: str) -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(
            f"{self.url(replica)}/v3/status/{job_id}", headers=self.headers, timeout=30
        ).json()
        return body

    def rows(self, job_ids: list[str]) -> list[Job]:
        with self.database.connect() as connection:
            return list(connection.execute(select(Job).where(Job.id.in_(job_ids))).all())  # type: ignore[arg-type]

    def workers(self) -> tuple[str, list[dict[str, Any]]]:
        """The head node's id and the pool's workers as it sees them (id, node, pid, jobs), asked from a driver
        of the cluster."""
        asked = subprocess.run(
            [sys.executable, "-c", ASK_POOL, self.address, self.database_url], capture_output=True, text=True,
            env=cluster.ray_env(), timeout=120, check=False,
        )
        assert asked.returncode == 0, asked.stderr[-2000:]
        answer = json.loads(asked.stdout.strip().splitlines()[-1])
        return str(answer["head"]), list(answer["workers"])


def wait_for(what: str, condition: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)  # other processes' state: polled against a deadline
    raise AssertionError(f"not within {timeout} s: {what}")


def finished(deployment: Deployment, replica: str, job_ids: list[str], timeout: float) -> list[dict[str, Any]]:
    def all_final() -> list[dict[str, Any]] | None:
        statuses = [deployment.status(replica, job_id) for job_id in job_ids]
        return statuses if all(status["status"] in FINAL for status in statuses) else None

    result: list[dict[str, Any]] = wait_for(f"{len(job_ids)} jobs final", all_final, timeout, interval=0.5)
    return result


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Iterator[Deployment]:
    admin_url = os.environ.get("EMBER_TEST_POSTGRES_URL")
    if not admin_url:
        if os.environ.get("EMBER_TEST_REQUIRE_POSTGRES"):
            pytest.fail("EMBER_TEST_POSTGRES_URL is required")
        pytest.skip("EMBER_TEST_POSTGRES_URL is not set")
    tmp = tmp_path_factory.mktemp("scale")
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"ember_scale_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    database_url = admin.url.set(database=name).render_as_string(hide_password=False)
    started: list[Process] = []
    database = create_engine(database_url)
    try:
        moto, endpoint = cluster.moto_server(tmp / "moto.log")
        started.append(moto)
        aws = {"AWS_ACCESS_KEY_ID": "scale", "AWS_SECRET_ACCESS_KEY": "scale", "AWS_DEFAULT_REGION": "us-east-1"}
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="scale",
                     aws_secret_access_key="scale").create_bucket(Bucket="ember")
        # The nodes start with no AWS credentials and no Ember settings: workers must get them from the pool.
        # The test process gets its own environment back afterwards (later tests read EMBER_TEST_* from it).
        with pytest.MonkeyPatch.context() as bare:
            for variable in [v for v in os.environ if v.startswith(("AWS_", "EMBER_"))]:
                bare.delenv(variable)
            head, address = cluster.ray_node(Path(f"/tmp/rs{uuid.uuid4().hex[:6]}"), tmp / "head.log")
            started.append(head)
            cluster.wait_for_nodes(address, 1)
            node, _ = cluster.ray_node(tmp, tmp / "node.log", head_address=address)
            started.append(node)
            cluster.wait_for_nodes(address, 2)
        env = {
            **aws,
            "EMBER_DATABASE_URL": database_url,
            "EMBER_BLOB_URL": f"s3://ember/data?endpoint_url={endpoint}&region=us-east-1",
            "EMBER_TOKEN_SECRET": SECRET,
            "EMBER_RAY_ADDRESS": address,
            "EMBER_MODEL_DIR": str(model_dir),
            "EMBER_DEFAULT_BASE_MODEL": "tiny",
            "EMBER_ENGINE_WORKERS": "2",
            "EMBER_ENGINE_WORKER_NUM_CPUS": "1",
            "EMBER_HEARTBEAT_TIMEOUT_S": "3",
            "EMBER_REAPER_INTERVAL_S": "0.5",
            "EMBER_RATE_LIMIT_PER_MINUTE": "0",
            "EMBER_RATE_LIMIT_PER_DAY": "0",
            "EMBER_JOB_MAX_ATTEMPTS": "3",
            "HF_HUB_OFFLINE": "1",
        }
        deployment = Deployment(tmp, address, database_url, database, env, head, node, started)
        deployment.start_replica("a")  # first: it makes the first API client
        deployment.start_replica("b")
        credentials = json.loads((tmp / "a" / "credentials.json").read_text())
        token = httpx.post(f"{deployment.url('b')}/ims/token/v3", data={
            "grant_type": "client_credentials", "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"], "scope": "firefly_api,ff_apis",
        }).json()["access_token"]  # from replica b: the secret is the deployment's
        deployment.headers = {"Authorization": f"Bearer {token}", "x-api-key": credentials["client_id"]}

        def both_ready() -> bool:
            ready = httpx.get(f"{deployment.url('a')}/readyz", timeout=10)
            return ready.status_code == 200 and len(ready.json()["engineWorkers"]) == 2

        wait_for("two checked engine workers", both_ready, 180, interval=0.5)
        yield deployment
    finally:
        for process in reversed(started):
            process.kill()
        database.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_sixty_jobs_sent_to_one_replica_keep_both_workers_busy_within_2_s(deployment: Deployment) -> None:
    job_ids = [deployment.submit("a", f"a lighthouse {n}", numVariations=1) for n in range(60)]
    statuses = finished(deployment, "b", job_ids, 300)
    assert [status["status"] for status in statuses] == ["succeeded"] * 60
    rows = deployment.rows(job_ids)
    first_sent = min(row.created_at for row in rows)
    first_claim = {}
    for row in sorted(rows, key=lambda row: row.started_at):
        first_claim.setdefault(row.worker_id, row.started_at)
    assert len(first_claim) == 2, first_claim
    assert max((started - first_sent).total_seconds() for started in first_claim.values()) <= 2.0, first_claim


def test_a_killed_api_replica_leaves_its_jobs_running_without_a_new_attempt(deployment: Deployment) -> None:
    job_ids = [deployment.submit("a", f"a harbour {n}", numVariations=2) for n in range(6)]
    wait_for("a job running", lambda: any(row.state == "running" for row in deployment.rows(job_ids)), 60)
    deployment.replicas["a"][0].kill()
    statuses = finished(deployment, "b", job_ids, 120)
    assert [status["status"] for status in statuses] == ["succeeded"] * 6
    assert [status["attempts"] for status in statuses] == [1] * 6
    deployment.start_replica("a")


def test_a_stale_attempt_leaves_every_output_of_the_finished_job_intact(
    deployment: Deployment, unsigned: Callable[[Any], Any]
) -> None:
    _, workers = deployment.workers()
    job_id = deployment.submit("a", "four red boats", numVariations=4)
    row = wait_for("the job running", lambda: next(
        (r for r in deployment.rows([job_id]) if r.state == "running"), None), 60, interval=0.02)
    stale = next(worker for worker in workers if worker["id"] == row.worker_id)
    os.kill(stale["pid"], signal.SIGSTOP)  # a pause past the heartbeat timeout (3 s)
    try:
        done = finished(deployment, "b", [job_id], 60)[0]
    finally:
        os.kill(stale["pid"], signal.SIGCONT)
    assert done["status"] == "succeeded" and done["attempts"] == 2
    wait_for(
        "the stale attempt ended",
        lambda: not any(w["jobs"] for w in deployment.workers()[1] if w["id"] == stale["id"]), 60, interval=1,
    )
    after = deployment.status("a", job_id)
    assert (after["status"], after["attempts"]) == ("succeeded", 2)
    assert unsigned(output_urls(after)) == unsigned(output_urls(done))
    urls = output_urls(done)
    assert len(urls) == 4
    for url in urls:  # presigned S3 URLs: they work from anywhere, whichever replica made them
        assert httpx.get(url, timeout=30).status_code == 200, url


def output_urls(status: dict[str, Any]) -> list[str]:
    return [output["image"]["url"] for output in status["result"]["outputs"]]


def test_a_job_for_a_custom_model_goes_to_the_worker_holding_it_whichever_replica_took_it(
    deployment: Deployment, trained_model: str
) -> None:
    first = deployment.submit("a", "a zorb on a beach", customModelId=trained_model, numVariations=1)
    finished(deployment, "a", [first], 60)
    holder = deployment.rows([first])[0].worker_id
    for replica in ("b", "a", "b"):
        job_id = deployment.submit(replica, "a zorb in the snow", customModelId=trained_model, numVariations=1)
        assert finished(deployment, replica, [job_id], 60)[0]["status"] == "succeeded"
        assert deployment.rows([job_id])[0].worker_id == holder


@pytest.fixture(scope="module")
def trained_model(deployment: Deployment) -> str:
    """A custom model trained through replica a, with its node killed mid-training (see the last test)."""
    return train_through_a_node_death(deployment)


TRAINED: dict[str, Any] = {}


def train_through_a_node_death(deployment: Deployment) -> str:
    sys.path.insert(0, str(Path(__file__).parents[1] / "jobs"))
    from trainable import start_training, trainable_model

    with httpx.Client(base_url=deployment.url("a"), timeout=60) as http:
        asset_id = trainable_model(http, deployment.headers)
        head_node, workers = deployment.workers()
        # The pool gives a job to the least busy worker, the first on a tie: the worker off the head node gets
        # the training when it comes first, or when the one before it is busy.
        off_head = next(w for w in workers if w["node"] != head_node)
        if workers.index(off_head) == 1:
            deployment.submit("a", "a long ship", numVariations=4)
        job_id = start_training(http, deployment.headers, asset_id, steps=400)
    row = wait_for("training running", lambda: next(
        (r for r in deployment.rows([job_id]) if r.state == "running"), None), 60)
    assert row.worker_id == off_head["id"], (row.worker_id, workers)
    wait_for("a checkpoint recorded", lambda: (deployment.status("b", job_id).get("training") or {}).get(
        "checkpointStep"), 180, interval=0.5)
    checkpoint = deployment.status("b", job_id)["training"]["checkpointStep"]
    deployment.node.kill()  # kill -9 of the node's whole process group: raylet, workers, agents
    killed = time.monotonic()
    wait_for("the job taken back", lambda: any(
        r.worker_id != off_head["id"] for r in deployment.rows([job_id])), 5, interval=0.1)
    TRAINED["requeued_after_s"] = time.monotonic() - killed
    final = finished(deployment, "b", [job_id], 240)[0]
    TRAINED["final"] = final
    TRAINED["checkpoint"] = checkpoint
    # The node comes back, so that the pool has two workers again.
    deployment.node, _ = cluster.ray_node(
        deployment.tmp, deployment.tmp / "node-2.log", head_address=deployment.address
    )
    deployment.started.append(deployment.node)
    return asset_id


def test_a_training_job_survives_its_nodes_death_and_resumes_from_its_checkpoint(
    deployment: Deployment, trained_model: str
) -> None:
    final = TRAINED["final"]
    assert final["status"] == "succeeded", final
    assert TRAINED["requeued_after_s"] <= 5
    assert final["training"]["resumedFrom"] == TRAINED["checkpoint"]
    assert final["attempts"] == 2
