"""Writing a ledger's cases on PostgreSQL with COPY (psycopg 3's `cursor.copy`), in the import's transaction.

Row by row, PostgreSQL spends most of a large import parsing statements and checking each case's window through
its foreign key. Here:

- new cases (case ids the table did not hold when the import began) stream into `cases` with `COPY ... FROM STDIN`;
- changed cases stream into a temporary staging table (dropped at the transaction's end) and are merged with one
  `INSERT ... SELECT ... ON CONFLICT (case_no) DO UPDATE ... WHERE the digest differs`, which counts what it
  inserted and updated;
- windows are created with `INSERT ... ON CONFLICT DO NOTHING` and mapped by name;
- a bulk load (more new cases than the table held) first drops the table's foreign keys and its indexes other
  than its keys, and `finish` creates them again: PostgreSQL checks a foreign key row by row (a query each), but
  validates it for a whole table in one join, and builds an index from sorted keys faster than it updates it at
  random places. Dropping them locks `cases` and `windows` against readers until the import commits, so it is
  tried for a moment only (`LOCK_WAIT`); when another transaction holds them, the load goes on with them in place.

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

    def merge(self, rows: Sequence[Sequence[Any]]) -> tuple[int, int]:
        """Insert or update cases (rows as `insert` takes them): a case whose digest is the row's is left as it is.
        Returns how many were inserted and how many updated."""
        if not self.staging:
            with self.translated(f"CREATE TEMP TABLE {_STAGING}"):
                self.cursor.execute(
                    f"CREATE TEMP TABLE {_STAGING} ON COMMIT DROP AS SELECT {_LIST} FROM cases WITH NO DATA"
                )
            self.staging = True
        self._copy(_STAGING, rows)
        updates = ", ".join(f"{name} = excluded.{name}" for name in _CHANGED)
        with self.translated("INSERT INTO cases ... ON CONFLICT"):
            # xmax is 0 in a row version an INSERT made and the locking transaction's id in one ON CONFLICT updated
            self.cursor.execute(
                f"WITH merged AS (INSERT INTO cases ({_LIST}) SELECT {_LIST} FROM {_STAGING} "
                f"ON CONFLICT (case_no) DO UPDATE SET {updates} WHERE cases.digest IS DISTINCT FROM excluded.digest "
                f"RETURNING xmax = 0 AS inserted) "
                f"SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM merged"
            )
            inserted, updated = self.cursor.fetchone() or (0, 0)
            self.cursor.execute(f"TRUNCATE {_STAGING}")
        return inserted, updated

    def prepare_bulk_load(self) -> bool:
        """Drop the cases table's foreign keys and its indexes other than its keys, keeping what `finish` creates
        them again with; once per import. False when their locks were not free within `LOCK_WAIT`: the load then
        goes on with them."""
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
                "SELECT index.relname, pg_get_indexdef(pg_index.indexrelid) FROM pg_index "
                "JOIN pg_class AS index ON index.oid = pg_index.indexrelid "
                "WHERE pg_index.indrelid = 'cases'::regclass AND NOT pg_index.indisunique "
                "AND NOT pg_index.indisprimary ORDER BY index.relname"
            )
            indexes = cursor.fetchall()
            if not keys and not indexes:
                return False
            cursor.execute("SELECT current_setting('lock_timeout')")
            (lock_timeout,) = cursor.fetchone() or ("0",)
            cursor.execute("SAVEPOINT callbackd_bulk_load")
            try:
                cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT}'")
                for name, _ in keys:
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
            f'ALTER TABLE cases ADD CONSTRAINT "{name}" {definition}' for name, definition in keys
        ]
        return True

    def finish(self) -> None:
        """Create again what a bulk load dropped, validating the foreign keys over the whole table."""
        with self.translated("restore the cases table after a bulk load"):
            for sql in self.dropped:
                self.cursor.execute(sql)
        self.dropped = []

    def close(self) -> None:
        self.cursor.close()

    def _copy(self, table: str, rows: Iterable[Sequence[Any]]) -> None:
        # COPY's text format, the times already text (`stored_time`, once per distinct time): psycopg formats a row
        # of str, int, bool and None in C, a tenth of the time datetimes take it. (Binary COPY would take datetimes,
        # which a second reading process could only send as a pickle, at twice marshal's cost on both sides.)
        with self.translated(f"COPY {table}"), self.cursor.copy(f"COPY {table} ({_LIST}) FROM STDIN") as copy:
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
