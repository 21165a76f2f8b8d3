"""Reading a large CSV ledger in a second process while the importing one writes.

The reading process sends messages (see `encode`) through a pipe: ("titles", the title rows skipped above the
header), ("rows", (batch, places)) for each batch of `rows.read_pieces`, then ("done", errors); or ("file",
message) for a file that cannot be read. The importing process drops the rows whose case id an earlier row has
(`rows.first_rows`): reading is the slower side, and that work fits in the writing's waits. A thread of its own
writes the messages (see `Sender`), so the reading runs up to `AHEAD` batches ahead of the writing.

A process with no other thread forks it: the copy starts reading at once, with everything already imported, and
leaves by `os._exit`, so it never touches the database connections it copied nor runs the importer's clean-ups. A
process running other threads (a web server, a worker) cannot fork safely, as another thread may hold a lock the
copy would wait on forever; it starts a plain interpreter (`python -c`) instead, which gets its orders as a pickle
on stdin and answers on stdout. Not multiprocessing: its spawn would run the caller's main script again.
"""

from __future__ import annotations

import gc
import marshal
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import URL, Dialect

from callbackd.core.errors import LedgerFileError
from callbackd.core.settings import Settings
from callbackd.intake.rows import Batch, RowError, TitleRows, first_rows, open_rows, read_pieces, titles_of
from callbackd.intake.tables import Reading

# A CSV file this large is read, checked and normalised by a second process while this one writes: with a core to
# spare the import then takes about as long as the reading alone, the writing done meanwhile. Smaller files are not
# worth starting a process.
PARALLEL_BYTES = 8_000_000


def worth_it(path: Path) -> bool:
    # A second process only helps with a core to spare: on a busy machine its start and the rows it sends are
    # extra work competing for the same cores.
    return path.stat().st_size >= PARALLEL_BYTES and bool(sys.executable) and idle_cores() >= 1


def idle_cores(window: float = 0.05) -> float:
    """How many of this machine's cores sat idle over a short window (Linux's /proc/stat, which counts in
    hundredths of a second: five per core in the default window); elsewhere the cores less the load average. A
    load average can count tasks that wait without using a core."""
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


def encode(message: tuple[str, Any]) -> bytes:
    """One message as the reading process writes it to the pipe, for `receive` at the other end."""
    # marshal writes rows of plain values (the times are text on SQLite and PostgreSQL alike, see `time_storage`)
    # in half the time pickle takes; anything else (the errors) goes as a pickle. Both ends are the same interpreter.
    try:
        blob, codec = marshal.dumps(message), b"m"
    except ValueError:
        blob, codec = pickle.dumps(message, pickle.HIGHEST_PROTOCOL), b"p"
    return codec + len(blob).to_bytes(8, "little") + blob


# Batches the reading process may have ready beyond what the pipe holds (about 3 MB each).
AHEAD = 8


class Sender:
    """Sends messages to `out` (see `encode`) from a thread of its own, so that reading goes on while the pipe is
    full: up to `ahead` messages wait their turn. Reading and writing a batch take about as long, but not evenly:
    a pipe that holds less than one batch makes each side wait for the other at every batch.

    `close` waits until every message is written. A write that fails (the importing process stopped reading)
    raises from the next `send` or from `close`; the messages still waiting are dropped, so neither blocks."""

    def __init__(self, out: IO[bytes], ahead: int = AHEAD) -> None:
        self.out = out
        self.waiting: queue.Queue[bytes | None] = queue.Queue(ahead)
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._write, name="ledger-sender", daemon=True)
        self.thread.start()

    def send(self, message: tuple[str, Any]) -> None:
        if self.failure is not None:
            raise self.failure
        self.waiting.put(encode(message))

    def close(self) -> None:
        self.waiting.put(None)
        self.thread.join()
        if self.failure is not None:
            raise self.failure

    def _write(self) -> None:
        try:
            while (data := self.waiting.get()) is not None:
                self.out.write(data)
            self.out.flush()
        except BaseException as exc:
            self.failure = exc
            while self.waiting.get() is not None:  # until `close`: a full queue would block `send` for ever
                pass


def receive(stream: IO[bytes]) -> tuple[str, Any] | None:
    # the next message `encode` gave, or None when the stream ends first
    head = stream.read(9)
    size = int.from_bytes(head[1:], "little")
    blob = stream.read(size) if len(head) == 9 else b""
    if len(blob) < size or len(head) < 9:
        return None
    message: tuple[str, Any] = marshal.loads(blob) if head[:1] == b"m" else pickle.loads(blob)
    return message


