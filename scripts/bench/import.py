#!/usr/bin/env python3
"""Benchmark `callbackd ledger import` against the database's own bulk loader: the sqlite3 command-line tool's
`.import`, or PostgreSQL's `psql \\copy`, of the same rows.

    .venv/bin/python scripts/bench/import.py [--database sqlite|postgresql] [--rows N] [--runs R] [--keep DIR]

Writes a synthetic ledger of N rows (default 1,000,000; 200 windows over one month) as GBK, and the same rows as
UTF-8, in a temporary folder (or DIR, kept afterwards). Then, on this machine, R times (default 3):

- `callbackd init` into a fresh database (not timed), then `callbackd ledger import ledger-gbk.csv --json` (timed,
  the whole command); the JSON report must show every row imported and no errors;
- the database's own loader of the UTF-8 rows into a plain table of text columns, no index (timed, the whole
  command): `sqlite3 fresh.db -cmd '.mode csv' '.import ledger-utf8.csv cases'` into a fresh file, the tool's
  default settings; or `psql -c "\\copy plain FROM 'ledger-utf8.csv' CSV HEADER"` into a table created afresh.

With `--database sqlite` (the default) callbackd imports into sqlite:///var/callbackd.db in that folder. With
`--database postgresql` the script starts a throwaway PostgreSQL server (the newest under /usr/lib/postgresql, as
scripts/test finds it; as the postgres user when run as root) with its data in a temporary folder, listening on loopback
only, with PostgreSQL's default settings (durable commits, as a deployment runs it), and stops it afterwards;
callbackd imports into a database created afresh for each run.

The two alternate which goes first from run to run, so a change in the machine's load falls on both alike. Each
run prints both figures, their ratio (callbackd time / the loader's time) and the load average around it; the
verdict is the median ratio against the target (within 5x). Beside each wall-clock time, the CPU time the command
and its children used (on PostgreSQL, the server's too): on a machine busy with other work, that ratio says more
about the code than the wall clock. Exit status 1 when an import's report is wrong, the median ratio misses the
target, or a tool is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from callbackd.app.synthetic import HEADER, ledger_rows, write_ledger_csv

TARGET_RATIO = 5.0
MONTH = date(2026, 11, 1)
WINDOWS = 200
# (wall-clock seconds, CPU seconds), or None when the command failed (its error printed)
Took = tuple[float, float] | None


@dataclass
class Contest:
    """What one database's bench times: callbackd's import and the loader it is held against."""

    loader: str  # the loader's name in the figures
    ours: Callable[[], Took]
    theirs: Callable[[], Took]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite",
                        help="the database to import into (default sqlite)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="ledger rows to import (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each tool (default 3)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep the files afterwards")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    # The venv's own entry point, beside the interpreter running this script.
    callbackd = Path(sys.executable).parent / "callbackd"
    if not callbackd.exists():
        print(f"{callbackd} not found: install callbackd into this environment (pip install -e .)", file=sys.stderr)
        return 1
    if args.keep:
        workdir = args.keep.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir, args.database, args.rows, args.runs, callbackd)
    with tempfile.TemporaryDirectory(prefix="callbackd-bench-") as temp:
        return run(Path(temp), args.database, args.rows, args.runs, callbackd)


def run(workdir: Path, database: str, rows: int, runs: int, callbackd: Path) -> int:
    gbk = workdir / "ledger-gbk.csv"
    utf8 = workdir / "ledger-utf8.csv"
    started = time.perf_counter()
    write_ledger_csv(gbk, ledger_rows(MONTH, rows, windows=WINDOWS, seed=1), encoding="gbk")
    # The very same rows, re-encoded, so both tools read identical data.
    utf8.write_text(gbk.read_text(encoding="gbk"), encoding="utf-8", newline="")
    print(f"ledger: {rows} rows, {WINDOWS} windows, {gbk.stat().st_size / 1e6:.0f} MB as GBK "
          f"(written in {time.perf_counter() - started:.1f} s) in {workdir}")
    # Both figures are wall-clock times: say how busy the machine was, as other work skews them.
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    # Only the settings file's defaults and the bench's database: nothing from the caller's environment.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CALLBACKD_")}
    if database == "sqlite":
        sqlite3 = shutil.which("sqlite3")
        if sqlite3 is None:
            print("sqlite3 command-line tool not found: install it with `apt-get install sqlite3`", file=sys.stderr)
            return 1
        return contest(sqlite_contest(workdir, rows, callbackd, sqlite3, env), rows, runs)
    try:
        with postgres_server() as server:
            print(f"server: {server.version}, on 127.0.0.1:{server.port}, default settings")
            return contest(postgres_contest(workdir, rows, callbackd, server, env), rows, runs)
    except ServerError as exc:
        print(f"PostgreSQL: {exc}", file=sys.stderr)
        return 1


def contest(bench: Contest, rows: int, runs: int) -> int:
    """Time both R times, alternating which goes first; print the figures and the verdict."""
    ratios = []
    for number in range(1, runs + 1):
        load_before = os.getloadavg()[0]
        first, second = (bench.ours, bench.theirs) if number % 2 else (bench.theirs, bench.ours)
        first_took, second_took = first(), second()
        if first_took is None or second_took is None:
            return 1
        (our_time, our_cpu), (their_time, their_cpu) = (
            (first_took, second_took) if number % 2 else (second_took, first_took)
        )
        ratios.append(our_time / their_time)
        print(f"run {number}/{runs} (load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; "
              f"{'callbackd' if number % 2 else bench.loader.split()[0]} first):")
        print(f"  callbackd ledger import: {rows} rows in {our_time:.1f} s ({rows / our_time:,.0f} rows/s), "
              f"CPU {our_cpu:.1f} s; report: imported {rows}, errors 0")
        print(f"  {bench.loader + ':':<24} {rows} rows in {their_time:.1f} s ({rows / their_time:,.0f} rows/s), "
              f"CPU {their_cpu:.1f} s")
        print(f"  ratio: {ratios[-1]:.1f}x (CPU time: {our_cpu / max(their_cpu, 1e-9):.1f}x)")
    ratio = statistics.median(ratios)
    print(f"median ratio: {ratio:.1f}x over {runs} run(s) (target <= {TARGET_RATIO:g}x)"
          + ("" if ratio <= TARGET_RATIO else " MISSED"))
    return 0 if ratio <= TARGET_RATIO else 1


def timed_import(callbackd: Path, gbk: Path, rows: int, env: dict[str, str], server_cpu: Callable[[], float]) -> Took:
    """`callbackd ledger import` of the GBK ledger, timed, its report checked."""
    cpu = children_cpu() + server_cpu()
    started = time.perf_counter()
    done = subprocess.run(
        [str(callbackd), "ledger", "import", gbk.name, "--json"], cwd=gbk.parent, env=env, capture_output=True,
        text=True,
    )
    took = time.perf_counter() - started, children_cpu() + server_cpu() - cpu
    if done.returncode != 0:
        print(f"callbackd ledger import failed (exit {done.returncode}):\n{done.stderr}", file=sys.stderr)
        return None
    report = json.loads(done.stdout)
    if report["imported"] != rows or report["errors"]:
        first = report["errors"][0] if report["errors"] else None
        print(f"import report wrong: imported {report['imported']} of {rows}, {len(report['errors'])} error(s)"
              + (f", first: line {first['line']}: {first['reason']}" if first else ""), file=sys.stderr)
        return None
    return took


def timed(command: list[str], cwd: Path, env: dict[str, str], server_cpu: Callable[[], float]) -> Took:
    cpu = children_cpu() + server_cpu()
    started = time.perf_counter()
    if not succeeded(command, cwd, env):
        return None
    return time.perf_counter() - started, children_cpu() + server_cpu() - cpu


# ---- SQLite ------------------------------------------------------------------------------------------------


def sqlite_contest(workdir: Path, rows: int, callbackd: Path, sqlite3: str, env: dict[str, str]) -> Contest:
    env = {**env, "CALLBACKD_DATABASE_URL": "sqlite:///var/callbackd.db"}
    database = workdir / "var" / "callbackd.db"
    plain = workdir / "sqlite3-import.db"

    def ours() -> Took:
        remove_database(database)
        if not succeeded([str(callbackd), "init"], workdir, env):
            return None
        return timed_import(callbackd, workdir / "ledger-gbk.csv", rows, env, no_server)

    def theirs() -> Took:
        remove_database(plain)
        return timed([sqlite3, plain.name, "-cmd", ".mode csv", ".import ledger-utf8.csv cases"], workdir, env,
                     no_server)

    return Contest("sqlite3 .import", ours, theirs)


def remove_database(path: Path) -> None:
    """Fresh databases every run, also when --keep reuses a folder."""
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)


def no_server() -> float:
    return 0.0


# ---- PostgreSQL --------------------------------------------------------------------------------------------


class ServerError(Exception):
    """The throwaway PostgreSQL server could not be found or started."""


@dataclass
class Server:
    bin: Path
    data: Path
    port: int
    version: str

    def psql(self, database: str, *commands: str) -> list[str]:
        return [str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port),
                "-U", "postgres", "-d", database, *(part for command in commands for part in ("-c", command))]

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def cpu(self) -> float:
        """CPU seconds the server has used so far: its processes alive now, and those that ended (a connection's
        backend ends with it), which the kernel counts as the postmaster's children's."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        tick = os.sysconf("SC_CLK_TCK")
        fields = process_stat(postmaster)
        total = sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
        for child in process_children(postmaster):
            # one that ended meanwhile is counted among the postmaster's children from now on
            with suppress(OSError):
                total += sum(int(value) for value in process_stat(child)[11:13])
        return total / tick


