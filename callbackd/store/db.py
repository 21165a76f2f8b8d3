"""Engine and sessions, and the Alembic upgrade that `callbackd init` and every other command run."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Table,
    any_,
    bindparam,
    create_engine,
    event,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm import Mapper, Session, class_mapper, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from callbackd.core.errors import DatabaseError
from callbackd.store.sqlite_writers import QueuedConnection

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The newest migration's revision. Every command checks the database against it, which needs no Alembic; a test
# holds it equal to what Alembic finds in MIGRATIONS, so a new migration must update it.
SCHEMA_HEAD = "0013"
T = TypeVar("T")


def make_engine(url: str, *, background_checkpoints: bool = False) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys, a busy timeout and writers that take turns, and its
    folder is created.

    With `background_checkpoints`, SQLite stops checkpointing the WAL on whichever commit crosses the threshold
    (a web request would wait for it); the caller runs `checkpoint` on a timer instead.
    """
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"database_url {url!r} is not a database URL such as sqlite:///var/callbackd.db") from None
    # hide_parameters: a failing statement's message must never carry a phone number into a log or a terminal
    if parsed.get_backend_name() != "sqlite":
        try:
            engine = create_engine(parsed, pool_pre_ping=True, hide_parameters=True)
        except ImportError as exc:
            raise DatabaseError(
                f"database_url {parsed.render_as_string()} needs its driver ({exc.name}); for PostgreSQL install "
                f"callbackd with the postgres extra: pip install 'callbackd[postgres]'"
            ) from None
        # several rows in one INSERT ... VALUES, as SQLAlchemy does for psycopg2, instead of psycopg's pipelined
        # statement a row: the server runs one statement for a survey's answers, not one an answer
        if engine.dialect.name == "postgresql":
            engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine
    if parsed.database and parsed.database != ":memory:":
        _private_database_file(Path(parsed.database), url)
    # writers take turns on a lock file instead of sleeping in SQLite's busy handler (see sqlite_writers)
    engine = create_engine(parsed, connect_args={"timeout": 30, "factory": QueuedConnection}, hide_parameters=True)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if background_checkpoints:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    return engine


def _private_database_file(database: Path, url: str) -> None:
    """Create a missing SQLite database file readable by its owner only (0600), in a folder of its own made 0700:
    it holds applicants' names and numbers. SQLite gives its journals the database file's mode. Existing files and
    folders keep theirs."""
    try:
        if not database.parent.exists():
            database.parent.parent.mkdir(parents=True, exist_ok=True)
            database.parent.mkdir(mode=0o700, exist_ok=True)
            os.chmod(database.parent, 0o700)  # whatever the umask
        descriptor = os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    except OSError as exc:
        raise DatabaseError(f"cannot create the database file for {url}: {exc.strerror}") from None
    os.close(descriptor)
    os.chmod(database, 0o600)


# Alembic is imported where it is used: most commands only check that the schema is current.


def _alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def schema_state(engine: Engine) -> tuple[str | None, str | None]:
    """(the database's revision, the code's head revision)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config()).get_current_head()
    try:
        with engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(f"cannot open the database: {exc.orig}") from None
    return current, head


def current_revision(engine: Engine) -> str | None:
    """The database's revision as Alembic recorded it; None for a database Alembic never upgraded."""
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            revisions = list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except OperationalError as exc:
        raise DatabaseError(f"cannot open the database: {exc.orig}") from None
    return revisions[0] if len(revisions) == 1 else None  # several heads: let Alembic sort it out


def upgrade(engine: Engine) -> None:
    """Create the schema or bring it to the code's head revision."""
    from alembic import command

    config = _alembic_config()
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except OperationalError as exc:
        raise DatabaseError(f"cannot upgrade the database: {exc.orig}") from None


def write_through(session: Session, row: Any, **values: Any) -> None:
    """Set columns of a row: with one UPDATE on its table now, the values then shown on the row as loaded, so that
    the commit's unit of work has nothing to write for them (the dispatcher's every attempt ends so, and the
    unit of work would cost more than the write). A row not in the database yet takes them as attributes."""
    state = inspect(row)
    if state.key is None:
        for key, value in values.items():
            setattr(row, key, value)
        return
    write_row(session, state.mapper.class_, state.identity[0], **values)


