"""Browser fixtures: a real `ember serve` (with its local Ray) on a fresh data directory, headless Debian
chromium driven by Playwright, and a folder for screenshots."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ember.config import Settings
from ember.identity import ClientCredentials, create_client, create_user
from ember.store.database import open_engine, session_factory, transaction

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running `ember serve` and the data directory it owns (the test adds users and clients to it)."""

    url: str
    data_dir: Path

    def add_user(self, org: str, email: str, password: str) -> None:
        self._in_store(lambda session: create_user(session, org, email, password))

    def add_client(self, org: str) -> ClientCredentials:
        credentials: list[ClientCredentials] = []
        self._in_store(lambda session: credentials.append(create_client(session, org)))
        return credentials[0]

    def _in_store(self, change: object) -> None:
        engine = open_engine(Settings(data_dir=self.data_dir).database_url)
        try:
            with transaction(session_factory(engine)) as session:
                change(session)  # type: ignore[operator]
        finally:
            engine.dispose()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    directory = Path(os.environ.get("EMBER_TEST_ARTIFACTS") or "artifacts") / "web"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.png"):
        stale.unlink()  # screenshots of an earlier run would pass for steps this run never reached
    return directory


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, artifacts: Path) -> Iterator[Server]:
    port = _free_port()
    data_dir = tmp_path_factory.mktemp("web") / "data"
    env = {
        **os.environ,
        "EMBER_RAY_NUM_CPUS": "2",
        "EMBER_ENGINE_WORKERS": "1",
        "EMBER_RATE_LIMIT_PER_MINUTE": "0",
        "EMBER_RATE_LIMIT_PER_DAY": "0",
    }
    for name in ("EMBER_DATA_DIR", "EMBER_RAY_ADDRESS", "EMBER_CONFIG"):
        env.pop(name, None)
    log = (artifacts / "server.log").open("w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "ember"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    ready = False
    while time.monotonic() < deadline and process.poll() is None and not ready:
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            pass
        if not ready:
            time.sleep(0.25)  # polling another process's port: there is no event to await
    if not ready:
        process.terminate()
        process.wait(timeout=30)
        log.close()
        pytest.fail(f"ember serve did not become ready; see {artifacts / 'server.log'}")
    yield Server(url=url, data_dir=data_dir)
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not CHROMIUM.exists():
        message = "Debian's chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("EMBER_TEST_REQUIRE_BROWSER") == "1":
            pytest.fail(message)  # CI installs it: a skip there would hide a broken set-up
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class Walk:
    """A page and the screenshots of each step, numbered in order (`prefix` keeps two walks' files apart)."""

    def __init__(self, page: Any, artifacts: Path, prefix: str = "") -> None:
        self.page = page
        self.artifacts = artifacts
        self.prefix = prefix
        self.count = 0

    def shot(self, name: str, full_page: bool = True) -> None:
        self.count += 1
        path = self.artifacts / f"{self.prefix}{self.count:02d}-{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page)


@pytest.fixture
def walk_of(artifacts: Path) -> Callable[..., Walk]:
    return lambda page, prefix="": Walk(page, artifacts, prefix)


def write_files(directory: Path, files: dict[str, bytes]) -> list[Path]:
    """The files written into `directory` (made if need be), in the order given."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        paths.append(path)
    return paths
