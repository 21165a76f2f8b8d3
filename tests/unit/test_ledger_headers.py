"""Finding a ledger's header: title rows above it skipped and reported, every sheet of a workbook that has it read,
a workbook without it refused with the sheets looked at and how to pick one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openpyxl import Workbook

from callbackd.app.synthetic import HEADER
from tests.conftest import case_row, phone_for

TITLE = ["2026年11月 社保窗口受理台帐", None, None]


def workbook(path: Path, sheets: dict[str, list[list[Any]]]) -> Path:
    book = Workbook()
    book.remove(book.active)
    for name, rows in sheets.items():
        sheet = book.create_sheet(name)
        for row in rows:
            sheet.append(row)
    book.save(path)
    return path


def cases(cli) -> list[str]:
    return sorted(c["case_id"] for c in cli("cases", "list", "--json").json())


def test_title_lines_above_a_csv_header_are_skipped_and_reported_with_lines_as_in_the_file(cli, workdir):
    path = workdir / "台帐.csv"
    lines = ["2026年11月受理台帐,,", "导出时间：2026-12-01,,", ",".join(HEADER), ",".join(case_row("A1")),
             ",".join(case_row("A2", phone="12345"))]
    path.write_text("\n".join(lines) + "\n", encoding="gbk")
    run = cli("ledger", "import", path, "--json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["imported"] == 1 and report["title_rows"] == [{"sheet": None, "count": 2}]
    assert [e["line"] for e in report["errors"]] == [5]
    text = cli("ledger", "import", path)
    assert "skipped 2 title row(s) above the header" in text.out


def test_a_header_further_down_than_ten_rows_is_not_looked_for(cli, workdir):
    path = workdir / "l.csv"
    path.write_text("标题\n" * 10 + ",".join(HEADER) + "\n" + ",".join(case_row("A1")) + "\n", encoding="utf-8")
    run = cli("ledger", "import", path)
    assert run.code == 1 and run.err.count("\n") == 1
    assert "no header line in its first 10 rows" in run.err and "办件编号" in run.err


def test_every_sheet_with_the_header_is_read_and_rows_are_reported_by_sheet_and_line(cli, workdir):
    path = workdir / "台帐.xlsx"
    workbook(path, {
        "说明": [["本台帐由办事大厅导出"], ["窗口", "联系电话"], ["社保窗口", "0571-1234567"]],
        "十一月": [TITLE, HEADER, case_row("N1"), case_row("N2", phone="12345")],
        "十二月": [HEADER, case_row("D1", phone=phone_for(1)), case_row("N1", phone=phone_for(2))],
    })
    run = cli("ledger", "import", path, "--json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["imported"] == 2 and report["sheets"] == ["十一月", "十二月"]
    assert report["title_rows"] == [{"sheet": "十一月", "count": 1}]
    assert [(e["sheet"], e["line"], e["case_id"]) for e in report["errors"]] == [("十一月", 4, "N2"),
                                                                                ("十二月", 3, "N1")]
    assert "repeats line 3 of sheet 十一月" in report["errors"][1]["reason"]
    assert cases(cli) == ["D1", "N1"]


def test_a_workbook_without_the_header_names_the_sheets_it_looked_at_and_the_sheet_option(cli, workdir):
    path = workbook(workdir / "台帐.xlsx", {"汇总": [["合计", 3]], "明细": [["编号", "窗口"], ["1", "社保窗口"]]})
    run = cli("ledger", "import", path)
    assert run.code == 1 and run.err.count("\n") == 1
    assert "汇总、明细" in run.err and "--sheet NAME" in run.err
    picked = workbook(workdir / "two.xlsx", {"一": [HEADER, case_row("A1")], "二": [HEADER, case_row("B1")]})
    run = cli("ledger", "import", picked, "--sheet", "二", "--json")
    assert run.code == 0 and run.json()["imported"] == 1 and cases(cli) == ["B1"]


def test_title_lines_reach_the_report_when_a_second_process_reads_the_file(workdir, session, settings):
    from callbackd.intake.ledger import import_ledger

    path = workdir / "台帐.csv"
    lines = ["2026年11月受理台帐", ",".join(HEADER), ",".join(case_row("A1")), ",".join(case_row("A2", phone="1"))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_ledger(session, settings, path, parallel=True)
    assert report.imported == 1 and [error.line for error in report.errors] == [4]
    assert [title.as_dict() for title in report.titles] == [{"sheet": None, "count": 1}]


def test_a_row_of_spaces_is_a_blank_line_not_a_bad_row(cli, workdir):
    path = workdir / "l.csv"
    path.write_text("\n".join([",".join(HEADER), " ,  ", ",".join(case_row("A1")), " "]) + "\n", encoding="utf-8")
    report = cli("ledger", "import", path, "--json").json()
    assert (report["imported"], report["errors"]) == (1, [])
