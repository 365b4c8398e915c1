"""The engine worker: a long-lived Ray actor that holds the engine (base pipelines and a LoRA LRU), claims
jobs by id, writes their progress, state and heartbeat to the database itself, and stores signed outputs;
training jobs are carried by `ember.worker.training`.

Importing this module is cheap; torch is imported when an actor starts."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ember.blobs import BlobStore, open_blob_store
from ember.custom_models.training import follow_training_job
from ember.data_dir import write_private_bytes
from ember.jobs import events, records
from ember.jobs.payloads import GeneratedImage, GenerationJob, GenerationOutcome, ImageRef, trained_model_of
from ember.media import EXTENSIONS
from ember.safe_fetch import ReferenceUnavailable, fetch_reference
from ember.store.database import open_engine, session_factory, transaction
from ember.store.tables import JobKind
from ember.worker.provenance import Origin, SigningChain, load_or_create_shared_chain, sign_image
from ember.worker.training import PROGRESS_INTERVAL_S, TrainingRun

log = logging.getLogger("ember.worker.actor")
MAX_REFERENCE_BYTES = 15 * 1024 * 1024
CONCURRENT_JOBS = 2
# How often a running generation's row is read for a stop (cancel, time-out, another attempt): the engine
# stops at the first step after that.
STOP_CHECK_S = 0.1


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to know, as plain values (it may run on another machine)."""

    database_url: str
    blob_url: str
    model_dir: str
    data_dir: str
    lora_cache_size: int = 8
    torch_threads: int = 1
    heartbeat_interval_s: float = 2.0
    region: str = "VA6C2"
    allow_private_reference_urls: bool = False
    niceness: int | None = None  # the dispatching server's; None leaves the process as Ray started it
    compile: str = "auto"  # EMBER_COMPILE
    warm_base_model: str | None = None  # compiled at start, so the first job does not wait for it


def output_key(job_id: str, attempt: int, index: int, seed: int, mimetype: str) -> str:
    """Where an attempt stores an output: under the attempt, so that no other attempt of the job (a stale one
    waking up late) can overwrite or delete it. The attempt's keys become the job's when its success is
    recorded (`records.succeed` names them in the result)."""
    return f"outputs/{job_id.rsplit(':', 1)[-1]}/{attempt}/{index}-{seed}.{EXTENSIONS[mimetype]}"


