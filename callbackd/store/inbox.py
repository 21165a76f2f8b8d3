"""Webhook deliveries kept while SQLite's writer is busy, applied once it is free.

SQLite has one writer at a time, and a ledger import holds it for its whole transaction (a million rows: a
minute or more). A webhook must not wait that long: when its delivery cannot become the writer within
`WRITER_WAIT`, the delivery is kept as received (its signed request, raw) in an inbox of its own, a small SQLite
file beside the database (`<database>-inbox`, created 0600: bodies carry phone numbers), and answered from what
can be read (WAL lets readers in during a write). The web app applies what the inbox holds, oldest first, once the
writer is free; while anything waits there, later deliveries queue behind it, so they apply in the order they
came. A delivery applied records the receipt `inbox:<key>` in the same transaction as its changes, so a crash
between that commit and the inbox's own never applies it twice.

PostgreSQL never needs it: its writers lock rows, not the database.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from callbackd.store.db import Database

# How long a delivery waits to become SQLite's writer before it is kept for later (other writers' transactions
# last milliseconds; only a bulk load holds the writer longer).
WRITER_WAIT = 0.2
# A delivery that fails this many times is set aside (kept in the file, logged) so those behind it can apply.
MAX_TRIES = 5
# How long the inbox waits for the writer before applying what it holds anyway (a bulk load lasts minutes).
APPLY_WAIT = 600.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    received_at TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT ''
)
"""


@dataclass(frozen=True)
class Received:
    """One webhook request as it arrived: what the inbox keeps, and replays through the web app. `key` is set
    when the request is a kept delivery being applied."""

    method: str
    path: str
    query: bytes
    headers: Sequence[tuple[bytes, bytes]]  # as ASGI gives them
    body: bytes
    key: str | None = None


# The webhook request being handled (the web app sets it for each request under /hooks/); None elsewhere.
RECEIVED: ContextVar[Received | None] = ContextVar("callbackd_received", default=None)


