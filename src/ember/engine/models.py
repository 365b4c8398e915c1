"""Where a base model's weights are, which device and dtype run it, and loading it as a diffusers pipeline."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ember.engine.registry import BaseModelSpec, get_base_model, import_reference
from ember.engine.types import EngineError

if TYPE_CHECKING:
    import torch


class ModelWeightsMissing(EngineError):
    """A real base model was asked for but its weights are not on this machine."""


SOURCE_ENV_PREFIX = "EMBER_MODEL_SOURCE_"
ALLOW_DOWNLOAD_ENV = "EMBER_ALLOW_MODEL_DOWNLOAD"
_materialize_lock = threading.Lock()


def source_env_name(name: str) -> str:
    return SOURCE_ENV_PREFIX + name.upper().replace("-", "_")


def _is_pipeline_dir(path: Path) -> bool:
    return (path / "model_index.json").is_file()


def resolve_model_path(spec: BaseModelSpec, model_dir: Path, sources: Mapping[str, str] | None = None) -> Path:
    """The pipeline directory of a base model, materializing built-in models on first use.

    Lookup order for real models: `<model_dir>/<name>`, then the configured source (argument `sources`, else
    the environment variable EMBER_MODEL_SOURCE_<NAME>), which is a local directory or a hub id found in the
    local hub cache. Nothing is downloaded unless EMBER_ALLOW_MODEL_DOWNLOAD=1 and the hub is online.
    """
    model_dir = Path(model_dir)
    local = model_dir / spec.name
    if _is_pipeline_dir(local):
        return local
    if spec.builder is not None:
        return _materialize(spec, local)
    configured = (sources or {}).get(spec.name) or os.environ.get(source_env_name(spec.name)) or spec.source
    candidate = Path(configured).expanduser()
    if _is_pipeline_dir(candidate):
        return candidate
    cached = _hub_snapshot(configured)
    if cached is not None:
        return cached
    raise ModelWeightsMissing(
        f"The weights of base model {spec.name!r} ({spec.display_name}) are not on this machine. "
        f"Put a diffusers pipeline directory at {local}, or set {source_env_name(spec.name)} to a local "
        f"pipeline directory or a hub id, or download {configured!r} into the Hugging Face cache "
        f"(huggingface-cli download {configured}); to let Ember download it, set {ALLOW_DOWNLOAD_ENV}=1 "
        f"with HF_HUB_OFFLINE unset."
    )


def _hub_snapshot(repo_id: str) -> Path | None:
    if repo_id.count("/") != 1 or Path(repo_id).is_absolute():
        return None
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    allow = os.environ.get(ALLOW_DOWNLOAD_ENV, "") == "1" and not offline
    try:
        path = Path(snapshot_download(repo_id, local_files_only=not allow))
    except Exception:  # the hub client raises several unrelated types for "not in cache"
        return None
    return path if _is_pipeline_dir(path) else None


def _materialize(spec: BaseModelSpec, target: Path) -> Path:
    assert spec.builder is not None
    with _materialize_lock:
        if _is_pipeline_dir(target):
            return target
        builder = import_reference(spec.builder)
        # Build beside the target and rename, so a second process never loads a half-written model.
        staging = target.with_name(f".{target.name}.building-{os.getpid()}")
        if staging.exists():
            import shutil

            shutil.rmtree(staging)
        staging.parent.mkdir(parents=True, exist_ok=True)
        try:
            builder(staging)
        except EngineError:
            raise
        except Exception as error:  # a builder whose own inputs (committed weights…) are absent
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
            raise ModelWeightsMissing(f"built-in base model {spec.name!r} could not be built: {error}") from error
        try:
            staging.rename(target)
        except OSError:
            if not _is_pipeline_dir(target):
                raise
            import shutil

            shutil.rmtree(staging, ignore_errors=True)
    return target


THREADS_ENV = "EMBER_TORCH_THREADS"


def apply_thread_setting() -> None:
    """Honour EMBER_TORCH_THREADS: on a small CPU shared with other work, torch's default (one thread per
    core) can be many times slower than a single thread, because its workers wait on busy cores."""
    value = os.environ.get(THREADS_ENV)
    if value:
        import torch

        torch.set_num_threads(max(1, int(value)))


def choose_device(device: str | None = None) -> str:
    """CUDA when present, then MPS, else CPU; an explicit device wins."""
    if device:
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def choose_dtype(device: str, dtype: str | None = None) -> torch.dtype:
    """bf16 on CUDA that supports it, else fp16 on CUDA and MPS, fp32 on CPU; an explicit dtype wins."""
    import torch

    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if dtype:
        try:
            return names[dtype]
        except KeyError:
            raise EngineError(f"unknown dtype {dtype!r}; use one of {sorted(names)}") from None
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.startswith("mps"):
        return torch.float16
    return torch.float32


def load_pipeline(
    name: str,
    model_dir: Path,
    device: str,
    dtype: torch.dtype,
    sources: Mapping[str, str] | None = None,
) -> Any:
    """A text-to-image diffusers pipeline for a base model, on `device` in `dtype`."""
    from diffusers import AutoPipelineForText2Image

    spec = get_base_model(name)
    path = resolve_model_path(spec, model_dir, sources)
    pipeline = AutoPipelineForText2Image.from_pretrained(str(path), dtype=dtype)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)