def read_for_parent() -> None:
    """The plain interpreter's main: `read_into` the pipe on stdout, for the file its parent names on stdin."""
    gc.disable()  # what it keeps has no cycles, and collector passes over its growing caches only cost time
    path, settings, encoding, dialect_name = pickle.load(sys.stdin.buffer)
    # the parent's kind of database, for the form its driver takes times in (the dialect needs no connection)
    dialect = URL.create(dialect_name).get_dialect()()
    read_into(sys.stdout.buffer, path, settings, encoding, dialect)


def read_into(out: IO[bytes], path: Path, settings: Settings, encoding: str | None, dialect: Dialect) -> None:
    """The reading process's work: `read_pieces` of the file sent to `out` by a `Sender`:
    ("rows", (batch, places))..., then ("done", errors); or ("file", message) for a file that cannot be read."""
    sender = Sender(out)
    try:
        parts = open_rows(path, settings, Reading(encoding=encoding), dialect)
        sender.send(("titles", titles_of(parts)))
        errors: list[RowError] = []
        for piece in read_pieces(parts, errors):
            sender.send(("rows", piece))
        sender.send(("done", errors))
    except LedgerFileError as exc:
        sender.send(("file", str(exc)))
    finally:
        sender.close()


def rows_from_process(
    path: Path, settings: Settings, encoding: str | None, dialect: Dialect, errors: list[RowError],
    titles: list[TitleRows] | None = None,
) -> Iterator[Batch]:
    """`read_rows` of a CSV file, run by a second process; its bad rows go to `errors`, the title rows skipped
    above its header to `titles`. Raises what reading the file in this one would."""
    reading = _Forked(path, settings, encoding, dialect) if alone() else _Interpreter(path, settings, encoding, dialect)
    done = False
    firsts: dict[str, int] = {}  # each case id's first line
    try:
        while True:
            message = receive(reading.stream)
            if message is None:
                raise RuntimeError(
                    f"the ledger reading process stopped early (exit code {reading.wait()}); its error is above"
                )
            kind, payload = message
            if kind == "rows":
                batch, places = payload
                yield first_rows(batch, places, firsts, errors)
            elif kind == "titles":
                if titles is not None:
                    titles.extend(payload)
            elif kind == "done":
                errors.extend(payload)
                done = True
                return
            else:
                raise LedgerFileError(payload)
    finally:
        reading.stream.close()
        if done:
            reading.wait()
        else:
            reading.stop()  # this side stopped early: nothing will read what the process still writes


def alone() -> bool:
    """Whether this process runs no thread but the calling one, and so may fork (Linux counts the threads of C
    libraries too; elsewhere Python's own are counted)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return threading.active_count() == 1


class _Forked:
    """The reading process as a copy of this one (see the module's doc)."""

    def __init__(self, path: Path, settings: Settings, encoding: str | None, dialect: Dialect) -> None:
        readable, writable = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:  # the copy: read, send, and leave without running anything of the importer's
            code = 1
            try:
                os.close(readable)
                signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C stops it as it stops the importer
                with open(writable, "wb", buffering=1 << 16) as out:
                    read_into(out, path, settings, encoding, dialect)
                code = 0
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        os.close(writable)
        # closed by `rows_from_process` when the reading ends, as the interpreter's stdout is
        self.stream = open(readable, "rb", buffering=1 << 16)  # noqa: SIM115
        self.status: int | None = None

    def wait(self) -> int:
        if self.status is None:
            self.status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
        return self.status

    def stop(self) -> None:
        if self.status is None:
            os.kill(self.pid, signal.SIGKILL)  # not yet reaped, so the pid is still the copy's
            self.wait()


class _Interpreter:
    """The reading process as a plain interpreter (see the module's doc)."""

    def __init__(self, path: Path, settings: Settings, encoding: str | None, dialect: Dialect) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(entry for entry in sys.path if entry)}
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from callbackd.intake.parallel import read_for_parent; read_for_parent()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        with self.process.stdin:
            dialect_name = f"{dialect.name}+{dialect.driver}"
            pickle.dump((path, settings, encoding, dialect_name), self.process.stdin, pickle.HIGHEST_PROTOCOL)
        self.stream = self.process.stdout

    def wait(self) -> int:
        return self.process.wait()

    def stop(self) -> None:
        self.process.kill()  # does nothing to a process already reaped
        self.process.wait()
