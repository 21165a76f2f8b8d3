"""The command line contract: JSON documents, one-line errors with exit 1, masked phones, audited reveals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from callbackd.core.settings import load_settings
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent
from tests.conftest import POSTGRES, case_row, phone_for, write_csv


def audit_actions(workdir: Path) -> list[AuditEvent]:
    db = Database(load_settings().database_url)
    try:
        with db.session() as s:
            return list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    finally:
        db.dispose()


def seeded(cli, workdir: Path, monkeypatch) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T17:00:00+08:00")
    rows = [case_row(f"C{i}", "社保窗口" if i % 2 else "税务窗口", phone=phone_for(i)) for i in range(10)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0


@pytest.mark.empty_database
def test_init_creates_then_reports_current(cli, workdir):
    first = cli("init")
    assert first.code == 0 and "created" in first.out
    if not POSTGRES:
        assert (workdir / "var" / "callbackd.db").exists()
    assert "already current" in cli("init").out


def test_listings_mask_phones_and_reveal_is_audited(cli, workdir, monkeypatch):
    seeded(cli, workdir, monkeypatch)
    windows = cli("windows", "list", "--json").json()
    assert windows == [
        {"window": "社保窗口", "cases": 5, "resolved": 5},
        {"window": "税务窗口", "cases": 5, "resolved": 5},
    ]

    masked = cli("cases", "list", "--window", "社保窗口", "--json")
    phones = [c["phone"] for c in masked.json()]
    assert phones and all("****" in p and "+86" not in p for p in phones)
    assert phone_for(1) not in masked.out
    assert not [e for e in audit_actions(workdir) if e.action == "phone.reveal"]

    revealed = cli("cases", "list", "--window", "社保窗口", "--reveal", "--json").json()
    assert {c["phone"] for c in revealed} == {"+86" + phone_for(i) for i in (1, 3, 5, 7, 9)}
    reveals = [e for e in audit_actions(workdir) if e.action == "phone.reveal"]
    assert len(reveals) == 1 and sorted(reveals[0].detail["cases"]) == ["C1", "C3", "C5", "C7", "C9"]

    assert cli("round", "open", "--week", "2026-W48", "--seed", "x").code == 0
    callbacks = cli("callbacks", "list", "--round", "1", "--json").json()
    assert len(callbacks) == 10 and all("****" in c["phone"] for c in callbacks)
    assert {c["status"] for c in callbacks} == {"pending"}
    assert cli("callbacks", "list", "--status", "completed", "--json").json() == []
    human = cli("callbacks", "list")
    assert human.code == 0 and phone_for(1) not in human.out
    actions = [e.action for e in audit_actions(workdir)]
    assert actions.count("ledger.import") == 1 and actions.count("round.open") == 1


def test_user_errors_are_one_line_and_exit_1(cli, workdir):
    cases = [
        (["round", "open"], "--week"),
        (["round", "open", "--week", "2026-W48", "--bogus"], "--bogus"),
        (["round", "show", "7"], "no round 7"),
        (["cases", "list", "--window", "没有这个窗口"], "没有这个窗口"),
        (["round", "verify", "abc"], "ROUND"),
    ]
    for args, expected in cases:
        run = cli(*args)
        assert run.code == 1, args
        assert run.err.startswith("error: ") and run.err.count("\n") == 1, run.err
        assert expected in run.err


def test_an_unknown_setting_is_a_start_up_error_naming_it(cli, workdir):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text("[sampling]\nper_windw = 5\n", encoding="utf-8")
    run = cli("windows", "list")
    assert run.code == 1 and "sampling.per_windw" in run.err


def test_the_installed_command_never_prints_a_traceback(workdir):
    env = {"PATH": str(Path(sys.executable).parent), "HOME": str(workdir), "LANG": "C.UTF-8"}
    command = [str(Path(sys.executable).parent / "callbackd")]
    missing = subprocess.run([*command, "ledger", "import", "nope.csv"], capture_output=True, text=True,
                             env=env, cwd=workdir)
    assert missing.returncode == 1
    assert missing.stderr.strip() == "error: nope.csv: no such file"
    listed = subprocess.run([*command, "windows", "list", "--json"], capture_output=True, text=True, env=env,
                            cwd=workdir)
    assert listed.returncode == 0 and json.loads(listed.stdout) == []


def test_demo_runs_a_month_of_rounds_and_ranks_the_windows(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    run = cli("demo", "--out", "d", "--json")
    assert run.code == 0, run.err
    result = run.json()
    assert result["month"] == "2026-10" and result["imported"] == 6000 and result["bad_rows"] == 0
    assert [r["week"] for r in result["rounds"]] == ["2026-W41", "2026-W42", "2026-W43", "2026-W44"]
    for round_ in result["rounds"]:
        assert len(round_["windows"]) == 12 and round_["channels"] == ["simulator"]
        assert all(len(w["selected"]) >= 20 for w in round_["windows"])
    drawn = sum(len(w["selected"]) for r in result["rounds"] for w in r["windows"])
    assert sum(result["callbacks"].values()) == drawn
    assert result["callbacks"]["completed"] > drawn * 0.7 and "pending" not in result["callbacks"]
    assert result["forms"] > 0 and result["ratings"] > 0
    ranking = result["ranking"]
    assert ranking["simulated"] is True and ranking["period"] == "2026-10"
    assert len(ranking["windows"]) == 12
    assert [w["rank"] for w in ranking["windows"]][0] == 1
    assert all(w["by_source"]["onsite"] is not None for w in ranking["windows"])
    for name in ("ranking.xlsx", "ranking.html"):
        assert (workdir / "d" / name).stat().st_size > 1000
    monkeypatch.setenv("CALLBACKD_DATABASE_URL", f"sqlite:///{workdir / 'd' / 'callbackd.db'}")
    for round_ in result["rounds"]:
        assert cli("round", "verify", round_["round"]).code == 0
    rescored = cli("score", "--period", "2026-10", "--json").json()
    assert rescored["windows"] == ranking["windows"]


def test_the_demo_never_writes_over_other_files(cli, workdir):
    assert cli("init").code == 0
    if not POSTGRES:  # the embedded database lives in ./var
        refused = cli("demo", "--out", "var")
        assert refused.code == 1 and "working database" in refused.err
    (workdir / "notes").mkdir()
    (workdir / "notes" / "keep.txt").write_text("mine", encoding="utf-8")
    refused = cli("demo", "--out", "notes")
    assert refused.code == 1 and "other files" in refused.err
    assert (workdir / "notes" / "keep.txt").read_text(encoding="utf-8") == "mine"
    if not POSTGRES:
        assert cli("demo", "--out", "var/callbackd.db").code == 1  # a file, not a folder
