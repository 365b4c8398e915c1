"""Fixtures of the toy-world tests: one materialized toy model shared by the tests that draw with it."""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def toy_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory in which the `toy` base model is materialized once for the session."""
    from ember.engine.models import resolve_model_path
    from ember.engine.registry import get_base_model

    model_dir = tmp_path_factory.mktemp("models")
    resolve_model_path(get_base_model("toy"), model_dir)
    return model_dir


@pytest.fixture(scope="session")
def learning_bench_module() -> ModuleType:
    """bench/learning.py, loaded from its file (bench/ is a folder of scripts, not a package)."""
    name = "ember_bench_learning"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPOSITORY / "bench" / "learning.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def every_core() -> Iterator[None]:
    """The learning tests train custom models and draw with them: they run alone at that point of the suite, so
    torch may use every core in the test's process (EMBER_TORCH_THREADS still wins where it is set)."""
    import torch

    from ember.engine.models import THREADS_ENV

    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get(THREADS_ENV) or os.cpu_count() or 1))
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def bench(
    request: pytest.FixtureRequest,
    learning_bench_module: ModuleType,
    toy_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Any]:
    """The learning bench (an Ember app on a local Ray, driven over HTTP), one per learning test module, with
    the module's ENGINE_WORKERS engine workers sharing the cores (1 where it does not say)."""
    settings = learning_bench_module.BenchSettings(images_per_prompt=8, subject_images=32)
    workers = getattr(request.module, "ENGINE_WORKERS", 1)
    bench = learning_bench_module.LearningBench(toy_model_dir, tmp_path_factory.mktemp("training"), settings,
                                                workers)
    yield bench
    bench.close()