class EngineWorker:
    """One engine per actor. Ray runs up to CONCURRENT_JOBS calls at once, so the next job is claimed while one
    runs. The engine denoises one job at a time (it holds a lock); on an accelerator the previous job is signed
    and stored while the next one denoises, on a CPU a generation job runs whole before the next (see
    `_generating`)."""

    def __init__(self, config: WorkerConfig, worker_id: str) -> None:
        import torch

        from ember.engine.generate import Engine

        torch.set_num_threads(max(1, config.torch_threads))
        _take_priority(config.niceness)
        self.config = config
        self.worker_id = worker_id
        self.database = open_engine(config.database_url)
        self.sessions = session_factory(self.database)
        self.blobs: BlobStore = open_blob_store(config.blob_url)
        self.engine = Engine(Path(config.model_dir), lora_cache_size=config.lora_cache_size, compile=config.compile)
        log.info("engine worker %s runs on %s in %s", worker_id, self.engine.device, self.engine.dtype)
        self.chain: SigningChain = load_or_create_shared_chain(self.blobs, Path(config.data_dir))
        self.lora_dir = Path(config.data_dir) / "cache" / "loras"
        self._current: dict[str, int] = {}  # job id → the attempt this worker runs
        self._draining = threading.Event()
        self._training = threading.Lock()
        # On a CPU, the engine's denoising thread needs the GIL between its many small operations: a second
        # generation beside it (storing its images while the next one denoises) takes the GIL from it and costs
        # more than the overlap saves (two threads calling the engine: 0.85-0.93 of the images a second of one
        # after the other, docs/jobs.md). There, one generation at a time; on an accelerator they overlap.
        self._generating: AbstractContextManager[Any] = (
            threading.Lock() if self.engine.device == "cpu" else contextlib.nullcontext()
        )
        self._drain_on_sigterm()
        self._beating = threading.Thread(target=self._heartbeat_loop, name="ember-heartbeat", daemon=True)
        self._beating.start()
        if self.engine.compiled and config.warm_base_model:
            # Jobs arriving meanwhile wait on the engine's lock, then run compiled.
            threading.Thread(target=self.warm, args=(config.warm_base_model,), name="ember-warm", daemon=True).start()

    def ready(self) -> str:
        return self.worker_id

    def check(self) -> str:
        """This worker's own view of its dependencies: "ok", or which of the database and blob store fails."""
        from sqlalchemy import text

        try:
            with self.database.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # any driver error means "unreachable from this worker"
            return f"database: {type(error).__name__}"
        try:
            self.blobs.check()
        except Exception as error:
            return f"blob store: {type(error).__name__}: {error}"
        return "ok"

    def where(self) -> dict[str, Any]:
        """Where this worker runs (Ray node id, process id) and the jobs it carries now: for operators."""
        import ray

        return {"node": ray.get_runtime_context().get_node_id(), "pid": os.getpid(), "jobs": sorted(self._current)}

    def watch(self) -> str:
        """Returns when the worker starts draining; while the worker lives it does not return, so its caller
        learns of the worker's death from Ray at once."""
        self._draining.wait()
        return "draining"

    def drain(self) -> None:
        """Take no new job: jobs handed over from now on are handed back untouched; when the running ones have
        ended, the process exits."""
        if self._draining.is_set():
            return
        self._draining.set()
        threading.Thread(target=self._exit_when_idle, name="ember-drain", daemon=True).start()

    def _exit_when_idle(self) -> None:
        while self._current:
            time.sleep(0.1)
        time.sleep(0.5)  # let Ray deliver the answers of the last calls
        log.info("engine worker %s drained; exiting", self.worker_id)
        os._exit(0)

    def _drain_on_sigterm(self) -> None:
        """SIGTERM drains the worker (its running jobs finish) instead of killing it mid-job."""
        if threading.current_thread() is not threading.main_thread():
            return
        try:
            signal.signal(signal.SIGTERM, lambda signum, frame: self.drain())
        except (ValueError, OSError):  # not allowed here: Ray's default handling stays
            log.info("engine worker %s cannot drain on SIGTERM", self.worker_id)

    def device(self) -> str:
        """The device and dtype this worker's engine runs on, e.g. "cuda (bfloat16)"."""
        return f"{self.engine.device} ({str(self.engine.dtype).removeprefix('torch.')})"

    def warm(self, base_model: str) -> None:
        """Load (and when compiling, compile) a base model now, so the first job does not pay for it."""
        self.engine.warm(base_model)

    def loaded_loras(self) -> list[str]:
        return self.engine.loaded_loras()

    def run(self, job_id: str) -> str:
        """Carry one job to a final state; returns that state ("skipped" when another worker has it, "handed
        back" when this worker drains and leaves the job to another)."""
        if self._draining.is_set():
            return "handed back"
        with transaction(self.sessions) as session:
            claimed = records.claim_job(session, job_id, self.worker_id)
            if claimed is None:
                return "skipped"
            attempt, spec, kind = claimed.attempt, claimed.request, claimed.kind
            model_id = trained_model_of(spec) if kind is JobKind.train else None
            if model_id is not None:
                follow_training_job(session, model_id)
        self._current[job_id] = attempt
        try:
            if kind is JobKind.train:
                return self._train(job_id, attempt, spec)
            with self._generating:
                return self._generate(job_id, attempt, spec)
        finally:
            self._current.pop(job_id, None)

    def _train(self, job_id: str, attempt: int, spec: dict[str, Any]) -> str:
        with self._training:  # one training at a time per worker (per GPU); heartbeats keep a waiting job alive
            return self._train_now(job_id, attempt, spec)

    def _train_now(self, job_id: str, attempt: int, spec: dict[str, Any]) -> str:
        return TrainingRun(
            job_id,
            spec,
            attempt=attempt,
            sessions=self.sessions,
            blobs=self.blobs,
            model_dir=Path(self.config.model_dir),
            work_root=Path(self.config.data_dir) / "work" / "training",
            region=self.config.region,
            engine=self.engine,
        ).run()

    def _generate(self, job_id: str, attempt: int, spec: dict[str, Any]) -> str:
        from ember.engine.types import Cancelled, EngineError

        tracker = GenerationTracker(self.sessions, job_id, attempt)
        on_progress, should_cancel = tracker.on_progress, tracker.should_stop
        stored: list[str] = []
        try:
            try:
                job = GenerationJob.from_json(spec)
                request = self._generation_request(job)
                images = self.engine.generate(request, progress=on_progress, should_cancel=should_cancel)
            finally:
                steps = tracker.finish()  # whatever happened, the tracker's thread ends here
            origin = Origin(base_model=job.base_model, custom_models=job.custom_models)
            outputs = []
            for index, image in enumerate(images):
                if should_cancel():
                    raise Cancelled("cancelled while storing outputs")
                key = output_key(job_id, attempt, index, image.seed, image.mimetype)
                self.blobs.put(key, sign_image(image.data, image.mimetype, origin, self.chain), image.mimetype)
                stored.append(key)
                outputs.append(GeneratedImage(seed=image.seed, key=key, mimetype=image.mimetype))
            result = GenerationOutcome(
                width=job.width, height=job.height, outputs=tuple(outputs), content_class=job.content_class,
                warnings=job.warnings,
            ).to_json()
            with transaction(self.sessions) as session:
                if not records.should_stop(session, job_id, attempt):
                    events.record_steps(session, job_id, steps)
                if records.succeed(session, job_id, result, attempt=attempt):
                    return "succeeded"
            raise Cancelled("stopped before the result was recorded")
        except Cancelled:
            self._discard(stored)
            with transaction(self.sessions) as session:
                records.confirm_cancelled(session, job_id, attempt=attempt)
                return str(records.current_state(session, job_id))
        except (EngineError, ReferenceUnavailable) as error:
            self._discard(stored)
            with transaction(self.sessions) as session:
                records.fail(session, job_id, "invalid_request", str(error), attempt=attempt)
            return "failed"
        except Exception as error:  # a job must end in a state, whatever went wrong
            log.exception("job %s failed", job_id)
            self._discard(stored)
            with transaction(self.sessions) as session:
                records.fail(
                    session, job_id, "runtime_error", f"Generation failed: {type(error).__name__}.", attempt=attempt
                )
            return "failed"

    def _discard(self, keys: list[str]) -> None:
        """Delete outputs this attempt wrote (and only those: every key is under this attempt)."""
        for key in keys:
            self.blobs.delete(key)

    def _generation_request(self, job: GenerationJob) -> Any:
        from ember.engine.types import GenerationRequest, LoraRef

        loras = [
            LoraRef(key=lora.key, path=self._lora_file(lora.key, lora.blob_key), weight=lora.weight)
            for lora in job.loras
        ]
        return GenerationRequest(
            base_model=job.base_model,
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            seeds=list(job.seeds),
            width=job.width,
            height=job.height,
            content_class=job.content_class,
            visual_intensity=job.visual_intensity,
            style_presets=list(job.style_presets or ()),
            style_strength=50 if job.style_strength is None else job.style_strength,
            style_image=self._reference(job.style_image),
            structure_image=self._reference(job.structure_image),
            structure_strength=job.structure_strength,
            loras=loras,
            mimetype=job.mimetype,
            steps=job.steps,
        )

    def _lora_file(self, key: str, blob_key: str) -> Path:
        """The LoRA's local copy (fetched from the blob store once per machine)."""
        path = self.lora_dir / (key.replace(":", "-") + ".safetensors")
        if not path.is_file():
            write_private_bytes(path, self.blobs.get(blob_key))
        return path

    def _reference(self, source: ImageRef | None) -> bytes | None:
        if source is None:
            return None
        if source.blob_key is not None:
            from ember.blobs import BlobNotFound

            try:
                return self.blobs.get(source.blob_key)
            except BlobNotFound:
                raise ReferenceUnavailable("the uploaded reference image is no longer available") from None
        assert source.url is not None
        return fetch_reference(
            source.url, max_bytes=MAX_REFERENCE_BYTES, allow_private=self.config.allow_private_reference_urls
        )

    def _heartbeat_loop(self) -> None:
        # Steps can be slow (a first model load, a big image): a separate beat keeps a busy worker from
        # being taken for a lost one.
        while True:
            time.sleep(self.config.heartbeat_interval_s)
            for job_id, attempt in list(self._current.items()):
                try:
                    with transaction(self.sessions) as session:
                        records.record_heartbeat(session, job_id, attempt=attempt)
                except Exception:  # a missed beat is retried on the next tick
                    log.warning("heartbeat for %s failed", job_id, exc_info=True)


