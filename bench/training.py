"""Benchmark of training jobs against the engine's `train_lora` called directly, measured in the same run.

Starts `ember serve` (its own local Ray, one engine worker) on a temporary data directory, creates a subject
model with ten images through the API, and warms the worker with one short training job. Then, alternating,
it times a training job end to end (train-async → succeeded, status polled every `--poll` s; the job fetches the
images from the blob store, writes progress, uploads samples, checkpoints and the LoRA, and records the new
version, then runs the check before publishing) and, in this process, `train_lora` with the same images,
captions and config (the same base-model load, samples and local checkpoints) followed by the same check
(`ember.engine.checks.run_check`, drawn by an engine in this process). It prints the median of each and their
ratio (target ≤ 1.1), and the ratio of the best runs (on a machine shared with other work, the least disturbed
run of each).

The default poll interval, 0.5 s, is a client following a job of seconds to hours; it adds up to 0.5 s of
latency to the job's end. On a 2-core machine much faster polling costs the worker CPU (each status answer
takes about 3 ms of the server's CPU and as much of the client's), which the ratio then includes.

    .venv/bin/python bench/training.py [--steps 300] [--repeats 5] [--threads 1] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image
from serving import (
    engine_env,
    finished_job,
    free_port,
    headers_for,
    require_base_model,
    seed_clients,
    start_server,
    stored_request,
)

MODELS = "/v3/custom-models"


def picture(seed: int, side: int = 128) -> bytes:
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(9, 9, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(blocks).resize((side, side), Image.Resampling.NEAREST).save(out, format="PNG")
    return out.getvalue()


def make_model(client: httpx.Client) -> str:
    created = client.post(MODELS, json={
        "displayName": "Bench", "trainingMode": "subject", "conceptId": "zorb", "samplePrompt": "a zorb on a beach",
    })
    created.raise_for_status()
    asset_id = str(created.json()["assetId"])
    files = [("files", (f"{seed}.png", picture(seed), "image/png")) for seed in range(10)]
    client.post(f"{MODELS}/{asset_id}/images", files=files).raise_for_status()
    return asset_id


def train_job(client: httpx.Client, asset_id: str, steps: int, poll_s: float) -> tuple[float, str]:
    started = time.perf_counter()
    accepted = client.post(f"{MODELS}/{asset_id}/train-async", json={"steps": steps})
    accepted.raise_for_status()
    job_id = str(accepted.json()["jobId"])
    while True:
        status = client.get(f"/v3/status/{job_id}").json()
        if status["status"] == "succeeded":
            return time.perf_counter() - started, job_id
        if status["status"] in ("failed", "cancelled", "timeout"):
            raise SystemExit(f"training job ended as {status}")
        time.sleep(poll_s)


def job_times(data_dir: Path, job_id: str) -> tuple[float, float]:
    """Seconds from submission to the claim, and from the claim to the recorded success."""
    job = finished_job(data_dir, job_id)
    return (job.started_at - job.created_at).total_seconds(), (job.finished_at - job.started_at).total_seconds()


def direct_training(request: dict[str, Any], data_dir: Path, model_dir: Path, work_dir: Path,
                    engine: Any) -> tuple[float, float]:
    """`train_lora` on the job's own inputs (its images from the blob directory, its captions and config), then
    the check before publishing that a training job runs on what it trained, drawn by `engine`: the seconds of
    each."""
    from ember.engine.checks import CheckInput, run_check
    from ember.engine.images import open_image
    from ember.engine.registry import get_base_model
    from ember.engine.train import preset_for, train_lora
    from ember.engine.types import LoraRef, TrainingExample

    blobs = data_dir / "blobs"
    pictures = [(blobs / image["blobKey"]).read_bytes() for image in request["images"]]
    captions = [image["caption"] for image in request["images"]]
    examples = [TrainingExample(data, caption) for data, caption in zip(pictures, captions, strict=True)]
    config = preset_for(request["baseModel"], request["mode"]).with_overrides(**request["config"])
    shutil.rmtree(work_dir, ignore_errors=True)
    started = time.perf_counter()
    result = train_lora(
        request["baseModel"], examples, config, work_dir, model_dir=model_dir, mode=request["mode"],
        concept=request["concept"] or None, sample_prompt=request["samplePrompt"] or None,
    )
    trained = time.perf_counter()
    run_check(engine, CheckInput(
        spec=get_base_model(request["baseModel"]),
        lora=LoraRef(key=f"direct/{uuid.uuid4().hex}", path=Path(result.lora_path)),  # a new key: no cache hit
        mode=request["mode"], concept=request["concept"] or None, sample_prompt=request["samplePrompt"],
        training_images=[open_image(data) for data in pictures],
    ))
    return trained - started, time.perf_counter() - trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between status polls")
    args = parser.parse_args()

    import torch

    from ember.engine.generate import Engine
    from ember.engine.models import resolve_model_path
    from ember.engine.registry import get_base_model

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="ember-bench-training-"))
    data_dir, model_dir = root / "data", root / "models"
    resolve_model_path(get_base_model("tiny"), model_dir)
    (credentials,) = seed_clients(data_dir, ["bench"])
    engine = Engine(model_dir)  # the direct side's drawer for the check, as the worker's engine is the job's
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port, engine_env(model_dir, args.threads))
    try:
        with httpx.Client(base_url=base, headers=headers_for(base, credentials), timeout=60) as client:
            asset_id = make_model(client)
            _, warm_job = train_job(client, asset_id, 5, args.poll)  # starts the engine worker and its imports
            require_base_model(data_dir, warm_job, "tiny")
            request = stored_request(data_dir, warm_job)
            request["config"] = {"steps": args.steps}
            api, direct, checks, claims, runs = [], [], [], [], []
            for _ in range(args.repeats):
                seconds, job_id = train_job(client, asset_id, args.steps, args.poll)
                api.append(seconds)
                claimed, ran = job_times(data_dir, job_id)
                claims.append(claimed)
                runs.append(ran)
                trained_s, checked_s = direct_training(request, data_dir, model_dir, root / "direct", engine)
                direct.append(trained_s + checked_s)
                checks.append(checked_s)
    finally:
        server.terminate()
        server.wait(timeout=60)
        shutil.rmtree(root, ignore_errors=True)
    api_s, direct_s, check_s = statistics.median(api), statistics.median(direct), statistics.median(checks)
    trained_only = [total - check for total, check in zip(direct, checks, strict=True)]
    print(f"training job, {args.steps} steps on tiny, {args.threads} torch thread(s), status polled every "
          f"{args.poll} s, median of {args.repeats}")
    print(f"  through the API with Ray (submit → succeeded): {api_s:7.2f} s   runs {[round(x, 2) for x in api]}")
    print(f"  train_lora then the check, called directly:   {direct_s:7.2f} s   runs {[round(x, 2) for x in direct]}")
    print(f"    of which the check before publishing:      {check_s:7.2f} s   runs {[round(x, 2) for x in checks]}")
    print(f"  of the job: submit → claimed {statistics.median(claims):.2f} s, claimed → succeeded (recorded) "
          f"{statistics.median(runs):.2f} s")
    print(f"  ratio API / direct: {api_s / direct_s:.3f} of the medians, {min(api) / min(direct):.3f} of the best runs "
          "(target ≤ 1.1)")
    print(f"  (API / train_lora alone, without the check: {api_s / statistics.median(trained_only):.3f})")

if __name__ == "__main__":
    main()
