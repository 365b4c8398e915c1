"""Benchmark of generation jobs against the engine called directly, measured in the same run.

Starts `ember serve` (its own local Ray, one engine worker) on a temporary data directory seeded with five
organizations, then prints:
  1. one job end to end (submit → succeeded, polled every 25 ms) over the engine's direct `generate` with the
     same inputs (target ≤ 1.15 on tiny);
  2. N jobs from 5 organizations submitted at once: throughput over a direct engine loop run next to them
     (target ≥ 0.9), `--repeats` pairs, every other pair with the direct loop first (so that a drift in the
     machine's speed does not always favour one side), the median of the pairs' ratios and each pair's; completion
     is read from the database, so waiting puts no load on the API;
  3. status-poll latency at a fixed rate while a further batch of jobs runs, against the same rate on an idle
     server (the poller shares the machine's CPUs with the worker).

    .venv/bin/python bench/jobs.py [--jobs 50] [--poll-rate 200] [--poll-jobs 10] [--size 1024] [--repeats 5]
                                   [--threads 1]

With `--replicas 2` it measures the shared engine pool instead: a Ray head started for the run (`--ray-cpus`),
two `ember serve` replicas joined to it, and N jobs sent through both replicas in turn, `--repeats` times, first
with one engine worker in the pool, then with two (each with `--threads` torch threads, 1 by default, in both
modes); it prints the median throughput with two workers over one (target >= 1.8 where the machine has a core
per worker to spare), every run's figure and the load average. With `--pin` (the default) each worker is held
to a core of its own, so that one worker cannot use a second core (for the signing and storing of its previous
job) that the two-worker run must share: the ratio then measures scale-out, not a lone worker's spare core.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from serving import (
    bench_database,
    engine_env,
    free_port,
    headers_for,
    require_base_model,
    seed_clients,
    start_server,
)
from sqlalchemy import select

from ember.store.tables import Job, JobState

ORGS = 5
POLL_S = 0.025  # how often the single-job client polls status
DIRECT_BASE_MODEL = "tiny"  # the baseline's base model, and the server's default (serving.engine_env)


def body_for(index: int, size: int) -> dict[str, Any]:
    return {"prompt": f"a red cube number {index}", "seeds": [index + 1], "size": {"width": size, "height": size}}


def timed_job(client: httpx.Client, headers: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
    """One job polled every POLL_S: its id and the wall-clock times (comparable with its row's) at which it was
    posted, answered and seen succeeded."""
    posted = time.time()
    accepted = client.post("/v3/images/generate-async", json=body, headers=headers)
    accepted.raise_for_status()
    answered = time.time()
    job_id = accepted.json()["jobId"]
    while True:
        status = client.get(f"/v3/status/{job_id}", headers=headers).json()
        if status["status"] == "succeeded":
            return {"job_id": job_id, "posted": posted, "answered": answered, "seen": time.time()}
        if status["status"] in ("failed", "cancelled", "timeout"):
            raise SystemExit(f"job ended as {status}")
        time.sleep(POLL_S)


def alternate(client: httpx.Client, headers: dict[str, str], engine: Any, size: int,
              repeats: int) -> tuple[list[dict[str, Any]], list[float]]:
    """`repeats` single jobs, each followed by the direct engine on the same inputs, so that both see the same
    load on a shared machine; the jobs' times and the direct calls' seconds."""
    jobs, direct = [], []
    for _ in range(repeats):
        jobs.append(timed_job(client, headers, body_for(0, size)))
        started = time.perf_counter()
        engine.generate(direct_request(0, size))
        direct.append(time.perf_counter() - started)
    return jobs, direct


def direct_engine(model_dir: Path, threads: int) -> Any:
    import torch

    from ember.engine.generate import Engine

    torch.set_num_threads(threads)
    engine = Engine(model_dir)
    engine.pipeline(DIRECT_BASE_MODEL)
    return engine


def direct_request(index: int, size: int) -> Any:
    from ember.engine.types import GenerationRequest

    return GenerationRequest(base_model=DIRECT_BASE_MODEL, prompt=f"a red cube number {index}", seeds=[index + 1],
                             width=size, height=size, mimetype="image/jpeg")


async def poll_at_rate(base: str, headers: dict[str, str], job_ids: list[str], rate: float,
                       until: asyncio.Event | None, seconds: float) -> list[float]:
    """Open-loop polling: one status request every 1/rate s whatever the answers' speed."""
    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=30,
                                 limits=httpx.Limits(max_connections=64, max_keepalive_connections=64)) as client:
        async def poll(job_id: str) -> None:
            started = time.perf_counter()
            try:
                response = await client.get(f"/v3/status/{job_id}", headers=headers)
            except httpx.TimeoutException:  # counted at the client's limit: the worst latency it can see
                latencies.append(time.perf_counter() - started)
                return
            if response.status_code == 200:
                latencies.append(time.perf_counter() - started)

        tasks = []
        start = time.perf_counter()
        count = 0
        while (until is None or not until.is_set()) and time.perf_counter() - start < seconds:
            tasks.append(asyncio.create_task(poll(job_ids[count % len(job_ids)])))
            count += 1
            delay = start + count / rate - time.perf_counter()
            await asyncio.sleep(max(0.0, delay))
        await asyncio.gather(*tasks)
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def final_count(data_dir: Path, job_ids: list[str]) -> int:
    """Jobs of `job_ids` in a final state, read from the database (so waiting adds no load on the API)."""
    with bench_database(data_dir)() as session:
        states = session.scalars(select(Job.state).where(Job.id.in_(job_ids))).all()
    failed = [state for state in states if state in (JobState.failed, JobState.cancelled, JobState.timeout)]
    if failed:
        raise SystemExit(f"jobs ended as {failed}")
    return sum(state is JobState.succeeded for state in states)


