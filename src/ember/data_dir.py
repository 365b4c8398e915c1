"""The data directory is private to the server's user: created 0700, every file in it 0600.

It holds the database, the token-signing secret, blobs and trained LoRAs; any of them read by another local
user leaks a tenant's work or lets them forge tokens. Files Ember writes itself are created 0600 explicitly;
`private_umask()` covers what libraries write on its behalf (SQLite's WAL, model weights, checkpoints) and what
the embedded Ray's worker processes, which inherit the server's umask, write.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

log = logging.getLogger("ember.data_dir")

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
PRIVATE_UMASK = 0o077


def private_umask() -> None:
    """New files of this process and of the processes it starts are readable by their owner only."""
    os.umask(PRIVATE_UMASK)


def prepare_data_dir(path: Path) -> None:
    """Create the data directory 0700, or tighten an existing one to 0700 (when this user owns it: a directory
    provided by the operator, such as a mounted volume, is left as it is, with a warning)."""
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    if path.stat().st_mode & 0o777 == PRIVATE_DIR_MODE:
        return
    try:
        os.chmod(path, PRIVATE_DIR_MODE)
    except PermissionError:
        log.warning("the data directory %s is not private (mode %o) and this user cannot change that", path,
                    path.stat().st_mode & 0o777)


def create_private_file(path: Path) -> None:
    """Create `path` empty and 0600 unless it exists, so a library that opens it later keeps that mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE))


def write_private_bytes(path: Path, data: bytes) -> None:
    """Write `path` atomically (a temporary file beside it, then a rename), created 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)
