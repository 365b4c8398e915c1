"""Where a generation job's time goes, from the client's POST to the poll that sees it succeeded.

Starts `ember serve` (its own local Ray, one engine worker) as `bench/jobs.py` does, runs jobs one at a time
polled every 25 ms, and splits each job's time by the row's timestamps (inserted, claimed, succeeded) and the
client's clock; then runs the same jobs through an engine worker in this process under cProfile to split the
worker's own part (engine, Content Credentials, blob store, database), against `Engine.generate` alone.

    .venv/bin/python bench/job_path.py [--repeats 10] [--size 1024] [--threads 1] [--profile-top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import tempfile
import time
from datetime import UTC
from pathlib import Path
from typing import Any

import httpx
from serving import engine_env, finished_job, free_port, headers_for, require_base_model, seed_clients, start_server

from ember.config import Settings
from ember.store.database import open_engine, session_factory, transaction
from jobs import DIRECT_BASE_MODEL, alternate, body_for, direct_engine, direct_request, timed_job


def row_times(data_dir: Path, job_id: str) -> dict[str, float]:
    job = finished_job(data_dir, job_id)
    return {name: value.replace(tzinfo=UTC).timestamp() if value.tzinfo is None else value.timestamp()
            for name, value in (("inserted", job.created_at), ("claimed", job.started_at),
                                ("succeeded", job.finished_at))}


def in_process_worker(data_dir: Path, model_dir: Path, threads: int, requests: list[dict[str, Any]],
                      org_id: Any, top: int) -> tuple[float, float, str]:
    """Median seconds of `EngineWorker.run` on copies of the server's job rows and of its engine's `generate`
    alone on the same request, alternated, and the worker's cProfile summary."""
    from ember.jobs import records
    from ember.jobs.payloads import GenerationJob
    from ember.store.tables import JobKind
    from ember.worker.actor import EngineWorker, WorkerConfig

    settings = Settings(data_dir=data_dir)
    worker = EngineWorker(WorkerConfig(
        database_url=settings.database_url, blob_url=settings.blob_url, model_dir=str(model_dir),
        data_dir=str(data_dir), torch_threads=threads,
    ), "bench-in-process")
    sessions = session_factory(open_engine(settings.database_url))

    def new_row(request: dict[str, Any]) -> str:
        with transaction(sessions) as session:
            return records.create_job(session, org_id=org_id, client_pk=None, kind=JobKind.generate,
                                      request=request).id

    worker.run(new_row(requests[0]))  # loads the base model
    times, engine_times = [], []
    for request in requests:  # timed without the profiler, which slows the engine's many small calls
        job_id = new_row(request)
        started = time.perf_counter()
        assert worker.run(job_id) == "succeeded"
        times.append(time.perf_counter() - started)
        started = time.perf_counter()  # the same worker's engine alone, right after: the same load
        worker.engine.generate(worker._generation_request(GenerationJob.from_json(request)))
        engine_times.append(time.perf_counter() - started)
    profiler = cProfile.Profile()
    for request in requests:
        job_id = new_row(request)
        profiler.enable()
        assert worker.run(job_id) == "succeeded"
        profiler.disable()
    out = io.StringIO()
    # Ember's own functions (and the C2PA, blob and database calls they make) by cumulative time.
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"ember/|c2pa|sqlalchemy/orm/session", top)
    return statistics.median(times), statistics.median(engine_times), out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--size", type=int, default=1024, choices=(1024, 2048))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--profile-top", type=int, default=25, help="Lines of the worker's cProfile to print.")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="ember-bench-path-") as tmp:
        data_dir, model_dir = Path(tmp) / "data", Path(tmp) / "models"
        from ember.engine.models import resolve_model_path
        from ember.engine.registry import get_base_model

        resolve_model_path(get_base_model(DIRECT_BASE_MODEL), model_dir)
        [credentials] = seed_clients(data_dir, ["bench-path"])
        direct = direct_engine(model_dir, args.threads)  # alternated with the jobs: the same load
        direct.generate(direct_request(0, args.size))
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = start_server(data_dir, port, engine_env(model_dir, args.threads))
        try:
            headers = headers_for(base, credentials)
            with httpx.Client(base_url=base, timeout=60) as client:
                warm = timed_job(client, headers, body_for(0, args.size))  # loads the base model
                require_base_model(data_dir, str(warm["job_id"]), DIRECT_BASE_MODEL)
                client_times, direct_times = alternate(client, headers, direct, args.size, args.repeats)
        finally:
            server.terminate()
            server.wait(timeout=60)
        del direct
        rows = [row_times(data_dir, str(times["job_id"])) for times in client_times]
        job = finished_job(data_dir, str(client_times[0]["job_id"]))
        request, org_id = dict(job.request), job.org_id
        worker_s, worker_engine_s, profile = in_process_worker(
            data_dir, model_dir, args.threads, [request] * args.repeats, org_id, args.profile_top
        )

    def median_of(start: str, end: str) -> float:
        return statistics.median(
            {**client, **row}[end] - {**client, **row}[start] for client, row in zip(client_times, rows, strict=True)
        )

    direct_s = statistics.median(direct_times)
    total = median_of("posted", "seen")
    spans = [
        ("POST until the row is inserted (HTTP, token, validation)", median_of("posted", "inserted")),
        ("row inserted until the worker claims it (commit, answer, pool, worker call)",
         median_of("inserted", "claimed")),
        ("claimed until succeeded (engine, signing, blob store, database)", median_of("claimed", "succeeded")),
        ("  of which Engine.generate alone (direct, same inputs)", direct_s),
        ("  worker's own cost: EngineWorker.run minus its Engine.generate (in-process, alternated)",
         worker_s - worker_engine_s),
        ("succeeded until the client's poll sees it (poll every 25 ms)", median_of("succeeded", "seen")),
        ("POST answered (client)", median_of("posted", "answered")),
    ]
    print(f"one job end to end: {total * 1000:.1f} ms median of {args.repeats}; Engine.generate {direct_s * 1000:.1f}"
          f" ms; ratio {total / direct_s:.3f}")
    print(f"{'span':<82} {'ms':>8}")
    for name, seconds in spans:
        print(f"{name:<82} {seconds * 1000:8.1f}")
    print("\nthe worker in-process (EngineWorker.run), cProfile by cumulative time:")
    print(profile)


if __name__ == "__main__":
    main()
