#!/usr/bin/env python3
"""Benchmark and fault drill: a synthetic province through the distributed deployment, start to ranking.

    .venv/bin/python scripts/bench/province.py [--small] [--windows 5000] [--cases 2000000] [--per-window 20]
                                               [--rate 200] [--kill-every 30] [--seed province] [--keep DIR]

One code path, scaled by its parameters (the defaults are the province; `--small` is the version `scripts/test`
runs, tests/integration/test_province_small.py: 20 windows, 4,000 cases, 400 callbacks, a worker killed every 6 s):

1. generate a month's ledger (November 2026, `callbackd.app.synthetic.ledger_rows`; timed apart from the run);
2. import it: `callbackd init`, `callbackd ledger import` into a throwaway PostgreSQL server on loopback;
3. open the week's round: `callbackd round open --week 2026-W48 --seed S` (`--per-window` cases a window);
4. dispatch until every callback is final: 2 `callbackd worker` processes (prefork pools of 2 processes; `--pool
   threads` to compare) and `callbackd beat`, a redis-server on loopback, the simulator channel playing a provider
   whose account takes `--rate` calls a second (`[channels.simulator] per_second`, counted in Redis by every
   worker: `[dispatch] rate_storage`), its journal the provider's call log. Every process's clock reads Monday
   2026-11-23 10:00 (Asia/Shanghai) when the run starts and keeps running (`CALLBACKD_CLOCK_OFFSET`), inside
   calling hours; retries go again at once (`retry_minutes = 0`, `per_number_gap_seconds = 0`) so the drill is
   not spread over days. Meanwhile: a worker SIGKILLed (its pool with it) every `--kill-every` seconds and a new
   one started, redis-server restarted once (30% of the callbacks final; no persistence, so every queued message
   is lost) and PostgreSQL restarted once (60%; `pg_ctl restart -m fast`), and the console's ranking page fetched
   every little while. A worker that exits by itself is a failed check (and is replaced, as a supervisor would);
5. score: `callbackd score --period 2026-11 --json`;
6. the console: `callbackd serve` on loopback, a supervisor from `callbackd users add`, signed in through /login,
   GET /rankings/2026-11 timed (the first request, then one more).

Memory: every second, the resident memory of each process lineage this run started (a worker with its pool, beat,
the server, redis-server, PostgreSQL with its backends, shared memory counted once), from /proc. Reported: each
role's peak, and its growth from the first tenth of the dispatch to the last tenth: for beat and the server their
own; for the workers, who are killed and replaced all along, the role's (the largest living worker's). The server
holds the month's ranking (figures.py), which fills during the dispatch as windows get answers (about 7 MiB more
for 5,000 windows, flat once the answers stop): besides its growth over the dispatch, its leak check compares it
after the dispatch, having shown the ranking page, with a second server started then on the same data and shown
the same page.

Checks, printed PASS/FAIL, exit 1 when one fails: every callback final and no attempt open; no attempt placed twice
(the simulator's journal); no answer recorded twice (one contact a callback, one answer a question, and the scores
from the tallies equal to the scores from the answers); no memory growth over 10% (the server's also against the
fresh server); the run within its time (30 minutes for the province). Servers are stopped and their folders removed
afterwards (unless --keep).
The figures depend on the machine and what else runs on it: the load average is printed beside them.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from statistics import median
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select
from sqlalchemy.exc import DBAPIError

from callbackd.app.synthetic import ledger_rows, write_ledger_csv
from callbackd.core.settings import load_settings
from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT
from callbackd.measure import scoring
from callbackd.store.db import Database
from callbackd.store.models import Answer, Attempt, Callback, Contact

CALLBACKD = Path(sys.executable).with_name("callbackd")
MONTH = date(2026, 11, 1)
PERIOD = "2026-11"
WEEK = "2026-W48"
MONDAY = "2026-11-23T10:00:00+08:00"  # a working day, inside calling hours
SUPERVISOR = "province-supervisor"
PASSWORD = "province-drill-2026"
STARTUP_SECONDS = 60.0
GROWTH_LIMIT = 0.10


@dataclass(frozen=True)
class Scale:
    """What one run does: its size, the provider's rate, the workers, the faults and the time allowed."""

    windows: int = 5000
    cases: int = 2_000_000
    per_window: int = 20
    rate: float = 200.0  # the provider account's calls a second, shared by every worker
    kill_every: float = 30.0  # seconds between two workers killed
    workers: int = 2
    pool: str = "prefork"  # each worker's pool: prefork (processes) or threads
    concurrency: int = 2  # each worker's processes, or threads
    lease_seconds: int = 30  # a killed worker's attempts are reconciled after this long
    batch: int = 2000  # attempts claimed and waiting for a worker at most
    chunk: int = 20  # attempts a message
    tick_seconds: float = 1.0
    page_every: float = 15.0  # seconds between two fetches of the ranking page during the dispatch
    dispatch_limit: float = 1500.0  # give up dispatching after this long
    total_limit: float = 1800.0  # the target for the whole run
    seed: str = "province"


