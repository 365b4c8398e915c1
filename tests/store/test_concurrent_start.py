"""Servers started at once on one empty database all come up: migration and first-start set-up take turns."""

from __future__ import annotations

from pathlib import Path

import pytest

from ..cli.test_serve import start_server, stop_server, wait_until_serving


@pytest.mark.slow
def test_two_servers_started_at_once_on_an_empty_database_both_come_up(
    empty_database_url: str, tmp_path: Path
) -> None:
    data_dirs = [tmp_path / "replica-a" / "data", tmp_path / "replica-b" / "data"]
    servers = [start_server(data_dir, EMBER_DATABASE_URL=empty_database_url) for data_dir in data_dirs]
    try:
        serving = [wait_until_serving(base, process, timeout=120) for base, process in servers]
        logs = [path.read_text() for path in tmp_path.glob("replica-*/serve-*.log")]
        assert serving == [True, True], logs
        first_start_credentials = [data_dir for data_dir in data_dirs if (data_dir / "credentials.json").exists()]
        assert len(first_start_credentials) == 1
    finally:
        for _base, process in servers:
            stop_server(process)
