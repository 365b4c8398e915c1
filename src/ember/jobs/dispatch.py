"""Dispatch over Ray: engine worker actors, LoRA affinity, and the reaper that keeps every job moving.

The control plane only inserts rows and hands job ids to workers; workers write state themselves. A job
whose worker is lost is taken back by its silent heartbeat and dispatched again, or failed."""

from __future__ import annotations

import logging
import os
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ember.cluster import RayConnection, RayState
from ember.config import Settings
from ember.jobs import records
from ember.jobs.payloads import stored_affinity
from ember.store.database import transaction
from ember.store.tables import utcnow
from ember.worker.actor import CONCURRENT_JOBS, EngineWorker, WorkerConfig
from ember.worker.provenance import load_or_create_chain

log = logging.getLogger("ember.jobs.dispatch")
TrainingEnded = Callable[[Session, uuid.UUID], None]
# A warm worker is preferred until it has this many more jobs queued than the least busy one: a LoRA
# switch costs about a second, a queued job usually more.
AFFINITY_SLACK = 2
RAY_CONNECT_TIMEOUT_S = 300.0


class EngineUnavailable(Exception):
    """No engine worker can take jobs: Ray is disabled or could not be reached."""


def gpus_per_worker(setting: float | None, cluster_gpus: float) -> float:
    """GPUs each engine worker reserves: the setting when given, else one per worker where Ray sees GPUs.

    An actor that reserves no GPU is placed without regard to them and sees every GPU, so on a machine with
    several, all workers would pile onto GPU 0; reserving one makes Ray give each worker its own."""
    if setting is not None:
        return setting
    return 1.0 if cluster_gpus >= 1 else 0.0


@dataclass
class WorkerSlot:
    handle: Any
    worker_id: str
    loras: OrderedDict[str, None] = field(default_factory=OrderedDict)
    in_flight: dict[Any, str] = field(default_factory=dict)  # object ref → job id
    device: Any = None  # object ref of the worker's device() answer


