"""What one running app holds: settings, database, blob store, Ray link, signing key, limiter, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from ember.api.links import output_url, url_key
from ember.api.metrics import Metrics
from ember.api.rate_limit import RateLimiter
from ember.api.views import status_body
from ember.blobs import BlobStore, open_blob_store
from ember.cluster import RayConnection
from ember.config import Settings
from ember.data_dir import prepare_data_dir
from ember.identity import token_secret
from ember.jobs.events import SignUrl
from ember.jobs.webhook_delivery import DeliveryPolicy, WebhookSender
from ember.store.database import open_engine, session_factory
from ember.store.tables import Job
from ember.worker.pool import PoolClient


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    blobs: BlobStore
    ray: RayConnection
    token_key: bytes
    rate_limiter: RateLimiter
    metrics: Metrics
    dispatcher: PoolClient
    webhooks: WebhookSender

    @classmethod
    def build(cls, settings: Settings, clock: Callable[[], float] | None = None) -> Runtime:
        prepare_data_dir(settings.data_dir)
        engine = open_engine(settings.database_url)
        sessions = session_factory(engine)

        def count_jobs() -> dict[tuple[str, str], int]:
            with sessions() as session:
                rows = session.execute(select(Job.kind, Job.state, func.count()).group_by(Job.kind, Job.state))
                return {(str(kind), str(state)): int(count) for kind, state, count in rows}

        limiter_args = {"clock": clock} if clock is not None else {}
        ray = RayConnection(settings.ray_address, settings.ray_num_cpus)
        blobs = open_blob_store(settings.blob_url)
        token_key = token_secret(settings)

        def signer(base_url: str) -> SignUrl:
            base = settings.public_base_url or base_url
            key = url_key(token_key)
            return lambda blob_key: output_url(blobs, base, blob_key, settings.output_url_ttl_s, key)

        policy = DeliveryPolicy(
            retry_base_s=settings.webhook_retry_base_s,
            retry_for_s=settings.webhook_retry_for_s,
            interval_s=settings.webhook_interval_s,
            allow_private=settings.webhook_allow_private,
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            blobs=blobs,
            ray=ray,
            token_key=token_key,
            rate_limiter=RateLimiter(
                sessions, settings.rate_limit_per_minute, settings.rate_limit_per_day, **limiter_args
            ),
            metrics=Metrics(count_jobs),
            dispatcher=PoolClient(settings, sessions, ray),
            webhooks=WebhookSender(sessions, token_key, signer, policy, status_body=status_body),
        )
