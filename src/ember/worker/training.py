"""Carrying one training job on an engine worker: images from the blob store into `train_lora`, progress and
the loss curve onto the job row, checkpoints and samples into the blob store (so a later attempt, on any
machine, resumes from the last checkpoint), and the new model version recorded with the job's success.

Torch is imported only inside the engine call."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from ember.blobs import BlobNotFound, BlobStore
from ember.custom_models.training import follow_training_job, record_trained_version
from ember.jobs import events, records
from ember.jobs.payloads import TrainingJob, TrainingOutcome, TrainingRecord, trained_model_of
from ember.store.database import transaction

log = logging.getLogger("ember.worker.training")
PROGRESS_INTERVAL_S = 0.25


class TrainingInputMissing(Exception):
    """A training image named by the job is no longer in the blob store."""


def job_folder(job_id: str, attempt: int) -> str:
    """The blob folder of one attempt's checkpoints and samples: `training/<job uuid>/<attempt>`. Each attempt
    writes only under its own folder, so a stale attempt can never overwrite what the current one recorded."""
    return f"training/{job_id.rsplit(':', 1)[-1]}/{attempt}"


def sample_key(job_id: str, attempt: int, step: int) -> str:
    return f"{job_folder(job_id, attempt)}/samples/step-{step}.png"


def attempt_lora_key(lora_key: str, attempt: int) -> str:
    """Where an attempt stores the trained LoRA: beside the version's key, named by the attempt. The version
    records the key of the attempt whose success was recorded."""
    return f"{lora_key.removesuffix('.safetensors')}-attempt-{attempt}.safetensors"


class TrainingRun:
    """One attempt at one training job on one worker."""

    def __init__(
        self,
        job_id: str,
        spec: dict[str, Any],
        *,
        attempt: int,
        sessions: sessionmaker[Session],
        blobs: BlobStore,
        model_dir: Path,
        work_root: Path,
        region: str,
        engine: Any = None,
    ) -> None:
        self.job_id = job_id
        self.spec = spec
        self.attempt = attempt
        self.job: TrainingJob | None = None  # read at the start of the attempt (a malformed row fails the job)
        self.sessions = sessions
        self.blobs = blobs
        self.model_dir = model_dir
        # Per attempt: a stale attempt of this job on the same machine must not clear the current one's files.
        self.work_dir = work_root / f"{job_id.rsplit(':', 1)[-1]}-{attempt}"
        self.region = region
        self.engine = engine  # the worker's ember.engine.generate.Engine, which draws the check's pictures
        self.record = TrainingRecord()
        self._last_written = 0.0
        self._lora_size = 0
        self._unwritten: list[events.Step] = []  # stream events since the last commit

    # --- the attempt, start to end ---------------------------------------------------------------------------

    def run(self) -> str:
        from ember.engine.types import Cancelled, EngineError

        uploaded: list[str] = []
        try:
            with self.sessions() as session:
                self.record = TrainingRecord.from_result(records.stored_result(session, self.job_id))
            self.job = TrainingJob.from_json(self.spec)
            shutil.rmtree(self.work_dir, ignore_errors=True)
            self.work_dir.mkdir(parents=True)
            self._restore_checkpoint()
            result = self._train()
            uploaded = self._store_weights(result)
            check = self._check(result, uploaded)
            return self._succeed(uploaded, check)
        except Cancelled:
            self._discard(uploaded)
            with transaction(self.sessions) as session:
                ended = records.confirm_cancelled(session, self.job_id, attempt=self.attempt)
                state = records.current_state(session, self.job_id)
                self._follow(session)
            if ended:  # the checkpoint is this attempt's to delete only when this attempt ended the job
                self._discard(self.record.checkpoint_keys)
            return str(state)
        except (EngineError, TrainingInputMissing) as error:
            return self._fail(uploaded, "invalid_request", f"Training failed: {error}")
        except Exception as error:  # a job must end in a state, whatever went wrong
            log.exception("training job %s failed", self.job_id)
            return self._fail(uploaded, "runtime_error", f"Training failed: {type(error).__name__}.")
        finally:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def _train(self) -> Any:
        from ember.engine.train import preset_for, train_lora
        from ember.engine.types import TrainingExample

        job = self._job()
        examples = []
        for image in job.images:
            try:
                examples.append(TrainingExample(self.blobs.get(image.blob_key), image.caption))
            except BlobNotFound:
                raise TrainingInputMissing(f"the training image {image.id} is no longer stored") from None
        config = preset_for(job.base_model, job.mode).with_overrides(**job.config)
        self.record.total_steps = config.steps
        with transaction(self.sessions) as session:
            self._write(session)
        return train_lora(
            job.base_model,
            examples,
            config,
            self.work_dir,
            model_dir=self.model_dir,
            mode=job.mode,
            concept=job.concept or None,
            sample_prompt=job.sample_prompt or None,
            progress=self._on_progress,
            should_cancel=self._should_cancel,
        )

    def _succeed(self, uploaded: list[str], check: dict[str, Any] | None = None) -> str:
        from ember.engine.types import Cancelled

        job = self._job()
        lora_key = attempt_lora_key(job.lora_blob_key, self.attempt)
        size = self._lora_size
        self.record.step = self.record.total_steps
        self.record.eta_s = 0.0
        # The result shows no checkpoint: it is deleted once the success is recorded.
        checkpoint_keys, checkpoint_step = self.record.checkpoint_keys, self.record.checkpoint_step
        self.record.checkpoint_keys, self.record.checkpoint_step = [], None
        result = TrainingOutcome(
            custom_model_id=f"urn:aaid:sc:{self.region}:{job.custom_model_id}",
            version=job.version,
            size=size,
            training=self.record,
        ).to_json()
        succeeded = False
        try:
            with transaction(self.sessions) as session:
                self._write(session)  # the last steps' events, before the success
                if records.succeed(session, self.job_id, result, attempt=self.attempt):
                    record_trained_version(
                        session,
                        job.model_id,
                        number=job.version,
                        lora_blob_key=lora_key,
                        size=size,
                        job_id=self.job_id,
                        check=check,
                    )
                    succeeded = True
        finally:
            if not succeeded:  # the checkpoint is still this job's to delete when it ends
                self.record.checkpoint_keys, self.record.checkpoint_step = checkpoint_keys, checkpoint_step
        if not succeeded:
            raise Cancelled("stopped before the result was recorded")
        self._discard(checkpoint_keys)
        return "succeeded"

    def _fail(self, uploaded: list[str], code: str, message: str) -> str:
        self._discard(uploaded)
        with transaction(self.sessions) as session:
            ended = records.fail(session, self.job_id, code, message, attempt=self.attempt)
            state = records.current_state(session, self.job_id)
            self._follow(session)
        if ended:
            self._discard(self.record.checkpoint_keys)
        return str(state)

    def _follow(self, session: Session) -> None:
        model_id = trained_model_of(self.spec)
        if model_id is not None:
            follow_training_job(session, model_id)

    # --- during training -------------------------------------------------------------------------------------

    def _should_cancel(self) -> bool:
        with self.sessions() as session:
            return records.should_stop(session, self.job_id, self.attempt)

    def _on_progress(self, event: Any) -> None:
        force = False
        if event.loss is not None and event.step > 0:
            del self.record.losses[event.step - 1 :]
            self.record.losses.append(float(event.loss))
            self.record.step, self.record.loss, self.record.eta_s = event.step, float(event.loss), event.eta_s
            self._unwritten.append(events.Step(events.PROGRESS, {
                "step": event.step, "totalSteps": self.record.total_steps, "loss": float(event.loss),
                "etaSeconds": None if event.eta_s is None else round(float(event.eta_s), 1),
            }))
        if event.preview is not None:
            key = sample_key(self.job_id, self.attempt, event.step)
            self.blobs.put(key, event.preview, "image/png")
            self.record.samples = [s for s in self.record.samples if s["step"] != event.step]
            self.record.samples.append({"step": event.step, "key": key})
            self._unwritten.append(events.Step(events.SAMPLE, {"step": event.step, "key": key}))
            force = True
        # The engine writes a checkpoint right after reporting its step, so it is found at the next report.
        force = self._upload_new_checkpoint() or force
        now = time.monotonic()
        if force or now - self._last_written >= PROGRESS_INTERVAL_S:
            # At most every PROGRESS_INTERVAL_S: a commit per step would cost more than a small step.
            self._last_written = now
            with transaction(self.sessions) as session:
                self._write(session)

    def _write(self, session: Session) -> bool:
        written = records.record_training(
            session, self.job_id, self.attempt, self.record.percent, {"training": self.record.as_json()}
        )
        if written:
            events.record_steps(session, self.job_id, self._unwritten)
            self._unwritten = []
        return written

    # --- checkpoints in the blob store ----------------------------------------------------------------------

    def _upload_new_checkpoint(self) -> bool:
        """Copy the newest local checkpoint to the blob store if it is newer than the recorded one, record
        it, then drop the one it replaces. Returns True when the record changed."""
        from ember.engine.train import read_checkpoints

        found = read_checkpoints(self.work_dir / "checkpoints")
        if not found:
            return False
        step, directory = found[-1].step, found[-1].directory
        if self.record.checkpoint_step is not None and step <= self.record.checkpoint_step:
            return False
        if step >= self.record.total_steps:
            return False  # the final checkpoint: the LoRA itself is stored next
        folder = f"{job_folder(self.job_id, self.attempt)}/checkpoints/{directory.name}"
        keys = []
        for file in sorted(directory.iterdir()):
            if file.is_file():
                key = f"{folder}/{file.name}"
                self.blobs.put(key, file.read_bytes())
                keys.append(key)
        replaced = self.record.checkpoint_keys
        self.record.checkpoint_step, self.record.checkpoint_keys = step, keys
        with transaction(self.sessions) as session:
            recorded = self._write(session)
        self._last_written = time.monotonic()
        if recorded:
            self._discard([key for key in replaced if key not in keys])
        return True

    def _restore_checkpoint(self) -> None:
        """On a later attempt: the recorded checkpoint into the fresh work dir, where train_lora resumes from."""
        step = self.record.checkpoint_step
        if step is None or not self.record.checkpoint_keys:
            return
        try:
            for key in self.record.checkpoint_keys:
                # Recorded by an earlier attempt, under its folder: `…/<attempt>/checkpoints/step-N/<file>`.
                target = self.work_dir / "checkpoints" / key.split("/checkpoints/", 1)[-1]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(self.blobs.get(key))
        except BlobNotFound:
            log.warning("checkpoint of %s at step %d is missing; training starts over", self.job_id, step)
            shutil.rmtree(self.work_dir / "checkpoints", ignore_errors=True)
            self.record.checkpoint_step, self.record.checkpoint_keys = None, []
            return
        from ember.engine.train import read_checkpoints

        restored = read_checkpoints(self.work_dir / "checkpoints")
        if restored:
            self.record.losses = list(restored[-1].losses)
        self.record.step = step
        self.record.resumed_from = step

    def _job(self) -> TrainingJob:
        assert self.job is not None, "the job is read at the start of the attempt"
        return self.job

    def _store_weights(self, result: Any) -> list[str]:
        lora_key = attempt_lora_key(self._job().lora_blob_key, self.attempt)
        uploaded = []
        data = Path(result.lora_path).read_bytes()
        self.blobs.put(lora_key, data)
        self._lora_size = len(data)
        uploaded.append(lora_key)
        return uploaded

    def _check(self, result: Any, uploaded: list[str]) -> dict[str, Any] | None:
        """The check before publishing (ember.engine.checks) of the LoRA just trained, drawn by the worker's
        engine; its samples are stored beside the version (and added to `uploaded`). None where no engine was
        given or the check could not run: that version publishes as versions trained before the check did."""
        if self.engine is None:
            return None
        from ember.engine.checks import CheckInput, run_check
        from ember.engine.images import open_image
        from ember.engine.registry import get_base_model
        from ember.engine.types import Cancelled, LoraRef

        job = self._job()
        lora_key = job.lora_blob_key
        try:
            check = run_check(self.engine, CheckInput(
                spec=get_base_model(job.base_model),
                lora=LoraRef(key=lora_key, path=Path(result.lora_path)),
                mode=job.mode,
                concept=job.concept or None,
                sample_prompt=job.sample_prompt,
                training_images=[open_image(self.blobs.get(image.blob_key)) for image in job.images],
            ))
        except Cancelled:
            raise
        except Exception:  # a check that cannot run never fails the training it checks
            log.exception("the check of training job %s could not run", self.job_id)
            return None
        folder = lora_key.rsplit("/", 1)[0]
        keys = []
        for index, sample in enumerate(check.samples):
            key = f"{folder}/check-{index}.png"
            self.blobs.put(key, sample, "image/png")
            uploaded.append(key)
            keys.append(key)
        return check.as_json(keys)

    def _discard(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.blobs.delete(key)
            except Exception:  # a blob left behind is waste, never an error for the job
                log.warning("could not delete %s", key, exc_info=True)