PROVINCE = Scale()
# `scripts/test`'s version: the provider's rate lowered so that the dispatch lasts long enough for its faults (about
# 25 s: three workers killed, redis-server and PostgreSQL restarted); allowed 5 minutes beside the rest of the suite
SMALL = Scale(windows=20, cases=4000, rate=16.0, kill_every=6.0, lease_seconds=8, batch=100, chunk=5,
              tick_seconds=0.5, page_every=5.0, dispatch_limit=240.0, total_limit=300.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def load() -> str:
    return "load " + " ".join(f"{value:.2f}" for value in os.getloadavg())


# ---- servers --------------------------------------------------------------------------------------------------


def postgres_bin() -> Path:
    """The newest PostgreSQL's binaries, as scripts/test finds them."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: [int(x) for x in re.findall(r"\d+",
                                                                                                       str(p))])
    if not found:
        raise RuntimeError("PostgreSQL is missing: apt-get install postgresql (scripts/test installs it)")
    return found[-1]


class PostgresServer:
    """A throwaway PostgreSQL server on 127.0.0.1 in a folder of its own, run as the postgres user when root."""

    def __init__(self) -> None:
        self.bin = postgres_bin()
        self.folder = Path(tempfile.mkdtemp(prefix="callbackd-pg-"))
        self.prefix: list[str] = []
        if os.getuid() == 0:  # the server refuses to run as root
            shutil.chown(self.folder, "postgres", "postgres")
            self.prefix = ["runuser", "-u", "postgres", "--"]
        self.data = self.folder / "data"
        self.port = free_port()

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*self.prefix, str(self.bin / tool), *args], check=True, capture_output=True)

    @property
    def options(self) -> str:
        # loopback only; a throwaway server needs no durability
        return (f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off")

    def start(self) -> PostgresServer:
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-o", self.options,
                 "start")
        return self

    def restart(self) -> None:
        """`pg_ctl restart -m fast`: every connection is cut, the server is back once it accepts connections."""
        self.run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w", "-m", "fast", "-o",
                 self.options, "restart")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self.prefix, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                           capture_output=True)
        shutil.rmtree(self.folder, ignore_errors=True)

    def postmaster(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        admin.dispose()
        return self.url(name)


@contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 without persistence: a restart loses every queued message."""

    def __init__(self, folder: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: apt-get install redis-server (scripts/test installs it)")
        self.binary, self.folder, self.port = binary, folder, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.folder), "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start within 10 s")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def redis_server(folder: Path) -> Iterator[RedisServer]:
    server = RedisServer(folder).start()
    try:
        yield server
    finally:
        server.stop()


# ---- memory ---------------------------------------------------------------------------------------------------


def lineage_kib(session_id: int) -> int | None:
    """Resident memory of every process in a session (a process started in a session of its own, with its
    children): private memory summed, shared memory (PostgreSQL's buffers) counted once. None when none lives."""
    private, shared, found = 0, 0, False
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            if int(fields[3]) != session_id:
                continue
            values = {}
            with open(f"/proc/{entry.name}/status", encoding="ascii", errors="replace") as status:
                for line in status:
                    if line.startswith(("RssAnon:", "RssFile:", "RssShmem:")):
                        values[line.split(":")[0]] = int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue  # it ended while being read
        found = True
        private += values.get("RssAnon", 0) + values.get("RssFile", 0)
        shared = max(shared, values.get("RssShmem", 0))
    return private + shared if found else None


