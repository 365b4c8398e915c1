"""Dispatch over Ray: engine worker actors, LoRA affinity, and the reaper that keeps every job moving.

One `Dispatcher` runs per deployment, inside the engine pool actor (`ember.worker.pool`): it owns every engine
worker of the cluster, so routing by the custom models a worker holds spans the whole cluster, and no API
replica owns a worker. Workers claim the job rows they are handed and write state themselves. A job whose
worker Ray reports dead is taken back at once and dispatched again (or failed); a silent heartbeat is the
backstop for what Ray cannot see (a paused or partitioned process)."""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ember.cluster import RayConnection, RayState
from ember.config import Settings
from ember.jobs import records
from ember.jobs.payloads import affinity_models, stored_affinity, trained_model_of
from ember.store.database import transaction
from ember.store.tables import JobKind, JobState, utcnow
from ember.worker.actor import CONCURRENT_JOBS, EngineWorker, WorkerConfig

log = logging.getLogger("ember.jobs.dispatch")
TrainingEnded = Callable[[Session, uuid.UUID], None]
# A warm worker is preferred until it has this many more jobs queued than the least busy one: a LoRA
# switch costs about a second, a queued job usually more.
AFFINITY_SLACK = 2
RAY_CONNECT_TIMEOUT_S = 300.0
# How often finished calls and Ray's death signals are looked at; the database sweep runs every
# `reaper_interval_s`.
WATCH_INTERVAL_S = 0.2
# A pending row younger than this may still be on its way from the API replica that inserted it.
SUBMIT_GRACE_S = 2.0
# Worker calls that must not wait behind jobs (device, checks, the death watch) run in their own threads.
CONTROL_GROUP = "control"


class EngineUnavailable(Exception):
    """No engine worker can take jobs: Ray is disabled or could not be reached."""


def gpus_per_worker(setting: float | None, cluster_gpus: float) -> float:
    """GPUs each engine worker reserves: the setting when given, else one per worker where Ray sees GPUs.

    An actor that reserves no GPU is placed without regard to them and sees every GPU, so on a machine with
    several, all workers would pile onto GPU 0; reserving one makes Ray give each worker its own."""
    if setting is not None:
        return setting
    return 1.0 if cluster_gpus >= 1 else 0.0


def worker_count(setting: int | None, cluster_gpus: float, gpus_each: float) -> int:
    """Engine workers to start: the setting when given, else one per GPU of the cluster (at least one)."""
    if setting is not None:
        return setting
    if cluster_gpus >= 1 and gpus_each > 0:
        return max(1, int(cluster_gpus / gpus_each))
    return 1


@dataclass
class WorkerSlot:
    handle: Any
    worker_id: str
    loras: OrderedDict[str, None] = field(default_factory=OrderedDict)
    in_flight: dict[Any, str] = field(default_factory=dict)  # object ref → job id
    device: Any = None  # object ref of the worker's device() answer
    watch: Any = None  # object ref that ends when the worker drains or dies
    index: int = 0
    draining: bool = False


class OnRay:
    """Work started in a background thread once Ray is connected (`_background`), and whether jobs can be
    taken meanwhile; shared by the pool's dispatcher and an API replica's client of the pool."""

    settings: Settings
    ray: RayConnection
    _started: threading.Event
    _stopping: threading.Event
    _thread: threading.Thread | None

    @property
    def accepting(self) -> bool:
        """Whether new jobs can be carried (Ray enabled and not known to have failed)."""
        return self.settings.ray_enabled and self.ray.status().state is not RayState.failed

    def start(self) -> None:
        if not self.settings.ray_enabled or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._background, name=f"ember-{type(self).__name__}", daemon=True)
        self._thread.start()

    def wait_started(self, timeout: float) -> bool:
        """Block until the workers exist and recovery is done (tests, benchmarks)."""
        return self._started.wait(timeout)

    def _background(self) -> None:
        raise NotImplementedError

    def _ray_connected(self) -> bool:
        """Wait for Ray; False (logged) when it failed or this is stopping."""
        status = self.ray.wait(RAY_CONNECT_TIMEOUT_S)
        while status.state is RayState.starting and not self._stopping.is_set():
            status = self.ray.wait(1.0)
        if status.state is not RayState.connected:
            log.error("engine workers not reached: Ray is %s %s", status.state.value, status.detail)
            return False
        return True


