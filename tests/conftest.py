"""Settings shared by every test: offline, no telemetry, no real user data; the tiny base model, made once."""

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ember's default base model is `toy`; tests that do not name one use the faster test model `tiny`.
os.environ.setdefault("EMBER_DEFAULT_BASE_MODEL", "tiny")


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny base model materialized once for the whole session, shared by the engine, its workers and jobs."""
    from ember.engine.models import resolve_model_path
    from ember.engine.registry import get_base_model

    directory = tmp_path_factory.mktemp("models")
    resolve_model_path(get_base_model("tiny"), directory)
    return directory


def _unsigned(body: Any) -> Any:
    if isinstance(body, dict):
        return {key: _unsigned(value) for key, value in body.items()}
    if isinstance(body, list):
        return [_unsigned(value) for value in body]
    if isinstance(body, str) and "?" in body and ("://" in body or body.startswith("/")):
        return body.split("?", 1)[0]
    return body


@pytest.fixture(scope="session")
def unsigned() -> Callable[[Any], Any]:
    """A body with each URL cut at its query string: the same outputs, whatever second signed them."""
    return _unsigned
