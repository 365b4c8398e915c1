"""What the `ember` command prints when it cannot do what was asked: one line a user can act on, exit status 1,
no traceback (EMBER_DEBUG=1 brings the traceback back)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

EMBER = Path(sys.executable).parent / "ember"


def _run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EMBER), *args], capture_output=True, text=True, timeout=120, env={**os.environ, **env})


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_generate_against_a_server_that_is_not_running_says_so_in_one_line() -> None:
    port = _closed_port()
    result = _run(
        "generate", "a zorb", "--url", f"http://127.0.0.1:{port}", "--client-id", "id", "--client-secret", "secret"
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: cannot reach the Ember server at http://127.0.0.1:{port} (")
    assert lines[0].endswith("is `ember serve` running?")
    assert "Traceback" not in result.stdout + result.stderr


def test_engine_train_with_an_unknown_base_model_says_so_in_one_line(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    result = _run("engine", "train", str(images), "--out", str(tmp_path / "work"), "--base-model", "sd9")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: unknown base model 'sd9'; known: ") and "tiny" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


def test_ember_debug_shows_the_traceback() -> None:
    result = _run(
        "generate",
        "a zorb",
        "--url",
        f"http://127.0.0.1:{_closed_port()}",
        "--client-id",
        "i",
        "--client-secret",
        "s",
        EMBER_DEBUG="1",
    )
    assert result.returncode == 1 and "ConnectError" in result.stdout + result.stderr
