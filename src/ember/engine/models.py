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


def missing_weights_reason(
    spec: BaseModelSpec, model_dir: Path, sources: Mapping[str, str] | None = None
) -> str | None:
    """Why a base model cannot run here (its weights are not on this machine), or None when it can; built-in
    models can always be built. Looks where `resolve_model_path` looks, without building or downloading."""
    if spec.builder is not None or _is_pipeline_dir(Path(model_dir) / spec.name):
        return None
    configured = (sources or {}).get(spec.name) or os.environ.get(source_env_name(spec.name)) or spec.source
    if _is_pipeline_dir(Path(configured).expanduser()) or _hub_snapshot(configured, allow_download=False):
        return None
    return f"its weights are not on this machine: run `ember engine pull {spec.name}`"


def _hub_snapshot(repo_id: str, allow_download: bool = True) -> Path | None:
    if repo_id.count("/") != 1 or Path(repo_id).is_absolute():
        return None
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in {"1", "true", "yes"}
    allow = allow_download and os.environ.get(ALLOW_DOWNLOAD_ENV, "") == "1" and not offline
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


class ModelPullError(EngineError):
    """A base model could not be fetched or what was fetched is not a pipeline of the model's family."""


# The diffusers pipeline class each family's weights must declare in model_index.json.
FAMILY_PIPELINES = {
    "sd": ("StableDiffusionPipeline",),
    "sdxl": ("StableDiffusionXLPipeline",),
    "flux": ("FluxPipeline",),
}
WEIGHT_SUFFIXES = (".safetensors", ".bin")
GATED_MODELS = {
    "flux-dev": (
        "FLUX.1 [dev] is a gated model under the FLUX.1 [dev] Non-Commercial License: accept it on "
        "https://huggingface.co/black-forest-labs/FLUX.1-dev with your Hugging Face account, then give Ember a "
        "token of that account (HF_TOKEN=… or `hf auth login`)"
    ),
}


def pull_model(
    name: str,
    model_dir: Path,
    source: str | None = None,
    on_bytes: Any = None,
) -> Path:
    """Fetch a base model into `<model_dir>/<name>` and check it is a pipeline of the model's family.

    `source` is a local pipeline folder (a copy or a mirror) or a hub id; by default the registry's hub id.
    Files go to a staging folder renamed into place only once verified, so a failed pull leaves nothing.
    `on_bytes(done, total)` follows a local copy. Built-in models are materialized instead.
    """
    import shutil

    spec = get_base_model(name)
    model_dir = Path(model_dir)
    target = model_dir / spec.name
    if spec.builder is not None:
        return resolve_model_path(spec, model_dir)
    if _is_pipeline_dir(target):
        verify_pipeline(spec, target)
        return target
    staging = model_dir / f".{spec.name}.pulling-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    origin = source or spec.source
    try:
        if Path(origin).expanduser().is_dir():
            _copy_tree(Path(origin).expanduser(), staging, on_bytes)
        else:
            _download(spec, origin, staging)
        verify_pipeline(spec, staging)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def verify_pipeline(spec: BaseModelSpec, path: Path) -> None:
    """The folder declares the family's pipeline class and every component has its config and readable
    weights (safetensors headers are opened; the weights themselves are not loaded, which for FLUX would
    take tens of gigabytes of memory)."""
    import json

    from safetensors import safe_open

    index_file = path / "model_index.json"
    if not index_file.is_file():
        raise ModelPullError(f"{path} is not a diffusers pipeline folder (no model_index.json)")
    index = json.loads(index_file.read_text())
    expected = FAMILY_PIPELINES.get(spec.family, ())
    if index.get("_class_name") not in expected:
        raise ModelPullError(
            f"{path} holds a {index.get('_class_name')!r}, not {' or '.join(expected)} as {spec.name!r} needs"
        )
    for component, declared in index.items():
        if component.startswith("_") or not isinstance(declared, list) or declared[0] is None:
            continue
        folder = path / component
        if not folder.is_dir():
            raise ModelPullError(f"{path} lacks its {component!r} folder")
        weights = [f for f in folder.iterdir() if f.name.endswith(WEIGHT_SUFFIXES)]
        configs = list(folder.glob("*config*.json"))
        if not configs:
            raise ModelPullError(f"{folder} has no config file")
        for weight in weights:
            if weight.suffix == ".safetensors":
                try:
                    with safe_open(str(weight), framework="pt") as handle:
                        handle.keys()
                except Exception as error:  # safetensors raises its own and OS errors for a damaged file
                    raise ModelPullError(f"{weight} cannot be read: {error}") from error


def _copy_tree(source: Path, target: Path, on_bytes: Any) -> None:
    import shutil

    files = [f for f in sorted(source.rglob("*")) if f.is_file()]
    total = sum(f.stat().st_size for f in files)
    done = 0
    for file in files:
        destination = target / file.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, destination)
        done += file.stat().st_size
        if on_bytes is not None:
            on_bytes(done, total)


def _download(spec: BaseModelSpec, repo_id: str, target: Path) -> None:
    """A hub snapshot into `target`; huggingface_hub draws its own progress bars."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError, RepositoryNotFoundError

    gated = GATED_MODELS.get(spec.name)
    try:
        snapshot_download(repo_id, local_dir=str(target))
    except GatedRepoError as error:
        raise ModelPullError(f"{repo_id} is gated: {gated or 'accept its licence on the hub'}") from error
    except RepositoryNotFoundError as error:
        hint = f" {gated}." if gated else ""
        raise ModelPullError(f"{repo_id} was not found on the hub or needs a token.{hint}") from error
    except LocalEntryNotFoundError as error:
        hint = f" {gated}." if gated else ""
        raise ModelPullError(
            f"{repo_id} cannot be downloaded here (offline, or HF_HUB_OFFLINE is set): give a local folder or "
            f"mirror as the source instead.{hint}"
        ) from error
