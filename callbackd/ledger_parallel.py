"""Reading a large CSV ledger in a second process while the importing one writes.

The reading process is a plain interpreter (`python -c`), not multiprocessing: that would run the caller's main
script again in the child (spawn) or copy a process holding database connections (fork). It gets its orders as a
pickle on stdin and sends `send` messages on stdout: ("rows", batch) for each batch of `ledger.read_rows`, then
("done", errors); or ("file", message) for a file that cannot be read.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import URL, Dialect

from callbackd.config import Settings
from callbackd.errors import LedgerFileError
from callbackd.ledger import CaseRow, RowError, open_rows, read_rows

# A CSV file this large is read, checked and normalised by a second process while this one writes: with a core to
# spare the import then takes about as long as the reading alone, the writing done meanwhile. Smaller files are not
# worth starting a process.
PARALLEL_BYTES = 8_000_000


def worth_it(path: Path) -> bool:
    # A second process only helps with a core to spare: on a busy machine its start and the rows it sends are
    # extra work competing for the same cores.
    return path.stat().st_size >= PARALLEL_BYTES and bool(sys.executable) and idle_cores() >= 1


def idle_cores(window: float = 0.1) -> float:
    """How many of this machine's cores sat idle over a short window (Linux's /proc/stat); elsewhere the cores
    less the load average. A load average can count tasks that wait without using a core."""
    def idle_and_total() -> tuple[int, int]:
        with open("/proc/stat", encoding="ascii") as stat:
            ticks = [int(field) for field in stat.readline().split()[1:]]
        return ticks[3] + ticks[4], sum(ticks)  # idle and waiting for I/O

    cores = os.cpu_count() or 1
    try:
        idle_before, total_before = idle_and_total()
        time.sleep(window)
        idle_after, total_after = idle_and_total()
    except (OSError, ValueError, IndexError):
        try:
            return cores - os.getloadavg()[0]
        except OSError:  # no load average either
            return 0.0
    return cores * (idle_after - idle_before) / max(total_after - total_before, 1)


def send(out: IO[bytes], message: tuple[str, Any]) -> None:
    # marshal writes rows of plain values (SQLite's times are text) in half the time pickle takes; anything else
    # (PostgreSQL's datetimes, the errors) goes as a pickle. Both ends are the same interpreter.
    try:
        blob, codec = marshal.dumps(message), b"m"
    except ValueError:
        blob, codec = pickle.dumps(message, pickle.HIGHEST_PROTOCOL), b"p"
    out.write(codec + len(blob).to_bytes(8, "little"))
    out.write(blob)


def receive(stream: IO[bytes]) -> tuple[str, Any] | None:
    # the next message `_send` wrote, or None when the stream ends first
    head = stream.read(9)
    size = int.from_bytes(head[1:], "little")
    blob = stream.read(size) if len(head) == 9 else b""
    if len(blob) < size or len(head) < 9:
        return None
    message: tuple[str, Any] = marshal.loads(blob) if head[:1] == b"m" else pickle.loads(blob)
    return message


def read_for_parent() -> None:
    """The reading process's main: `read_rows` of the file its parent names on stdin, sent to stdout (see
    `_send`): ("rows", batch)..., then ("done", errors); or ("file", message) for a file that cannot be read."""
    gc.disable()  # what it keeps has no cycles, and collector passes over the growing `seen` only cost time
    path, settings, encoding, dialect_name = pickle.load(sys.stdin.buffer)
    # the parent's kind of database, for the form its driver takes times in (the dialect needs no connection)
    dialect = URL.create(dialect_name).get_dialect()()
    out = sys.stdout.buffer
    try:
        rows, reader = open_rows(path, settings, encoding, None, None, dialect)
        errors: list[RowError] = []
        for batch in read_rows(rows, reader, errors):
            send(out, ("rows", batch))
        send(out, ("done", errors))
    except LedgerFileError as exc:
        send(out, ("file", str(exc)))
    out.flush()


def rows_from_process(
    path: Path, settings: Settings, encoding: str | None, dialect: Dialect, errors: list[RowError]
) -> Iterator[list[CaseRow]]:
    """`read_rows` of a CSV file, run by a second process; raises what reading the file in this one would."""
    # A plain interpreter, not multiprocessing: that would run the caller's main script again in the child
    # (spawn) or copy a process holding database connections (fork).
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}
    process = subprocess.Popen(
        [sys.executable, "-c", "from callbackd.ledger_parallel import read_for_parent; read_for_parent()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        with process.stdin:
            dialect_name = f"{dialect.name}+{dialect.driver}"
            pickle.dump((path, settings, encoding, dialect_name), process.stdin, pickle.HIGHEST_PROTOCOL)
        while True:
            message = receive(process.stdout)
            if message is None:
                raise RuntimeError(
                    f"the ledger reading process stopped early (exit code {process.wait()}); its error is above"
                )
            kind, payload = message
            if kind == "rows":
                yield payload
            elif kind == "done":
                errors.extend(payload)
                return
            else:
                raise LedgerFileError(payload)
    finally:
        process.stdout.close()
        if process.poll() is None:
            process.kill()  # only when this side stopped early: nothing will read what it still writes
        process.wait()
