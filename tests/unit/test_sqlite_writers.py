"""SQLite writers take turns on the database's lock file: no writer sleeps in SQLite's busy handler while another
holds the write lock, and every way a transaction ends gives the turn back."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from callbackd.store.db import make_engine
from callbackd.store.sqlite_writers import QueuedConnection, lock_path


def _taken(database: Path) -> bool:
    """Whether some connection holds the database's turn now (tried from a descriptor of its own)."""
    fd = os.open(lock_path(str(database)), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _connect(database: Path, timeout: float = 5.0) -> QueuedConnection:
    connection = sqlite3.connect(str(database), timeout=timeout, factory=QueuedConnection)
    connection.execute("PRAGMA journal_mode=WAL")
    return connection


def _counter(database: Path) -> None:
    with sqlite3.connect(str(database)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
        connection.execute("INSERT INTO counter VALUES (1, 0)")


def _add(database: str, times: int, errors: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    # a busy timeout of 1 ms: any wait in SQLite's busy handler longer than that fails with "database is locked"
    connection = _connect(Path(database), timeout=0.001)
    try:
        for _ in range(times):
            cursor = connection.cursor()
            cursor.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
            time.sleep(0.0005)  # the transaction's other work, with the write lock held
            cursor.execute("UPDATE counter SET n = n + 1 WHERE id = 1")
            connection.commit()
    except sqlite3.OperationalError as exc:
        errors.put(str(exc))
    finally:
        connection.close()


def test_writers_in_two_processes_take_turns_instead_of_failing_busy(workdir: Path) -> None:
    database = workdir / "turns.db"
    _counter(database)
    errors: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()  # type: ignore[type-arg]
    workers = [multiprocessing.get_context("fork").Process(target=_add, args=(str(database), 150, errors))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert errors.empty(), errors.get()
    with sqlite3.connect(str(database)) as connection:
        assert connection.execute("SELECT n FROM counter").fetchone() == (600,)
    assert not _taken(database)


def test_every_end_of_a_transaction_gives_the_turn_back(workdir: Path) -> None:
    database = workdir / "ends.db"
    _counter(database)
    connection = _connect(database)
    cursor = connection.cursor()
    cursor.execute("SELECT n FROM counter")
    assert not _taken(database)  # reading takes no turn
    cursor.execute("UPDATE counter SET n = 5")
    assert _taken(database)
    connection.commit()
    assert not _taken(database)

    cursor.execute("UPDATE counter SET n = 6")
    connection.rollback()
    assert not _taken(database)

    cursor.execute("UPDATE counter SET n = 7")
    with pytest.raises(sqlite3.IntegrityError):
        cursor.execute("INSERT INTO counter VALUES (1, 0)")
    assert _taken(database)  # the transaction goes on until it is rolled back
    connection.rollback()
    assert not _taken(database)

    with pytest.raises(sqlite3.OperationalError):
        cursor.execute("UPDATE no_such_table SET n = 1")  # failed before its transaction began
    assert not connection.in_transaction
    assert not _taken(database)

    cursor.execute("SAVEPOINT receipt")  # begins a transaction in SQLite itself
    assert _taken(database)
    cursor.execute("UPDATE counter SET n = 5")
    cursor.execute("RELEASE SAVEPOINT receipt")  # the outermost savepoint: its release commits
    assert not connection.in_transaction and not _taken(database)

    cursor.execute("UPDATE counter SET n = 8")
    connection.close()  # closed in the middle: rolled back, the turn given back
    assert not _taken(database)
    with sqlite3.connect(str(database)) as check:
        assert check.execute("SELECT n FROM counter").fetchone() == (5,)


def test_a_second_connection_of_the_same_thread_is_left_to_sqlite_not_deadlocked(workdir: Path) -> None:
    database = workdir / "same.db"
    _counter(database)
    first, second = _connect(database), _connect(database, timeout=0.05)
    first.cursor().execute("UPDATE counter SET n = 1")
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        second.cursor().execute("UPDATE counter SET n = 2")
    assert time.monotonic() - started < 5
    second.rollback()
    first.commit()
    second.cursor().execute("UPDATE counter SET n = 3")  # its turn now
    assert _taken(database)
    second.commit()
    assert not _taken(database)
    first.close()
    second.close()


def test_callbackd_sqlite_engines_queue_their_writers(workdir: Path) -> None:
    database = workdir / "engine.db"
    engine = make_engine(f"sqlite:///{database}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (n INTEGER)"))
    with engine.begin() as connection:
        connection.execute(text("INSERT INTO t VALUES (1)"))
        assert _taken(database)
    assert not _taken(database)
    engine.dispose()


def test_a_lock_file_that_cannot_be_opened_leaves_the_writers_to_sqlite(workdir: Path) -> None:
    database = workdir / "blocked.db"
    _counter(database)
    Path(lock_path(str(database))).mkdir()  # in the lock file's place: it cannot be opened as one
    connection = _connect(database)
    cursor = connection.cursor()
    cursor.execute("UPDATE counter SET n = 9")
    connection.commit()
    assert cursor.execute("SELECT n FROM counter").fetchone() == (9,)
    connection.close()
