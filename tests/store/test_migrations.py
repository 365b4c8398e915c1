"""Migrations build the whole schema from an empty database, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from sqlalchemy import inspect, text

from ember.store.database import migrate, open_engine
from ember.store.tables import Base

EXPECTED_TABLES = {
    "organizations",
    "projects",
    "api_clients",
    "users",
    "custom_models",
    "custom_model_versions",
    "training_images",
    "shares",
    "uploads",
    "jobs",
}


def test_migrations_create_every_table_from_an_empty_database(empty_database_url: str) -> None:
    engine = open_engine(empty_database_url)
    migrate(engine)
    assert EXPECTED_TABLES <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_migrated_columns_match_the_table_definitions(empty_database_url: str) -> None:
    engine = open_engine(empty_database_url)
    migrate(engine)
    inspector = inspect(engine)
    for table in Base.metadata.sorted_tables:
        migrated = {column["name"] for column in inspector.get_columns(table.name)}
        assert migrated == set(table.columns.keys()), table.name
    engine.dispose()


def test_migrating_an_up_to_date_database_changes_nothing(empty_database_url: str) -> None:
    engine = open_engine(empty_database_url)
    migrate(engine)
    with engine.connect() as connection:
        before = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    migrate(engine)
    with engine.connect() as connection:
        after = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    assert before == after and len(after) == 1
    engine.dispose()


def test_sqlite_connections_use_wal_a_busy_timeout_and_foreign_keys(tmp_path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'ember.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    engine.dispose()


def test_a_sqlite_database_is_created_with_its_missing_parent_directory(tmp_path) -> None:
    path = tmp_path / "nested" / "dir" / "ember.db"
    engine = open_engine(f"sqlite:///{path}")
    migrate(engine)
    assert path.is_file()
    engine.dispose()
