"""Ember's one settings object: environment `EMBER_*`, an optional `ember.toml`, embedded defaults."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATA_DIR = Path("data")
CONFIG_FILE_NAME = "ember.toml"
RAY_DISABLED = "disabled"


class Settings(BaseSettings):
    """Every setting of the server and the CLI; derived paths default to places under `data_dir`."""

    model_config = SettingsConfigDict(env_prefix="EMBER_", extra="forbid", validate_default=True)

    data_dir: Path = Field(DEFAULT_DATA_DIR, description="Where the embedded database, blobs and models live.")
    database_url: str = Field("", description="SQLAlchemy URL; default sqlite:///<data_dir>/ember.db.")
    blob_url: str = Field("", description="file:///abs/dir or s3://bucket/prefix; default file://<data_dir>/blobs.")
    model_dir: Path | None = Field(None, description="Base model weights; default <data_dir>/models.")
    ray_address: str = Field(
        "", description="Empty: start a local Ray; 'disabled': no Ray; otherwise an address to join."
    )
    ray_num_cpus: int | None = Field(None, ge=1, description="CPUs for the embedded local Ray.")
    default_base_model: str = Field(
        "toy", description="Base model of new custom models and of generation without one; tiny for fast tests."
    )
    model_version_base_models: dict[str, str] = Field(
        default_factory=dict, description="x-model-version → base model; unnamed versions use default_base_model."
    )
    engine_workers: int | None = Field(
        None, ge=1, description="Engine worker actors of the deployment's pool; unset: one per GPU of the cluster, "
        "or 1 without GPUs.",
    )
    engine_worker_num_cpus: float = Field(1.0, gt=0, description="CPUs Ray reserves for each engine worker.")
    engine_worker_torch_threads: int | None = Field(
        None, ge=1, description="Torch threads of each engine worker; unset: its CPUs (at least 1)."
    )
    engine_worker_num_gpus: float | None = Field(
        None,
        ge=0,
        description="GPUs Ray reserves for each engine worker; unset: 1 where the cluster has GPUs, else 0.",
    )
    engine_lora_cache_size: int = Field(8, ge=1, description="LoRA adapters each engine worker keeps loaded.")
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile in engine workers (VAE decoder, denoiser blocks); auto: on CUDA only."
    )
    job_timeout_s: float = Field(600.0, gt=0, description="A job running longer than this ends as timeout.")
    job_max_attempts: int = Field(2, ge=1, description="Dispatches of a job before a lost worker fails it.")
    training_timeout_s: float = Field(
        6 * 3600.0, gt=0, description="A training job running longer than this (from submission) ends as timeout."
    )
    training_max_attempts: int = Field(
        3, ge=1, description="Dispatches of a training job (each resumes from its last checkpoint) before it fails."
    )
    allow_private_reference_urls: bool = Field(
        False, description="Let reference image URLs reach loopback, private and other non-public addresses."
    )
    webhook_allow_private: bool = Field(
        False, description="Let webhook URLs reach loopback, private and other non-public addresses."
    )
    webhook_retry_base_s: float = Field(5.0, gt=0, description="Delay before a failed webhook's first retry.")
    webhook_retry_for_s: float = Field(
        26 * 3600.0, gt=0, description="How long a failing webhook delivery is retried (backoff doubles each time)."
    )
    webhook_interval_s: float = Field(1.0, gt=0, description="How often each server looks for due webhooks.")
    heartbeat_timeout_s: float = Field(30.0, gt=0, description="A running job silent this long is lost.")
    reaper_interval_s: float = Field(2.0, gt=0, description="How often timeouts and lost jobs are looked for.")
    sync_generate_timeout_s: float = Field(60.0, gt=0, description="POST /v3/images/generate waits this long.")
    output_url_ttl_s: int = Field(3600, ge=1, description="Lifetime of signed output URLs.")
    region: str = Field("VA6C2", pattern=r"^[A-Za-z0-9]+$", description="Region part of asset ids.")
    public_base_url: str = Field("", description="Absolute base of URLs in responses; default: from the request.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    token_secret: SecretStr | None = Field(
        None, description="HS256 key for access tokens; generated into <data_dir>/token-secret when unset."
    )
    token_expires_in: int = Field(86399, ge=60, description="Access token lifetime in seconds.")
    rate_limit_per_minute: int = Field(600, ge=0, description="Requests per organization per minute; 0: off.")
    rate_limit_per_day: int = Field(100_000, ge=0, description="Requests per organization per day; 0: off.")
    max_request_bytes: int = Field(64 * 1024 * 1024, ge=1, description="Largest accepted request body.")
    training_min_images: int = Field(10, ge=1, description="Fewest training images a custom model trains with.")
    training_max_images: int = Field(30, ge=1, description="Most training images a custom model may hold.")
    training_min_image_side: int | None = Field(
        None, ge=1, description="Shortest side of a training image; default: the base model's own minimum."
    )
    ui_session_ttl_s: int = Field(12 * 3600, ge=60, description="Lifetime of a web UI sign-in.")
    ui_cookie_secure: bool = Field(
        False, description="Mark the session cookie Secure (always done when the request came over HTTPS)."
    )
    log_level: str = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        toml_path = config_file_path(init_kwargs.get("data_dir"))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @model_validator(mode="after")
    def _fill_derived_defaults(self) -> Settings:
        self.data_dir = self.data_dir.expanduser().resolve()
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'ember.db'}"
        if not self.blob_url:
            self.blob_url = f"file://{self.data_dir / 'blobs'}"
        if self.model_dir is None:
            self.model_dir = self.data_dir / "models"
        self.public_base_url = self.public_base_url.rstrip("/")
        return self

    @property
    def ray_enabled(self) -> bool:
        return self.ray_address != RAY_DISABLED

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain values, with secrets and URL passwords replaced by stars."""
        shown = self.model_dump(mode="json")
        if self.token_secret is not None:
            shown["token_secret"] = "********"
        shown["database_url"] = _mask_url_password(self.database_url)
        shown["blob_url"] = _mask_url_password(self.blob_url)
        return shown


def config_file_path(data_dir: Path | str | None = None) -> Path | None:
    """EMBER_CONFIG when set, else `ember.toml` in the data directory if it exists."""
    explicit = os.environ.get("EMBER_CONFIG")
    if explicit:
        return Path(explicit).expanduser()
    base = Path(data_dir or os.environ.get("EMBER_DATA_DIR") or DEFAULT_DATA_DIR).expanduser()
    candidate = base / CONFIG_FILE_NAME
    return candidate if candidate.is_file() else None


def _mask_url_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1********@", url)


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and TOML, with explicit overrides (e.g. CLI options) on top."""
    return Settings(**{key: value for key, value in overrides.items() if value is not None})