def process_stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name (field 3 onwards), which may hold spaces."""
    with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
        return stat.read().rsplit(")", 1)[1].split()


def process_children(pid: int) -> list[int]:
    children: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as listed:
            children.extend(int(child) for child in listed.read().split())
    return children


@contextmanager
def postgres_server() -> Iterator[Server]:
    """A PostgreSQL server of its own, its data in a new folder under the system's temporary one (which the
    postgres user can reach), on a free loopback port; stopped and its data removed afterwards."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda path: [
        int(part) if part.isdigit() else 0 for part in path.parent.name.split(".")])
    if not found:
        raise ServerError("no server under /usr/lib/postgresql: install it with `apt-get install postgresql`")
    pg_bin = found[-1]
    home = Path(tempfile.mkdtemp(prefix="callbackd-bench-pg-"))
    as_postgres: list[str] = []
    if os.getuid() == 0:  # the server refuses to run as root
        shutil.chown(home, "postgres", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = home / "data"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    initdb = subprocess.run([*as_postgres, str(pg_bin / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
                            capture_output=True, text=True)
    if initdb.returncode != 0:
        raise ServerError(f"initdb failed: {initdb.stderr.strip() or initdb.stdout.strip()}")
    options = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={home}"
    started = subprocess.run([*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-l", str(home / "server.log"),
                              "-w", "-o", options, "start"], capture_output=True, text=True)
    try:
        if started.returncode != 0:
            raise ServerError(f"the server did not start; see {home / 'server.log'}")
        version = subprocess.run([str(pg_bin / "postgres"), "--version"], capture_output=True, text=True).stdout
        yield Server(pg_bin, data, port, version.strip())
    finally:
        subprocess.run([*as_postgres, str(pg_bin / "pg_ctl"), "-D", str(data), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def postgres_contest(workdir: Path, rows: int, callbackd: Path, server: Server, env: dict[str, str]) -> Contest:
    env = {**env, "CALLBACKD_DATABASE_URL": server.url("callbackd")}
    columns = ", ".join(f'"{name}" text' for name in HEADER)
    if not succeeded(server.psql("postgres", "CREATE DATABASE plain"), workdir, env):
        raise ServerError("could not create the database of the plain table")

    def ours() -> Took:
        if not succeeded(server.psql("postgres", "DROP DATABASE IF EXISTS callbackd", "CREATE DATABASE callbackd"),
                         workdir, env) or not succeeded([str(callbackd), "init"], workdir, env):
            return None
        return timed_import(callbackd, workdir / "ledger-gbk.csv", rows, env, server.cpu)

    def theirs() -> Took:
        if not succeeded(server.psql("plain", "DROP TABLE IF EXISTS plain", f"CREATE TABLE plain ({columns})"),
                         workdir, env):
            return None
        return timed(server.psql("plain", "\\copy plain FROM 'ledger-utf8.csv' CSV HEADER"), workdir, env,
                     server.cpu)

    return Contest("psql \\copy", ours, theirs)


# ---- both ----------------------------------------------------------------------------------------------------


def children_cpu() -> float:
    """User and system CPU seconds of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def succeeded(command: list[str], cwd: Path, env: dict[str, str]) -> bool:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr}", file=sys.stderr)
    return done.returncode == 0


if __name__ == "__main__":
    sys.exit(main())
