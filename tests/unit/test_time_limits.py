"""限时办结: ledger time limits (承诺时限/法定时限) read by line, working days across the 2026 Spring Festival (its
holiday and its 调休 make-up Saturdays), 按时办结率 and 超期件 in `indicators`, the workbook and the console."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from sqlalchemy import select

from callbackd.core.workdays import Calendar, load_schedule
from callbackd.intake.rows import RowProblem, parse_limit
from callbackd.measure import time_limits
from callbackd.store.models import Case, Window
from tests.conftest import case_row, phone_for, write_csv

SHANGHAI = ZoneInfo("Asia/Shanghai")
HEADER = ["办件编号", "窗口", "事项名称", "办件类型", "申请人", "联系电话", "受理时间", "办结时间", "状态",
          "承诺时限", "法定办结时限"]


def limited(case_id: str, accepted: str, resolved: str, promised: str = "", statutory: str = "", *,
            window: str = "社保窗口", n: int = 0) -> list[str]:
    status = "已办结" if resolved else "办理中"
    return [*case_row(case_id, window, applicant="张三丰", phone=phone_for(n), accepted=accepted, resolved=resolved,
                      status=status), promised, statutory]


@pytest.mark.parametrize(("cell", "days"), [
    ("5", 5), ("5个工作日", 5), ("5工作日", 5), ("５ 个工作日", 5), (" 12 ", 12), ("5.0", 5), (3, 3), (3.0, 3),
    ("0", 0),
    ("", None), (None, None),
])
def test_a_limit_is_a_whole_number_of_working_days(cell, days):
    assert parse_limit(cell, "承诺时限") == days


@pytest.mark.parametrize(("cell", "reason"), [
    ("5天", "'5天' is not a number of working days"),
    ("五个工作日", "is not a number of working days"),
    ("-2", "'-2' is not a number of working days"),
    (2.5, "2.5 is not a whole number of working days"),
    ("400", "400 working days is more than a year"),
])
def test_a_bad_limit_is_refused_with_its_reason(cell, reason):
    with pytest.raises(RowProblem, match=reason):
        parse_limit(cell, "承诺时限")


def test_the_due_day_skips_a_holiday_and_counts_a_make_up_day_from_a_holidays_file(tmp_path: Path):
    # a made-up 2027 schedule: 1-7 October off, Saturday 9 October worked (调休)
    path = tmp_path / "holidays.toml"
    days = ", ".join(f'"2027-10-0{d}"' for d in range(1, 8))
    path.write_text(f'[years.2027]\nholidays = [{days}]\nworkdays = ["2027-10-09"]\n', encoding="utf-8")
    calendar = Calendar(SHANGHAI, [(time(9), time(12))], load_schedule(path))
    # accepted Wednesday 29 September, 3 working days from the next day: Thu 30 Sep, Fri 8 Oct, Sat 9 Oct
    assert time_limits.due_day(calendar, date(2027, 9, 29), 3) == date(2027, 10, 9)
    # a case accepted on a holiday starts the next working day: Fri 8 Oct is its first
    assert time_limits.due_day(calendar, date(2027, 10, 2), 1) == date(2027, 10, 8)


def ledger(workdir: Path) -> Path:
    """The February 2026 ledger of the hand-computed example: the Spring Festival is off from Sunday 15 to Monday
    23 February, Saturdays 14 and 28 February are worked (调休)."""
    return write_csv(workdir / "台帐.csv", [
        # accepted Thu 12 Feb, 3 days: Fri 13, Sat 14 (make-up), Tue 24 -> due 24 Feb; resolved that day: in time
        limited("K1", "2026-02-12 10:00", "2026-02-24 16:00", "3", n=1),
        # the same limit resolved Wed 25 Feb: one working day over
        limited("K2", "2026-02-12 10:00", "2026-02-25 09:00", "3个工作日", n=2),
        # no promise: the statutory 5 days, Fri 13, Sat 14, Tue 24, Wed 25, Thu 26 -> due 26 Feb: in time
        limited("K3", "2026-02-12 10:00", "2026-02-26 17:00", "", "5", n=3),
        # the promise (2 days, due Sat 14) wins over the statute (10): resolved Tue 24 is one day over
        limited("K4", "2026-02-12 10:00", "2026-02-24 09:00", "2", "10", n=4),
        # no limit at all: counted nowhere
        limited("K5", "2026-02-12 10:00", "2026-02-27 09:00", n=5),
        # accepted Mon 2 Feb, 2 days (due Wed 4), still open on Sat 28 Feb (a working day): 15 - 2 = 13 over
        limited("K6", "2026-02-02 09:00", "", "2", n=6),
        # accepted Mon 26 Jan, 5 days (due Mon 2 Feb), resolved Tue 3 March: open and 15 over at February's end
        limited("K7", "2026-01-26 09:00", "2026-03-03 09:00", "5", n=7),
        # another window, in time (due Thu 26 Feb)
        limited("K8", "2026-02-12 10:00", "2026-02-13 10:00", "5", window="医保窗口", n=8),
        limited("K9", "2026-02-12 10:00", "2026-02-13 10:00", "五天", n=9),  # line 10: bad
        limited("K10", "2026-02-12 10:00", "2026-02-13 10:00", "", "2.5", n=10),  # line 11: bad
    ], header=HEADER)


def test_limits_are_read_by_line_and_kept_on_cases_and_a_reimport_changes_nothing(cli, workdir, database):
    run = cli("ledger", "import", ledger(workdir), "--json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["imported"] == 8
    assert [(e["line"], e["case_id"], e["reason"]) for e in report["errors"]] == [
        (10, "K9", "承诺时限: '五天' is not a number of working days such as 5 or 5个工作日"),
        (11, "K10", "法定时限: 2.5 is not a whole number of working days"),
    ]
    with database.session() as session:
        stored = {no: (p, s) for no, p, s in session.execute(
            select(Case.case_no, Case.promised_days, Case.statutory_days))}
    assert stored["K2"] == (3, None) and stored["K3"] == (None, 5) and stored["K4"] == (2, 10)
    assert stored["K5"] == (None, None)
    again = cli("ledger", "import", workdir / "台帐.csv", "--json").json()
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 8)
    # a changed limit updates its case
    rows = [limited("K2", "2026-02-12 10:00", "2026-02-25 09:00", "4", n=2)]
    changed = cli("ledger", "import", write_csv(workdir / "改.csv", rows, header=HEADER), "--json").json()
    assert changed["updated"] == 1
    with database.session() as session:
        assert session.scalar(select(Case.promised_days).where(Case.case_no == "K2")) == 4


def test_on_time_rate_and_overdue_cases_across_the_spring_festival(cli, workdir, database, settings, monkeypatch):
    assert cli("ledger", "import", ledger(workdir)).code == 0
    now = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)  # Wed 4 March, 10:00 in Shanghai
    with database.session() as session:
        february = time_limits.evaluate(session, settings, period("2026-02"), now)
        ids = {name: id_ for name, id_ in session.execute(select(Window.name, Window.id))}
    mine = february[ids["社保窗口"]]
    # resolved in February with a limit: K1 K2 K3 K4, in time K1 K3
    assert (mine.resolved, mine.on_time) == (4, 2)
    assert [(c.case_no, c.due_on, c.days_over, c.state, c.limit_kind) for c in mine.overdue] == [
        ("K7", date(2026, 2, 2), 15, "超期未办结", "承诺时限"),
        ("K6", date(2026, 2, 4), 13, "超期未办结", "承诺时限"),
        ("K4", date(2026, 2, 14), 1, "超期办结", "承诺时限"),
        ("K2", date(2026, 2, 24), 1, "超期办结", "承诺时限"),
    ]
    assert (february[ids["医保窗口"]].resolved, february[ids["医保窗口"]].on_time) == (1, 1)
    with database.session() as session:
        march = time_limits.evaluate(session, settings, period("2026-03"), now)[ids["社保窗口"]]
    # K7 resolved Tue 3 March: 20 working days to 28 Feb, Mon 2 and Tue 3 March: 22 - 5 = 17 over; K6 still open on
    # Wed 4 March: 15 + 3 - 2 = 16 over
    assert (march.resolved, march.on_time) == (1, 0)
    assert [(c.case_no, c.days_over, c.state) for c in march.overdue] == [
        ("K7", 17, "超期办结"), ("K6", 16, "超期未办结")]

    monkeypatch.setenv("CALLBACKD_NOW", "2026-03-04T10:00:00+08:00")
    run = cli("indicators", "--period", "2026-02", "--json")
    assert run.code == 0, run.err
    figures = {w["window"]: w for w in run.json()["windows"]}
    assert (figures["社保窗口"]["limited_resolved"], figures["社保窗口"]["resolved_on_time"]) == (4, 2)
    assert figures["社保窗口"]["on_time_resolution_rate"] == 0.5 and figures["社保窗口"]["overdue_cases"] == 4
    assert figures["医保窗口"]["on_time_resolution_rate"] == 1.0
    assert "按时办结率" in run.json()["formulas"]
    table = cli("indicators", "--period", "2026-02")
    assert "按时办结率" in table.out and "50.0%" in table.out


def period(text: str):
    from callbackd.core.periods import parse_period

    return parse_period(text, SHANGHAI)


def test_the_workbook_has_the_rate_and_a_sheet_of_overdue_cases_without_applicants(cli, workdir, monkeypatch):
    assert cli("ledger", "import", ledger(workdir)).code == 0
    rows = [limited("J1", "2026-02-02 09:00", "2026-02-27 10:00", "1", n=20)]
    rows[0][3] = "举报"  # a report's case number and matter never appear in an export
    assert cli("ledger", "import", write_csv(workdir / "举报.csv", rows, header=HEADER)).code == 0
    monkeypatch.setenv("CALLBACKD_NOW", "2026-03-04T10:00:00+08:00")
    run = cli("export", "--period", "2026-02", "--format", "xlsx", "--out", "二月.xlsx")
    assert run.code == 0, run.err
    book = load_workbook(workdir / "二月.xlsx")
    indicators = [[cell.value for cell in row] for row in book["指标"].iter_rows(min_row=2)]
    header = indicators[0]
    mine = next(row for row in indicators if row[0] == "社保窗口")
    assert (mine[header.index("办结有时限")], mine[header.index("按时办结")], mine[header.index("超期件")]) == (5, 2, 5)
    assert mine[header.index("按时办结率")] == 0.4
    overdue = [[cell.value for cell in row] for row in book["超期件"].iter_rows(min_row=2)]
    assert overdue[0][:3] == ["窗口", "办件编号", "事项名称"]
    assert [(row[1], row[7], row[9], row[10]) for row in overdue[1:]] == [
        ("K7", "2026-02-02", 15, "超期未办结"),
        ("（保密）", "2026-02-03", 13, "超期办结"),  # J1: due Tue 3 Feb, resolved Fri 27 Feb: 14 - 1
        ("K6", "2026-02-04", 13, "超期未办结"),
        ("K4", "2026-02-14", 1, "超期办结"),
        ("K2", "2026-02-24", 1, "超期办结"),
    ]
    text = " ".join(str(cell) for row in overdue for cell in row)
    assert "张三丰" not in text and phone_for(1) not in text


def test_the_window_page_lists_overdue_cases_masking_reports_to_window_heads(console, database, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    with database.session() as session:
        window_id = session.scalar(select(Window.id).where(Window.name == "社保窗口"))
        at = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)  # Monday 2 November, 09:00 in Shanghai
        for no, case_type, resolved, days in (("GD20261101", "即办件", datetime(2026, 11, 10, 8, tzinfo=UTC), 3),
                                              ("JB20261102", "举报", None, 1), ("GD20261103", "即办件", at, 3)):
            session.add(Case(case_no=no, window_id=window_id, matter=f"事项{no}", case_type=case_type,
                             applicant="张三丰", phone="+8613900000001", phone_sms=True, accepted_at=at,
                             resolved_at=resolved, status="已办结" if resolved else "办理中", resolved=bool(resolved),
                             promised_days=days, digest="d", created_at=at, updated_at=at))
    supervisor = console("sup").get(f"/windows/{window_id}")
    assert supervisor.status_code == 200
    page = supervisor.text
    assert "按时办结率" in page and "现场征求完成率" in page and "投诉率" in page
    # GD…01: due Thu 5 Nov, resolved Tue 10 Nov, 3 working days over; JB…02 open on Mon 23 Nov, 15 - 1 = 14 over
    assert "GD20261101" in page and "事项GD20261101" in page and "JB20261102" in page and "GD20261103" not in page
    assert "承诺时限 3 个工作日" in page and "2026-11-05" in page
    assert "张三丰" not in page and "13900000001" not in page
    head = console("win").get(f"/windows/{window_id}").text
    assert "GD20261101" in head and "JB20261102" not in head and "事项JB20261102" not in head and "（保密）" in head
    assert "张三丰" not in head


def test_a_hall_systems_own_limit_header_maps_through_the_settings(cli, workdir, database):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text('[ledger.columns]\npromised_days = ["办理时限"]\n',
                                                       encoding="utf-8")
    header = [*HEADER[:9], "办理时限"]
    path = write_csv(workdir / "l.csv", [limited("M1", "2026-11-02 09:00", "2026-11-03 09:00", "7")[:10]],
                     header=header)
    assert cli("ledger", "import", path, "--json").json()["imported"] == 1
    with database.session() as session:
        assert session.scalar(select(Case.promised_days)) == 7
