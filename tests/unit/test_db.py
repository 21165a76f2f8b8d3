"""The database: migrations describe exactly the models, upgrades are repeatable, SQLite runs in WAL mode."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import text

from callbackd.store.db import MIGRATIONS, SCHEMA_HEAD, Database, current_revision, schema_state, upgrade
from callbackd.store.models import Base


def test_the_migrations_build_exactly_the_models(workdir):
    database = Database(f"sqlite:///{workdir / 'm.db'}")
    upgrade(database.engine)
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    current, head = schema_state(database.engine)
    assert current == head == SCHEMA_HEAD == current_revision(database.engine)  # see SCHEMA_HEAD
    upgrade(database.engine)  # a second upgrade changes nothing
    assert schema_state(database.engine) == (current, head)
    database.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(workdir):
    database = Database(f"sqlite:///{workdir / 'w.db'}")
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    database.dispose()


def test_a_database_behind_the_code_is_upgraded_and_a_new_one_created(workdir):
    database = Database(f"sqlite:///{workdir / 'u.db'}")
    assert current_revision(database.engine) is None
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0004")  # a database one migration behind
    assert current_revision(database.engine) == "0004"
    database.ensure_schema()
    assert current_revision(database.engine) == SCHEMA_HEAD
    with database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
    database.dispose()
