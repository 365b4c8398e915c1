"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool

from ember.api.deps import RuntimeDep
from ember.api.runtime import Runtime
from ember.blobs import BlobStoreError

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


def _check_database(runtime: Runtime) -> str | None:
    try:
        with runtime.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # any driver error means "unreachable"
        return f"{type(error).__name__}: {error}".splitlines()[0]
    return None


def _check_blobs(runtime: Runtime) -> str | None:
    try:
        runtime.blobs.check()
    except (BlobStoreError, OSError) as error:
        return str(error)
    return None


def readiness(runtime: Runtime) -> dict[str, str]:
    """Each dependency mapped to "ok", "disabled" or what is wrong with it."""
    ray = runtime.ray.status()
    return {
        "database": _check_database(runtime) or "ok",
        "blob_store": _check_blobs(runtime) or "ok",
        "ray": ("ok" if ray.state == "connected" else ray.state.value)
        if ray.ready
        else f"{ray.state.value}{': ' + ray.detail if ray.detail else ''}",
    }


def engine_workers_check(workers: list[dict[str, str]]) -> str:
    """"ok" when at least one live engine worker passed its own database and blob-store check."""
    if any(worker.get("check") == "ok" for worker in workers):
        return "ok"
    if not workers:
        return "no engine worker yet"
    return "no engine worker passed its check: " + "; ".join(
        f"{worker['id']}: {worker.get('check', 'no answer')}" for worker in workers
    )


@router.get(
    "/readyz",
    summary="The database, the blob store, Ray and a checked engine worker are reachable",
    responses={503: {"description": "Not ready: the checks say which dependency is failing."}},
)
async def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks = await run_in_threadpool(readiness, runtime)
    workers: list[dict[str, str]] = []
    if checks["ray"] == "ok":
        workers = await run_in_threadpool(runtime.dispatcher.worker_states)
        checks["engine_workers"] = engine_workers_check(workers)
    failing = [name for name, state in checks.items() if state not in ("ok", "disabled")]
    if not failing:
        devices = [worker["device"] for worker in workers if worker.get("check") == "ok"]
        return JSONResponse({"status": "ready", "checks": checks, "engineWorkers": devices})
    message = "Not ready: " + "; ".join(f"{name} ({checks[name]})" for name in failing)
    return JSONResponse(
        {"error_code": "service_unavailable", "message": message, "status": "unavailable", "checks": checks},
        status_code=503,
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    body = await run_in_threadpool(runtime.metrics.render)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
