"""Commands import what they need when they run: `--help` loads no database, settings, plugin or server library, and a
listing on a current database no Alembic, exporter, task queue or web framework. Nothing here is timed
(scripts/bench/startup.py measures the time); each case runs the command line in a fresh interpreter and reads
which modules it loaded."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES, case_row, phone_for, write_csv

# Run `callbackd ARGS` through its entry point, then write the names of the loaded modules to the file named by
# the first argument; the command's own output goes to stdout and stderr as usual.
PROBE = """
import json, sys
from callbackd.app.cli import main
code = main(sys.argv[2:])
with open(sys.argv[1], "w", encoding="utf-8") as handle:
    json.dump({"code": code, "modules": sorted(sys.modules)}, handle)
"""

# what declaring and describing the commands never needs (pydantic itself may load: Typer coerces option values
# with it)
NOT_FOR_HELP = ("sqlalchemy", "alembic", "pydantic_settings", "openpyxl", "celery", "kombu", "fastapi",
                "starlette", "uvicorn", "jinja2", "limits", "pluggy", "phonenumbers", "httpx", "argon2",
                "callbackd.core.settings", "callbackd.store", "callbackd.api", "callbackd_simulator",
                "callbackd_operator", "callbackd_twilio")
# what a listing on a database at the code's schema never needs
NOT_FOR_A_LISTING = ("alembic", "openpyxl", "celery", "kombu", "fastapi", "starlette", "uvicorn", "jinja2", "limits",
                     "pluggy", "httpx", "argon2", "phonenumbers", "callbackd.api", "callbackd.contact",
                     "callbackd.measure", "callbackd_simulator", "callbackd_operator", "callbackd_twilio")


def probe(workdir: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], int, set[str]]:
    """Run the command line in a new interpreter: its output, exit code and loaded modules."""
    record = workdir / f"modules-{len(list(workdir.glob('modules-*')))}.json"
    done = subprocess.run([sys.executable, "-c", PROBE, str(record), *args], capture_output=True, text=True,
                          cwd=workdir, env={**os.environ, "COLUMNS": "120"}, timeout=120)
    assert done.returncode == 0 and record.exists(), done.stderr
    loaded = json.loads(record.read_text(encoding="utf-8"))
    return done, loaded["code"], set(loaded["modules"])


def among(modules: set[str], packages: tuple[str, ...]) -> list[str]:
    """The packages of `packages` that `modules` holds, or any module inside them."""
    return [p for p in packages if any(m == p or m.startswith(p + ".") for m in modules)]


def test_help_loads_no_database_settings_or_plugins(workdir):
    done, code, modules = probe(workdir, "--help")
    assert code == 0
    assert "windows" in done.stdout and "ledger" in done.stdout and "users" in done.stdout  # every group listed
    assert among(modules, NOT_FOR_HELP) == []
    assert "typer" in modules  # the probe did see the command line's imports


def test_a_group_and_a_command_help_load_nothing_more(workdir):
    for args, shown in ((["windows", "--help"], "list"), (["round", "open", "--help"], "--week"),
                        (["users", "--help"], "password"), (["export", "--help"], "--format")):
        done, code, modules = probe(workdir, *args)
        assert code == 0 and shown in done.stdout, args
        assert among(modules, NOT_FOR_HELP) == [], args


def test_a_listing_on_a_current_database_loads_no_alembic_exporter_queue_or_web(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T17:00:00+08:00")
    rows = [case_row(f"C{i}", "社保窗口" if i % 2 else "税务窗口", phone=phone_for(i)) for i in range(4)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0  # creates the schema

    done, code, modules = probe(workdir, "windows", "list", "--json")
    assert code == 0
    assert json.loads(done.stdout) == [{"window": "社保窗口", "cases": 2, "resolved": 2},
                                       {"window": "税务窗口", "cases": 2, "resolved": 2}]
    assert among(modules, NOT_FOR_A_LISTING) == []
    if not POSTGRES:  # a SQLite database needs none of PostgreSQL's dialect
        assert among(modules, ("sqlalchemy.dialects.postgresql", "psycopg")) == []
    assert "sqlalchemy" in modules and "callbackd.report.listings" in modules


@pytest.mark.empty_database
def test_a_listing_on_a_new_database_still_creates_it_with_alembic(workdir):
    # the other side of the cheap check: a database behind the code is upgraded before the listing
    done, code, modules = probe(workdir, "windows", "list", "--json")
    assert code == 0 and json.loads(done.stdout) == []
    assert "alembic" in modules
    assert among(modules, ("openpyxl", "celery", "fastapi", "jinja2", "pluggy")) == []
