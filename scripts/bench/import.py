#!/usr/bin/env python3
"""Benchmark `callbackd ledger import` against the sqlite3 command-line tool's `.import` of the same rows.

    .venv/bin/python scripts/bench/import.py [--rows N] [--runs R] [--keep DIR]

Writes a synthetic ledger of N rows (default 1,000,000; 200 windows over one month) as GBK, and the same rows as
UTF-8, in a temporary folder (or DIR, kept afterwards). Then, on this machine, R times (default 3):

- `callbackd init` in that folder (not timed), then `callbackd ledger import ledger-gbk.csv --json` (timed, the
  whole command), so the import runs against a fresh sqlite:///var/callbackd.db; the JSON report must show every
  row imported and no errors;
- `sqlite3 fresh.db -cmd '.mode csv' '.import ledger-utf8.csv cases'` into a fresh database (timed, the whole
  command): a plain table of text columns, no index, the tool's default settings.

The two alternate which goes first from run to run, so a change in the machine's load falls on both alike. Each
run prints both figures, their ratio (callbackd time / sqlite3 time) and the load average around it; the verdict
is the median ratio against the target (within 5x). Beside each wall-clock time, the CPU time the command and its
children used: on a machine busy with other work, that ratio says more about the code than the wall clock. Exit
status 1 when an import's report is wrong, the median ratio misses the target, or a tool is missing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

from callbackd.app.synthetic import ledger_rows, write_ledger_csv

TARGET_RATIO = 5.0
MONTH = date(2026, 11, 1)
WINDOWS = 200


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="ledger rows to import (default 1,000,000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs of each tool (default 3)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="work in DIR and keep the files afterwards")
    args = parser.parse_args()
    if args.rows < 1:
        parser.error("--rows must be at least 1")
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    sqlite3 = shutil.which("sqlite3")
    if sqlite3 is None:
        print("sqlite3 command-line tool not found: install it with `apt-get install sqlite3`", file=sys.stderr)
        return 1
    # The venv's own entry point, beside the interpreter running this script.
    callbackd = Path(sys.executable).parent / "callbackd"
    if not callbackd.exists():
        print(f"{callbackd} not found: install callbackd into this environment (pip install -e .)", file=sys.stderr)
        return 1

    if args.keep:
        workdir = args.keep.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        return run(workdir, args.rows, args.runs, callbackd, sqlite3)
    with tempfile.TemporaryDirectory(prefix="callbackd-bench-") as temp:
        return run(Path(temp), args.rows, args.runs, callbackd, sqlite3)


def run(workdir: Path, rows: int, runs: int, callbackd: Path, sqlite3: str) -> int:
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

    # Only the settings file's defaults and this folder's database: nothing from the caller's environment.
    env = {key: value for key, value in os.environ.items() if not key.startswith("CALLBACKD_")}
    env["CALLBACKD_DATABASE_URL"] = "sqlite:///var/callbackd.db"
    database = workdir / "var" / "callbackd.db"
    plain = workdir / "sqlite3-import.db"

    def ours() -> tuple[float, float] | None:
        remove_database(database)
        if not succeeded([str(callbackd), "init"], workdir, env):
            return None
        cpu = children_cpu()
        started = time.perf_counter()
        done = subprocess.run(
            [str(callbackd), "ledger", "import", gbk.name, "--json"], cwd=workdir, env=env, capture_output=True,
            text=True,
        )
        took = time.perf_counter() - started, children_cpu() - cpu
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

    def theirs() -> tuple[float, float] | None:
        remove_database(plain)
        cpu = children_cpu()
        started = time.perf_counter()
        if not succeeded([sqlite3, plain.name, "-cmd", ".mode csv", f".import {utf8.name} cases"], workdir, env):
            return None
        return time.perf_counter() - started, children_cpu() - cpu

    ratios = []
    for number in range(1, runs + 1):
        load_before = os.getloadavg()[0]
        # alternate which tool goes first
        first, second = (ours, theirs) if number % 2 else (theirs, ours)
        first_took, second_took = first(), second()
        if first_took is None or second_took is None:
            return 1
        (our_time, our_cpu), (their_time, their_cpu) = (
            (first_took, second_took) if number % 2 else (second_took, first_took)
        )
        ratios.append(our_time / their_time)
        print(f"run {number}/{runs} (load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}; "
              f"{'callbackd' if number % 2 else 'sqlite3'} first):")
        print(f"  callbackd ledger import: {rows} rows in {our_time:.1f} s ({rows / our_time:,.0f} rows/s), "
              f"CPU {our_cpu:.1f} s; report: imported {rows}, errors 0")
        print(f"  sqlite3 .import:         {rows} rows in {their_time:.1f} s ({rows / their_time:,.0f} rows/s), "
              f"CPU {their_cpu:.1f} s")
        print(f"  ratio: {ratios[-1]:.1f}x (CPU time: {our_cpu / their_cpu:.1f}x)")
    ratio = statistics.median(ratios)
    print(f"median ratio: {ratio:.1f}x over {runs} run(s) (target <= {TARGET_RATIO:g}x)"
          + ("" if ratio <= TARGET_RATIO else " MISSED"))
    return 0 if ratio <= TARGET_RATIO else 1


def children_cpu() -> float:
    """User and system CPU seconds of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def remove_database(path: Path) -> None:
    """Fresh databases every run, also when --keep reuses a folder."""
    for stale in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        stale.unlink(missing_ok=True)


def succeeded(command: list[str], cwd: Path, env: dict[str, str]) -> bool:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"{' '.join(command)} failed (exit {done.returncode}):\n{done.stderr}", file=sys.stderr)
    return done.returncode == 0


if __name__ == "__main__":
    sys.exit(main())