@dataclass
class Lineage:
    role: str
    name: str
    session_id: int
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds since the sampler began, KiB)


class MemorySampler:
    """Samples every watched lineage's resident memory once a second, in a thread."""

    def __init__(self) -> None:
        self.lineages: list[Lineage] = []
        self.began = time.monotonic()
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._run, name="memory", daemon=True)

    def watch(self, role: str, name: str, session_id: int) -> None:
        with self.lock:
            self.lineages.append(Lineage(role, name, session_id))

    def now(self) -> float:
        return time.monotonic() - self.began

    def _run(self) -> None:
        while not self.stopping.wait(1.0):
            with self.lock:
                watched = list(self.lineages)
            for lineage in watched:
                kib = lineage_kib(lineage.session_id)
                if kib is not None:
                    lineage.samples.append((self.now(), kib))

    def __enter__(self) -> MemorySampler:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopping.set()
        self.thread.join()

    def write(self, path: Path) -> None:
        """Every sample, for a closer look: seconds since the sampler began, role, lineage, KiB."""
        with path.open("w", encoding="utf-8") as out:
            out.write("seconds,role,lineage,kib\n")
            for lineage in self.lineages:
                out.writelines(f"{at:.1f},{lineage.role},{lineage.name},{kib}\n" for at, kib in lineage.samples)

    def report(self, start: float, end: float) -> list[dict[str, Any]]:
        """Per role: its peak over the whole run, and over the dispatch [start, end] the largest lineage's
        memory in its first and last tenth (the peak of each) and the growth between them."""
        tenth = max((end - start) / 10, 1.0)
        rows = []
        for role in dict.fromkeys(lineage.role for lineage in self.lineages):
            mine = [lineage for lineage in self.lineages if lineage.role == role]
            peak = max((kib for lineage in mine for _, kib in lineage.samples), default=0)
            by_second: dict[int, int] = {}
            for lineage in mine:
                for at, kib in lineage.samples:
                    if start <= at <= end:
                        key = int(at)
                        by_second[key] = max(by_second.get(key, 0), kib)
            first = [kib for at, kib in by_second.items() if at <= start + tenth]
            last = [kib for at, kib in by_second.items() if at >= end - tenth]
            growth = (max(last) - max(first)) / max(first) if first and last else None
            rows.append({"role": role, "processes": len(mine), "peak_mib": peak / 1024,
                         "first_tenth_mib": max(first) / 1024 if first else None,
                         "last_tenth_mib": max(last) / 1024 if last else None, "growth": growth})
        return rows


def settled(memory: MemorySampler, role: str, client: httpx.Client, page: str) -> float | None:
    """A server's resident memory (MiB, the largest sample) over the seconds after it has shown `page` twice."""
    for _ in range(2):
        client.get(page, timeout=300)
    since = memory.now()
    time.sleep(3.5)  # three samples at least
    kib = [kib for lineage in memory.lineages if lineage.role == role for at, kib in lineage.samples if at >= since]
    return max(kib) / 1024 if kib else None


# ---- the deployment -------------------------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    started: float

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def ready(self) -> bool:
        """A worker's log says it is ready to take messages."""
        return " ready." in self.text()

    def kill(self) -> None:
        """SIGKILL the whole session: the process and its pool, with no chance to clean up."""
        if self.popen.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)


