"""The database: migrations describe exactly the models, upgrades are repeatable, SQLite runs in WAL mode."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from callbackd.db import Database, schema_state, upgrade
from callbackd.models import Base


def test_the_migrations_build_exactly_the_models(workdir):
    database = Database(f"sqlite:///{workdir / 'm.db'}")
    upgrade(database.engine)
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    current, head = schema_state(database.engine)
    assert current == head
    upgrade(database.engine)  # a second upgrade changes nothing
    assert schema_state(database.engine) == (current, head)
    database.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(workdir):
    database = Database(f"sqlite:///{workdir / 'w.db'}")
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    database.dispose()
