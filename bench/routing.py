"""Custom-model routing: Ember's engine pool against Ray Serve's model multiplexing, on the same workload, measured
in the same run.

Setup: a Ray head for the run (`--ray-cpus`, default 2), the `tiny` base model, and K custom models (`--models`,
default 6) whose LoRA files are made with the engine's own random-LoRA writer, stored as custom-model versions of
one organization. Both systems get two workers of 1 CPU and 1 torch thread each, holding at most M LoRAs each
(`--cache`, default 2: K > 2·M, so routing decides how often a LoRA is loaded):

  ember   `ember engine serve` starts the pool (2 workers, `EMBER_ENGINE_LORA_CACHE_SIZE=M`), one `ember serve`
          replica takes the requests over HTTP (`POST /v3/images/generate-async` with `customModelId`);
          completion is read from the database every 20 ms.
  serve   a Ray Serve deployment of 2 replicas, each holding the same `Engine` on `tiny`, the LoRA chosen with
          `@serve.multiplexed(max_num_models_per_replica=M)` keyed by the model id, called through a
          `DeploymentHandle` (no HTTP proxy: the cheapest way in) with `max_ongoing_requests=2` (an Ember worker
          also takes two calls at once and denoises one at a time).

Workload: N requests (`--requests`, default 60; `--small`: 24) for the K models in a Zipf mix (weight 1/rank^s,
`--skew`, default 1.1), the same seeded sequence for both, sent by C concurrent clients (`--clients`, default 4).
Printed per system: the share of requests served by a worker already holding their LoRA (hit rate), LoRA loads,
p50/p95 latency (client-observed), throughput, the worker's time (with and without a LoRA load), the named
Ray actors each system keeps (`ray_actors`), and Serve/Ember for each; then what each needs that the other
does not (`needs`, from docs/jobs.md). For Ember, hits and loads are replayed
from the jobs' rows (which worker ran each job, in the order they started, through an LRU of size M, exactly as
the engine's adapter cache evicts); for Serve each replica reports whether the engine held the LoRA before it ran.

    .venv/bin/pip install 'ray[serve]==<ray's version>'     # or: pip install -e '.[engine,serve]'
    HF_HUB_OFFLINE=1 .venv/bin/python bench/routing.py [--small] [--requests 60] [--models 6] [--cache 2]
                                                        [--clients 4] [--skew 1.1] [--order ember,serve]

Not run in CI. The two systems run one after the other on one Ray head; `--order serve,ember` swaps them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from serving import engine_env, free_port, headers_for, seed_clients, start_server
from sqlalchemy import select

from ember.config import Settings
from ember.store.database import open_engine, session_factory, transaction
from ember.store.tables import (
    ApiClient,
    CustomModel,
    CustomModelVersion,
    Job,
    JobState,
    PublishedState,
    TrainingMode,
    TrainingState,
)
from jobs import pool_workers, ray_env, ray_head

BASE_MODEL = "tiny"
SIZE = 1024
WORKERS = 2
POLL_S = 0.02
FINAL = (JobState.succeeded, JobState.failed, JobState.cancelled, JobState.timeout)


@dataclass(frozen=True)
class Request:
    index: int
    model: int  # index into the custom models; -1: none (the warm-up, which loads the base model only)


@dataclass
class Served:
    """One request's outcome: client-observed latency, which worker ran it, whether it held the LoRA."""

    latency_s: float
    worker: str
    hit: bool | None = None
    started: float = 0.0
    service_s: float = 0.0  # on the worker: Ember's job run (fetch, generate, sign, store); Serve's generate


def workload(count: int, models: int, skew: float, seed: int = 17) -> list[Request]:
    """`count` requests for `models` custom models, drawn with weight 1/rank^skew (the same for every system)."""
    weights = [1.0 / (rank + 1) ** skew for rank in range(models)]
    rng = random.Random(seed)
    return [Request(index, rng.choices(range(models), weights)[0]) for index in range(count)]


def make_loras(model_dir: Path, folder: Path, count: int) -> list[Path]:
    """`count` LoRA files for the tiny base model, from the engine's random-LoRA writer."""
    from ember.engine.generate import Engine
    from ember.engine.random_lora import write_random_lora
    from ember.engine.registry import get_base_model

    spec = get_base_model(BASE_MODEL)
    unet = Engine(model_dir).pipeline(BASE_MODEL).unet
    return [
        write_random_lora(unet, "unet", tuple(spec.lora_target_modules), folder / f"model-{index}.safetensors",
                          rank=8, seed=index, scale=0.05)
        for index in range(count)
    ]


