"""SQLite writers wait their turn on a lock file, so the next one starts the moment the last one commits.

SQLite lets one connection write at a time. A connection that finds the write lock taken waits in SQLite's busy
handler, which sleeps 1, 2, 5, 10, 15 ms and more between tries. callbackd's transactions hold the write lock for
about a millisecond, so two dispatcher processes on one database spent half their time asleep, and a second
worker placed no more calls than one.

Here a connection's first write of a transaction (the statement the sqlite3 driver begins its transaction
before) first takes an exclusive `flock` on a lock file next to the database; the transaction's commit or
rollback gives it back, and the kernel wakes the next writer at once. The lock is the kernel's, so a process
that dies holding it lets it go.

The lock file only orders callbackd's processes: SQLite's locking still decides who writes. A writer that is not
callbackd (the sqlite3 tool) does not take it, and is waited for in SQLite's busy handler as before. Within one
process the lock is taken by one connection at a time and the others go straight to SQLite: a thread that
writes on a second connection while its first holds the lock waits for SQLite's busy timeout and fails with
"database is locked", as it always did, rather than waiting for itself. A writer waits for the one before it as
long as that one's transaction lasts.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Any

try:
    import fcntl
except ImportError:  # not on this platform: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]

# What the sqlite3 driver begins a transaction before, the explicit BEGIN of a bulk load, and a SAVEPOINT, which
# begins one in SQLite itself (a webhook's receipt is written under one).
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "BEGIN", "SAVEPOINT")

# The lock files this process holds now (by path), through which connection: one at a time per process.
_holders: dict[str, QueuedConnection] = {}
_holders_lock = threading.Lock()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_holders.clear)  # a child holds no lock its parent held


def lock_path(database: str) -> str:
    """The lock file of a database file: beside SQLite's own `-wal` and `-shm`."""
    return f"{database}-writer"


class QueuedConnection(sqlite3.Connection):
    """A sqlite3 connection whose transactions take their turn on the database's lock file (see the module)."""

    def __init__(self, database: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(database, *args, **kwargs)
        self._lock_path: str | None = None
        self._lock_fd: int | None = None
        self._holding = False
        if fcntl is not None and isinstance(database, str) and database not in ("", ":memory:") \
                and not kwargs.get("uri"):
            path = lock_path(os.path.abspath(database))
            try:
                # read-only is enough for flock: every user who may write the database can take turns
                self._lock_fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
            except OSError:
                pass  # a folder this user may not create the file in: SQLite's busy handler alone, as before
            else:
                self._lock_path = path

    def cursor(self, factory: Any = None) -> Any:
        return super().cursor(factory or QueuedCursor)

    def before(self, sql: str) -> None:
        """Before a statement: wait for the lock file when the statement begins a write transaction."""
        if self._lock_fd is None or self._holding or self.in_transaction \
                or not sql.lstrip()[:9].upper().startswith(_WRITES):
            return
        assert self._lock_path is not None and fcntl is not None
        with _holders_lock:
            if self._lock_path in _holders:
                return  # another connection of this process has its turn: SQLite decides between them
            _holders[self._lock_path] = self
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except BaseException:
            self._forget()
            raise
        self._holding = True

    def after(self) -> None:
        """After a statement: a statement that failed before its transaction began gives the turn back."""
        if self._holding and not self.in_transaction:
            self.end_turn()

    def end_turn(self) -> None:
        if self._holding:
            self._holding = False
            assert self._lock_fd is not None and fcntl is not None
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            self._forget()

    def _forget(self) -> None:
        with _holders_lock:
            if _holders.get(self._lock_path or "") is self:
                del _holders[self._lock_path or ""]

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self.end_turn()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.end_turn()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.end_turn()
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None


class QueuedCursor(sqlite3.Cursor):
    connection: QueuedConnection

    def execute(self, sql: str, parameters: Any = (), /) -> QueuedCursor:
        self.connection.before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after()

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> QueuedCursor:
        self.connection.before(sql)
        try:
            return super().executemany(sql, seq_of_parameters)
        finally:
            self.connection.after()