@dataclass
class Deployment:
    folder: Path
    env: dict[str, str]
    memory: MemorySampler
    processes: list[Process] = field(default_factory=list)

    def command(self, *args: str, stdin: str | None = None) -> tuple[float, str]:
        """Run `callbackd ARGS` to the end: (seconds, stdout); a failure raises with its stderr."""
        began = time.perf_counter()
        done = subprocess.run([str(CALLBACKD), *args], cwd=self.folder, env=self.env, input=stdin,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"callbackd {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return time.perf_counter() - began, done.stdout

    def spawn(self, role: str, name: str, *args: str) -> Process:
        log = self.folder / f"{name}.log"
        with log.open("wb") as out:
            popen = subprocess.Popen([str(CALLBACKD), *args], cwd=self.folder, env=self.env, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        process = Process(name, popen, log, time.monotonic())
        self.processes.append(process)
        self.memory.watch(role, name, popen.pid)  # its own session: the session id is its pid
        return process

    def wait_for(self, condition: Callable[[], bool], what: str, process: Process) -> None:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not condition():
            if process.popen.poll() is not None:
                raise RuntimeError(f"{process.name} exited {process.popen.returncode} waiting for {what}:\n"
                                   f"{process.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"waited {STARTUP_SECONDS:.0f} s for {what}:\n{process.text()[-3000:]}")
            time.sleep(0.1)

    def worker(self, number: int, scale: Scale) -> Process:
        return self.spawn("workers", f"worker{number}", "worker", "--pool", scale.pool, "--concurrency",
                          str(scale.concurrency), "--name", f"w{number}@%h", "--loglevel", "INFO")

    def stop(self) -> None:
        for process in self.processes:
            process.kill()


def write_settings(folder: Path, scale: Scale, database_url: str, redis_url: str, journal: Path) -> None:
    (folder / "config").mkdir(parents=True, exist_ok=True)
    (folder / "config" / "callbackd.toml").write_text(f"""
database_url = "{database_url}"

[sampling]
per_window = {scale.per_window}

[workers]
broker_url = "{redis_url}/0"
tick_seconds = {scale.tick_seconds}
chunk = {scale.chunk}

[dispatch]
rate_storage = "{redis_url}/1"
lease_seconds = {scale.lease_seconds}
batch = {scale.batch}
retry_minutes = 0
per_number_gap_seconds = 0

[channels.simulator]
per_second = {scale.rate}
journal = "{journal}"
""", encoding="utf-8")


def sign_in(base: str) -> httpx.Client:
    """A client signed in as the supervisor through /login, as a browser would."""
    client = httpx.Client(base_url=base, trust_env=False, timeout=300, follow_redirects=False)
    form = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    if token is None:
        raise RuntimeError("/login shows no CSRF token")
    signed = client.post("/login", data={"csrf_token": token.group(1), "username": SUPERVISOR, "password": PASSWORD})
    if signed.status_code != 303:
        raise RuntimeError(f"signing in failed: HTTP {signed.status_code}")
    return client


# ---- the run --------------------------------------------------------------------------------------------------


@dataclass
class Result:
    """What a run measured and what it checked: stage seconds, counts, memory rows, and the checks."""

    scale: Scale
    stages: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    memory: list[dict[str, Any]] = field(default_factory=list)
    checks: list[tuple[str, bool, str]] = field(default_factory=list)
    loads: dict[str, str] = field(default_factory=dict)

    def check(self, name: str, ok: bool, detail: str) -> None:
        self.checks.append((name, ok, detail))

    @property
    def failed(self) -> list[str]:
        return [f"{name}: {detail}" for name, ok, detail in self.checks if not ok]


def count(database: Database, query: Any) -> int:
    with database.session() as session:
        return int(session.scalar(query) or 0)


def progress(database: Database) -> tuple[int, int] | None:
    """(callbacks, callbacks final), or None while the database does not answer (restarting)."""
    try:
        with database.session() as session:
            total = session.scalar(select(func.count()).select_from(Callback)) or 0
            final = session.scalar(select(func.count()).select_from(Callback)
                                   .where(Callback.status.in_(FINAL_CALLBACK))) or 0
        return total, final
    except DBAPIError:
        return None


def run(scale: Scale, folder: Path, say: Callable[[str], None] = print) -> Result:
    """One province run in `folder` (created; the servers' own folders are temporary): every stage, its faults,
    its figures and its checks. Nothing here exits: the caller reads `Result.failed`."""
    result = Result(scale)
    folder.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    result.loads["start"] = load()
    say(f"{os.cpu_count()} cores, {load()}; {scale.windows:,} windows, {scale.cases:,} cases, {scale.per_window} a "
        f"window; provider rate {scale.rate:g}/s; {scale.workers} workers, {scale.pool} pool of {scale.concurrency}; a "
        f"worker killed "
        f"every {scale.kill_every:g} s")

    ledger = folder / "ledger.csv"
    stage = time.perf_counter()
    # no complaints or repairs (100% called back by the rate rules): the round is the weekly quota alone
    write_ledger_csv(ledger, ledger_rows(MONTH, scale.cases, scale.windows, seed=1, special_share=0.0))
    result.stages["generate ledger"] = time.perf_counter() - stage
    say(f"generate ledger: {result.stages['generate ledger']:.1f} s (not part of the run's stages)")

    with ExitStack() as stack:
        memory = stack.enter_context(MemorySampler())
        postgres = stack.enter_context(postgres_server())
        redis = stack.enter_context(redis_server(folder))
        memory.watch("postgresql", "postgresql", postgres.postmaster())
        memory.watch("redis-server", "redis-server", redis.process.pid if redis.process else 0)
        database_url = postgres.create_database("province")
        journal = folder / "provider-calls.log"
        write_settings(folder, scale, database_url, redis.url, journal)
        offset = (datetime.fromisoformat(MONDAY) - datetime.now(UTC)).total_seconds()
        env = {name: value for name, value in os.environ.items() if not name.startswith("CALLBACKD_")}
        env.update(CALLBACKD_DATABASE_URL=database_url, CALLBACKD_CLOCK_OFFSET=str(offset),
                   CALLBACKD_SECRET_KEY="province drill signing key, long enough to sign")
        deployment = Deployment(folder, env, memory)
        stack.callback(deployment.stop)
        database = Database(database_url)
        stack.callback(database.dispose)

        # ---- import
        seconds, _ = deployment.command("init")
        imported_in, out = deployment.command("ledger", "import", str(ledger), "--json")
        report = json.loads(out)
        result.stages["import"] = seconds + imported_in
        result.figures["imported"] = report["imported"]
        result.figures["bad rows"] = len(report["errors"])
        say(f"import: {result.stages['import']:.1f} s (init {seconds:.1f} s), {report['imported']:,} cases, "
            f"{len(report['errors'])} bad rows; {load()}")
        result.check("ledger imported", report["imported"] == scale.cases and not report["errors"],
                     f"{report['imported']:,} of {scale.cases:,} imported, {len(report['errors'])} bad rows")

        # ---- round
        result.stages["round open"], out = deployment.command("round", "open", "--week", WEEK, "--seed", scale.seed,
                                                              "--json")
        round_id = int(json.loads(out)["round"])
        callbacks = count(database, select(func.count()).select_from(Callback).where(Callback.round_id == round_id))
        result.figures["round"], result.figures["callbacks"] = round_id, callbacks
        say(f"round open: {result.stages['round open']:.1f} s, round {round_id}, {callbacks:,} callbacks; {load()}")
        result.check("the round is every window's quota", callbacks == scale.windows * scale.per_window,
                     f"{callbacks:,} callbacks for {scale.windows:,} windows x {scale.per_window}")

        # ---- the console, up before the dispatch so its memory is watched throughout
        deployment.command("users", "add", SUPERVISOR, "--role", "supervisor", "--password-stdin",
                           stdin=PASSWORD + "\n")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = deployment.spawn("server", "serve", "serve", "--host", "127.0.0.1", "--port", str(port))

        def healthy(at: str = base) -> bool:
            try:
                return httpx.get(f"{at}/healthz", timeout=2, trust_env=False).status_code == 200
            except httpx.TransportError:
                return False

        deployment.wait_for(healthy, "callbackd serve to answer /healthz", server)
        client = sign_in(base)
        stack.callback(client.close)
        page = f"/rankings/{PERIOD}"
        client.get(page)  # the server's first ranking: its caches warm before its memory is compared

        # ---- dispatch, with its faults
        workers = [deployment.worker(n, scale) for n in range(scale.workers)]
        for process in workers:
            deployment.wait_for(process.ready, f"{process.name} to start", process)
        start = time.perf_counter()
        dispatch_from = memory.now()
        beat = deployment.spawn("beat", "beat", "beat", "--schedule", str(folder / "beat-state"), "--loglevel",
                                "INFO")
        faults: list[str] = []
        crashes: list[str] = []
        poll_seconds: list[float] = []  # the ranking page's times during the dispatch (the data moving under it)
        polls: Counter[int] = Counter()
        next_kill, next_page = start + scale.kill_every, start + scale.page_every
        redis_restarted = postgres_restarted = False
        spawned = scale.workers - 1
        total, final = callbacks, 0
        timed_out = False
        while True:
            seen = progress(database)
            if seen is not None:
                total, final = seen
                if total and final == total:
                    break
            moment = time.perf_counter()
            if moment - start > scale.dispatch_limit:
                timed_out = True
                break
            for process in [p for p in workers if p.popen.poll() is not None]:
                # a worker that exited by itself: a crash, reported; a new one started, as a supervisor would
                lines = [line for line in process.text().splitlines() if "CRITICAL" in line or "Error" in line]
                crashes.append(f"{moment - start:6.1f} s  {process.name} exited {process.popen.returncode} by "
                               f"itself: {lines[0][:200] if lines else '(nothing logged)'}")
                workers.remove(process)
                spawned += 1
                workers.append(deployment.worker(spawned, scale))
            if moment >= next_kill and any(p.popen.poll() is None for p in workers):
                doomed = min((p for p in workers if p.popen.poll() is None), key=lambda p: p.started)
                doomed.kill()
                workers.remove(doomed)
                spawned += 1
                workers.append(deployment.worker(spawned, scale))
                faults.append(f"{moment - start:6.1f} s  SIGKILL {doomed.name} and its pool, started "
                              f"worker{spawned}")
                next_kill += scale.kill_every
            if not redis_restarted and final >= 0.3 * total:
                redis.restart()
                memory.watch("redis-server", "redis-server (restarted)", redis.process.pid if redis.process else 0)
                redis_restarted = True
                faults.append(f"{moment - start:6.1f} s  redis-server restarted at {final:,} of {total:,} final")
            if not postgres_restarted and final >= 0.6 * total:
                restart_began = time.perf_counter()
                postgres.restart()
                memory.watch("postgresql", "postgresql (restarted)", postgres.postmaster())
                postgres_restarted = True
                faults.append(f"{moment - start:6.1f} s  pg_ctl restart -m fast at {final:,} of {total:,} final "
                              f"({time.perf_counter() - restart_began:.1f} s)")
            if moment >= next_page:
                try:
                    polls[client.get(page, timeout=60).status_code] += 1
                except httpx.HTTPError:
                    polls[0] += 1
                next_page = time.perf_counter()
                poll_seconds.append(next_page - moment)
                next_page += scale.page_every
            time.sleep(0.5)
        result.stages["dispatch"] = time.perf_counter() - start
        dispatch_to = memory.now()
        beat.kill()
        for process in workers:
            process.kill()
        attempts = count(database, select(func.count()).select_from(Attempt))
        result.figures.update(attempts=attempts, kills=sum("SIGKILL" in f for f in faults),
                              page_polls=dict(polls), faults=faults, crashes=crashes)
        for line in faults:
            say(f"  fault {line}")
        for line in crashes:
            say(f"  CRASH {line}")
        result.check("no worker exited by itself", not crashes, f"{len(crashes)} worker(s) exited without being "
                     "killed" + (f"; first: {crashes[0].strip()}" if crashes else ""))
        say(f"dispatch: {result.stages['dispatch']:.1f} s, {final:,} of {total:,} callbacks final, {attempts:,} "
            f"attempts ({attempts / result.stages['dispatch']:.1f}/s against the rate {scale.rate:g}/s); ranking page "
            f"during it: {dict(polls)} (status: count), {median(poll_seconds or [0]):.2f} s median, "
            f"{max(poll_seconds or [0]):.2f} s at most; {load()}")

        # ---- score
        result.stages["score"], out = deployment.command("score", "--period", PERIOD, "--json")
        ranking = json.loads(out)
        ranked = sum(1 for window in ranking["windows"] if window["rank"] is not None)
        result.figures["database MiB"] = count(database, select(func.pg_database_size("province"))) / 2**20
        say(f"score: {result.stages['score']:.1f} s, {len(ranking['windows']):,} windows, {ranked:,} ranked; database "
            f"{result.figures['database MiB']:,.0f} MiB; {load()}")

        # ---- the ranking page
        stage = time.perf_counter()
        first = client.get(page)
        result.stages["ranking page"] = time.perf_counter() - stage
        stage = time.perf_counter()
        second = client.get(page)
        again = time.perf_counter() - stage
        say(f"ranking page {page}: HTTP {first.status_code} in {result.stages['ranking page']:.2f} s, then "
            f"{again:.2f} s; {load()}")
        result.check("ranking page", first.status_code == second.status_code == 200
                     and ranking["windows"][0]["window"] in first.text,
                     f"HTTP {first.status_code}, {len(first.content):,} bytes")
        # the server's memory follows the ranking it holds, which grows during the dispatch as windows get answers:
        # its leak check compares it, after the dispatch, with a server started now on the same data
        result.figures["server MiB after the dispatch"] = settled(memory, "server", client, page)
        fresh_base = f"http://127.0.0.1:{free_port()}"
        fresh = deployment.spawn("fresh server", "serve-fresh", "serve", "--host", "127.0.0.1", "--port",
                                 fresh_base.rsplit(":", 1)[1])
        deployment.wait_for(lambda: healthy(fresh_base), "a fresh callbackd serve", fresh)
        again_client = sign_in(fresh_base)
        try:
            result.figures["fresh server MiB"] = settled(memory, "fresh server", again_client, page)
        finally:
            again_client.close()
            fresh.kill()
        result.memory = memory.report(dispatch_from, dispatch_to)
        memory.write(folder / "memory.csv")
        result.figures["dispatch seconds in memory.csv"] = (dispatch_from, dispatch_to)

        # ---- checks
        check_outcome(result, database, journal, round_id, timed_out)
        check_scores(result, database, folder / "config" / "callbackd.toml", ranking)
        for row in result.memory:
            if row["role"] in ("workers", "beat"):
                growth = row["growth"]
                result.check(f"memory of {row['role']}", growth is not None and growth <= GROWTH_LIMIT,
                             "no samples" if growth is None else
                             f"{row['first_tenth_mib']:.0f} MiB -> {row['last_tenth_mib']:.0f} MiB ({growth:+.1%})")
            elif row["role"] == "server":
                held, fresh_mib = result.figures["server MiB after the dispatch"], result.figures["fresh server MiB"]
                growth = held / fresh_mib - 1 if held and fresh_mib else None
                during = row["growth"]
                result.check("memory of server", growth is not None and during is not None
                             and max(growth, during) <= GROWTH_LIMIT,
                             "no samples" if growth is None or during is None else
                             f"{row['first_tenth_mib']:.0f} MiB -> {row['last_tenth_mib']:.0f} MiB ({during:+.1%}) "
                             f"during the dispatch as the ranking filled; {held:.0f} MiB after it, {fresh_mib:.0f} MiB "
                             f"for a fresh server on the same data ({growth:+.1%})")
    result.stages["total"] = time.monotonic() - began
    result.loads["end"] = load()
    result.check("total time", result.stages["total"] <= scale.total_limit,
                 f"{result.stages['total']:.0f} s (limit {scale.total_limit:.0f} s)")
    return result


def check_outcome(result: Result, database: Database, journal: Path, round_id: int, timed_out: bool) -> None:
    """Every callback final, nothing open, every outcome placed and nothing placed twice, nothing recorded twice."""
    with database.session() as session:
        statuses = dict(session.execute(select(Callback.status, func.count()).where(Callback.round_id == round_id)
                                        .group_by(Callback.status)).all())
        open_attempts = session.scalar(select(func.count()).select_from(Attempt)
                                       .where(Attempt.status.in_(OPEN_ATTEMPT))) or 0
        outcomes = set(session.scalars(select(Attempt.id).where(
            Attempt.status.not_in((*OPEN_ATTEMPT, "cancelled", "failed")))))
        doubled = session.execute(select(Answer.contact_id, Answer.question)
                                  .group_by(Answer.contact_id, Answer.question).having(func.count() > 1)).all()
        contacts = session.scalar(select(func.count()).select_from(Contact).where(Contact.callback_id.is_not(None)))
        contacted = session.scalar(select(func.count(func.distinct(Contact.callback_id))))
        answers = session.scalar(select(func.count()).select_from(Answer)) or 0
    result.figures.update(statuses=statuses, answers=answers)
    unfinished = {status: n for status, n in statuses.items() if status not in FINAL_CALLBACK}
    result.check("every callback final", not unfinished and not timed_out and open_attempts == 0,
                 f"{sum(statuses.values()) - sum(unfinished.values()):,} of {sum(statuses.values()):,} final "
                 f"{statuses}; {open_attempts} attempt(s) open" + ("; gave up waiting" if timed_out else ""))
    lines = journal.read_text(encoding="utf-8").splitlines() if journal.exists() else []
    placed = Counter(int(line.split()[0]) for line in lines)
    repeated = {attempt: n for attempt, n in placed.items() if n > 1}
    result.figures["placements"] = len(lines)
    result.check("no placement repeated", not repeated,
                 f"{len(lines):,} placements in the simulator's journal, {len(repeated)} attempt(s) placed more "
                 f"than once" + (f": {dict(list(repeated.items())[:5])}" if repeated else ""))
    unplaced = outcomes - set(placed)
    result.check("every outcome was placed", not unplaced,
                 f"{len(outcomes):,} attempts with an outcome, {len(unplaced)} never in the journal")
    result.check("no answer recorded twice", not doubled and contacts == contacted,
                 f"{answers:,} answers, {len(doubled)} (contact, question) pairs twice; {contacts:,} callback "
                 f"contacts for {contacted:,} callbacks")


def check_scores(result: Result, database: Database, config: Path, ranking: dict[str, Any]) -> None:
    """The month's scores as `callbackd score` gave them (from the tallies kept with the answers) against the same
    scores computed from the answers themselves: a contact or an answer counted twice shows up here."""
    settings = load_settings(config)
    with database.session() as session:
        raw = scoring.score_period(session, settings, PERIOD, raw=True).as_dict()
    tallied = {window["window"]: window for window in ranking["windows"]}
    different = []
    for window in raw["windows"]:
        mine = tallied.get(window["window"])
        same = mine is not None and all(mine[key] == window[key] for key in
                                        ("contacts", "levels", "contacts_by_source", "rank", "grade", "status"))
        if same and window["score"] is not None:
            same = mine is not None and mine["score"] is not None and abs(mine["score"] - window["score"]) < 1e-9
        if not same:
            different.append(window["window"])
    contacts = sum(window["contacts"] for window in raw["windows"])
    result.figures["scored contacts"] = contacts
    result.check("scores from the tallies equal scores from the answers", not different and
                 len(raw["windows"]) == len(tallied),
                 f"{len(raw['windows']):,} windows, {contacts:,} contacts; {len(different)} window(s) differ"
                 + (f" ({', '.join(different[:3])})" if different else ""))


def show(result: Result, say: Callable[[str], None] = print) -> None:
    """The figures and the checks, as the resolving note quotes them."""
    say("stages (seconds): " + ", ".join(f"{name} {seconds:.1f}" for name, seconds in result.stages.items()))
    say("memory (MiB)    peak   dispatch: first tenth -> last tenth")
    for row in result.memory:
        growth = "" if row["growth"] is None else (f"{row['first_tenth_mib']:6.0f} -> {row['last_tenth_mib']:6.0f} "
                                                   f"({row['growth']:+.1%})")
        say(f"  {row['role']:<13} {row['peak_mib']:6.0f}   {growth}   ({row['processes']} process lineage(s))")
    say(f"load average: {result.loads.get('start')} at the start, {result.loads.get('end')} at the end")
    for name, ok, detail in result.checks:
        say(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", action="store_true", help="scripts/test's version: 20 windows, 4,000 cases")
    for name, kind in (("windows", int), ("cases", int), ("per-window", int), ("rate", float),
                       ("kill-every", float), ("lease-seconds", int), ("batch", int), ("pool", str),
                       ("concurrency", int),
                       ("total-limit", float), ("dispatch-limit", float)):
        parser.add_argument(f"--{name}", type=kind, default=None)
    parser.add_argument("--seed", default=None)
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (logs, ledger, journal)")
    args = parser.parse_args()
    scale = SMALL if args.small else PROVINCE
    changes = {key.replace("-", "_"): value for key, value in vars(args).items()
               if key not in ("small", "keep") and value is not None}
    scale = replace(scale, **changes)
    folder = args.keep or Path(tempfile.mkdtemp(prefix="callbackd-province-"))
    try:
        result = run(scale, folder)
    finally:
        if args.keep is None:
            shutil.rmtree(folder, ignore_errors=True)
    show(result)
    sys.exit(1 if result.failed else 0)


if __name__ == "__main__":
    main()