async def submit_jobs(client: httpx.AsyncClient, org_headers: list[dict[str, str]], count: int,
                      size: int) -> list[tuple[int, str]]:
    """`count` jobs from the organizations in turn, all submitted at once; (org index, job id) each."""
    responses = await asyncio.gather(*(
        client.post("/v3/images/generate-async", json=body_for(index, size), headers=org_headers[index % ORGS])
        for index in range(count)
    ))
    return [(index % ORGS, response.json()["jobId"]) for index, response in enumerate(responses)]


async def batch(base: str, data_dir: Path, org_headers: list[dict[str, str]], count: int, size: int,
                poll_rate: float | None) -> tuple[float, list[float]]:
    """Seconds from the first submission to the last success; with `poll_rate`, status latencies meanwhile."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        started = time.perf_counter()
        jobs = await submit_jobs(client, org_headers, count, size)
        job_ids = [job_id for _, job_id in jobs]
        done = asyncio.Event()
        poller = None
        if poll_rate:
            mine = [job_id for org, job_id in jobs if org == 0]
            poller = asyncio.create_task(poll_at_rate(base, org_headers[0], mine, poll_rate, done, 3600))
        while await asyncio.to_thread(final_count, data_dir, job_ids) < count:
            await asyncio.sleep(0.1)
        elapsed = time.perf_counter() - started
        done.set()
        return elapsed, (await poller if poller is not None else [])


def ray_env() -> dict[str, str]:
    """Ray's token authentication is on wherever a token file exists: every node and driver must then say so."""
    env = {"RAY_USAGE_STATS_ENABLED": "0"}
    if (Path.home() / ".ray" / "auth_token").is_file():
        env["RAY_AUTH_MODE"] = "token"
    return env


def ray_head(temp_dir: Path, cpus: int) -> tuple[subprocess.Popen[bytes], str]:
    """A Ray head for the run, on loopback, in its own process group (`--block`)."""
    port = free_port()
    env = {**os.environ, **ray_env()}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ray"), "start", "--head", "--block", f"--port={port}",
         f"--num-cpus={cpus}", "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
         f"--temp-dir={temp_dir}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    return process, f"127.0.0.1:{port}"


def pool_workers(base: str) -> int:
    try:
        ready = httpx.get(f"{base}/readyz", timeout=10)
    except httpx.TransportError:
        return 0
    return len(ready.json().get("engineWorkers", [])) if ready.status_code == 200 else 0


def engine_worker_pids(ancestor: int) -> list[int]:
    """Engine worker processes descended from `ancestor` (the Ray head's `--block` process), oldest first."""
    parents: dict[int, int] = {}
    workers = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")[0]
            parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if command.startswith(b"ray::EngineWorker"):
            workers.append(int(entry.name))

    def descends(pid: int) -> bool:
        for _ in range(16):
            pid = parents.get(pid, 0)
            if pid == ancestor:
                return True
            if pid <= 1:
                return False
        return False

    return sorted(pid for pid in workers if descends(pid))


