"""The database tables: tenancy, credentials, custom models and their images, uploads and jobs."""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite hands back naive values otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class PublishedState(enum.StrEnum):
    never = "never"
    published = "published"
    unpublished = "unpublished"


class TrainingState(enum.StrEnum):
    draft = "draft"
    queued = "queued"
    training = "training"
    ready = "ready"
    failed = "failed"
    cancelled = "cancelled"


class TrainingMode(enum.StrEnum):
    subject = "subject"
    style = "style"


class ShareRole(enum.StrEnum):
    user = "user"
    editor = "editor"


class PrincipalKind(enum.StrEnum):
    technical_account_id = "technical_account_id"
    technical_account_email = "technical_account_email"
    user_email = "user_email"


class JobKind(enum.StrEnum):
    generate = "generate"
    train = "train"


class JobState(enum.StrEnum):
    pending = "pending"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancel_pending = "cancel_pending"
    cancelled = "cancelled"
    timeout = "timeout"


def _enum(enum_class: type[enum.StrEnum], name: str) -> Enum:
    # Plain VARCHAR plus a CHECK constraint: identical on SQLite and PostgreSQL, and new values need no type DDL.
    return Enum(
        enum_class,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda members: [member.value for member in members],
    )


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UtcDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


class Organization(Base):
    __tablename__ = "organizations"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Project(Base):
    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("org_id", "name", name="org_name"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiClient(Base):
    """A client-credentials principal; `token_generation` rises on rotation and revocation to void old tokens."""

    __tablename__ = "api_clients"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(255))
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    technical_account_id: Mapped[str] = mapped_column(String(200), unique=True)
    technical_account_email: Mapped[str] = mapped_column(String(320), unique=True)
    token_generation: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    organization: Mapped[Organization] = relationship()


class User(Base):
    __tablename__ = "users"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class CustomModel(Base):
    __tablename__ = "custom_models"
    __table_args__ = (
        Index("ix_custom_models_org_modified", "org_id", "modified_at"),
        Index("ix_custom_models_org_created", "org_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    project_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    created_by_client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_clients.id", ondelete="SET NULL"))
    display_name: Mapped[str] = mapped_column(String(200))
    training_mode: Mapped[TrainingMode] = mapped_column(_enum(TrainingMode, "training_mode"))
    concept_id: Mapped[str] = mapped_column(String(200), default="")
    base_model_name: Mapped[str] = mapped_column(String(100))
    base_model_version: Mapped[str] = mapped_column(String(100), default="")
    sample_prompt: Mapped[str] = mapped_column(Text, default="")
    published_state: Mapped[PublishedState] = mapped_column(
        _enum(PublishedState, "published_state"), default=PublishedState.never
    )
    training_state: Mapped[TrainingState] = mapped_column(
        _enum(TrainingState, "training_state"), default=TrainingState.draft
    )
    current_version: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    etag: Mapped[str] = mapped_column(String(100), default=lambda: uuid.uuid4().hex)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    modified_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomModelVersion(Base):
    __tablename__ = "custom_model_versions"
    __table_args__ = (UniqueConstraint("model_id", "number", name="model_number"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("custom_models.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    lora_blob_key: Mapped[str] = mapped_column(String(500))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    training_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"))
    # What the check after training measured (ember.engine.checks.ModelCheck.as_json); None for versions
    # trained before the check existed, which publish as before.
    publish_check: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrainingImage(Base):
    __tablename__ = "training_images"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("custom_models.id", ondelete="CASCADE"), index=True)
    blob_key: Mapped[str] = mapped_column(String(500))
    filename: Mapped[str] = mapped_column(String(500), default="")
    caption: Mapped[str | None] = mapped_column(Text)
    auto_caption: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer, default=0)
    height: Mapped[int] = mapped_column(Integer, default=0)
    content_hash: Mapped[str] = mapped_column(String(128), default="")
    perceptual_hash: Mapped[str | None] = mapped_column(String(128))
    # A 32×32 thumbnail (engine.dataset.fingerprint) for the copy check; None on images stored before it.
    fingerprint: Mapped[str | None] = mapped_column(Text)
    # The captioner that wrote `auto_caption` (a registry captioner's name), so its review note can be said.
    captioned_by: Mapped[str | None] = mapped_column(String(100))
    errors: Mapped[list[Any]] = mapped_column(default=list)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Share(Base):
    __tablename__ = "shares"
    __table_args__ = (
        UniqueConstraint("model_id", "principal_kind", "principal_value", name="model_principal"),
        Index("ix_shares_principal_value", "principal_value"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("custom_models.id", ondelete="CASCADE"))
    principal_kind: Mapped[PrincipalKind] = mapped_column(_enum(PrincipalKind, "principal_kind"))
    principal_value: Mapped[str] = mapped_column(String(320))
    role: Mapped[ShareRole] = mapped_column(_enum(ShareRole, "share_role"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Upload(Base):
    __tablename__ = "uploads"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    blob_key: Mapped[str] = mapped_column(String(500))
    mimetype: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Job(Base):
    """A unit of work; the row is the truth about its state, whatever carries it to a worker."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state", "state"), Index("ix_jobs_org_created", "org_id", "created_at"))

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    org_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"))
    client_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_clients.id", ondelete="SET NULL"))
    kind: Mapped[JobKind] = mapped_column(_enum(JobKind, "job_kind"))
    state: Mapped[JobState] = mapped_column(_enum(JobState, "job_state"), default=JobState.pending)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    request: Mapped[dict[str, Any]] = mapped_column(default=dict)
    result: Mapped[dict[str, Any] | None]
    error_code: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    heartbeat_at: Mapped[datetime | None]
    custom_model_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("custom_models.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
