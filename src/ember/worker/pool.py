"""The engine pool: one per deployment, shared by every API replica.

A detached, named Ray actor (`ember-pool-<deployment>` in the `ember` namespace) owns the deployment's engine
workers and its reaper (`Dispatcher`). Whichever process finds it missing creates it (an `ember serve` replica,
or `ember engine serve --ray-address …` ahead of them); it outlives the process that created it, so an API
replica's restart or crash leaves every worker and every running job alone. API replicas only insert job rows
and tell the pool about them (`PoolClient.submit`, fire and forget: a message lost is made good by the pool's
own sweep of pending rows).

The pool takes its settings from the environment Ray gives it (`runtime_env`), set once by its creator from
the creator's effective settings: workers on any node run with the deployment's configuration, not with the
shell that started their node.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from typing import Any

from ember.cluster import AttachedRay, RayConnection
from ember.config import Settings, load_settings
from ember.jobs.dispatch import OnRay

log = logging.getLogger("ember.worker.pool")
NAMESPACE = "ember"
POOL_CONCURRENCY = 32
ASK_TIMEOUT_S = 3.0  # the pool asks its workers for at most WORKER_CHECK_S of it
# Forwarded from the creator's environment to the pool and its workers (credentials and model sources).
FORWARDED_PREFIXES = ("AWS_", "HF_", "EMBER_C2PA_")
NOT_FORWARDED = frozenset({"EMBER_C2PA_CERT", "EMBER_C2PA_KEY"})  # paths on one machine: their contents go


def pool_name(settings: Settings) -> str:
    """The deployment's pool: named after its database, which every replica of the deployment shares."""
    return "ember-pool-" + hashlib.sha256(settings.database_url.encode()).hexdigest()[:12]


