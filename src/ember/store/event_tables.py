"""The tables of job events and webhooks: each job's event log (what progress streams replay), the webhook
endpoints and signing keys of organizations, the webhooks named by requests, and the outbox of deliveries."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from ember.store.tables import Base, _enum, utcnow

# SQLite assigns increasing ids only to an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class DeliveryState(enum.StrEnum):
    pending = "pending"
    delivered = "delivered"
    failed = "failed"


class JobEvent(Base):
    """One thing that happened to a job; `seq` numbers a job's events 1, 2, 3… and is the stream's event id."""

    __tablename__ = "job_events"
    __table_args__ = (UniqueConstraint("job_id", "seq", name="job_seq"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookSigningKey(Base):
    """An organization's secret for the webhooks its requests name; encrypted at rest (see ember.jobs.secrets)."""

    __tablename__ = "webhook_signing_keys"

    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Base):
    """A URL an organization registered to hear about all its jobs, with its own signing secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    secret: Mapped[bytes] = mapped_column(LargeBinary)
    base_url: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JobWebhook(Base):
    """The `webhook` of one generation or training request, signed with the organization's signing key."""

    __tablename__ = "job_webhooks"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[Any]] = mapped_column(JSON, default=list)
    base_url: Mapped[str] = mapped_column(Text, default="")


class WebhookDelivery(Base):
    """The outbox: one message to one URL, written in the transaction of the event it tells about, then claimed
    (a lease) and sent by whichever server's delivery loop gets it first."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (Index("ix_webhook_deliveries_due", "state", "next_attempt_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    event_seq: Mapped[int] = mapped_column(Integer)
    topic: Mapped[str] = mapped_column(String(32))
    url: Mapped[str] = mapped_column(Text)
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    base_url: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[DeliveryState] = mapped_column(_enum(DeliveryState, "delivery_state"), default=DeliveryState.pending)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[datetime | None]
    leased_by: Mapped[str | None] = mapped_column(String(200))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
