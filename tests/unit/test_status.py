"""`callbackd status`: beat's tick judged against 3 × [workers] tick_seconds, the embedded runner's run, a broker that
cannot be reached in one line, what is overdue, and the exit code that says whether all is well."""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path

from callbackd.api.manager import load_plugins
from callbackd.contact import dispatch
from callbackd.core.settings import load_settings
from callbackd.store import heartbeats
from callbackd.store.db import SCHEMA_HEAD, Database
from tests.conftest import case_row, phone_for, write_csv

NOW = "2026-11-23T10:00:00+08:00"


def config(workdir: Path, text: str) -> None:
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(text, encoding="utf-8")


def ticked(seconds_ago: float) -> None:
    """Beat's tick ran `seconds_ago` before NOW."""
    database = Database(load_settings().database_url)
    database.ensure_schema()
    try:
        with database.session() as session:
            heartbeats.beat(session, "beat.tick", datetime.fromisoformat(NOW) - timedelta(seconds=seconds_ago),
                            claimed=2)
    finally:
        database.dispose()


def test_a_stale_beat_exits_1_with_the_reason(cli, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    ticked(600)
    run = cli("status", "--json", "--no-workers")
    assert run.code == 1
    report = run.json()
    assert report["ok"] is False and report["beat"]["recent"] is False and report["beat"]["age_seconds"] == 600
    assert report["problems"] == ["beat has not ticked for 600 s (expected within 180 s: 3 × [workers] tick_seconds)"]
    assert "problem: beat has not ticked for 600 s" in run.err
    assert report["workers"] == {"checked": False, "answered": 0, "names": [], "error": None,
                                 "note": "not checked (--no-workers)"}


def test_a_beat_that_never_ticked_is_a_problem_too(cli, monkeypatch, database):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    run = cli("status", "--json", "--no-workers")
    assert run.code == 1 and run.json()["problems"][0].startswith("beat has never ticked")


def test_a_fresh_tick_is_healthy_and_the_window_follows_tick_seconds(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    ticked(100)
    run = cli("status", "--json", "--no-workers")
    assert run.code == 0, run.err
    report = run.json()
    assert report["ok"] is True and report["problems"] == [] and run.err == ""
    assert report["beat"] == {"at": "2026-11-23T01:58:20+00:00", "age_seconds": 100.0, "recent": True,
                              "judged": True}
    assert report["heartbeats"]["beat.tick"]["detail"] == {"claimed": 2}
    config(workdir, "[workers]\ntick_seconds = 30\n")  # 3 × 30 s: 100 s is late
    assert cli("status", "--json", "--no-workers").code == 1


def test_an_unreachable_broker_is_one_line_without_its_password(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    config(workdir, '[workers]\nbroker_url = "redis://:hunter2-secret@127.0.0.1:9/0"\n')
    ticked(10)
    began = time.monotonic()
    run = cli("status", "--json")
    assert time.monotonic() - began < 15
    assert run.code == 1
    report = run.json()
    assert report["workers"]["checked"] is True and report["workers"]["answered"] == 0
    (problem,) = report["problems"]
    assert problem.startswith("the broker at redis://") and "127.0.0.1:9" in problem and "cannot be reached" in problem
    assert "hunter2" not in run.out and "hunter2" not in run.err and "Traceback" not in run.err
    assert run.err.strip().splitlines() == [f"problem: {problem}"]


def test_the_embedded_runner_is_judged_with_embedded(cli, workdir, monkeypatch, database):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    assert cli("status", "--json", "--embedded").json()["problems"] == [
        "the embedded runner has never run (expected within 180 s: 3 × [workers] tick_seconds)"]
    assert cli("dispatch", "--once").code == 0
    run = cli("status", "--json", "--embedded")
    assert run.code == 0, run.err
    report = run.json()
    assert report["embedded_runner"]["recent"] is True and report["beat"]["judged"] is False
    assert report["workers"]["note"] == "not checked (--embedded)"


def test_what_is_overdue_is_counted(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row(f"S{i}", "社保窗口", phone=phone_for(i)) for i in range(3)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s").code == 0
    settings = load_settings()
    database = Database(settings.database_url)
    try:
        with database.session() as session:  # first attempts due an hour ago, and nothing has claimed them
            dispatch.schedule_new(session, settings, load_plugins(), datetime.fromisoformat(NOW) - timedelta(hours=1))
    finally:
        database.dispose()
    ticked(5)
    run = cli("status", "--json", "--no-workers")
    assert run.code == 0, run.err
    overdue = run.json()["overdue"]
    assert overdue["attempts_due"] == 3 and overdue["attempts_due_by_channel"] == {"simulator": 3}
    assert overdue["attempts_due_oldest_seconds"] >= 3600
    assert overdue["rectifications_overdue"] == 0 and overdue["notifications_waiting"] == 0
    shown = cli("status", "--no-workers")
    assert shown.code == 0
    assert "attempts due and waiting: 3" in shown.out and "beat's tick: 2026-11-23 09:59:55 (5 s ago) ok" in shown.out
    assert "workers: not checked (--no-workers)" in shown.out
    assert phone_for(0) not in run.out + shown.out


def test_a_database_behind_this_version_is_one_line(cli, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    ticked(5)
    database = Database(load_settings().database_url)
    try:
        with database.engine.begin() as connection:
            connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    finally:
        database.dispose()
    run = cli("status", "--json", "--no-workers")
    assert run.code == 1 and run.out == ""
    assert run.err.strip().splitlines() == [
        f"error: the database's schema is 0001, this version's is {SCHEMA_HEAD}: run `callbackd init`"]


def test_a_heartbeat_is_one_row_per_job_holding_its_last_run(database):
    first, second = datetime.fromisoformat(NOW), datetime.fromisoformat(NOW) + timedelta(minutes=1)
    with database.session() as session:
        heartbeats.beat(session, "beat.tick", first, claimed=4)
        heartbeats.beat(session, "dispatch.run", first)
    with database.session() as session:
        heartbeats.beat(session, "beat.tick", second, claimed=0, reclaimed=1)
    with database.session() as session:
        assert heartbeats.read(session) == {"beat.tick": (second, {"claimed": 0, "reclaimed": 1}),
                                            "dispatch.run": (first, {})}