def pin_workers(ancestor: int, count: int) -> list[list[int]]:
    """Give each engine worker a core of its own (worker i on core i, every thread of it), so that one worker
    cannot borrow the core of a second one that does not exist: the comparison then measures scale-out, not
    how much of an idle core one worker's signing and storing threads can use. Returns each worker's cores."""
    cores = sorted(os.sched_getaffinity(0))
    pinned = []
    for index, pid in enumerate(engine_worker_pids(ancestor)[:count]):
        core = {cores[index % len(cores)]}
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), core)
            except OSError:  # a thread that ended meanwhile
                pass
        pinned.append(sorted(core))
    return pinned


def two_replicas(args: argparse.Namespace) -> None:
    """Throughput of jobs sent through two API replicas, with one engine worker in the pool and with two."""
    import signal

    with tempfile.TemporaryDirectory(prefix="ember-bench-pool-") as tmp:
        data_dir, model_dir = Path(tmp) / "data", Path(tmp) / "models"
        from ember.engine.models import resolve_model_path
        from ember.engine.registry import get_base_model

        resolve_model_path(get_base_model("tiny"), model_dir)
        clients = seed_clients(data_dir, [f"bench-{index}" for index in range(ORGS)])
        head, address = ray_head(Path(f"/tmp/eb{os.getpid()}"), args.ray_cpus)
        modes: dict[int, dict[str, Any]] = {}
        try:
            for workers in (1, 2):
                env = {**engine_env(model_dir, args.threads), **ray_env(), "EMBER_RAY_ADDRESS": address,
                       "EMBER_ENGINE_WORKERS": str(workers)}
                env.pop("EMBER_RAY_NUM_CPUS")  # a joined cluster has its own
                ports = [free_port(), free_port()]
                bases = [f"http://127.0.0.1:{port}" for port in ports]
                servers = [start_server(data_dir, port, env) for port in ports]
                try:
                    deadline = time.monotonic() + 300
                    while pool_workers(bases[0]) < workers:
                        if time.monotonic() > deadline:
                            raise SystemExit("the pool's workers did not start")
                        time.sleep(0.5)
                    org_headers = [headers_for(bases[0], credentials) for credentials in clients]
                    asyncio.run(batch_through(bases, data_dir, org_headers, 2 * workers, args.size))  # warm
                    cores = pin_workers(head.pid, workers) if args.pin else []
                    load_before = os.getloadavg()[0]
                    runs = [args.jobs / asyncio.run(batch_through(bases, data_dir, org_headers, args.jobs, args.size))
                            for _ in range(max(1, args.repeats))]
                    modes[workers] = {
                        "jobs_per_s": round(statistics.median(runs), 3), "runs": [round(run, 3) for run in runs],
                        "worker_cores": cores, "load_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                    }
                finally:
                    for server in servers:
                        server.terminate()
                    for server in servers:
                        server.wait(timeout=60)
                    subprocess.run(
                        [str(Path(sys.executable).parent / "ember"), "engine", "stop", "--ray-address", address,
                         "--data-dir", str(data_dir)],
                        env={**os.environ, **ray_env()},
                        stdout=subprocess.DEVNULL, check=False, timeout=120,
                    )
        finally:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=60)
    report = {
        "pool": {"replicas": 2, "jobs": args.jobs, "repeats": args.repeats, "ray_cpus": args.ray_cpus,
                 "torch_threads_per_worker": args.threads, "machine_cores": len(os.sched_getaffinity(0)),
                 "one_worker": modes[1], "two_workers": modes[2],
                 "ratio": round(modes[2]["jobs_per_s"] / modes[1]["jobs_per_s"], 3), "target": ">= 1.8"},
        "size": args.size,
    }
    print(json.dumps(report, indent=2))


