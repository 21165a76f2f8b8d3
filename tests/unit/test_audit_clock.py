"""The audit trail tells the truth: the operating-system account, the real time, a rehearsal's clock kept and
marked; its export is neutralised; revision 0006 upgrades a trail in place. And the SQLite file is private."""

from __future__ import annotations

import csv
import os
import pwd
import stat
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, text

from callbackd.core.settings import load_settings
from callbackd.store.db import MIGRATIONS, Database
from callbackd.store.models import AuditEvent
from tests.conftest import POSTGRES, case_row, write_csv

ACCOUNT = pwd.getpwuid(os.geteuid()).pw_name


def events() -> list[AuditEvent]:
    database = Database(load_settings().database_url)
    with database.session() as s:
        found = list(s.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    database.dispose()
    return found


def test_the_actor_is_the_operating_system_account_whatever_the_environment_says(cli, workdir, monkeypatch):
    for name in ("USER", "LOGNAME", "CALLBACKD_ACTOR"):
        monkeypatch.setenv(name, "局长")
    assert cli("ledger", "import", write_csv(workdir / "l.csv", [case_row("A1")])).code == 0
    assert [e.actor for e in events()] == [ACCOUNT]
    assert cli("audit", "list", "--json").json()[0]["actor"] == ACCOUNT


def test_an_ordinary_entry_has_the_real_time_and_no_rehearsal_mark(cli, workdir):
    before = datetime.now(UTC)
    assert cli("ledger", "import", write_csv(workdir / "l.csv", [case_row("A1")])).code == 0
    (entry,) = events()
    assert before - timedelta(seconds=1) <= entry.at <= datetime.now(UTC) + timedelta(seconds=1)
    assert entry.rehearsal is False and entry.clock_at is None
    listed = cli("audit", "list", "--json").json()[0]
    assert listed["rehearsal"] is False and listed["clock_at"] is None
    assert cli("audit", "list").out.count("演练") == 1  # the column's heading only


@pytest.mark.parametrize("setting", [("CALLBACKD_NOW", "2026-01-05T09:00:00+08:00"),
                                     ("CALLBACKD_CLOCK_OFFSET", "-864000")])
def test_a_back_dated_command_records_the_real_time_and_is_marked_a_rehearsal(cli, workdir, monkeypatch, setting):
    monkeypatch.setenv(*setting)
    before = datetime.now(UTC)
    assert cli("ledger", "import", write_csv(workdir / "l.csv", [case_row("A1")])).code == 0
    (entry,) = events()
    assert before - timedelta(seconds=1) <= entry.at <= datetime.now(UTC) + timedelta(seconds=1)
    assert entry.rehearsal is True and entry.clock_at is not None
    assert entry.at - entry.clock_at > timedelta(days=9)  # the clock it ran on, not the real one
    if setting[0] == "CALLBACKD_NOW":
        assert entry.clock_at == datetime(2026, 1, 5, 1, tzinfo=UTC)
    listed = cli("audit", "list", "--json").json()[0]
    assert listed["rehearsal"] is True and listed["clock_at"] == entry.clock_at.astimezone(
        load_settings().zone).isoformat()
    shown = cli("audit", "list")
    assert shown.code == 0 and shown.out.count("演练") == 2  # the heading and the entry's mark


def test_the_audit_export_marks_rehearsals_and_neutralises_its_cells(cli, workdir, monkeypatch):
    assert cli("ledger", "import", write_csv(workdir / "l.csv", [case_row("A1")])).code == 0
    monkeypatch.setenv("CALLBACKD_NOW", "2026-01-05T09:00:00+08:00")
    assert cli("audit", "export", "--out", "=HYPERLINK(1).csv").code == 0  # its own entry names the file
    assert cli("audit", "export", "--out", "trail.csv").code == 0
    rows = list(csv.reader((workdir / "trail.csv").read_text(encoding="utf-8-sig").splitlines()))
    assert rows[0] == ["序号", "时间", "操作人", "操作", "对象", "详情", "演练", "演练时钟"]
    ledger, export = rows[1], rows[2]
    assert ledger[6:] == ["", ""] and ledger[2] == ACCOUNT
    assert export[4] == "'=HYPERLINK(1).csv"
    assert export[6] == "演练" and export[7].startswith("2026-01-05T09:00:00")


@pytest.mark.empty_database
def test_revision_0006_keeps_the_trail_written_before_it(workdir):
    settings = load_settings()
    database = Database(settings.database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
    with database.engine.begin() as connection:
        connection.execute(
            text("INSERT INTO audit_events (at, actor, action, subject, detail) VALUES (:at, 'ops', 'export', 'x', "
                 "'{}')"), {"at": datetime(2026, 11, 1, tzinfo=UTC)})
    database.ensure_schema()
    with database.session() as s:
        (old,) = s.scalars(select(AuditEvent))
        assert (old.actor, old.rehearsal, old.clock_at) == ("ops", False, None)
    database.dispose()


@pytest.mark.skipif(bool(POSTGRES), reason="the database is a file only on SQLite")
def test_init_creates_the_database_file_0600_in_a_folder_0700(cli, workdir, monkeypatch):
    os.umask(0o022)
    monkeypatch.setenv("CALLBACKD_DATABASE_URL", f"sqlite:///{workdir}/data/callbackd.db")
    assert cli("init").code == 0
    assert stat.S_IMODE((workdir / "data").stat().st_mode) == 0o700
    assert stat.S_IMODE((workdir / "data" / "callbackd.db").stat().st_mode) == 0o600
    database = Database(load_settings().database_url)
    with database.engine.connect() as connection:  # while it is open, SQLite keeps its write-ahead log beside it
        connection.execute(text("SELECT count(*) FROM cases"))
        journals = [path for path in (workdir / "data").iterdir() if path.name.endswith(("-wal", "-shm"))]
        assert len(journals) == 2
        assert all(stat.S_IMODE(path.stat().st_mode) == 0o600 for path in journals)
    database.dispose()
