"""The app factory: routes, error bodies, request context and the lifespan of the runtime's connections."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ember import __version__
from ember.api.errors import install_error_handlers
from ember.api.openapi import install_openapi
from ember.api.request_context import RequestContext
from ember.api.routes import (
    auth,
    custom_model_images,
    custom_model_shares,
    custom_models,
    health,
    images,
    job_events,
    job_history,
    jobs,
    outputs,
    projects,
    storage,
    training_previews,
    ui,
    webhooks,
)
from ember.api.runtime import Runtime
from ember.config import Settings


def create_app(settings: Settings, clock: Callable[[], float] | None = None) -> FastAPI:
    """An app over `settings`' database, blob store and Ray. The schema must be migrated already
    (`ember serve` does it first). `clock` replaces time.time for the rate limiter (tests)."""
    runtime = Runtime.build(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        runtime.ray.start()
        runtime.dispatcher.start()
        runtime.webhooks.start()
        try:
            yield
        finally:
            runtime.webhooks.stop()
            runtime.dispatcher.stop()
            runtime.ray.stop()
            runtime.engine.dispose()

    app = FastAPI(
        title="Ember",
        version=__version__,
        summary="Custom image models behind a Firefly-compatible API.",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(auth.router)
    app.include_router(custom_models.router)
    app.include_router(custom_model_images.router)
    app.include_router(training_previews.router)
    app.include_router(custom_model_shares.router)
    app.include_router(health.router)
    app.include_router(images.router)
    app.include_router(jobs.router)
    app.include_router(job_events.router)
    app.include_router(webhooks.router)
    app.include_router(storage.router)
    app.include_router(outputs.router)
    app.include_router(projects.router)
    app.include_router(job_history.router)
    app.include_router(ui.router)
    app.mount("/ui/static", ui.static_files, name="ui-static")
    app.add_middleware(RequestContext, max_body_bytes=settings.max_request_bytes, metrics=runtime.metrics)
    return app