class Dispatcher:
    """Owns the engine worker actors of this API process and its reaper thread."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        ray: RayConnection,
        training_ended: TrainingEnded | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.ray = ray
        # Called in the transaction that ended a training job (timed out, failed or cancelled by the reaper),
        # so the custom model's state follows; the custom-model package hands it in (jobs/ may not import it).
        self.training_ended: TrainingEnded = training_ended or (lambda session, model_id: None)
        self._slots: list[WorkerSlot] = []
        self._backlog: list[str] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0

    def worker_devices(self) -> list[str]:
        """Each engine worker's device and dtype ("cuda (bfloat16)"), or "starting" until it has answered."""
        import ray

        with self._lock:
            refs = [slot.device for slot in self._slots]
        devices = []
        for ref in refs:
            done, _ = ray.wait([ref], timeout=0) if ref is not None else ([], [])
            devices.append(str(ray.get(done[0])) if done else "starting")
        return devices

    @property
    def accepting(self) -> bool:
        """Whether new jobs can be carried (Ray enabled and not known to have failed)."""
        return self.settings.ray_enabled and self.ray.status().state is not RayState.failed

    def start(self) -> None:
        if not self.settings.ray_enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="ember-dispatch", daemon=True)
        self._thread.start()

    def wait_started(self, timeout: float) -> bool:
        """Block until the workers exist and recovery is done (tests, benchmarks)."""
        return self._started.wait(timeout)

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        with self._lock:
            slots, self._slots = self._slots, []
        if slots:
            import ray

            if ray.is_initialized():
                for slot in slots:
                    ray.kill(slot.handle)

    def submit(self, job_id: str, lora_key: str | None = None) -> None:
        """Hand a job (already a pending row) to a worker; before the workers exist it waits in a backlog."""
        if not self.accepting:
            raise EngineUnavailable("no engine workers: Ray is disabled or unreachable")
        with self._lock:
            if not self._slots:
                self._backlog.append(job_id)
                return
            self._send(job_id, lora_key)

    def loaded_loras(self) -> dict[str, list[str]]:
        """What this dispatcher believes each worker holds (worker id → LoRA keys, least recent first)."""
        with self._lock:
            return {slot.worker_id: list(slot.loras) for slot in self._slots}

    def _send(self, job_id: str, lora_key: str | None) -> None:
        slot = self._choose(lora_key)
        ref = slot.handle.run.remote(job_id)
        slot.in_flight[ref] = job_id
        if lora_key:
            slot.loras[lora_key] = None
            slot.loras.move_to_end(lora_key)
            while len(slot.loras) > self.settings.engine_lora_cache_size:
                slot.loras.popitem(last=False)

    def _choose(self, lora_key: str | None) -> WorkerSlot:
        least = min(self._slots, key=lambda slot: len(slot.in_flight))
        if lora_key:
            holders = [slot for slot in self._slots if lora_key in slot.loras]
            if holders:
                warm = min(holders, key=lambda slot: len(slot.in_flight))
                if len(warm.in_flight) <= len(least.in_flight) + AFFINITY_SLACK:
                    return warm
        return least

    def _run(self) -> None:
        status = self.ray.wait(RAY_CONNECT_TIMEOUT_S)
        while status.state is RayState.starting and not self._stopping.is_set():
            status = self.ray.wait(1.0)
        if status.state is not RayState.connected:
            log.error("engine workers not started: Ray is %s %s", status.state.value, status.detail)
            self._reap_forever()
            return
        try:
            self._start_workers()
        except Exception:
            log.exception("engine workers could not be started")
            self._reap_forever()
            return
        if not self.settings.ray_address:
            # The local Ray started with this process: no worker of an earlier run can still be alive.
            with transaction(self.sessions) as session:
                ended = records.reset_orphans(
                    session,
                    max_attempts=self.settings.job_max_attempts,
                    training_max_attempts=self.settings.training_max_attempts,
                )
                for model_id in ended:
                    self.training_ended(session, model_id)
        with self._lock:
            backlog, self._backlog = self._backlog, []
        for job_id in backlog:
            self._resend(job_id)
        self._reap(pending_grace_s=0.0)
        self._started.set()
        self._reap_forever()

    def _start_workers(self) -> None:
        # Create the signing chain once here, so workers on this machine never race to create it.
        load_or_create_chain(self.settings.data_dir)
        with self._lock:
            for index in range(self.settings.engine_workers):
                self._slots.append(self._new_slot(index))

    def _new_slot(self, index: int) -> WorkerSlot:
        import ray

        assert self.settings.model_dir is not None
        config = WorkerConfig(
            database_url=self.settings.database_url,
            blob_url=self.settings.blob_url,
            model_dir=str(self.settings.model_dir),
            data_dir=str(self.settings.data_dir),
            lora_cache_size=self.settings.engine_lora_cache_size,
            torch_threads=max(1, int(self.settings.engine_worker_num_cpus)),
            heartbeat_interval_s=max(0.2, self.settings.heartbeat_timeout_s / 5),
            region=self.settings.region,
            allow_private_reference_urls=self.settings.allow_private_reference_urls,
            niceness=os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None,
            compile=self.settings.compile,
            warm_base_model=self.settings.default_base_model,
        )
        actor = ray.remote(EngineWorker).options(
            num_cpus=self.settings.engine_worker_num_cpus,
            num_gpus=gpus_per_worker(self.settings.engine_worker_num_gpus, ray.cluster_resources().get("GPU", 0.0)),
            max_restarts=0,
            max_concurrency=CONCURRENT_JOBS,
        )
        self._generation += 1
        worker_id = f"{records.job_host()}-{os.getpid()}-{index}-{self._generation}"
        handle: Any = actor.remote(config, worker_id)
        return WorkerSlot(handle=handle, worker_id=worker_id, device=handle.device.remote())

    def _resend(self, job_id: str) -> None:
        with transaction(self.sessions) as session:
            request = records.stored_request(session, job_id)
        with self._lock:
            self._send(job_id, stored_affinity(request))

    def _collect_finished(self) -> None:
        import ray
        from ray.exceptions import ActorDiedError, RayError

        with self._lock:
            refs = [ref for slot in self._slots for ref in slot.in_flight]
        if not refs:
            return
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in done:
            lost = False
            try:
                ray.get(ref)
            except ActorDiedError:
                lost = True
            except RayError:
                log.warning("an engine worker call failed; the reaper takes its job back", exc_info=True)
            with self._lock:
                for index, slot in enumerate(self._slots):
                    if slot.in_flight.pop(ref, None) is not None and lost:
                        log.warning("engine worker %s died; starting another", slot.worker_id)
                        self._slots[index] = self._new_slot(index)

    def _reap(self, pending_grace_s: float) -> None:
        if self._slots:
            self._collect_finished()
        with self._lock:
            dispatched = {job_id for slot in self._slots for job_id in slot.in_flight.values()}
        with transaction(self.sessions) as session:
            swept = records.sweep(
                session,
                now=utcnow(),
                job_timeout_s=self.settings.job_timeout_s,
                heartbeat_timeout_s=self.settings.heartbeat_timeout_s,
                max_attempts=self.settings.job_max_attempts,
                dispatched=dispatched,
                pending_grace_s=pending_grace_s,
                training=records.KindLimits(
                    self.settings.training_timeout_s, self.settings.training_max_attempts
                ),
            )
            for model_id in swept.ended_training_models:
                self.training_ended(session, model_id)
        if swept.timed_out or swept.failed or swept.cancelled:
            log.info("reaper: %d timed out, %d failed, %d cancelled", swept.timed_out, swept.failed,
                     swept.cancelled)
        if self._slots:
            for job_id in swept.redispatch:
                self._resend(job_id)

    def _reap_forever(self) -> None:
        grace = self.settings.heartbeat_timeout_s
        while not self._stopping.wait(self.settings.reaper_interval_s):
            try:
                self._reap(pending_grace_s=grace)
            except Exception:  # the reaper must outlive a database hiccup
                log.exception("reaper pass failed")