def inbox_path(database_url: str) -> str | None:
    """The inbox file of a database: beside a SQLite file; None for PostgreSQL or an in-memory database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return f"{os.path.abspath(url.database)}-inbox"


class Inbox:
    """The deliveries kept while the writer was busy (see the module). Safe to share between threads."""

    def __init__(self, path: str) -> None:
        self.path = path
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # before SQLite creates it with the umask's mode
        self._lock = threading.Lock()
        # autocommit: every statement is its own transaction. As durable as the database it stands in for (WAL,
        # synchronous=NORMAL, see `make_engine`): a kept delivery survives the server crashing. FULL would add an
        # fsync to every delivery kept during an import, which then queue behind the import's own writes (at 300
        # webhooks a second: p99 7.5 s instead of 0.9 s), and protect nothing the database itself does not lose.
        self._connection = sqlite3.connect(path, timeout=10, isolation_level=None, check_same_thread=False)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=NORMAL")
        self._connection.execute(_SCHEMA)

    @classmethod
    def beside(cls, database_url: str) -> Inbox | None:
        """The inbox of the database at `database_url`, or None where none is needed (see `inbox_path`)."""
        path = inbox_path(database_url)
        return None if path is None else cls(path)

    # ---- deciding ---------------------------------------------------------------------------------------

    def admits(self, session: Session) -> bool:
        """Whether a delivery may be applied in `session` now: True once the session's transaction has become
        SQLite's writer (within `WRITER_WAIT`) and nothing waits in the inbox; False when it must be kept."""
        if self.waiting() or not _become_writer(session, WRITER_WAIT):
            return False
        if self.waiting():  # kept meanwhile: this one queues behind it, and the writer goes back at once
            _give_writer_back(session)
            return False
        return True

    # ---- keeping and applying ---------------------------------------------------------------------------

    def keep(self, received: Received) -> str:
        """Keep a delivery to apply later; returns its key."""
        key = uuid.uuid4().hex
        with self._lock:
            self._connection.execute(
                "INSERT INTO deliveries (key, method, path, query, headers, body, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, received.method, received.path, received.query.decode("latin-1"),
                 json.dumps([(name.decode("latin-1"), value.decode("latin-1")) for name, value in received.headers]),
                 received.body, datetime.now(UTC).isoformat()),
            )
        return key

    def waiting(self) -> bool:
        """Whether any delivery waits to be applied."""
        with self._lock:
            row = self._connection.execute("SELECT 1 FROM deliveries WHERE tries < ? LIMIT 1", (MAX_TRIES,))
            return row.fetchone() is not None

    def oldest(self) -> Received | None:
        """The delivery waiting longest, or None."""
        with self._lock:
            row = self._connection.execute(
                "SELECT key, method, path, query, headers, body FROM deliveries WHERE tries < ? "
                "ORDER BY id LIMIT 1", (MAX_TRIES,),
            ).fetchone()
        if row is None:
            return None
        key, method, path, query, headers, body = row
        return Received(method, path, query.encode("latin-1"),
                        [(name.encode("latin-1"), value.encode("latin-1")) for name, value in json.loads(headers)],
                        bytes(body), key=key)

    def applied(self, key: str) -> None:
        """The delivery `key` has been applied (or refused for good): forget it."""
        with self._lock:
            self._connection.execute("DELETE FROM deliveries WHERE key = ?", (key,))

    def failed(self, key: str, error: str) -> bool:
        """Applying the delivery `key` failed; True when it has now failed `MAX_TRIES` times and is set aside."""
        with self._lock:
            self._connection.execute("UPDATE deliveries SET tries = tries + 1, error = ? WHERE key = ?",
                                     (error[:500], key))
            row = self._connection.execute("SELECT tries FROM deliveries WHERE key = ?", (key,)).fetchone()
        return row is not None and row[0] >= MAX_TRIES

    def count(self) -> int:
        """How many deliveries wait (those set aside not counted)."""
        with self._lock:
            row = self._connection.execute("SELECT count(*) FROM deliveries WHERE tries < ?", (MAX_TRIES,))
            return int(row.fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._connection.close()


def wait_for_writer(database: Database) -> None:
    """Return once SQLite's writer is free (a long import has committed), or after `APPLY_WAIT` seconds: kept
    deliveries are applied then, rather than wait for the writer in the threads that answer webhooks."""
    with database.session() as session:
        if _become_writer(session, APPLY_WAIT):
            _give_writer_back(session)


def _become_writer(session: Session, seconds: float) -> bool:
    """Begin the session's transaction as SQLite's writer, waiting at most `seconds` for the writer before it;
    False when it is still busy then."""
    raw = session.connection().connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    if raw.in_transaction:
        return True
    # A plain cursor: this transaction does not take its turn on the writers' lock file (`sqlite_writers`), which
    # the import holds for as long as it writes; SQLite's own lock, tried for `seconds`, decides.
    cursor = sqlite3.Cursor(raw)
    try:
        timeout = cursor.execute("PRAGMA busy_timeout").fetchone()[0]
        cursor.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")
        try:
            cursor.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:  # database is locked
            return False
        finally:
            cursor.execute(f"PRAGMA busy_timeout = {int(timeout)}")
        return True
    finally:
        cursor.close()


def _give_writer_back(session: Session) -> None:
    """End the transaction `_become_writer` began (nothing was written in it)."""
    raw = session.connection().connection.driver_connection
    assert isinstance(raw, sqlite3.Connection)
    raw.rollback()


@contextmanager
def reading_only(session: Session) -> Iterator[None]:
    """The session may read but not write while the block runs: a write fails at once instead of waiting for the
    busy writer."""
    connection = session.connection()
    connection.exec_driver_sql("PRAGMA query_only = 1")
    try:
        yield
    finally:
        connection.exec_driver_sql("PRAGMA query_only = 0")
