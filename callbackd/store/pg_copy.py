"""Writing a ledger's cases on PostgreSQL with COPY (psycopg 3's `cursor.copy`), in the import's transaction.

Row by row, PostgreSQL spends most of a large import parsing statements and checking each case's window through
its foreign key. Here:

- new cases (case ids the table did not hold when the import began) stream into `cases` with `COPY ... FROM STDIN`;
- changed cases stream into a temporary staging table (dropped at the transaction's end), each with its row id, and
  are merged with one `UPDATE ... FROM` the staging table by row id (cases are never deleted);
- windows are created with `INSERT ... ON CONFLICT DO NOTHING` and mapped by name;
- a bulk load (more new cases than the table held) first drops the table's foreign keys, its unique constraint on
  the case id and its indexes other than its primary key, and `finish` creates them again: PostgreSQL checks a
  foreign key row by row (a query each), but validates it for a whole table in one join, and builds an index (and
  checks it is unique) from sorted keys faster than it updates it at random places. The import itself keeps case
  ids unique meanwhile: it writes only case ids the table did not hold, each once. Dropping them locks `cases` and
  `windows` against readers until the import commits, so it is tried for a moment only (`LOCK_WAIT`); when another
  transaction holds them, the load goes on with them in place.

Ledger imports take turns (`pg_advisory_xact_lock`), so the case ids an import finds at its start are the ones it
competes with. Everything happens in the caller's transaction: a rollback leaves nothing, the dropped constraints
and indexes included. A database error is raised as SQLAlchemy's (an `IntegrityError` for a broken constraint),
its message cut to PostgreSQL's first line: COPY's context lines would quote a row, with its phone number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from callbackd.store.models import Case

# A case's columns in the order `insert` and `merge` take a row's values: every column of the table but its id
# (the model's order, which the ledger's rows follow).
COLUMNS = tuple(column.name for column in Case.__table__.columns if column.name != "id")
_LIST = ", ".join(COLUMNS)
# what a re-import may change: everything but the case id and when the case was first imported
_CHANGED = tuple(name for name in COLUMNS if name not in ("case_no", "created_at"))
_STAGING = "callbackd_ledger_staging"
# One key for every ledger import's advisory lock (an arbitrary constant: "callbackd" in ASCII, truncated)
_IMPORT_LOCK = 0x63616C6C6261636B
# How long a bulk load waits for the locks that dropping a foreign key and an index need.
LOCK_WAIT = "2s"


def stored_time(moment: datetime) -> str:
    """An aware time as the text COPY reads into a `timestamptz` column (in UTC)."""
    return moment.astimezone(UTC).isoformat(" ")


class CaseCopy:
    """The cases table written through COPY, on the connection of the import's transaction (see the module)."""

    def __init__(self, connection: Connection) -> None:
        driver = connection.connection.driver_connection
        if not isinstance(driver, psycopg.Connection):
            raise TypeError(f"COPY needs a psycopg 3 connection, not {type(driver).__name__}")
        self.cursor = driver.cursor()
        self.staging = False
        self.bulk_tried = False
        self.dropped: list[str] = []  # the statements that create again what `prepare_bulk_load` dropped
        with self.translated("SELECT pg_advisory_xact_lock"):
            self.cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_IMPORT_LOCK,))

    def existing(self) -> dict[str, tuple[int, str]]:
        """The table's cases: case id -> (row id, digest)."""
        with self.translated("SELECT cases"):
            self.cursor.execute("SELECT case_no, id, digest FROM cases")
            return {no: (id_, digest) for no, id_, digest in self.cursor}

    def windows(self, names: Iterable[str], now: datetime) -> dict[str, int]:
        """The ids of the windows named, creating those that do not exist yet (in the order named)."""
        wanted = list(names)
        with self.translated("INSERT INTO windows"):
            self.cursor.execute(
                "INSERT INTO windows (name, created_at) SELECT name, %s FROM unnest(%s::text[]) WITH ORDINALITY "
                "AS named (name, place) ORDER BY place ON CONFLICT (name) DO NOTHING", (now, wanted),
            )
            self.cursor.execute("SELECT name, id FROM windows WHERE name = ANY(%s)", (wanted,))
            return dict(self.cursor.fetchall())

    def insert(self, rows: Iterable[Sequence[Any]]) -> None:
        """Insert new cases, each row its values in `COLUMNS` order (times as `stored_time` gives them, or aware),
        None for NULL."""
        self._copy("cases", rows)

    def merge(self, rows: Sequence[Sequence[Any]]) -> int:
        """Update cases by row id, each row its id and then its values as `insert` takes them: a case whose digest
        is the row's is left as it is. Returns how many were updated."""
        if not self.staging:
            with self.translated(f"CREATE TEMP TABLE {_STAGING}"):
                self.cursor.execute(
                    f"CREATE TEMP TABLE {_STAGING} ON COMMIT DROP AS SELECT id, {_LIST} FROM cases WITH NO DATA"
                )
            self.staging = True
        self._copy(_STAGING, rows, ("id", *COLUMNS))
        updates = ", ".join(f"{name} = staged.{name}" for name in _CHANGED)
        with self.translated("UPDATE cases FROM staging"):
            self.cursor.execute(
                f"UPDATE cases SET {updates} FROM {_STAGING} AS staged "
                f"WHERE cases.id = staged.id AND cases.digest IS DISTINCT FROM staged.digest"
            )
            updated = self.cursor.rowcount
            self.cursor.execute(f"TRUNCATE {_STAGING}")
        return updated

    def prepare_bulk_load(self) -> bool:
        """Drop the cases table's foreign keys, unique constraints and indexes other than its primary key, keeping
        what `finish` creates them again with; once per import. False when their locks were not free within
        `LOCK_WAIT`: the load then goes on with them."""
        if self.bulk_tried:
            return bool(self.dropped)
        self.bulk_tried = True
        cursor = self.cursor
        with self.translated("prepare a bulk load of cases"):
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'cases'::regclass AND contype = 'f' ORDER BY conname"
            )
            keys = cursor.fetchall()
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'cases'::regclass AND contype = 'u' ORDER BY conname"
            )
            uniques = cursor.fetchall()
            cursor.execute(
                "SELECT index.relname, pg_get_indexdef(pg_index.indexrelid) FROM pg_index "
                "JOIN pg_class AS index ON index.oid = pg_index.indexrelid "
                "WHERE pg_index.indrelid = 'cases'::regclass AND NOT pg_index.indisunique "
                "AND NOT pg_index.indisprimary ORDER BY index.relname"
            )
            indexes = cursor.fetchall()
            if not keys and not uniques and not indexes:
                return False
            cursor.execute("SELECT current_setting('lock_timeout')")
            (lock_timeout,) = cursor.fetchone() or ("0",)
            cursor.execute("SAVEPOINT callbackd_bulk_load")
            try:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
                for name, _ in keys + uniques:
                    cursor.execute(f'ALTER TABLE cases DROP CONSTRAINT "{name}"')
                for name, _ in indexes:
                    cursor.execute(f'DROP INDEX "{name}"')
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected):
                cursor.execute("ROLLBACK TO SAVEPOINT callbackd_bulk_load")  # the setting goes back with it
                return False
            cursor.execute("RELEASE SAVEPOINT callbackd_bulk_load")
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", (lock_timeout,))
        # indexes first: validating a foreign key is one join, faster with them
        self.dropped = [sql for _, sql in indexes] + [
            f'ALTER TABLE cases ADD CONSTRAINT "{name}" {definition}' for name, definition in uniques + keys
        ]
        return True

    def finish(self) -> None:
        """Create again what a bulk load dropped, validating the foreign keys and unique constraints over the
        whole table."""
        with self.translated("restore the cases table after a bulk load"):
            for sql in self.dropped:
                self.cursor.execute(sql)
        self.dropped = []

    def close(self) -> None:
        self.cursor.close()

    def _copy(self, table: str, rows: Iterable[Sequence[Any]], columns: Sequence[str] = COLUMNS) -> None:
        # COPY's text format, the times already text (`stored_time`, once per distinct time): psycopg formats a row
        # of str, int, bool and None in C, a tenth of the time datetimes take it. (Binary COPY would take datetimes,
        # which a second reading process could only send as a pickle, at twice marshal's cost on both sides.)
        listed = ", ".join(columns)
        with self.translated(f"COPY {table}"), self.cursor.copy(f"COPY {table} ({listed}) FROM STDIN") as copy:
            write = copy.write_row
            for row in rows:
                write(row)

    @contextmanager
    def translated(self, statement: str) -> Iterator[None]:
        """Raise a database error as SQLAlchemy's, with PostgreSQL's first line only (see the module)."""
        try:
            yield
        except psycopg.Error as exc:
            primary = exc.diag.message_primary or type(exc).__name__
            bare = type(exc)(primary)
            raise DBAPIError.instance(statement, None, bare, psycopg.Error, hide_parameters=True) from None
