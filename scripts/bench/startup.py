#!/usr/bin/env python3
"""Benchmark: how soon `callbackd` commands answer, beside `python -c pass` from the same environment.

    .venv/bin/python scripts/bench/startup.py [--runs N] [--keep DIR] [--against REV|DIR]

Builds the demo's database once (`callbackd demo --out DIR/demo --json`, in a temporary folder unless `--keep DIR`
names one to keep and reuse), then runs, interleaved so that a change in the machine's load falls on all alike,
N times each (default 15):

- `python -c pass` with this environment's interpreter: the floor every Python command stands on;
- `callbackd --help`: the commands and their options, nothing opened (target: within 15x of the floor);
- `callbackd windows list` on the demo's database (CALLBACKD_DATABASE_URL pointing at it): settings read, schema
  checked, one query (target: within 25x of the floor);
- the libraries such a listing cannot do without, imported and nothing more (`python -c "import typer, ..."`: Typer
  and rich, pydantic-settings, SQLAlchemy's ORM and SQLite dialect): not a target, the part of a listing's time
  that callbackd's own code cannot cut.

Each figure is the median and the minimum over the runs, wall clock and CPU time (user + system of the child, from
`os.wait4`): on a machine busy with other work the CPU time says more about the code than the wall clock. The
ratios to `python -c pass` are printed against the targets with PASS or MISS, and the load average beside them.
A benchmark prints; it is not a test (tests/unit/test_startup.py holds what must not be imported): the exit status
is 1 only when a command fails.

`--against REV|DIR` times another version of callbackd in the same runs, interleaved with this one: a git revision
(its `callbackd`, `config` and `plugins` folders taken with `git archive`, which leaves the repository as it is) or
a folder holding them. It runs with this environment's interpreter and libraries, its own code first on PYTHONPATH,
on a demo database it builds itself (its schema may differ). `--against HEAD` shows what uncommitted changes do.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

FLOOR = "python -c pass"
TARGETS = {"callbackd --help": 15.0, "callbackd windows list": 25.0}
LIBRARIES = "libraries of a listing"
# what any command that reads the settings and queries a SQLite database through the ORM imports before callbackd's
# own code runs (typer._adapters: Typer coerces option values with pydantic)
LIBRARY_IMPORTS = ("typer, typer._adapters, rich.console, rich.table, pydantic_settings, sqlalchemy.orm, "
                   "sqlalchemy.dialects.sqlite.pysqlite")


@dataclass
class Figures:
    """One command's runs, in its environment: wall and CPU seconds each."""

    command: list[str]
    env: dict[str, str]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)


def load() -> str:
    return "load average " + ", ".join(f"{value:.2f}" for value in os.getloadavg()) + f" on {os.cpu_count()} CPUs"


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """(wall seconds, the child's user + system CPU seconds) of one run; exits when the command fails."""
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    stderr = child.stderr.read().decode(errors="replace") if child.stderr else ""
    if child.stderr:
        child.stderr.close()
    if child.returncode:
        sys.exit(f"{' '.join(command)} failed (exit {child.returncode}):\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime


def build_demo(folder: Path, callbackd: Path, env: dict[str, str]) -> Path:
    """The demo's database in `folder`/demo, built when missing (a minute or so)."""
    database = folder / "demo" / "callbackd.db"
    if database.exists():
        print(f"demo database: {database} (kept from an earlier run)")
        return database
    print(f"building the demo's database in {folder / 'demo'} ...", flush=True)
    started = time.perf_counter()
    done = subprocess.run([str(callbackd), "demo", "--out", str(folder / "demo"), "--json"], cwd=folder, env=env,
                          capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"callbackd demo failed (exit {done.returncode}):\n{done.stderr}")
    report = json.loads(done.stdout)
    print(f"demo database: {database} ({report['imported']} cases, {len(report['rounds'])} rounds) in "
          f"{time.perf_counter() - started:.0f} s")
    return database


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="Runs of each command (default 15).")
    parser.add_argument("--keep", type=Path, help="Build the demo here and keep it (reused when present).")
    parser.add_argument("--against", metavar="REV|DIR", help="Also time this git revision's or folder's callbackd.")
    args = parser.parse_args()
    python = Path(sys.executable)
    callbackd = python.with_name("callbackd")
    if not callbackd.exists():
        print(f"{callbackd} not found: install callbackd into this environment (pip install -e .)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="callbackd-startup-") as scratch:
        other = None if args.against is None else source_of(args.against, Path(scratch) / "against")
        if args.keep is not None:
            args.keep.mkdir(parents=True, exist_ok=True)
        return run(args.keep.resolve() if args.keep else Path(scratch), args.runs, python, callbackd,
                   None if other is None else (args.against, other))


def source_of(against: str, scratch: Path) -> Path:
    """The folder of the callbackd to compare with: `against` itself when it is one, else the git revision's
    `callbackd`, `config` and `plugins` folders unpacked into `scratch`."""
    if Path(against, "callbackd").is_dir():
        return Path(against).resolve()
    here = Path(__file__).resolve().parents[2]
    scratch.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(here), "archive", against, "callbackd", "config", "plugins"],
                             capture_output=True)
    if archive.returncode:
        sys.exit(f"--against {against}: neither a folder holding callbackd/ nor a git revision "
                 f"({archive.stderr.decode(errors='replace').strip()})")
    subprocess.run(["tar", "-x", "-C", str(scratch)], input=archive.stdout, check=True)
    return scratch


