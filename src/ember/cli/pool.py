"""`ember engine serve` / `ember engine stop`: start a deployment's engine pool on a Ray cluster ahead of the API
replicas (which then only insert jobs and answer status), or stop it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from ember.config import Settings

console = Console()
RayAddressOption = Annotated[
    str, typer.Option("--ray-address", envvar="EMBER_RAY_ADDRESS", help="The Ray cluster (host:port) to run on.")
]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar="EMBER_DATA_DIR", help="Data directory (default ./data).", show_default=False),
]


def _connect(ray_address: str, data_dir: Path | None) -> Settings:
    import ray

    from ember.config import load_settings

    settings = load_settings(data_dir=data_dir, ray_address=ray_address)
    if not settings.ray_address or not settings.ray_enabled:
        raise typer.BadParameter("give the Ray cluster's address", param_hint="--ray-address")
    ray.init(address=settings.ray_address, include_dashboard=False, log_to_driver=False)
    return settings


def serve_pool(
    ray_address: RayAddressOption = "",
    data_dir: DataDirOption = None,
    wait_s: Annotated[float, typer.Option("--wait", help="Seconds to wait for the workers to start.")] = 600.0,
) -> None:
    """Start the deployment's engine pool on a Ray cluster (or find it running), wait for its workers, exit.

    The pool outlives this command; every `ember serve` replica with the same database uses it."""
    import ray

    from ember.worker.pool import find_or_create_pool, pool_name

    settings = _connect(ray_address, data_dir)
    try:
        _migrate(settings)
        pool = find_or_create_pool(settings)
        deadline = time.monotonic() + wait_s
        with console.status("starting engine workers…"):
            while not ray.get(pool.started.remote(1.0)):
                if time.monotonic() > deadline:
                    console.print("[red]the engine workers did not start in time[/red]")
                    raise typer.Exit(1)
        for worker in ray.get(pool.workers.remote(True)):
            console.print(f"{worker['id']}: {worker['device']}, check {worker['check']}")
        console.print(f"engine pool {pool_name(settings)} is running on {settings.ray_address}")
    finally:
        ray.shutdown()


def stop_pool(ray_address: RayAddressOption = "", data_dir: DataDirOption = None) -> None:
    """Stop the deployment's engine pool and its workers (running jobs are taken back by the next pool)."""
    import ray

    from ember.worker.pool import NAMESPACE, pool_name

    settings = _connect(ray_address, data_dir)
    try:
        pool = ray.get_actor(pool_name(settings), namespace=NAMESPACE)
    except ValueError:
        console.print("no engine pool is running for this deployment")
        ray.shutdown()
        return
    try:
        ray.get(pool.shutdown.remote(), timeout=60)
        ray.kill(pool)
        console.print(f"engine pool {pool_name(settings)} stopped")
    finally:
        ray.shutdown()


def _migrate(settings: Settings) -> None:
    from ember.store.database import migrate, open_engine, setup_lock

    engine = open_engine(settings.database_url)
    with setup_lock(engine):
        migrate(engine)
    engine.dispose()