def pool_env(settings: Settings, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment the pool and its workers run with: the effective settings as `EMBER_*` variables, the
    AWS/Hugging Face variables of the creator, and a configured C2PA chain's PEM contents."""
    environ = dict(os.environ if environ is None else environ)
    env = {
        name: value
        for name, value in environ.items()
        if name.startswith(FORWARDED_PREFIXES) and name not in NOT_FORWARDED
    }
    for name, value in settings.model_dump(mode="json", exclude={"token_secret"}).items():
        if value is None:
            continue
        env[f"EMBER_{name.upper()}"] = value if isinstance(value, str) else json.dumps(value)
    cert, key = environ.get("EMBER_C2PA_CERT"), environ.get("EMBER_C2PA_KEY")
    if cert and key:
        with open(cert) as cert_file, open(key) as key_file:
            env["EMBER_C2PA_CERT_PEM"], env["EMBER_C2PA_KEY_PEM"] = cert_file.read(), key_file.read()
    return env


class EnginePool:
    """The pool actor: a `Dispatcher` over the deployment's workers, with the settings of its environment."""

    def __init__(self, niceness: int | None = None) -> None:
        from ember.blobs import open_blob_store
        from ember.custom_models.training import follow_training_job
        from ember.jobs.dispatch import Dispatcher
        from ember.store.database import open_engine, session_factory
        from ember.worker.provenance import load_or_create_shared_chain

        logging.basicConfig(level=logging.INFO)
        settings = load_settings()
        # The signing identity is made here, once, before any worker reads it.
        load_or_create_shared_chain(open_blob_store(settings.blob_url), settings.data_dir)
        self.dispatcher = Dispatcher(
            settings, session_factory(open_engine(settings.database_url)), AttachedRay("pool"), follow_training_job,
            name_prefix=pool_name(settings), namespace=NAMESPACE, niceness=niceness,
        )
        self.dispatcher.start()

    def submit(self, job_id: str, lora_key: str | None = None) -> None:
        self.dispatcher.submit(job_id, lora_key)

    def started(self, timeout_s: float) -> bool:
        return self.dispatcher.wait_started(timeout_s)

    def workers(self, check: bool = True) -> list[dict[str, Any]]:
        return self.dispatcher.worker_states(check=check)

    def loaded_loras(self) -> dict[str, list[str]]:
        return self.dispatcher.loaded_loras()

    def shutdown(self) -> None:
        """Stop the reaper and kill the workers (the pool itself is killed by its caller)."""
        self.dispatcher.stop()


def find_or_create_pool(settings: Settings) -> Any:
    """The deployment's pool actor, created when missing (by exactly one of the processes racing to)."""
    import ray

    name = pool_name(settings)
    try:
        return ray.get_actor(name, namespace=NAMESPACE)
    except ValueError:
        pass
    niceness = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else None
    actor = ray.remote(EnginePool).options(
        name=name,
        namespace=NAMESPACE,
        lifetime="detached",
        get_if_exists=True,
        num_cpus=0,
        max_restarts=-1,
        max_concurrency=POOL_CONCURRENCY,
        # On the head node: a worker node's death must not take the pool (and so every worker) with it.
        resources={"node:__internal_head__": 0.001},
        runtime_env={"env_vars": pool_env(settings)},
    )
    log.info("engine pool %s: found or created", name)
    return actor.remote(niceness)


class PoolClient(OnRay):
    """An API replica's side of the pool: finds (or creates) it once Ray is connected, tells it about new
    jobs, asks it about workers. Stopping a replica stops the pool only when the replica owns the Ray it runs
    on (the embedded local Ray, or a test's); a pool on a cluster the replica joined stays."""

    def __init__(self, settings: Settings, sessions: Any, ray: RayConnection) -> None:
        self.settings = settings
        self.sessions = sessions
        self.ray = ray
        self._handle: Any = None
        self._started = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def _background(self) -> None:
        import ray

        if not self._ray_connected():
            return
        try:
            self._handle = find_or_create_pool(self.settings)
        except Exception:
            log.exception("engine pool could not be found or created")
            return
        while not self._stopping.is_set():
            try:
                if ray.get(self._handle.started.remote(1.0), timeout=30):
                    self._started.set()
                    return
            except Exception:
                log.warning("engine pool not answering yet", exc_info=True)
                self._stopping.wait(1.0)

    def submit(self, job_id: str, lora_key: str | None = None) -> None:
        """Tell the pool about a new pending job; without an answer from the pool the row still waits and the
        pool's sweep finds it."""
        from ember.jobs.dispatch import EngineUnavailable

        if not self.accepting:
            raise EngineUnavailable("no engine workers: Ray is disabled or unreachable")
        if self._handle is not None:
            self._handle.submit.remote(job_id, lora_key)

    def worker_states(self, check: bool = True) -> list[dict[str, Any]]:
        """Each worker of the pool (id, device, and its own dependency check), [] while there is no pool."""
        import ray

        if self._handle is None or not self._started.is_set():
            return []
        try:
            states: list[dict[str, Any]] = ray.get(self._handle.workers.remote(check), timeout=ASK_TIMEOUT_S)
        except Exception:
            log.warning("engine pool did not answer", exc_info=True)
            return []
        return states

    def worker_devices(self) -> list[str]:
        return [state["device"] for state in self.worker_states(check=False)]

    def loaded_loras(self) -> dict[str, list[str]]:
        import ray

        if self._handle is None:
            return {}
        loras: dict[str, list[str]] = ray.get(self._handle.loaded_loras.remote(), timeout=ASK_TIMEOUT_S)
        return loras

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._handle is None or not self._owns_ray():
            return
        import ray

        if not ray.is_initialized():
            return
        try:
            ray.get(self._handle.shutdown.remote(), timeout=30)
        except Exception:
            log.warning("engine pool did not shut down cleanly", exc_info=True)
        ray.kill(self._handle)
        self._handle = None

    def _owns_ray(self) -> bool:
        return isinstance(self.ray, AttachedRay) or not self.settings.ray_address
