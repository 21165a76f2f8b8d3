"""Callback plans (回访计划): the population imported with bad rows by line, frequencies, callbacks generated exactly
once per member and period (two runs, two sessions, the tick), the report's figures, and the console page."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callbackd.core.settings import load_settings
from callbackd.rounds import plans
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, Callback, Case, Contact, PlanPeriod, Round, Window
from tests.conftest import write_csv

MEMBER_HEADER = ["姓名", "联系电话", "区域/楼栋", "负责人"]
DIMENSIONS = ["服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价"]
# 王 calls two households of 1栋, 李 one of 2栋
POPULATION = [["业主甲", "13900000001", "1栋", "王"], ["业主乙", "13900000002", "1栋", "王"],
              ["业主丙", "13900000003", "2栋", "李"]]


def with_window(database: Database, name: str = "物业服务中心") -> None:
    with database.session() as session:
        session.add(Window(name=name, created_at=datetime(2026, 11, 1, tzinfo=UTC)))


def make_plan(cli, frequency: str = "monthly", name: str = "业主月度回访", starts: str = "2026-11-01") -> None:
    made = cli("plans", "create", name, "--window", "物业服务中心", "--frequency", frequency, "--starts", starts,
               "--channel", "operator", "--topic", "物业服务满意度", "--json")
    assert made.code == 0, made.err


def callbacks(database: Database) -> list[tuple[str, str, str]]:
    """(period, case number, status) of every plan callback."""
    with database.session() as session:
        return sorted(session.execute(
            select(PlanPeriod.period, Case.case_no, Callback.status)
            .join(Callback, Callback.round_id == PlanPeriod.round_id).join(Case, Case.id == Callback.case_id)).all())


@pytest.fixture
def plan(cli, database, workdir: Path, monkeypatch):
    with_window(database)
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-02T10:00:00+08:00")
    make_plan(cli)
    imported = cli("plans", "import", write_csv(workdir / "名单.csv", POPULATION, header=MEMBER_HEADER),
                   "--plan", "业主月度回访", "--json")
    assert imported.code == 0 and imported.json()["imported"] == 3, imported.err


# ---- the population --------------------------------------------------------------------------------------


def test_members_import_with_bad_rows_by_line_and_reimport_updates(cli, database, workdir, monkeypatch):
    with_window(database)
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-02T10:00:00+08:00")
    make_plan(cli)
    rows = [["业主甲", "139 0000 0001", "1栋", "王"],  # line 2: spaces are read away
            ["", "13900000002", "1栋", "王"],  # line 3: no name
            ["业主丙", "4008001234", "2栋", "李"],  # line 4: a 400 number is no one's line
            ["业主丁", "+86 139-0000-0001", "3栋", "李"],  # line 5: line 2's number again
            ["业主戊", "13900000005", "", ""]]  # line 6: area and assignee may be empty
    first = cli("plans", "import", write_csv(workdir / "a.csv", rows, header=MEMBER_HEADER), "--plan", "业主月度回访",
                "--json")
    assert first.code == 0, first.err
    report = first.json()
    assert (report["imported"], report["updated"], report["unchanged"]) == (2, 0, 0)
    assert [(e["line"], e["reason"].split(":")[0].split(" ")[0]) for e in report["errors"]] == [
        (3, "姓名"), (4, "联系电话"), (5, "联系电话")]
    assert "repeats line 2" in report["errors"][2]["reason"]
    again = [["业主甲", "13900000001", "1栋", "张"], ["业主戊", "13900000005", "", ""]]
    second = cli("plans", "import", write_csv(workdir / "b.csv", again, header=MEMBER_HEADER), "--plan", "业主月度回访",
                 "--json").json()
    assert (second["imported"], second["updated"], second["unchanged"]) == (0, 1, 1)
    listed = cli("plans", "list", "--json").json()
    assert [(p["name"], p["members"]) for p in listed] == [("业主月度回访", 2)]
    with database.session() as session:
        cases = session.execute(select(Case.case_no, Case.case_type, Case.resolved, Case.applicant)
                                .order_by(Case.case_no)).all()
    assert cases == [("JH1-000001", "回访计划", False, "业主甲"), ("JH1-000002", "回访计划", False, "业主戊")]
    assert cli("plans", "import", workdir / "b.csv", "--plan", "没有的计划").code == 1


def test_a_plan_with_a_bad_part_is_refused_in_one_line(cli, database):
    with_window(database)
    for args, said in [(["--window", "没有的窗口", "--frequency", "monthly"], "not a known window"),
                       (["--window", "物业服务中心", "--frequency", "weekly"], "frequency must be one of"),
                       (["--window", "物业服务中心", "--frequency", "once", "--assignee", "nobody"], "not an active"),
                       (["--window", "物业服务中心", "--frequency", "once", "--starts", "2026-13-01"], "YYYY-MM-DD")]:
        made = cli("plans", "create", "计划", *args)
        assert made.code == 1 and said in made.err and "Traceback" not in made.err
    make_plan(cli, name="计划")
    assert "exists already" in cli("plans", "create", "计划", "--window", "物业服务中心", "--frequency", "once").err


# ---- frequencies and generation --------------------------------------------------------------------------


@pytest.mark.parametrize(("frequency", "day", "expected"), [
    ("monthly", date(2026, 11, 30), ("2026-11", date(2026, 11, 1), date(2026, 12, 1))),
    ("monthly", date(2026, 12, 1), ("2026-12", date(2026, 12, 1), date(2027, 1, 1))),
    ("quarterly", date(2026, 11, 30), ("2026-Q4", date(2026, 10, 1), date(2027, 1, 1))),
    ("quarterly", date(2026, 3, 31), ("2026-Q1", date(2026, 1, 1), date(2026, 4, 1))),
    ("yearly", date(2026, 6, 15), ("2026", date(2026, 1, 1), date(2027, 1, 1))),
    ("once", date(2026, 11, 2), ("once", date(2026, 11, 2), date(2026, 11, 3))),
])
def test_a_frequency_gives_its_calendar_period(frequency, day, expected):
    span = plans.period_for(frequency, day)
    assert (span.key, span.first, span.end) == expected


def test_callbacks_are_generated_once_per_member_and_period(cli, database, plan, monkeypatch):
    first = cli("plans", "run", "--json").json()
    assert first["plans"] == {"业主月度回访": {"period": "2026-11", "callbacks": 3}}
    assert cli("plans", "run", "--json").json()["callbacks"] == 0  # a second run, a new process each time
    # two sessions at once, neither seeing the other's work before it commits: the database's keys decide
    settings = load_settings()
    now = datetime(2026, 11, 20, 2, tzinfo=UTC)
    with database.session() as one, database.session() as two:
        assert plans.generate(one, settings, now).callbacks == 0
        assert plans.generate(two, settings, now).callbacks == 0
    assert callbacks(database) == [("2026-11", f"JH1-00000{n}", "pending") for n in (1, 2, 3)]
    # the next month is the next period: its own round, its own callbacks
    monkeypatch.setenv("CALLBACKD_NOW", "2026-12-01T09:30:00+08:00")
    assert cli("plans", "run", "--json").json()["plans"] == {"业主月度回访": {"period": "2026-12", "callbacks": 3}}
    assert [row[0] for row in callbacks(database)] == ["2026-11"] * 3 + ["2026-12"] * 3
    with database.session() as session:
        kinds = session.execute(select(Round.kind, Round.active_week, Round.week).order_by(Round.id)).all()
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "plan.period")) == 2
    assert kinds == [("plan", None, "2026-W44"), ("plan", None, "2026-W49")]
    assert cli("round", "list", "--json").json() == []  # not a week's round


def test_two_sessions_racing_for_a_new_period_make_it_once(cli, database, plan):
    settings = load_settings()
    now = datetime(2026, 11, 2, 2, tzinfo=UTC)
    one, two = database.session(), database.session()
    with one as first:
        made = plans.generate(first, settings, now)
    with two as second:
        again = plans.generate(second, settings, now)
    assert (made.callbacks, again.callbacks) == (3, 0)
    assert len(callbacks(database)) == 3


def test_frequencies_decide_when_the_next_period_comes(cli, database, workdir, monkeypatch):
    with_window(database)
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-02T10:00:00+08:00")
    for frequency in ("quarterly", "yearly", "once"):
        make_plan(cli, frequency, name=frequency)
        cli("plans", "import", write_csv(workdir / f"{frequency}.csv", POPULATION[:1], header=MEMBER_HEADER),
            "--plan", frequency)
    make_plan(cli, "monthly", name="later", starts="2026-12-15")
    periods = {}
    for now in ("2026-11-02T10:00:00+08:00", "2026-12-31T10:00:00+08:00", "2027-01-04T10:00:00+08:00"):
        monkeypatch.setenv("CALLBACKD_NOW", now)
        made = cli("plans", "run", "--json").json()["plans"]
        periods[now[:10]] = {name: generated["period"] for name, generated in made.items()}
    assert periods == {
        "2026-11-02": {"quarterly": "2026-Q4", "yearly": "2026", "once": "once"},
        "2026-12-31": {},  # still Q4 and 2026, once is done; `later` has no member yet
        "2027-01-04": {"quarterly": "2027-Q1", "yearly": "2027"},
    }


# ---- through the queue, the results and the report -------------------------------------------------------


def test_plan_callbacks_go_through_the_tick_and_results_and_stay_out_of_scores(cli, database, workdir, plan,
                                                                                monkeypatch):
    run = cli("dispatch", "--once", "--json")  # the tick generates, then schedules through the plan's channel
    assert run.code == 0, run.err
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Callback).where(Callback.status == "in_progress")) == 3
    # the operator's results, by the members' case numbers: 甲 and 丙 answered, 乙 not reached
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-03T12:00:00+08:00")
    header = ["办件编号", "回访时间", *DIMENSIONS, "意见建议"]
    rows = [["JH1-000001", "2026-11-03 10:00", *["满意"] * 6, ""], ["JH1-000002", "2026-11-03 10:05", *[""] * 6, ""],
            ["JH1-000003", "2026-11-03 10:10", *["基本满意"] * 6, ""]]
    imported = cli("results", "import", write_csv(workdir / "r.csv", rows, header=header), "--source", "operator",
                   "--json")
    assert imported.code == 0 and imported.json()["errors"] == [], imported.out + imported.err
    assert [status for *_, status in callbacks(database)] == ["completed", "in_progress", "completed"]
    with database.session() as session:
        assert set(session.scalars(select(Contact.source))) == {"plan"}
    score = cli("score", "--period", "2026-11", "--json").json()
    office = [w for w in score["windows"] if w["window"] == "物业服务中心"]
    assert [w["contacts_by_source"] for w in office] == [{"callback": 0, "onsite": 0, "evaluator": 0}]
    # 王/1栋 planned 2, done 1 (50%); 李/2栋 planned 1, done 1 (100%); in all 3 and 2 (66.67%)
    report = cli("plans", "report", "--period", "2026-11", "--json").json()
    assert [(r["assignee"], r["area"], r["planned"], r["done"], r["rate"]) for r in report["rows"]] == [
        ("李", "2栋", 1, 1, 1.0), ("王", "1栋", 2, 1, 0.5)]
    assert (report["total"]["planned"], report["total"]["done"], report["total"]["rate"]) == (3, 2, 0.6667)
    assert report["target"] == 1.0
    assert cli("plans", "report", "--period", "2026-12", "--json").json()["total"]["planned"] == 0
    assert cli("plans", "report", "--period", "2026-Q4", "--json").json()["total"]["done"] == 2
    written = cli("plans", "report", "--period", "2026-11", "--out", workdir / "r.csv")
    assert written.code == 1 and "--overwrite" in written.err
    assert cli("plans", "report", "--period", "2026-11", "--out", workdir / "report.csv").code == 0
    lines = list(csv.reader(io.StringIO((workdir / "report.csv").read_text(encoding="utf-8-sig"))))
    assert lines == [["负责人", "区域/楼栋", "计划回访", "已回访", "回访处理率", "未完成"],
                     ["李", "2栋", "1", "1", "100.0%", "0"], ["王", "1栋", "2", "1", "50.0%", "1"],
                     ["合计", "", "3", "2", "66.7%", "1"]]
    assert cli("plans", "report", "--period", "November").code == 1


# ---- the console -----------------------------------------------------------------------------------------


def test_the_plans_page_is_for_supervisors_and_admins(console, database, workdir):
    assert {name: console(name).get("/plans").status_code for name in ("sup", "adm", "op", "win", "lead")} == {
        "sup": 200, "adm": 200, "op": 403, "win": 403, "lead": 403}
    for name in ("op", "win", "lead"):
        assert console(name).post("/plans", {"name": "x", "window": "社保窗口", "frequency": "once"}).status_code == 403
    sup = console("sup")
    assert sup.post("/plans", {"name": "x", "window": "社保窗口", "frequency": "once"}, csrf=False).status_code == 403
    bad = sup.post("/plans", {"name": "客户回访", "window": "社保窗口", "frequency": "weekly", "channels": "operator"})
    assert bad.status_code == 400 and "未创建回访计划" in bad.text
    made = sup.post("/plans", {"name": "客户回访", "window": "社保窗口", "frequency": "quarterly",
                               "channels": "operator", "starts_on": "2026-10-01"})
    assert made.status_code == 303 and "客户回访" in sup.get("/plans").text
    population = write_csv(workdir / "名单.csv", [*POPULATION, ["", "13900000009", "", ""]], header=MEMBER_HEADER)
    with population.open("rb") as handle:
        uploaded = sup.http.post("/plans/1/members", data={"csrf_token": sup.token},
                                 files={"file": ("名单.csv", handle, "text/csv")})
    assert uploaded.status_code == 200 and 'data-count="imported">3<' in uploaded.text
    assert "姓名 missing" in uploaded.text
    assert "13900000001" not in uploaded.text and "业主甲" not in uploaded.text
    with population.open("rb") as handle:
        assert sup.http.post("/plans/99/members", data={"csrf_token": sup.token},
                             files={"file": ("名单.csv", handle, "text/csv")}).status_code == 404
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.in_(("plan.create", "plan.import")), AuditEvent.actor == "console:sup")) == 2
    shown = sup.get("/plans/report?period=2026-Q4")
    assert shown.status_code == 200 and "回访处理率" in shown.text and "合计" in shown.text
    assert sup.get("/plans/report?period=Q9").status_code == 400
    exported = sup.get("/plans/report.csv?period=2026-Q4")
    assert exported.status_code == 200 and exported.text.lstrip("\ufeff").startswith("负责人,区域/楼栋")
