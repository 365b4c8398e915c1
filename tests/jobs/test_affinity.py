"""Choosing an engine worker: a job for a custom model goes to a worker that has its LoRA, unless it is busy."""

from __future__ import annotations

from collections import OrderedDict

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