async def batch_through(bases: list[str], data_dir: Path, org_headers: list[dict[str, str]], count: int,
                        size: int) -> float:
    """Seconds from the first submission to the last success of `count` jobs sent through the replicas in turn."""
    clients = [httpx.AsyncClient(base_url=base, timeout=60) for base in bases]
    try:
        started = time.perf_counter()
        responses = await asyncio.gather(*(
            clients[index % len(clients)].post(
                "/v3/images/generate-async", json=body_for(index, size), headers=org_headers[index % ORGS]
            )
            for index in range(count)
        ))
        job_ids = [response.json()["jobId"] for response in responses]
        while await asyncio.to_thread(final_count, data_dir, job_ids) < count:
            await asyncio.sleep(0.05)
        return time.perf_counter() - started
    finally:
        for client in clients:
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--poll-rate", type=float, default=200.0)
    parser.add_argument("--size", type=int, default=1024, choices=(1024, 2048))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--poll-jobs", type=int, default=10, help="Jobs running while status is polled.")
    parser.add_argument("--threads", type=int, default=1, help="Torch threads of the worker and of the baseline.")
    parser.add_argument("--replicas", type=int, default=1, choices=(1, 2), help="2: the shared pool's scaling.")
    parser.add_argument("--ray-cpus", type=int, default=2, help="CPUs of the Ray head in the two-replica mode.")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="Two-replica mode: each engine worker on a core of its own (Linux).")
    args = parser.parse_args()
    if args.replicas == 2:
        two_replicas(args)
        return

    with tempfile.TemporaryDirectory(prefix="ember-bench-jobs-") as tmp:
        data_dir, model_dir = Path(tmp) / "data", Path(tmp) / "models"
        from ember.engine.models import resolve_model_path
        from ember.engine.registry import get_base_model

        resolve_model_path(get_base_model("tiny"), model_dir)
        clients = seed_clients(data_dir, [f"bench-{index}" for index in range(ORGS)])
        # The direct engine lives beside the server, and single jobs alternate with direct calls, so that both
        # see the same load on a shared machine.
        engine = direct_engine(model_dir, args.threads)
        engine.generate(direct_request(0, args.size))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, engine_env(model_dir, args.threads))
        try:
            org_headers = [headers_for(base, credentials) for credentials in clients]
            with httpx.Client(base_url=base, timeout=60) as client:
                warm_job = timed_job(client, org_headers[0], body_for(0, args.size))["job_id"]  # loads the model
                require_base_model(data_dir, warm_job, DIRECT_BASE_MODEL)
                jobs, direct_times = alternate(client, org_headers[0], engine, args.size, args.repeats)
            job_times = [job["seen"] - job["posted"] for job in jobs]
            idle_ids = [warm_job]
            idle_polls = asyncio.run(poll_at_rate(base, org_headers[0], idle_ids, args.poll_rate, None, 5.0))
            batches, direct_batches = [], []

            def run_batch() -> None:
                batches.append(asyncio.run(batch(base, data_dir, org_headers, args.jobs, args.size, None))[0])

            def run_direct() -> None:
                started = time.perf_counter()
                for index in range(args.jobs):
                    engine.generate(direct_request(index, args.size))
                direct_batches.append(time.perf_counter() - started)

            for pair in range(max(1, args.repeats)):
                # Pairs in turn batch-then-direct and direct-then-batch (ABBA): the machine's speed drifts by tens
                # of percent over minutes here, and a fixed order would hand every drift to the same side.
                for run in (run_batch, run_direct) if pair % 2 == 0 else (run_direct, run_batch):
                    run()
            _, busy_polls = asyncio.run(batch(base, data_dir, org_headers, args.poll_jobs, args.size, args.poll_rate))
        finally:
            server.terminate()
            server.wait(timeout=60)

    job_median, direct_median = statistics.median(job_times), statistics.median(direct_times)
    # each batch of jobs over the direct loop run next to it (after it, or before it in every other pair); the
    # median of those ratios
    pairs = list(zip(batches, direct_batches, strict=True))  # (batch, direct loop) seconds
    pair_ratios = [direct_s / batch_s for batch_s, direct_s in pairs]
    report = {
        "single_job": {"job_s": round(job_median, 3), "direct_s": round(direct_median, 3),
                       "client": f"polls GET /v3/status every {POLL_S * 1000:g} ms",
                       "ratio": round(job_median / direct_median, 3), "target": "<= 1.15"},
        "throughput": {"jobs": args.jobs, "orgs": ORGS,
                       "jobs_per_s": round(args.jobs / statistics.median(batches), 3),
                       "direct_per_s": round(args.jobs / statistics.median(direct_batches), 3),
                       "ratio": round(statistics.median(pair_ratios), 3), "target": ">= 0.9",
                       "runs": [round(ratio, 3) for ratio in pair_ratios],
                       "runs_s": [[round(batch_s, 2), round(direct_s, 2)] for batch_s, direct_s in pairs]},
        "status_poll": {"rate_per_s": args.poll_rate, "jobs_running": args.poll_jobs,
                        "busy_p50_ms": round(percentile(busy_polls, 0.5), 2),
                        "busy_p99_ms": round(percentile(busy_polls, 0.99), 2),
                        "idle_p50_ms": round(percentile(idle_polls, 0.5), 2),
                        "idle_p99_ms": round(percentile(idle_polls, 0.99), 2), "busy_polls": len(busy_polls),
                        "ratio_p99": round(percentile(busy_polls, 0.99) / percentile(idle_polls, 0.99), 3)},
        "size": args.size,
        "load_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
