"""Load benchmark of the control plane: listing and token routes against a bare route of the same server.

Starts `ember serve` (uvicorn) in a subprocess on a temporary data directory seeded with one organization,
one client and some custom models, then drives each target on loopback in two phases:

- saturation: the connections send back to back for a fixed time; this gives the most requests per second
  the server sustains (its latency is mostly time spent queueing behind the other connections);
- fixed rate: the same connections send at a fixed total rate (open loop); latency is measured from each
  request's scheduled send time, so a server that falls behind is charged for the wait.

It prints throughput, p50 and p99 of each and their ratios to the bare route measured the same way.

    .venv/bin/python bench/api.py [--seconds 10] [--concurrency 16] [--rate 200] [--models 40]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from serving import SCOPE, free_port, seed_clients, start_server
from sqlalchemy import select

from ember.config import Settings
from ember.identity import ClientCredentials
from ember.store.database import open_engine, session_factory, transaction
from ember.store.tables import CustomModel, Organization, PublishedState, TrainingMode, TrainingState


@dataclass
class Result:
    name: str
    latencies: list[float]
    errors: int
    seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, fraction: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000


def seed(data_dir: Path, models: int) -> ClientCredentials:
    (credentials,) = seed_clients(data_dir, ["bench"])
    engine = open_engine(Settings(data_dir=data_dir).database_url)
    with transaction(session_factory(engine)) as session:
        org_id = session.scalar(select(Organization.id).where(Organization.name == "bench"))
        start = datetime(2026, 1, 1, tzinfo=UTC)
        for index in range(models):
            session.add(
                CustomModel(
                    org_id=org_id,
                    display_name=f"Model {index:03d}",
                    training_mode=TrainingMode.subject if index % 2 else TrainingMode.style,
                    concept_id="zorb" if index % 2 else "",
                    base_model_name="tiny",
                    sample_prompt="a zorb on a beach",
                    published_state=PublishedState.published,
                    training_state=TrainingState.ready,
                    current_version=1,
                    size=3_000_000,
                    created_at=start + timedelta(minutes=index),
                    modified_at=start + timedelta(minutes=index),
                )
            )
    engine.dispose()
    return credentials


async def drive(
    name: str, client: httpx.AsyncClient, request: httpx.Request, seconds: float, workers: int, rate: float | None
) -> Result:
    """Send `request` from `workers` connections for `seconds`: back to back, or at `rate` requests/s in all."""
    latencies: list[float] = []
    errors = 0
    began = time.perf_counter()
    stop_at = began + seconds
    interval = workers / rate if rate else 0.0

    async def worker(index: int) -> None:
        nonlocal errors
        scheduled = began + index * interval / workers
        while scheduled < stop_at and time.perf_counter() < stop_at:
            now = time.perf_counter()
            if rate:
                if scheduled > now:
                    await asyncio.sleep(scheduled - now)
                started = scheduled  # open loop: waiting for a late server counts as latency
            else:
                started = now
            response = await client.send(request)
            elapsed = time.perf_counter() - started
            if response.status_code == 200:
                latencies.append(elapsed)
            else:
                errors += 1
            scheduled = scheduled + interval if rate else time.perf_counter()

    await asyncio.gather(*(worker(i) for i in range(workers)))
    return Result(name, latencies, errors, time.perf_counter() - began)


async def run(
    base: str, credentials: ClientCredentials, seconds: float, workers: int, rate: float | None
) -> list[Result]:
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        token_form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
            "scope": SCOPE,
        }
        token = (await client.post("/ims/token/v3", data=token_form)).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}", "x-api-key": credentials.client_id}
        targets = [
            ("GET /healthz (bare)", client.build_request("GET", "/healthz")),
            (
                "GET /v3/custom-models",
                client.build_request("GET", "/v3/custom-models?start=0&limit=10&sortBy=-modifiedDate", headers=auth),
            ),
            ("POST /ims/token/v3", client.build_request("POST", "/ims/token/v3", data=token_form)),
        ]
        for _name, request in targets[:2]:
            await client.send(request)  # warm-up: connections, caches
        return [await drive(name, client, request, seconds, workers, rate) for name, request in targets]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0, help="total requests/s of the fixed-rate phase")
    parser.add_argument("--models", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ember-bench-") as tmp:
        data_dir = Path(tmp) / "data"
        credentials = seed(data_dir, args.models)
        port = free_port()
        server = start_server(data_dir, port, {"EMBER_RAY_ADDRESS": "disabled"}, Path(tmp) / "server.log")
        base = f"http://127.0.0.1:{port}"
        try:
            phases = [
                ("saturation", asyncio.run(run(base, credentials, args.seconds, args.concurrency, None))),
                (
                    f"fixed rate {args.rate:g} req/s",
                    asyncio.run(run(base, credentials, args.seconds, args.concurrency, args.rate)),
                ),
            ]
        finally:
            server.terminate()
            server.wait(timeout=30)
    print(f"{args.concurrency} connections, {args.seconds:g} s per target, {args.models} models, loopback")
    for phase, results in phases:
        bare = results[0]
        print(f"\n{phase}")
        print(f"{'target':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p50/bare':>10}{'p99/bare':>10}{'errors':>8}")
        for result in results:
            p50, p99 = result.percentile(0.5), result.percentile(0.99)
            print(
                f"{result.name:<24}{result.throughput:>9.0f}{p50:>9.1f}{p99:>9.1f}"
                f"{p50 / bare.percentile(0.5):>10.2f}{p99 / bare.percentile(0.99):>10.2f}{result.errors:>8}"
            )


if __name__ == "__main__":
    main()
