"""Connecting to the database (SQLite in WAL mode, or PostgreSQL) and migrating it to the current schema."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from ember.data_dir import create_private_file

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Any fixed 64-bit number, the same in every Ember server: the key of the advisory lock of setup_lock().
SETUP_LOCK_KEY = 0x456D626572  # "Ember"


def open_engine(database_url: str) -> Engine:
    """An engine for `database_url`; SQLite files get WAL, a busy timeout and enforced foreign keys."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
    if url.database and url.database != ":memory:":
        # SQLite gives the WAL and shared-memory files the database file's mode: create it private first.
        create_private_file(Path(url.database))
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on error."""
    with factory() as session, session.begin():
        yield session


def alembic_config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["engine"] = engine
    return config


@contextmanager
def setup_lock(engine: Engine) -> Iterator[None]:
    """Held while a server migrates the schema and does its first-start set-up, so that servers starting
    together take turns: the first does the work, the others find it done (rather than racing to insert the
    same `alembic_version` row or the same default organization).

    PostgreSQL: a session-level advisory lock on a connection of its own. A SQLite file: an exclusive lock
    on a file beside it (servers sharing a SQLite file share a machine)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SETUP_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": SETUP_LOCK_KEY})
                connection.commit()
        return
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".setup-lock")
    create_private_file(lock_path)
    with open(lock_path, "rb") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock_file, fcntl.LOCK_UN)


def migrate(engine: Engine) -> None:
    """Bring the schema up to the newest migration (a no-op when it is already there)."""
    command.upgrade(alembic_config(engine), "head")


def after_commit(session: Session, action: Callable[[], None]) -> None:
    """Run `action` once the session's transaction commits, never when it rolls back: work outside the database
    that must follow the rows (deleting blobs: a blob left behind by a failed delete is waste, a row pointing at
    no blob is an error). Services call this instead of committing; the commit stays the session owner's."""
    event.listen(session, "after_commit", lambda _session: action(), once=True)