class Dispatcher(OnRay):
    """Owns the engine worker actors of a deployment and its reaper thread.

    `name_prefix` names the workers (detached actors in `namespace`), so that a restarted pool finds the
    workers its predecessor started instead of starting more."""

    def __init__(
        self,
        settings: Settings,
        sessions: sessionmaker[Session],
        ray: RayConnection,
        training_ended: TrainingEnded | None = None,
        *,
        name_prefix: str | None = None,
        namespace: str | None = None,
        niceness: int | None = None,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.ray = ray
        # Called in the transaction that ended a training job (timed out, failed or cancelled by the reaper),
        # so the custom model's state follows; the custom-model package hands it in (jobs/ may not import it).
        self.training_ended: TrainingEnded = training_ended or (lambda session, model_id: None)
        self.name_prefix = name_prefix
        self.namespace = namespace
        self.niceness = niceness
        self._slots: list[WorkerSlot] = []
        self._backlog: list[tuple[str, str | None]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._thread: threading.Thread | None = None
        self._generation = 0

    def worker_devices(self) -> list[str]:
        """Each engine worker's device and dtype ("cuda (bfloat16)"), or "starting" until it has answered."""
        return [state["device"] for state in self.worker_states(check=False)]

    def worker_states(self, check: bool = True, timeout_s: float = 1.5) -> list[dict[str, Any]]:
        """Each worker: its id, device ("starting" until it answered) and, with `check`, the result of its own
        database and blob-store check ("ok", what failed, or "no answer")."""
        import ray

        with self._lock:
            slots = [slot for slot in self._slots if not slot.draining]
        checks = (
            [slot.handle.check.options(concurrency_group=CONTROL_GROUP).remote() for slot in slots] if check else []
        )
        places = (
            [slot.handle.where.options(concurrency_group=CONTROL_GROUP).remote() for slot in slots] if check else []
        )
        if checks:
            ray.wait(checks + places, num_returns=len(checks) + len(places), timeout=timeout_s)
        states = []
        for position, slot in enumerate(slots):
            done, _ = ray.wait([slot.device], timeout=0) if slot.device is not None else ([], [])
            state: dict[str, Any] = {"id": slot.worker_id, "device": _answer(done[0]) if done else "starting"}
            if check:
                finished, _ = ray.wait([checks[position]], timeout=0)
                state["check"] = _answer(finished[0]) if finished else "no answer"
                placed, _ = ray.wait([places[position]], timeout=0)
                if placed and state["check"] == "ok":
                    state.update(ray.get(placed[0]))
            states.append(state)
        return states

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
            if not any(not slot.draining for slot in self._slots):
                self._backlog.append((job_id, lora_key))
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
        # The engine caches each LoRA on its own (a combination loads only the ones it lacks), so each is
        # remembered on its own, in the engine's least-recently-used order.
        for key in affinity_models(lora_key):
            slot.loras[key] = None
            slot.loras.move_to_end(key)
        while len(slot.loras) > self.settings.engine_lora_cache_size:
            slot.loras.popitem(last=False)

    def _choose(self, lora_key: str | None) -> WorkerSlot:
        """The worker holding the most of the job's custom models, unless it has more than AFFINITY_SLACK jobs
        more queued than the least busy worker (then the one holding the next most, and so on); among equals,
        the least busy (the first on a tie)."""
        open_slots = [slot for slot in self._slots if not slot.draining]
        least = min(open_slots, key=lambda slot: len(slot.in_flight))
        wanted = affinity_models(lora_key)
        held = {id(slot): sum(key in slot.loras for key in wanted) for slot in open_slots}
        for count in sorted({count for count in held.values() if count > 0}, reverse=True):
            warm = min((slot for slot in open_slots if held[id(slot)] == count), key=lambda slot: len(slot.in_flight))
            if len(warm.in_flight) <= len(least.in_flight) + AFFINITY_SLACK:
                return warm
        return least

    def _background(self) -> None:
        if not self._ray_connected():
            self._reap_forever()
            return
        try:
            self._start_workers()
        except Exception:
            log.exception("engine workers could not be started")
            self._reap_forever()
            return
        if not self.settings.ray_address:
            # The local Ray started with this deployment: no worker of an earlier run can still be alive.
            with transaction(self.sessions) as session:
                ended = records.reset_orphans(
                    session,
                    max_attempts=self.settings.job_max_attempts,
                    training_max_attempts=self.settings.training_max_attempts,
                )
                for model_id in ended:
                    self.training_ended(session, model_id)
        self._flush_backlog()
        self._reap(pending_grace_s=0.0)
        self._started.set()
        self._reap_forever()

    def _flush_backlog(self) -> None:
        with self._lock:
            backlog, self._backlog = self._backlog, []
            for job_id, lora_key in backlog:
                self._send(job_id, lora_key)

    def _start_workers(self) -> None:
        import ray

        cluster_gpus = ray.cluster_resources().get("GPU", 0.0)
        gpus = gpus_per_worker(self.settings.engine_worker_num_gpus, cluster_gpus)
        count = worker_count(self.settings.engine_workers, cluster_gpus, gpus)
        existing = self._named_workers()
        with self._lock:
            for index in range(count):
                found = existing.get(index)
                self._slots.append(self._found_slot(index, found) if found else self._new_slot(index))

    def _named_workers(self) -> dict[int, str]:
        """Workers a previous pool of this deployment started and that still live (index → actor name)."""
        if not self.name_prefix:
            return {}
        import ray

        found: dict[int, str] = {}
        prefix = f"{self.name_prefix}-worker-"
        for entry in ray.util.list_named_actors(all_namespaces=True):
            name, namespace = str(entry.get("name", "")), entry.get("namespace")
            if namespace != self.namespace or not name.startswith(prefix):
                continue
            index = name.removeprefix(prefix).split("-", 1)[0]
            if index.isdigit():
                found[int(index)] = name
        return found

    def _found_slot(self, index: int, name: str) -> WorkerSlot:
        import ray

        handle = ray.get_actor(name, namespace=self.namespace)
        log.info("engine worker %s of an earlier pool taken over", name)
        return self._slot(handle, name, index)

    def _slot(self, handle: Any, worker_id: str, index: int) -> WorkerSlot:
        control = {"concurrency_group": CONTROL_GROUP}
        return WorkerSlot(
            handle=handle, worker_id=worker_id, index=index,
            device=handle.device.options(**control).remote(), watch=handle.watch.options(**control).remote(),
        )

    def _worker_config(self) -> WorkerConfig:
        assert self.settings.model_dir is not None
        return WorkerConfig(
            database_url=self.settings.database_url,
            blob_url=self.settings.blob_url,
            model_dir=str(self.settings.model_dir),
            data_dir=str(self.settings.data_dir),
            lora_cache_size=self.settings.engine_lora_cache_size,
            torch_threads=(
                self.settings.engine_worker_torch_threads or max(1, int(self.settings.engine_worker_num_cpus))
            ),
            heartbeat_interval_s=max(0.2, self.settings.heartbeat_timeout_s / 5),
            region=self.settings.region,
            allow_private_reference_urls=self.settings.allow_private_reference_urls,
            niceness=self.niceness,
            compile=self.settings.compile,
            warm_base_model=self.settings.default_base_model,
        )

    def _new_slot(self, index: int) -> WorkerSlot:
        import ray

        self._generation += 1
        if self.name_prefix:
            worker_id = f"{self.name_prefix}-worker-{index}-{uuid.uuid4().hex[:8]}"
            naming: dict[str, Any] = {"name": worker_id, "namespace": self.namespace, "lifetime": "detached"}
        else:
            worker_id = f"{records.job_host()}-{os.getpid()}-{index}-{self._generation}"
            naming = {}
        remote: Any = ray.remote
        actor = remote(concurrency_groups={CONTROL_GROUP: 4})(EngineWorker).options(
            num_cpus=self.settings.engine_worker_num_cpus,
            num_gpus=gpus_per_worker(self.settings.engine_worker_num_gpus, ray.cluster_resources().get("GPU", 0.0)),
            max_restarts=0,
            max_concurrency=CONCURRENT_JOBS,
            **naming,
        )
        handle: Any = actor.remote(self._worker_config(), worker_id)
        return self._slot(handle, worker_id, index)

    def _resend(self, job_id: str) -> None:
        with transaction(self.sessions) as session:
            request = records.stored_request(session, job_id)
        with self._lock:
            if not any(not slot.draining for slot in self._slots):
                self._backlog.append((job_id, stored_affinity(request)))
                return
            self._send(job_id, stored_affinity(request))

    def _collect_finished(self) -> None:
        """Look at finished calls and at Ray's death signals: a job whose worker died goes back to pending at
        once and is sent to another worker; the dead worker is replaced."""
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayError

        with self._lock:
            calls: dict[Any, tuple[WorkerSlot, str | None]] = {}
            for slot in self._slots:
                calls.update({ref: (slot, job_id) for ref, job_id in slot.in_flight.items()})
                if slot.watch is not None:
                    calls[slot.watch] = (slot, None)
        if not calls:
            return
        done, _ = ray.wait(list(calls), num_returns=len(calls), timeout=0)
        lost: dict[str, WorkerSlot] = {}
        again: list[str] = []
        for ref in done:
            slot, job_id = calls[ref]
            try:
                answer = ray.get(ref)
            except (ActorDiedError, ActorUnavailableError):
                lost[slot.worker_id] = slot
                continue
            except RayError:
                log.warning("an engine worker call failed; its job is taken back", exc_info=True)
                answer = "failed call"
            with self._lock:
                if job_id is None:  # the watch ended: the worker drains and then exits
                    log.info("engine worker %s drains", slot.worker_id)
                    slot.draining, slot.watch = True, None
                    self._slots.append(self._new_slot(slot.index))
                    continue
                slot.in_flight.pop(ref, None)
            if answer in ("handed back", "failed call"):
                again += self._take_back([job_id], slot.worker_id)
        for slot in lost.values():
            log.warning("engine worker %s died; its jobs are taken back and another worker starts", slot.worker_id)
            with self._lock:
                jobs = list(slot.in_flight.values())
                slot.in_flight.clear()
                if slot in self._slots:
                    self._slots.remove(slot)
                    if not slot.draining:
                        self._slots.append(self._new_slot(slot.index))
            again += self._take_back(jobs, slot.worker_id)
        with self._lock:
            self._slots = [slot for slot in self._slots if not (slot.draining and not slot.in_flight)]
        for job_id in again:
            self._resend(job_id)

    def _take_back(self, job_ids: list[str], worker_id: str) -> list[str]:
        """Jobs of a lost worker back to pending (or ended); returns those to send again."""
        pending = []
        with transaction(self.sessions) as session:
            for job_id in job_ids:
                kind = records.job_kind(session, job_id)
                bound = (
                    self.settings.training_max_attempts if kind is JobKind.train else self.settings.job_max_attempts
                )
                state = records.take_back(session, job_id, worker_id, max_attempts=bound)
                if state is JobState.pending:
                    pending.append(job_id)
                elif kind is JobKind.train and state is not None:
                    model_id = trained_model_of(records.stored_request(session, job_id))
                    if model_id is not None:
                        self.training_ended(session, model_id)
        return pending

    def _reap(self, pending_grace_s: float) -> None:
        with self._lock:
            dispatched = {job_id for slot in self._slots for job_id in slot.in_flight.values()}
            dispatched |= {job_id for job_id, _ in self._backlog}
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
        last_sweep = time.monotonic()
        while not self._stopping.wait(WATCH_INTERVAL_S):
            try:  # the reaper must outlive a database hiccup
                if self._slots:
                    self._collect_finished()
                if time.monotonic() - last_sweep >= self.settings.reaper_interval_s:
                    last_sweep = time.monotonic()
                    self._reap(pending_grace_s=SUBMIT_GRACE_S)
            except Exception:
                log.exception("reaper pass failed")


def _answer(ref: Any) -> str:
    import ray

    try:
        return str(ray.get(ref))
    except Exception as error:  # a dead or failing worker answers with what went wrong
        return f"{type(error).__name__}"