class GenerationTracker:
    """The database work of a running generation, kept off the denoising thread: the engine's callbacks only
    append a step and read a flag, while a thread of the job writes its progress and step events at most every
    PROGRESS_INTERVAL_S and reads its row for a stop (cancel, time-out, another attempt) every STOP_CHECK_S. A
    commit and a read per step cost more than a small step does; the engine never waits on the database."""

    def __init__(self, sessions: Any, job_id: str, attempt: int) -> None:
        self.sessions = sessions
        self.job_id = job_id
        self.attempt = attempt
        self._lock = threading.Lock()
        self._steps: list[events.Step] = []  # not yet written
        self._percent: int | None = None  # the latest step's, until written
        self._stopped = threading.Event()
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="ember-job-tracker", daemon=True)
        self._thread.start()

    def on_progress(self, event: Any) -> None:
        with self._lock:
            self._steps.append(generation_step(event))
            self._percent = min(99, int(100 * event.step / max(1, event.total)))

    def should_stop(self) -> bool:
        return self._stopped.is_set()

    def finish(self) -> list[events.Step]:
        """Stop the thread; returns the steps not yet written (the caller writes them with the job's end)."""
        self._finished.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()
        with self._lock:
            steps, self._steps = self._steps, []
        return steps

    def _watch(self) -> None:
        last_written = -PROGRESS_INTERVAL_S
        while not self._finished.wait(STOP_CHECK_S):
            try:
                if time.monotonic() - last_written >= PROGRESS_INTERVAL_S and self._write_progress():
                    last_written = time.monotonic()
                    continue
                with self.sessions() as session:
                    if records.should_stop(session, self.job_id, self.attempt):
                        self._stopped.set()
            except Exception:  # a database hiccup: the next tick tries again
                log.warning("progress of %s not written", self.job_id, exc_info=True)

    def _write_progress(self) -> bool:
        """Write the steps since the last write (one commit); False when there were none."""
        with self._lock:
            steps, self._steps = self._steps, []
            percent, self._percent = self._percent, None
        if percent is None:
            return False
        try:
            with transaction(self.sessions) as session:
                if records.record_progress(session, self.job_id, percent, attempt=self.attempt):
                    events.record_steps(session, self.job_id, steps)
                else:  # no longer running under this attempt
                    self._stopped.set()
        except Exception:
            with self._lock:  # written with the next commit instead
                self._steps[:0] = steps
                self._percent = self._percent if self._percent is not None else percent
            raise
        return True


def generation_step(event: Any) -> events.Step:
    """A generation step as a stream event: the step, the total and the engine's estimate of the time left."""
    eta = None if event.eta_s is None else round(float(event.eta_s), 2)
    return events.Step(events.PROGRESS, {"step": event.step, "totalSteps": event.total, "etaSeconds": eta})


def _take_priority(niceness: int | None) -> None:
    """Run at the server's scheduling priority. Ray starts its workers at niceness 15 so that its own daemons
    stay responsive, which on a machine shared with other work slows the engine (the whole workload) by 10–20 %.
    Raising priority needs the privilege to (root or CAP_SYS_NICE); without it the worker stays as it is, and a
    cluster can start its nodes with RAY_worker_niceness=0 instead."""
    if niceness is None or not hasattr(os, "setpriority"):
        return
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current <= niceness:
        return
    try:
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
    except OSError:
        log.info("engine worker left at niceness %d (no privilege to take %d)", current, niceness)