def store_custom_models(settings: Settings, client_id: str, loras: list[Path]) -> list[str]:
    """The LoRAs as trained custom models (version 1 each) of the client's organization; their asset ids."""
    from ember.blobs import open_blob_store

    blobs = open_blob_store(settings.blob_url)
    engine = open_engine(settings.database_url)
    ids = []
    try:
        with transaction(session_factory(engine)) as session:
            org_id = session.scalar(select(ApiClient.org_id).where(ApiClient.client_id == client_id))
            for index, path in enumerate(loras):
                model_id = uuid.uuid4()
                session.add(CustomModel(
                    id=model_id, org_id=org_id, display_name=f"routing {index}", training_mode=TrainingMode.subject,
                    concept_id="zorb", base_model_name=BASE_MODEL, sample_prompt="a photo of zorb",
                    published_state=PublishedState.published, training_state=TrainingState.ready, current_version=1,
                ))
                session.flush()
                key = f"models/{model_id.hex}/v1/lora.safetensors"
                data = path.read_bytes()
                blobs.put(key, data)
                session.add(CustomModelVersion(model_id=model_id, number=1, lora_blob_key=key, size=len(data)))
                ids.append(f"urn:aaid:sc:{settings.region}:{model_id}")
    finally:
        engine.dispose()
    return ids


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def replay_lru(served: list[Served], keys: list[int], cache: int) -> tuple[list[bool], dict[str, set[int]]]:
    """Whether each request found its LoRA loaded on its worker: each worker's requests in the order they
    started, through an LRU of `cache` entries (the engine's adapter cache, one LoRA per request); and what
    each worker holds at the end."""
    held: dict[str, OrderedDict[int, None]] = {}
    hits = [False] * len(served)
    for position in sorted(range(len(served)), key=lambda at: served[at].started):
        lru = held.setdefault(served[position].worker, OrderedDict())
        key = keys[position]
        hits[position] = key in lru
        lru[key] = None
        lru.move_to_end(key)
        while len(lru) > cache:
            lru.popitem(last=False)
    return hits, {worker: set(lru) for worker, lru in held.items()}


def workers_holding(address: str, workers: set[str], model_ids: list[str]) -> tuple[dict[str, set[int]],
                                                                                    dict[str, int]]:
    """What each of the pool's workers (detached actors named by their worker id) holds now, read from the
    workers' engines (keys `<model uuid>:v<n>`), as indexes into `model_ids`; and the pool's actors."""
    import ray

    from ember.worker.pool import NAMESPACE

    uuids = [asset.rsplit(":", 1)[1] for asset in model_ids]
    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        held = {}
        for worker in workers:
            keys = ray.get(ray.get_actor(worker, namespace=NAMESPACE).loaded_loras.remote(), timeout=30)
            held[worker] = {uuids.index(key.split(":")[0]) for key in keys}
        return held, named_actors(NAMESPACE)
    finally:
        ray.shutdown()


def named_actors(namespace: str) -> dict[str, int]:
    """The named actors a system keeps in its Ray namespace, counted by kind (the name without its ids)."""
    import re

    import ray

    kinds: dict[str, int] = {}
    for actor in ray.util.list_named_actors(all_namespaces=True):
        if actor["namespace"] == namespace:
            kind = re.sub(r"(-[0-9a-f]{8,}|-\d+|#\w+)+", "", actor["name"]).rstrip("-:")
            kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


async def drive(requests: list[Request], clients: int, call: Any) -> tuple[list[Served], float]:
    """`clients` concurrent clients take the requests in order; (outcomes by request, seconds for all)."""
    served: list[Served | None] = [None] * len(requests)
    queue = list(reversed(requests))

    async def client() -> None:
        while queue:
            request = queue.pop()
            served[request.index] = await call(request)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    elapsed = time.perf_counter() - started
    return [outcome for outcome in served if outcome is not None], elapsed


# --- Ember: the pool as `ember engine serve` runs it, requests through an `ember serve` replica -------------

