"""`ember serve` end to end: a fresh data directory, first-start credentials, a token and a listing."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = _free_port()
    data_dir = tmp_path / "data"
    env = {**os.environ, "EMBER_RAY_ADDRESS": "disabled"}
    env.pop("EMBER_DATA_DIR", None)
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ember"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)  # polling a port: there is no event to await from another process
    yield base, data_dir, process
    process.terminate()
    process.wait(timeout=30)


def test_first_start_writes_private_credentials_that_get_a_token_and_an_empty_listing(
    server: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, data_dir, _process = server
    path = data_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credentials = json.loads(path.read_text())
    token = httpx.post(
        f"{base}/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "scope": "openid,AdobeID,firefly_api,ff_apis",
        },
    ).json()["access_token"]
    response = httpx.get(
        f"{base}/v3/custom-models", headers={"Authorization": f"Bearer {token}", "x-api-key": credentials["client_id"]}
    )
    assert response.status_code == 200
    assert (response.json()["custom_models"], response.json()["total_count"]) == ([], 0)


def test_the_token_secret_is_generated_private_in_the_data_directory(
    server: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    _base, data_dir, _process = server
    assert stat.S_IMODE((data_dir / "token-secret").stat().st_mode) == 0o600
