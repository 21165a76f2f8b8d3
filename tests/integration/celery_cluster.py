"""A distributed deployment for the tests: a real redis-server on loopback, `callbackd worker` and `callbackd beat`
as real processes, on the database of the test (a SQLite file, or PostgreSQL in the suite's PostgreSQL pass).

The clock of every process is shifted (`CALLBACKD_CLOCK_OFFSET`) to a working Monday's calling hours and keeps
running, so leases run out and beat's schedules fire as in production.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT
from callbackd.store.db import Database
from callbackd.store.models import Attempt, Callback

CALLBACKD = Path(sys.executable).with_name("callbackd")
STARTUP_SECONDS = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        pytest.fail("redis-server is missing: scripts/test installs it (or: apt-get install redis-server)")
    return found


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 without persistence: a restart loses every queued message."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.folder = folder
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.folder), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("redis-server did not start within 10 s") from None
                time.sleep(0.05)
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@dataclass
class Process:
    """A `callbackd worker|beat` process in a session of its own (so its pool dies with it), logging to a file."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group: the worker and its pool, with no chance to clean up."""
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


@dataclass
class Cluster:
    workdir: Path
    redis: RedisServer
    database: Database
    journal: Path
    processes: list[Process] = field(default_factory=list)

    def spawn(self, name: str, *args: str) -> Process:
        log = self.workdir / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen([str(CALLBACKD), *args], cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True, env=dict(os.environ))
        process = Process(name, popen, log)
        self.processes.append(process)
        return process

    def worker(self, name: str, concurrency: int = 1, pool: str = "prefork") -> Process:
        process = self.spawn(name, "worker", "--name", f"{name}@%h", "--concurrency", str(concurrency),
                             "--pool", pool)
        self.wait_for(lambda: " ready." in process.text(), f"worker {name} to start", STARTUP_SECONDS, process)
        return process

    def beat(self, name: str = "beat") -> Process:
        process = self.spawn(name, "beat", "--schedule", str(self.workdir / f"{name}-schedule"))
        self.wait_for(lambda: "beat: Starting..." in process.text(), f"{name} to start", STARTUP_SECONDS, process)
        return process

    def wait_for(
        self, condition: Callable[[], bool], what: str, seconds: float, process: Process | None = None
    ) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if process is not None and process.popen.poll() is not None:
                raise AssertionError(f"{process.name} exited with {process.popen.returncode}:\n{process.text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"waited {seconds:.0f} s for {what}\n{self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        return "\n".join(f"---- {p.name}\n{p.text()[-4000:]}" for p in self.processes)

    def counts(self) -> tuple[int, int]:
        """(callbacks, callbacks in a final state)."""
        with self.database.session() as session:
            total = session.scalar(select(func.count()).select_from(Callback)) or 0
            final = session.scalar(
                select(func.count()).select_from(Callback).where(Callback.status.in_(FINAL_CALLBACK))
            ) or 0
        return total, final

    def finished(self) -> bool:
        total, final = self.counts()
        return total > 0 and total == final

    def wait_until_share_final(self, share: float, seconds: float = 120) -> None:
        def reached() -> bool:
            total, final = self.counts()
            return total > 0 and final >= share * total

        self.wait_for(reached, f"{share:.0%} of the callbacks to be final", seconds)

    def wait_until_finished(self, seconds: float = 180) -> None:
        self.wait_for(self.finished, "every callback to reach a final state", seconds)

    def placed(self) -> Counter[int]:
        """How often the simulated provider was asked to place each attempt (its call log)."""
        if not self.journal.exists():
            return Counter()
        return Counter(int(line.split()[0]) for line in self.journal.read_text(encoding="utf-8").splitlines())

    def open_attempts(self) -> int:
        with self.database.session() as session:
            return session.scalar(
                select(func.count()).select_from(Attempt).where(Attempt.status.in_(OPEN_ATTEMPT))
            ) or 0

    def ended_attempts(self) -> set[int]:
        """Attempts that went out and came back with an outcome (not cancelled, not failed while placing)."""
        with self.database.session() as session:
            return set(session.scalars(
                select(Attempt.id).where(Attempt.status.not_in((*OPEN_ATTEMPT, "cancelled", "failed")))
            ))

    def stop(self) -> None:
        for process in self.processes:
            process.kill()  # the test is over: nothing to finish gracefully
        self.redis.stop()


def offset_to(local: str) -> float:
    """Seconds to add to the real clock so that it reads `local` (ISO 8601 with an offset) now."""
    return (datetime.fromisoformat(local) - datetime.now(UTC)).total_seconds()
