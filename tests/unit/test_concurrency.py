"""Two commands at the same moment: the loser says so in one line and leaves nothing half-written."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from callbackd.core.settings import load_settings
from callbackd.store.db import Database
from callbackd.store.models import Case, Round
from tests.conftest import case_row, phone_for, write_csv

BIN = str(Path(sys.executable).with_name("callbackd"))
NOW = "2026-11-23T17:00:00+08:00"


def at_once(workdir: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    env = {**os.environ, "CALLBACKD_NOW": NOW}
    started = [subprocess.Popen([BIN, *command], cwd=workdir, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for command in commands]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in started]


def big_ledger(workdir: Path) -> Path:
    rows = [case_row(f"K{i}", f"窗口{i % 150}", phone=phone_for(i)) for i in range(15_000)]
    return write_csv(workdir / "l.csv", rows)


def counts() -> tuple[int, int]:
    database = Database(load_settings().database_url)
    with database.session() as session:
        found = (session.scalar(select(func.count()).select_from(Case)) or 0,
                 session.scalar(select(func.count()).select_from(Round)) or 0)
    database.dispose()
    return found


def assert_clean(runs: list[subprocess.CompletedProcess[str]]) -> None:
    for run in runs:
        assert "Traceback" not in run.stderr, run.stderr
        if run.returncode:
            assert run.returncode == 1 and len(run.stderr.strip().splitlines()) == 1, run.stderr


def test_two_round_opens_of_one_week_give_one_round_and_one_clear_refusal(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    assert cli("ledger", "import", big_ledger(workdir)).code == 0
    runs = at_once(workdir, ["round", "open", "--week", "2026-W48", "--seed", "a"],
                   ["round", "open", "--week", "2026-W48", "--seed", "b"])
    assert sorted(run.returncode for run in runs) == [0, 1]
    assert_clean(runs)
    loser = next(run for run in runs if run.returncode)
    assert "2026-W48" in loser.stderr and "round" in loser.stderr
    assert counts()[1] == 1


def test_two_imports_of_one_file_keep_every_case_once(cli, workdir):
    path = big_ledger(workdir)
    runs = at_once(workdir, ["ledger", "import", str(path)], ["ledger", "import", str(path)])
    assert 0 in [run.returncode for run in runs]
    assert_clean(runs)
    assert counts()[0] == 15_000
    again = cli("ledger", "import", path, "--json").json()
    assert (again["imported"], again["unchanged"]) == (0, 15_000)