def run(folder: Path, runs: int, python: Path, callbackd: Path, against: tuple[str, Path] | None) -> int:
    # the bundled settings, not a config/ folder of wherever this runs from. Bytecode may be written: an installed
    # callbackd has its modules compiled, and with PYTHONDONTWRITEBYTECODE set a module edited since the last
    # compilation would be compiled again in every timed run.
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("CALLBACKD_") and key != "PYTHONDONTWRITEBYTECODE"}
    versions = {"": (folder, env)}
    if against is not None:
        # the other version's code and plugins ahead of the installed ones, and only its own plugins loaded (one
        # installed since would import names its callbackd.api lacks); a demo database of its own
        name, other = against
        plugins = sorted(p for p in (other / "plugins").glob("*") if (p / "pyproject.toml").is_file())
        path = os.pathsep.join([str(other), *map(str, plugins), *filter(None, [env.get("PYTHONPATH")])])
        entry_points = [entry for p in plugins for entry in tomllib.loads((p / "pyproject.toml").read_text(
            encoding="utf-8"))["project"].get("entry-points", {}).get("callbackd", {})]
        own = folder / ("against-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in name))
        versions[f" ({name})"] = (own, {**env, "PYTHONPATH": path, "CALLBACKD_DISABLE_PLUGIN_AUTOLOAD": "1",
                                        "CALLBACKD_LOAD_PLUGINS": ",".join(entry_points)})
    commands = {FLOOR: Figures([str(python), "-c", "pass"], env),
                LIBRARIES: Figures([str(python), "-c", f"import {LIBRARY_IMPORTS}"], env)}
    for label, (where, version_env) in versions.items():
        where.mkdir(parents=True, exist_ok=True)
        database = build_demo(where, callbackd, version_env)
        version_env = {**version_env, "CALLBACKD_DATABASE_URL": f"sqlite:///{database}"}
        commands[f"callbackd --help{label}"] = Figures([str(callbackd), "--help"], version_env)
        commands[f"callbackd windows list{label}"] = Figures([str(callbackd), "windows", "list"], version_env)
    for figures in commands.values():  # one untimed run each: files in the page cache, bytecode written
        timed(figures.command, figures.env, folder)
    print(f"{runs} interleaved runs of each command, {load()}")
    for _ in range(runs):
        for figures in commands.values():
            wall, cpu = timed(figures.command, figures.env, folder)
            figures.wall.append(wall)
            figures.cpu.append(cpu)
    floor = commands[FLOOR]
    floor_wall, floor_cpu = statistics.median(floor.wall), statistics.median(floor.cpu)
    width = max(len(name) for name in commands)
    print(f"{'':{width}}  {'wall median':>11}  {'wall min':>8}  {'CPU median':>10}  {'CPU min':>7}  "
          f"{'ratio wall':>10}  {'ratio CPU':>9}")
    for name, figures in commands.items():
        wall, cpu = statistics.median(figures.wall), statistics.median(figures.cpu)
        ratios = "" if figures is floor else f"{wall / floor_wall:9.1f}x  {cpu / max(floor_cpu, 1e-3):8.1f}x"
        print(f"{name:{width}}  {wall * 1000:9.0f}ms  {min(figures.wall) * 1000:6.0f}ms  {cpu * 1000:8.0f}ms  "
              f"{min(figures.cpu) * 1000:5.0f}ms  {ratios}")
    for name, target in TARGETS.items():
        wall_ratio = statistics.median(commands[name].wall) / floor_wall
        cpu_ratio = statistics.median(commands[name].cpu) / max(floor_cpu, 1e-3)
        verdict = "PASS" if wall_ratio <= target else "MISS"
        print(f"{verdict}: {name} {wall_ratio:.1f}x `{FLOOR}` on the wall clock, {cpu_ratio:.1f}x in CPU time "
              f"(medians; target within {target:g}x, {target * floor_wall * 1000:.0f} ms here)")
    print(f"({LIBRARIES}: python -c \"import {LIBRARY_IMPORTS}\")")
    print(f"after the runs: {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