class JobWatch:
    """Reads the outstanding jobs' rows every POLL_S and resolves each job's future when it ends."""

    def __init__(self, database_url: str) -> None:
        self.engine = open_engine(database_url)
        self.sessions = session_factory(self.engine)
        self.waiting: dict[str, asyncio.Future[Job]] = {}

    def _read(self, job_ids: list[str]) -> list[Job]:
        with self.sessions() as session:
            rows = session.scalars(select(Job).where(Job.id.in_(job_ids), Job.state.in_(FINAL))).all()
            session.expunge_all()
            return list(rows)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.waiting:
                for job in await asyncio.to_thread(self._read, list(self.waiting)):
                    future = self.waiting.pop(job.id, None)
                    if future is not None and not future.done():
                        future.set_result(job)
            await asyncio.sleep(POLL_S)

    async def wait(self, job_id: str) -> Job:
        future: asyncio.Future[Job] = asyncio.get_running_loop().create_future()
        self.waiting[job_id] = future
        return await future


async def run_ember(base: str, headers: dict[str, str], database_url: str, model_ids: list[str],
                    requests: list[Request], clients: int) -> tuple[list[Served], float]:
    watch = JobWatch(database_url)
    stop = asyncio.Event()
    poller = asyncio.create_task(watch.run(stop))
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        async def call(request: Request) -> Served:
            body: dict[str, Any] = {"prompt": f"a zorb number {request.index}", "seeds": [request.index + 1],
                                    "size": {"width": SIZE, "height": SIZE}, "numVariations": 1}
            extra = {}
            if request.model >= 0:
                body["customModelId"] = model_ids[request.model]
                extra = {"x-model-version": "image3_custom"}
            started = time.perf_counter()
            response = await http.post("/v3/images/generate-async", json=body, headers={**headers, **extra})
            if response.status_code != 202:
                raise SystemExit(f"ember refused a request: {response.status_code} {response.text}")
            job = await watch.wait(response.json()["jobId"])
            if job.state is not JobState.succeeded:
                raise SystemExit(f"ember job ended as {job.state}: {job.message}")
            ran = job.started_at or job.created_at
            return Served(time.perf_counter() - started, job.worker_id or "?", started=ran.timestamp(),
                          service_s=((job.finished_at or ran) - ran).total_seconds())

        try:
            served, elapsed = await drive(requests, clients, call)
        finally:
            stop.set()
            await poller
            watch.engine.dispose()
    return served, elapsed


def ember_system(args: argparse.Namespace, address: str, data_dir: Path, model_dir: Path, credentials: Any,
                 model_ids: list[str], requests: list[Request], warm: list[Request]) -> dict[str, Any]:
    ember = str(Path(sys.executable).parent / "ember")
    env = {**os.environ, **engine_env(model_dir, 1), **ray_env(), "EMBER_RAY_ADDRESS": address,
           "EMBER_ENGINE_WORKERS": str(WORKERS), "EMBER_ENGINE_LORA_CACHE_SIZE": str(args.cache),
           "EMBER_RATE_LIMIT_PER_MINUTE": "0", "EMBER_RATE_LIMIT_PER_DAY": "0", "EMBER_DEFAULT_BASE_MODEL": BASE_MODEL}
    env.pop("EMBER_RAY_NUM_CPUS")  # a joined cluster has its own
    env.pop("EMBER_DATA_DIR", None)
    subprocess.run([ember, "engine", "serve", "--ray-address", address, "--data-dir", str(data_dir)], env=env,
                   stdout=subprocess.DEVNULL, check=True, timeout=600)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port, {key: value for key, value in env.items()
                                           if key.startswith(("EMBER_", "RAY_"))})
    try:
        deadline = time.monotonic() + 300
        while pool_workers(base) < WORKERS:  # the replica joins Ray in the background
            if time.monotonic() > deadline:
                raise SystemExit("the replica did not see the pool's workers")
            time.sleep(0.5)
        headers = headers_for(base, credentials)
        database_url = Settings(data_dir=data_dir).database_url
        # Warm-up without custom models: the workers load the base model and hold no LoRA when the run starts.
        asyncio.run(run_ember(base, headers, database_url, model_ids, warm, WORKERS))
        served, elapsed = asyncio.run(run_ember(base, headers, database_url, model_ids, requests, args.clients))
        held, actors = workers_holding(address, {outcome.worker for outcome in served}, model_ids)
    finally:
        server.terminate()
        server.wait(timeout=60)
        subprocess.run([ember, "engine", "stop", "--ray-address", address, "--data-dir", str(data_dir)], env=env,
                       stdout=subprocess.DEVNULL, check=False, timeout=120)
    hits, replayed = replay_lru(served, [request.model for request in requests], args.cache)
    for outcome, hit in zip(served, hits, strict=True):
        outcome.hit = hit
    # The replay follows the rows' start times; the workers' engines say what they really hold at the end.
    check: dict[str, Any] = {"replay_matches_workers": replayed == held, "ray_actors": actors}
    if replayed != held:
        check |= {"replayed": {worker: sorted(models) for worker, models in replayed.items()},
                  "held": {worker: sorted(models) for worker, models in held.items()}}
    return summary(served, elapsed) | check


