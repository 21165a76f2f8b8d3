"""Result files that would quietly score the wrong thing: dates before the case or in the future, a duplicated
column, a case repeated in one operator file, identical re-imports, unnumbered forms re-saved with more lines, title
rows above the header."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from callbackd.app.synthetic import EVALUATOR_HEADER, FORM_HEADER
from callbackd.core.settings import load_settings
from callbackd.store.db import Database
from callbackd.store.models import Answer, AuditEvent, Contact, Rectification
from tests.conftest import case_row, phone_for, write_csv

NOW = "2026-11-23T10:00:00+08:00"
OPERATOR_HEADER = ["办件编号", "回访时间", "服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价",
                   "意见建议"]
SIX = ["满意"] * 6


def count(model: type, *where: object) -> int:
    database = Database(load_settings().database_url)
    with database.session() as s:
        found = s.scalar(select(func.count()).select_from(model).where(*where))
    database.dispose()
    return int(found or 0)


def operator_round(cli, workdir: Path, monkeypatch, cases: int = 3) -> None:
    """Cases K0.. accepted 2026-11-03 09:05, drawn for callbacks by the operator on 2026-11-23."""
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row(f"K{i}", "社保窗口", phone=phone_for(i)) for i in range(cases)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "t", "--channel", "operator").code == 0
    assert cli("dispatch", "--once").code == 0


def import_file(cli, path: Path, source: str) -> dict:
    run = cli("results", "import", path, "--source", source, "--json")
    assert run.code == 0, run.err
    return run.json()


def test_operator_dates_before_the_case_was_accepted_or_in_the_future_are_bad_rows(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch)
    rows = [
        ["K0", "2025-01-15 10:00", *SIX, ""],           # line 2: before the case was accepted (2026-11-03)
        ["K1", "2027-11-23 10:00", "不满意", *SIX[1:], ""],  # line 3: next year
        ["K2", "2026-11-23 09:30", *SIX, ""],           # line 4: good
    ]
    report = import_file(cli, write_csv(workdir / "r.csv", rows, header=OPERATOR_HEADER), "operator")
    assert report["imported"] == 1
    errors = {e["line"]: e for e in report["errors"]}
    assert sorted(errors) == [2, 3]
    assert "before the case's 受理时间 2026-11-03 09:05" in errors[2]["reason"] and errors[2]["case_id"] == "K0"
    assert "in the future" in errors[3]["reason"] and "2027-11-23" in errors[3]["reason"]
    assert cli("score", "--period", "2025-01", "--json").json()["windows"][0]["contacts"] == 0
    assert count(Rectification) == 0  # the 不满意 of the future row opened nothing


def test_form_and_evaluator_dates_in_the_future_are_bad_rows_and_today_is_not(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch, 1)
    forms = [["社保窗口", "2026-11-23", *SIX, ""], ["社保窗口", "2026-11-24", *SIX, ""]]
    report = import_file(cli, write_csv(workdir / "f.csv", forms, header=FORM_HEADER), "onsite")
    assert report["imported"] == 1 and [e["line"] for e in report["errors"]] == [3]
    assert "日期 2026-11-24 00:00 is in the future (today is 2026-11-23)" in report["errors"][0]["reason"]
    ratings = [["社保窗口", "2026-11-23 17:59:00", "满意"], ["社保窗口", "2062-11-23 09:00:00", "满意"]]
    report = import_file(cli, write_csv(workdir / "e.csv", ratings, header=EVALUATOR_HEADER), "evaluator")
    assert report["imported"] == 1 and [e["line"] for e in report["errors"]] == [3]


def test_a_duplicated_column_refuses_the_file_naming_it(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch, 1)
    header = [*OPERATOR_HEADER[:-1], "总体评价", "意见建议"]
    path = write_csv(workdir / "r.csv", [["K0", "2026-11-23 09:30", *SIX, "不满意", "态度差"]], header=header)
    run = cli("results", "import", path, "--source", "operator")
    assert run.code == 1 and run.err.count("\n") == 1
    assert "column 总体评价 appears twice" in run.err and "columns 8 and 9" in run.err
    assert count(Answer) == 0 and count(Contact) == 0
    forms = write_csv(workdir / "f.csv", [["社保窗口", "2026-11-20", "2026-11-21", *SIX, ""]],
                      header=["窗口", "日期", "日期", *FORM_HEADER[2:]])
    run = cli("results", "import", forms, "--source", "onsite")
    assert run.code == 1 and "column 日期 appears twice" in run.err and count(Contact) == 0


def test_a_case_repeated_in_one_operator_file_keeps_its_first_answers_and_reports_the_repeats(
    cli, workdir, monkeypatch,
):
    operator_round(cli, workdir, monkeypatch)
    rows = [
        ["K0", "2026-11-23 09:10", *SIX, ""],                                  # line 2
        ["K0", "2026-11-23 09:20", "不满意", *SIX[1:], "态度差"],               # line 3: a repeat
        ["K1", "2026-11-23 09:30", *[""] * 6, ""],                             # line 4: not reached
        ["K1", "2026-11-23 09:40", *SIX, ""],                                  # line 5: reached on the next try
        ["K1", "2026-11-23 09:50", *SIX, ""],                                  # line 6: a repeat
    ]
    path = write_csv(workdir / "r.csv", rows, header=OPERATOR_HEADER)
    report = import_file(cli, path, "operator")
    assert report["imported"] == 3
    assert [(e["line"], e["case_id"]) for e in report["errors"]] == [(3, "K0"), (6, "K1")]
    assert "repeats line 2" in report["errors"][0]["reason"] and "repeats line 5" in report["errors"][1]["reason"]
    assert count(Answer, Answer.level == "不满意") == 0 and count(Rectification) == 0
    again = import_file(cli, path, "operator")
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 3)
    assert count(Answer, Answer.level == "不满意") == 0


def test_an_identical_reimport_is_unchanged_and_leaves_no_audit_entry(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch)
    rows = [["K0", "2026-11-23 09:10", *SIX, "好"], ["K1", "2026-11-23 09:20", "不满意", *SIX[1:], "差"]]
    path = write_csv(workdir / "r.csv", rows, header=OPERATOR_HEADER)
    assert import_file(cli, path, "operator")["imported"] == 2
    trail = count(AuditEvent)
    for _ in range(2):
        again = import_file(cli, path, "operator")
        assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 2)
    assert count(AuditEvent) == trail
    assert count(AuditEvent, AuditEvent.action == "results.import") == 1
    # a suggestion longer than the 2,000 characters kept is the same suggestion the next time too
    long = write_csv(workdir / "long.csv", [["K2", "2026-11-23 09:30", *SIX, "建议" * 1100]], header=OPERATOR_HEADER)
    assert import_file(cli, long, "operator")["imported"] == 1
    again = import_file(cli, long, "operator")
    assert (again["updated"], again["unchanged"]) == (0, 1) and count(AuditEvent) == trail + 1


def test_unnumbered_forms_and_ratings_resaved_with_one_more_line_are_not_counted_twice(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch, 1)
    forms = [["社保窗口", "2026-11-20", *SIX, ""], ["社保窗口", "2026-11-20", "基本满意", *SIX[1:], "快一点"]]
    first = write_csv(workdir / "f1.csv", forms, header=FORM_HEADER)
    # re-saved with a line inserted at the top: every old form moves down a line
    second = write_csv(workdir / "f2.csv", [["社保窗口", "2026-11-21", *SIX, ""], *forms], header=FORM_HEADER)
    assert import_file(cli, first, "onsite")["imported"] == 2
    report = import_file(cli, second, "onsite")
    assert (report["imported"], report["unchanged"]) == (1, 2)
    ratings = [["社保窗口", "2026-11-20 10:01:00", "满意"], ["社保窗口", "2026-11-20 10:05:00", "不满意"]]
    assert import_file(cli, write_csv(workdir / "e1.csv", ratings, header=EVALUATOR_HEADER), "evaluator")[
        "imported"] == 2
    more = [["社保窗口", "2026-11-20 09:00:00", "满意"], *ratings]
    report = import_file(cli, write_csv(workdir / "e2.csv", more, header=EVALUATOR_HEADER), "evaluator")
    assert (report["imported"], report["unchanged"]) == (1, 2)
    assert count(Contact, Contact.source == "onsite") == 3 and count(Contact, Contact.source == "evaluator") == 3


def test_title_rows_above_a_result_header_are_skipped_and_reported(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch, 1)
    path = workdir / "f.csv"
    lines = ["2026年11月 现场征求意见表,,,", "填表单位：社保窗口,,,", ",".join(FORM_HEADER),
             ",".join(["社保窗口", "2026-11-20", *SIX, ""]), ",".join(["社保窗口", "", *SIX, ""])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_file(cli, path, "onsite")
    assert report["imported"] == 1 and report["title_rows"] == [{"sheet": None, "count": 2}]
    assert [e["line"] for e in report["errors"]] == [5]  # the file's own line


def test_a_row_of_spaces_is_a_blank_line_not_a_bad_form(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch, 1)
    rows = [[" "], ["社保窗口", "2026-11-20", *SIX, ""], [" ", "\u3000", ""]]
    report = import_file(cli, write_csv(workdir / "f.csv", rows, header=FORM_HEADER), "onsite")
    assert (report["imported"], report["errors"]) == (1, [])
