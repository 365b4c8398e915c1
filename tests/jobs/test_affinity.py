"""Choosing an engine worker: a job for a custom model goes to a worker that has its LoRA, unless it is busy."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from unittest import mock

from ember.config import Settings
from ember.jobs.dispatch import AFFINITY_SLACK, Dispatcher, WorkerSlot


def dispatcher_with(*slots: WorkerSlot) -> Dispatcher:
    dispatcher = Dispatcher(Settings(ray_address="disabled"), None, None)  # type: ignore[arg-type]
    dispatcher._slots = list(slots)
    return dispatcher


def slot(name: str, loras: tuple[str, ...] = (), queued: int = 0) -> WorkerSlot:
    return WorkerSlot(handle=None, worker_id=name, loras=OrderedDict.fromkeys(loras),
                      in_flight={f"{name}-{n}": f"job-{n}" for n in range(queued)})


def test_a_job_for_a_loaded_lora_goes_to_the_worker_holding_it() -> None:
    warm = slot("warm", ("model-a:v1",), queued=1)
    assert dispatcher_with(slot("idle"), warm)._choose("model-a:v1") is warm


def test_a_busy_warm_worker_loses_to_an_idle_one() -> None:
    idle = slot("idle")
    busy = slot("busy", ("model-a:v1",), queued=AFFINITY_SLACK + 1)
    assert dispatcher_with(busy, idle)._choose("model-a:v1") is idle


def test_a_combination_goes_to_the_worker_holding_the_most_of_its_models() -> None:
    one = slot("one", ("a:v1",))
    two = slot("two", ("a:v1", "b:v1"), queued=1)
    dispatcher = dispatcher_with(slot("idle"), one, two)
    assert dispatcher._choose("a:v1@1+b:v1@0.5+c:v1@1") is two
    assert dispatcher._choose("a:v1@0.5") is one  # both hold a: the less busy


def test_a_busy_worker_holding_the_most_yields_to_one_holding_fewer() -> None:
    one = slot("one", ("a:v1",), queued=1)
    two = slot("two", ("a:v1", "b:v1"), queued=AFFINITY_SLACK + 1)
    assert dispatcher_with(slot("idle"), two, one)._choose("a:v1@1+b:v1@1") is one


def test_a_worker_remembers_each_model_of_a_combination_it_was_sent() -> None:
    from ember.jobs.payloads import affinity_models

    assert affinity_models("a:v1@0.5+b:v2@1") == ["a:v1", "b:v2"]
    assert affinity_models("a:v1") == ["a:v1"] and affinity_models(None) == []


def test_a_job_without_a_custom_model_goes_to_the_least_busy_worker() -> None:
    idle = slot("idle")
    assert dispatcher_with(slot("busy", queued=2), idle)._choose(None) is idle


def test_each_worker_reserves_one_gpu_where_the_cluster_has_gpus() -> None:
    from ember.jobs.dispatch import gpus_per_worker

    assert gpus_per_worker(None, 2.0) == 1.0
    assert gpus_per_worker(None, 0.0) == 0.0


def test_an_explicit_gpu_setting_wins_over_the_cluster() -> None:
    from ember.jobs.dispatch import gpus_per_worker

    assert gpus_per_worker(0.5, 2.0) == 0.5


def test_with_no_setting_the_pool_starts_one_worker_per_gpu() -> None:
    from ember.jobs.dispatch import worker_count

    assert worker_count(None, 4.0, 1.0) == 4
    assert worker_count(None, 0.0, 0.0) == 1
    assert worker_count(3, 4.0, 1.0) == 3
    assert worker_count(None, 4.0, 0.5) == 8


def test_the_pool_gets_the_deployments_settings_and_credentials_not_the_nodes(tmp_path: Path) -> None:
    from ember.config import Settings
    from ember.worker.pool import pool_env, pool_name

    cert, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    cert.write_text("-----BEGIN CERTIFICATE-----\nchain\n")
    key.write_text("-----BEGIN PRIVATE KEY-----\nkey\n")
    settings = Settings(
        data_dir=tmp_path / "data", database_url="postgresql+psycopg://ember:pw@db/ember", engine_workers=3,
        model_version_base_models={"image3_custom": "tiny"}, token_secret="not for workers",
    )
    env = pool_env(settings, {
        "AWS_ACCESS_KEY_ID": "id", "HF_HUB_OFFLINE": "1", "PATH": "/bin", "EMBER_C2PA_CERT": str(cert),
        "EMBER_C2PA_KEY": str(key),
    })
    assert env["EMBER_DATABASE_URL"] == settings.database_url and env["EMBER_ENGINE_WORKERS"] == "3"
    assert env["AWS_ACCESS_KEY_ID"] == "id" and env["HF_HUB_OFFLINE"] == "1" and "PATH" not in env
    assert "EMBER_TOKEN_SECRET" not in env and "EMBER_C2PA_CERT" not in env
    assert env["EMBER_C2PA_CERT_PEM"].startswith("-----BEGIN CERTIFICATE-----")
    with mock.patch.dict(os.environ, {k: v for k, v in env.items() if k.startswith("EMBER_")}, clear=True):
        again = Settings()
    assert again.model_dump(exclude={"token_secret"}) == settings.model_dump(exclude={"token_secret"})
    assert pool_name(again) == pool_name(settings)