def write_row(session: Session, model: type, row_id: Any, **values: Any) -> None:
    """Set columns of the row of `model` with id `row_id`, loaded or not, with one UPDATE on its table (built once
    per set of columns); a row the session holds shows the values as loaded."""
    mapper: Mapper[Any] = class_mapper(model)
    table = cast(Table, mapper.local_table)
    statement = _WRITES.get((table, *values))
    if statement is None:
        statement = _WRITES[(table, *values)] = (
            update(table).where(table.c.id == bindparam("_row"))
            .values({mapper.get_property(key).columns[0].key: bindparam(f"_{key}") for key in values})
        )
    session.connection().execute(statement, {"_row": row_id, **{f"_{k}": v for k, v in values.items()}})
    _show_written(session, model, [row_id], **values)


def _show_written(session: Session, model: type, row_ids: Iterable[Any], **values: Any) -> None:
    """The rows of `model` among `row_ids` that the session holds show `values` as loaded: what an UPDATE on the
    table just wrote, as an ORM update would leave them."""
    for row_id in row_ids:
        loaded = session.identity_map.get(identity_key(model, row_id))
        if loaded is not None:
            for key, value in values.items():
                set_committed_value(loaded, key, value)


_WRITES: dict[tuple[Any, ...], Any] = {}


def chunks(ids: Sequence[T], size: int = 500) -> Iterator[Sequence[T]]:
    """`ids` in slices of `size`: IN lists and batches of a bounded length."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def among(session: Session, column: Any, values: Sequence[Any]) -> Iterator[ColumnElement[bool]]:
    """Conditions that `column` is one of `values`, together covering them all, for a statement run once each. On
    PostgreSQL a single `column = ANY(array)`: one parameter, so its driver parses the query once, not the
    thousands of placeholders of an IN list each time; elsewhere an IN list for each `chunks` slice."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY  # here: SQLite commands need not load PostgreSQL's dialect

        yield column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
        return
    for chunk in chunks(values):
        yield column.in_(chunk)


def insert_rows(session: Session, model: type, rows: Sequence[dict[str, Any]]) -> None:
    """Insert `rows` of `model` (each with the same keys). On PostgreSQL with one statement whatever their number,
    each column one array parameter (`unnest`): a query its driver parses once, not one with a placeholder a value;
    elsewhere with the driver's executemany."""
    if not rows:
        return
    if session.get_bind().dialect.name != "postgresql":
        session.execute(insert(model), rows)
        return
    from sqlalchemy.dialects.postgresql import ARRAY

    mapper: Mapper[Any] = class_mapper(model)
    columns = [mapper.get_property(key).columns[0] for key in rows[0]]
    arrays = [func.unnest(bindparam(None, [row[key] for row in rows], type_=ARRAY(column.type)))
              for key, column in zip(rows[0], columns, strict=True)]
    session.execute(insert(cast(Table, mapper.local_table)).from_select(columns, select(*arrays)))


class Database:
    """An engine and its session factory."""

    def __init__(self, url: str, *, background_checkpoints: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, background_checkpoints=background_checkpoints)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def ensure_schema(self) -> None:
        """Upgrade when the database is behind the code (a new database is created)."""
        if current_revision(self.engine) == SCHEMA_HEAD:
            return
        current, head = schema_state(self.engine)
        if current == head:
            return
        try:
            upgrade(self.engine)
        except (DatabaseError, DBAPIError):
            # a worker and beat starting together on a new database: whoever lost the race finds it upgraded
            if schema_state(self.engine)[0] != head:
                raise

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def one_connection(self) -> Iterator[Database]:
        """This database on one connection for a while: the sessions of what it yields share the connection, each
        still its own transaction. A run of short transactions (placing a message's attempts) then takes it from
        the pool, and PostgreSQL's liveness check, once instead of once each."""
        with self.engine.connect() as connection:
            yield _OnOneConnection(self, connection)

    def checkpoint(self) -> None:
        """Copy SQLite's write-ahead log into the database without blocking writers (no-op elsewhere)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def dispose(self) -> None:
        self.engine.dispose()


class _OnOneConnection(Database):
    """A database whose sessions all run on one connection (`Database.one_connection`)."""

    def __init__(self, database: Database, connection: Connection) -> None:
        self.url, self.engine = database.url, database.engine  # the database's own engine: no second one
        self._sessions = sessionmaker(connection, expire_on_commit=False)
