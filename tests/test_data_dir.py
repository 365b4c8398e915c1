"""The data directory's privacy: 0700 for the directory, 0600 for what Ember writes in it, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ember.data_dir import create_private_file, prepare_data_dir, write_private_bytes


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_world_readable_data_directory_is_tightened_to_0700(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    prepare_data_dir(data_dir)
    assert _mode(data_dir) == 0o700


def test_a_lora_cache_file_is_written_0600_under_a_permissive_umask(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "lora-cache" / "model-1.safetensors"
    write_private_bytes(path, b"weights")
    assert (path.read_bytes(), _mode(path)) == (b"weights", 0o600)


def test_a_database_file_is_created_0600_under_a_permissive_umask(tmp_path: Path, permissive_umask: None) -> None:
    path = tmp_path / "ember.db"
    create_private_file(path)
    assert _mode(path) == 0o600
