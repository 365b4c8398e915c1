"""Torch threads of an engine worker: its reserved CPUs unless `engine_worker_torch_threads` says otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from ember.config import Settings
from ember.jobs.dispatch import Dispatcher


def torch_threads(tmp_path: Path, **settings: object) -> int:
    dispatcher = Dispatcher(
        Settings(ray_address="disabled", data_dir=tmp_path, model_dir=tmp_path / "models", **settings),  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
    )
    return dispatcher._worker_config().torch_threads


def test_a_worker_runs_as_many_torch_threads_as_it_reserves_cpus(tmp_path: Path) -> None:
    assert torch_threads(tmp_path) == 1
    assert torch_threads(tmp_path, engine_worker_num_cpus=3) == 3
    assert torch_threads(tmp_path, engine_worker_num_cpus=0.5) == 1


def test_the_torch_threads_setting_wins_over_the_reserved_cpus(tmp_path: Path) -> None:
    assert torch_threads(tmp_path, engine_worker_torch_threads=2) == 2
    assert torch_threads(tmp_path, engine_worker_num_cpus=4, engine_worker_torch_threads=1) == 1


def test_zero_torch_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="engine_worker_torch_threads"):
        Settings(engine_worker_torch_threads=0)