# --- Ray Serve: a multiplexed deployment over the same engine -------------------------------------------------

def serve_app(model_dir: Path, lora_dir: Path, cache: int) -> Any:
    """The deployment: 2 replicas of 1 CPU, each an `Engine` on tiny with 1 torch thread; the LoRA of a request
    is the multiplexed model (id = the custom model's index here, standing for its id and version)."""
    from ray import serve

    @serve.deployment(num_replicas=WORKERS, max_ongoing_requests=2,
                      ray_actor_options={"num_cpus": 1, "runtime_env": {"env_vars": {"HF_HUB_OFFLINE": "1"}}})
    class LoraGenerator:
        def __init__(self) -> None:
            import torch

            from ember.engine.generate import Engine

            torch.set_num_threads(1)
            self.engine = Engine(model_dir, lora_cache_size=cache)
            self.engine.pipeline(BASE_MODEL)
            self.name = f"{os.getpid()}"

        @serve.multiplexed(max_num_models_per_replica=cache)
        async def lora(self, model_id: str) -> Any:
            from ember.engine.types import LoraRef

            return LoraRef(key=model_id, path=lora_dir / f"model-{model_id}.safetensors")

        async def __call__(self, index: int) -> dict[str, Any]:
            from ember.engine.types import GenerationRequest

            model_id = serve.get_multiplexed_model_id()
            loras = [await self.lora(model_id)] if model_id else []
            hit = model_id in self.engine.loaded_loras()
            request = GenerationRequest(base_model=BASE_MODEL, prompt=f"a zorb number {index}", seeds=[index + 1],
                                        width=SIZE, height=SIZE, mimetype="image/jpeg", loras=loras)
            started = time.time()
            images = await asyncio.to_thread(self.engine.generate, request)
            return {"worker": self.name, "hit": hit, "started": started, "service_s": time.time() - started,
                    "bytes": len(images[0].data)}

    return LoraGenerator.bind()  # type: ignore[attr-defined]


async def run_serve(handle: Any, requests: list[Request], clients: int) -> tuple[list[Served], float]:
    async def call(request: Request) -> Served:
        started = time.perf_counter()
        options = {"multiplexed_model_id": str(request.model)} if request.model >= 0 else {}
        answer = await handle.options(**options).remote(request.index)
        return Served(time.perf_counter() - started, answer["worker"], answer["hit"], answer["started"],
                      answer["service_s"])

    return await drive(requests, clients, call)


def serve_system(args: argparse.Namespace, address: str, model_dir: Path, lora_dir: Path,
                 requests: list[Request], warm: list[Request]) -> dict[str, Any]:
    import ray
    from ray import serve

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(proxy_location="Disabled")
        handle = serve.run(serve_app(model_dir, lora_dir, args.cache), name="routing", route_prefix=None)
        asyncio.run(run_serve(handle, warm, WORKERS))
        served, elapsed = asyncio.run(run_serve(handle, requests, args.clients))
        actors = named_actors("serve")
        serve.shutdown()
    finally:
        ray.shutdown()
    return summary(served, elapsed) | {"ray_actors": actors}


# --- Report -------------------------------------------------------------------------------------------------------

