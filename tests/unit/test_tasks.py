"""The Celery tasks' schedules and the jobs beat runs, called as plain functions on a real database (the
integration tests run them on real workers)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from celery.schedules import crontab
from sqlalchemy import select

from callbackd.api.manager import load_plugins
from callbackd.app import tasks
from callbackd.contact import dispatch
from callbackd.core.settings import load_settings
from callbackd.report import reports
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, Round
from tests.conftest import case_row, phone_for, write_csv


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    """Each test's settings and database, not an earlier test's."""
    tasks.forget()
    yield
    tasks.forget()


def ledger(cli, workdir: Path, windows: int = 2) -> None:
    rows = [
        case_row(f"K{w}{i:02d}", f"窗口{w}", phone=phone_for(w * 100 + i)) for w in range(windows) for i in range(5)
    ]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0


def test_beat_follows_the_configured_crontabs_in_the_organisations_zone(workdir, monkeypatch):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(
        '[workers]\nbroker_url = "redis://127.0.0.1:1/0"\nopen_rounds = "30 8 * * tue"\ntick_seconds = 15\n',
        encoding="utf-8",
    )
    app = tasks.configure(load_settings())
    assert app.conf.broker_url == "redis://127.0.0.1:1/0" and app.conf.timezone == "Asia/Shanghai"
    entries = app.conf.beat_schedule
    assert entries["tick"]["task"] == "callbackd.tick" and entries["tick"]["schedule"].seconds == 15
    # the tick goes at once when beat starts, however recently beat's schedule file says it last ran, then every 15 s
    ticking = entries["tick"]["schedule"]
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T08:00:00+08:00")
    just_now = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
    assert tuple(ticking.is_due(just_now)) == (True, 15)
    assert not ticking.is_due(just_now).is_due
    assert ticking.is_due(just_now - timedelta(seconds=15)).is_due
    opening = entries["open-rounds"]["schedule"]
    assert isinstance(opening, crontab)
    assert opening.hour == {8} and opening.minute == {30} and opening.day_of_week == {2}
    # on callbackd's clock: a rehearsal's shifted clock moves beat's schedules too
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T08:29:00+08:00")
    due, _ = opening.is_due(datetime(2026, 11, 23, 0, 30, tzinfo=UTC))
    assert not due
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T08:30:05+08:00")
    due, _ = opening.is_due(datetime(2026, 11, 23, 0, 30, tzinfo=UTC))
    assert due


def test_a_crontab_setting_needs_five_fields(cli, workdir):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text('[workers]\nscores = "every monday"\n', encoding="utf-8")
    run = cli("worker")
    assert run.code == 1
    assert "workers.scores" in run.err and "five fields" in run.err and "Traceback" not in run.err


def test_open_rounds_opens_the_current_week_once(cli, workdir, monkeypatch):
    ledger(cli, workdir)
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T09:00:00+08:00")
    opened = tasks.open_rounds()
    assert opened is not None
    assert tasks.open_rounds() is None  # the week has its round: a second beat opens nothing
    database = Database(load_settings().database_url)
    with database.session() as session:
        assert session.execute(select(Round.id, Round.week)).all() == [(opened, "2026-W48")]
        assert len(session.scalar(select(Round.seed))) == 32  # a random seed, recorded
    database.dispose()


def test_close_rounds_closes_a_round_once_every_callback_is_final(cli, workdir, monkeypatch):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(
        "[channels.simulator]\nno_answer_rate = 0.0\nrefuse_rate = 0.0\nhang_up_rate = 0.0\n", encoding="utf-8"
    )
    ledger(cli, workdir)
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    round_id = tasks.open_rounds()
    assert tasks.close_rounds() == []  # nothing placed yet
    database = Database(load_settings().database_url)
    # the tick's claim (the task then sends one message per id, which needs a broker: see tests/integration)
    queued = dispatch.tick(database, load_settings(), load_plugins()).claimed
    assert len(queued) == 10
    assert {tasks.place(attempt_id) for attempt_id in queued} == {"completed"}
    assert {tasks.place(attempt_id) for attempt_id in queued} == {None}  # delivered again: nothing twice
    assert tasks.close_rounds() == [round_id]
    assert tasks.close_rounds() == []
    with database.session() as session:
        assert session.scalar(select(Round.status)) == "closed"
        assert session.scalar(select(AuditEvent.subject).where(AuditEvent.action == "round.close")) == \
            f"round {round_id}"
    database.dispose()


def test_scores_writes_last_weeks_and_this_months_rankings(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-30T08:00:00+08:00")
    written = tasks.scores()
    names = sorted(Path(path).name for path in written)
    assert names == ["回访排名-2026-11.html", "回访排名-2026-11.json", "回访排名-2026-W48.html",
                     "回访排名-2026-W48.json"]
    assert all(Path(path).parent == workdir / "var" / "reports" for path in written)
    weekly = json.loads((workdir / "var" / "reports" / "回访排名-2026-W48.json").read_text(encoding="utf-8"))
    assert weekly["period"] == "2026-W48"


@pytest.mark.parametrize(
    ("now", "periods"),
    [
        ("2026-11-30T08:00:00+08:00", ["2026-W48", "2026-11"]),
        ("2026-12-07T08:00:00+08:00", ["2026-W49", "2026-12"]),
        ("2027-01-04T08:00:00+08:00", ["2026-W53", "2027-01"]),  # 2026 has 53 ISO weeks
    ],
)
def test_recent_periods(now, periods):
    assert reports.recent_periods(datetime.fromisoformat(now), load_settings()) == periods


def test_the_simulator_offers_a_provider_rate_only_when_set(workdir):
    plugins = load_plugins()
    channel = plugins.channel("simulator")
    assert channel.rate_limit(load_settings()) is None
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text("[channels.simulator]\nper_second = 12.5\n", encoding="utf-8")
    assert channel.rate_limit(load_settings()) == ("simulator", 12.5)


def test_an_unknown_pool_is_one_clear_error(cli):
    run = cli("worker", "--pool", "gevent")
    assert run.code == 1 and "--pool 'gevent' is not prefork, threads or solo" in run.err


def test_the_first_tasks_of_a_threads_pool_make_one_runtime(workdir):
    tasks.forget()
    barrier = threading.Barrier(8)

    def first_task() -> tasks.Runtime:
        barrier.wait()
        return tasks.runtime()

    try:
        with ThreadPoolExecutor(8) as pool:
            made = list(pool.map(lambda _: first_task(), range(8)))
        assert all(runtime is made[0] for runtime in made)
    finally:
        tasks.forget()
