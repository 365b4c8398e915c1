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


def start_server(data_dir: Path, **env_values: str) -> tuple[str, subprocess.Popen[str]]:
    """`ember serve` on a free port in a child process, its output in serve.log beside the data directory."""
    port = _free_port()
    env = {**os.environ, "EMBER_RAY_ADDRESS": "disabled", **env_values}
    env.pop("EMBER_DATA_DIR", None)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(data_dir.parent / f"serve-{port}.log", "w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "ember"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
    return f"http://127.0.0.1:{port}", process


def wait_until_serving(base: str, process: subprocess.Popen[str], timeout: float = 60) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.1)  # polling a port: there is no event to await from another process
    return False


def stop_server(process: subprocess.Popen[str]) -> None:
    process.terminate()
    process.wait(timeout=60)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    data_dir = tmp_path / "data"
    base, process = start_server(data_dir)
    wait_until_serving(base, process)
    yield base, data_dir, process
    stop_server(process)


def _token(base: str, credentials: dict[str, str]) -> str:
    response = httpx.post(
        f"{base}/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": credentials["client_id"],
            "client_secret": credentials["client_secret"],
            "scope": "openid,AdobeID,firefly_api,ff_apis",
        },
    )
    token: str = response.json()["access_token"]
    return token


def test_first_start_writes_private_credentials_that_get_a_token_and_an_empty_listing(
    server: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, data_dir, _process = server
    path = data_dir / "credentials.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    credentials = json.loads(path.read_text())
    token = _token(base, credentials)
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


def test_the_data_directory_is_private_and_every_file_in_it_owner_only(
    server: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    import io

    from PIL import Image

    base, data_dir, _process = server
    credentials = json.loads((data_dir / "credentials.json").read_text())
    token = _token(base, credentials)
    png = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(png, format="PNG")
    uploaded = httpx.post(
        f"{base}/v2/storage/image",
        content=png.getvalue(),
        headers={
            "Authorization": f"Bearer {token}",
            "x-api-key": credentials["client_id"],
            "content-type": "image/png",
        },
    )
    assert uploaded.status_code == 200, uploaded.text
    files = [path for path in data_dir.rglob("*") if path.is_file()]
    directories = [data_dir, *(path for path in data_dir.rglob("*") if path.is_dir())]
    assert {"ember.db", "ember.db-wal", "token-secret", "credentials.json"} <= {path.name for path in files}
    assert any(path.parent.name == "uploads" for path in files)
    readable_by_others = [path for path in [*files, *directories] if path.stat().st_mode & 0o077]
    assert {str(path): oct(stat.S_IMODE(path.stat().st_mode)) for path in readable_by_others} == {}


@pytest.mark.slow
def test_the_embedded_ray_listens_on_loopback_only(tmp_path: Path) -> None:
    import psutil

    base, process = start_server(tmp_path / "data", EMBER_RAY_ADDRESS="", EMBER_RAY_NUM_CPUS="1")
    try:
        assert wait_until_serving(base, process)
        deadline = time.monotonic() + 120
        while httpx.get(f"{base}/readyz", timeout=5).json()["checks"]["ray"] != "ok":
            assert time.monotonic() < deadline, "the embedded Ray did not come up"
            time.sleep(0.5)  # polling another process's readiness: no event to await
        tree = psutil.Process(process.pid)
        pids = {tree.pid} | {child.pid for child in tree.children(recursive=True)}
        listening = [
            (conn.laddr.ip, conn.laddr.port, psutil.Process(conn.pid).name())
            for conn in psutil.net_connections(kind="inet")
            if conn.status == psutil.CONN_LISTEN and conn.pid in pids
        ]
        ray_sockets = [entry for entry in listening if entry[1] != int(base.rsplit(":", 1)[1])]
        assert len(ray_sockets) >= 3  # at least the GCS, the raylet and a worker
        assert [entry for entry in ray_sockets if entry[0] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")] == []
    finally:
        stop_server(process)
