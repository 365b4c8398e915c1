"""Alembic environment: runs migrations on the engine handed over by `ember.store.database.migrate`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from ember.store.tables import Base

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("Ember's migrations run through ember.store.database.migrate(engine)")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