def summary(served: list[Served], elapsed: float) -> dict[str, Any]:
    latencies = [outcome.latency_s for outcome in served]
    hits = sum(bool(outcome.hit) for outcome in served)
    per_worker: dict[str, int] = {}
    for outcome in served:
        per_worker[outcome.worker] = per_worker.get(outcome.worker, 0) + 1
    return {
        "requests": len(served),
        "hit_rate": round(hits / len(served), 3),
        "lora_loads": len(served) - hits,
        "p50_s": round(percentile(latencies, 0.5), 3),
        "p95_s": round(percentile(latencies, 0.95), 3),
        "throughput_per_s": round(len(served) / elapsed, 3),
        "service_p50_s": round(percentile([outcome.service_s for outcome in served], 0.5), 3),
        # What a LoRA load costs here: the worker's time for requests that found their LoRA against those that did not.
        "service_p50_hit_s": median_service(served, True),
        "service_p50_load_s": median_service(served, False),
        "requests_per_worker": sorted(per_worker.values(), reverse=True),
    }


def median_service(served: list[Served], hit: bool) -> float | None:
    times = [outcome.service_s for outcome in served if bool(outcome.hit) is hit]
    return round(percentile(times, 0.5), 3) if times else None


def ratio(serve: float, ember: float) -> float | None:
    return round(serve / ember, 3) if ember else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument("--models", type=int, default=6, help="K custom models (more than the workers hold).")
    parser.add_argument("--cache", type=int, default=2, help="M: LoRAs each worker holds (Serve: per replica).")
    parser.add_argument("--clients", type=int, default=4, help="Concurrent clients.")
    parser.add_argument("--skew", type=float, default=1.1, help="Zipf exponent of the models' popularity.")
    parser.add_argument("--ray-cpus", type=int, default=2)
    parser.add_argument("--order", default="ember,serve", choices=("ember,serve", "serve,ember"))
    parser.add_argument("--small", action="store_true", help="A quick run: 24 requests.")
    args = parser.parse_args()
    os.environ.update(ray_env())  # Ray reads its authentication mode once, when first used
    if args.small:
        args.requests = 24
    requests = workload(args.requests, args.models, args.skew)
    warm = [Request(index, -1) for index in range(2 * WORKERS)]
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="ember-bench-routing-") as tmp:
        data_dir, model_dir, lora_dir = Path(tmp) / "data", Path(tmp) / "models", Path(tmp) / "loras"
        from ember.engine.models import resolve_model_path
        from ember.engine.registry import get_base_model

        resolve_model_path(get_base_model(BASE_MODEL), model_dir)
        print(f"making {args.models} LoRAs for {BASE_MODEL}…", file=sys.stderr)
        loras = make_loras(model_dir, lora_dir, args.models)
        (credentials,) = seed_clients(data_dir, ["bench-routing"])
        model_ids = store_custom_models(Settings(data_dir=data_dir), credentials.client_id, loras)
        ray_temp = Path(f"/tmp/er{os.getpid()}")  # removed after the run
        head, address = ray_head(ray_temp, args.ray_cpus)
        try:
            for system in args.order.split(","):
                print(f"{system}: {len(requests)} requests…", file=sys.stderr)
                if system == "ember":
                    results["ember"] = ember_system(args, address, data_dir, model_dir, credentials, model_ids,
                                                    requests, warm)
                else:
                    results["serve"] = serve_system(args, address, model_dir, lora_dir, requests, warm)
        finally:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=60)
            shutil.rmtree(ray_temp, ignore_errors=True)
    ember, serve = results["ember"], results["serve"]
    counts = [request.model for request in requests]
    report = {
        "workload": {"requests": args.requests, "models": args.models, "skew": args.skew, "clients": args.clients,
                     "workers": WORKERS, "loras_per_worker": args.cache, "base_model": BASE_MODEL, "size": SIZE,
                     "requests_per_model": [counts.count(model) for model in range(args.models)],
                     "order": args.order},
        "ember": ember,
        "serve": serve,
        # Beside the figures: what each needs that the other does not (docs/jobs.md, "Why a pool actor").
        "needs": {
            "ember": ["the database: job rows (durable, fenced by attempt, progress and cancel), one per request",
                      "the pool actor (0 CPUs, head node)", "training on the same workers"],
            "serve": ["the Serve controller, and an HTTP proxy per node or a handle in a Ray driver",
                      "deployment state in the controller; a request lives in its caller",
                      "a queue and a store beside it for jobs that outlive their caller (training, retries)"],
        },
        "serve_over_ember": {key: ratio(serve[key], ember[key])
                             for key in ("hit_rate", "lora_loads", "p50_s", "p95_s", "throughput_per_s",
                                         "service_p50_s")},
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
