"""Every xlsx callbackd writes prints as the html notice does: each sheet A4 landscape, one page wide and as many
down as needed, its table's header row repeated on every page, narrow margins, centred, a heading and page numbers;
a chart sits on a page of its own after a manual break, no taller than a page, inside the print area. Each workbook
is written by the command a user runs (the week, month and year rankings, the annual workbook, the call sheet) and
read back with openpyxl."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.chart import BarChart
from openpyxl.utils import range_boundaries
from openpyxl.worksheet.worksheet import Worksheet

from callbackd.app.synthetic import FORM_HEADER
from callbackd.store.printing import CHART_MAX_HEIGHT_CM, chart_page, print_setup
from tests.conftest import case_row, phone_for, write_csv

# the row of each sheet's column headers (None: a sheet of several tables, with no one header to repeat)
HEADER_ROWS = {"排名": 4, "分项": 2, "月度得分": 2, "指标": 2, "整改汇总": 2, "超期件": 2, "计分方法": None,
               "回访清单": 2}
EMU_PER_CM = 360000


def windows_with_results(cli, workdir: Path, monkeypatch) -> None:
    """Three windows with on-site forms in October and in week 48 (November), enough for every period to rank."""
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-27T10:00:00+08:00")
    names = ["社保窗口", "税务窗口", "公积金窗口"]
    rows = [case_row(f"P{i}", name, phone=phone_for(i)) for i, name in enumerate(names)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    forms = [[name, day, *[level] * 6, ""] for name, level in zip(names, ["满意", "基本满意", "不满意"], strict=True)
             for day in ("2026-10-20", "2026-11-24") for _ in range(50)]  # 100 a window: the year ranks them
    assert cli("results", "import", write_csv(workdir / "f.csv", forms, header=FORM_HEADER),
               "--source", "onsite").code == 0


def assert_prints_as_the_notice(sheet: Worksheet) -> None:
    setup = sheet.page_setup
    assert (setup.orientation, setup.paperSize) == ("landscape", 9), sheet.title  # 9: A4
    assert sheet.sheet_properties.pageSetUpPr.fitToPage is True, sheet.title
    assert (setup.fitToWidth, setup.fitToHeight) == (1, 0), sheet.title
    header = HEADER_ROWS[sheet.title]
    assert sheet.print_title_rows == (None if header is None else f"${header}:${header}"), sheet.title
    if header is not None:  # the repeated row is the table's header: its first cell is the first column's name
        assert sheet.cell(header, 1).value in ("名次", "窗口"), sheet.title
    assert sheet.print_options.horizontalCentered is True
    assert (sheet.page_margins.left, sheet.page_margins.top) == (0.25, 0.75)
    assert "&P" in sheet.oddFooter.center.text and "&N" in sheet.oddFooter.center.text
    assert sheet.oddHeader.center.text
    # the print area starts at A1 and holds every written cell
    area = sheet.print_area[0] if isinstance(sheet.print_area, list) else sheet.print_area
    first_col, first_row, last_col, last_row = range_boundaries(area.split("!")[-1].replace("$", ""))
    assert (first_col, first_row) == (1, 1) and last_row >= sheet.max_row and last_col >= sheet.max_column


def assert_chart_on_its_own_page(sheet: Worksheet) -> None:
    """One chart, anchored below a manual page break that follows the table's last row, one page high at most,
    inside the print area."""
    [chart] = sheet._charts
    header = HEADER_ROWS[sheet.title]
    table_end = max(row for row in range(header, sheet.max_row + 1) if sheet.cell(row, 1).value is not None)
    assert [brk.id for brk in sheet.row_breaks.brk] == [table_end], sheet.title
    anchor_row = chart.anchor._from.row + 1  # zero-based in the file
    assert anchor_row > table_end, sheet.title
    assert chart.anchor.ext.height <= CHART_MAX_HEIGHT_CM * EMU_PER_CM + 1
    area = sheet.print_area[0] if isinstance(sheet.print_area, list) else sheet.print_area
    _, _, _, last_row = range_boundaries(area.split("!")[-1].replace("$", ""))
    assert last_row > anchor_row + 10  # the chart's rows are printed, not cut off at the table


@pytest.mark.parametrize("period", ["2026-W48", "2026-11", "2026-Q4"])
def test_a_ranking_workbook_prints_landscape_one_page_wide_with_its_chart_on_a_page(cli, workdir, monkeypatch,
                                                                                    period):
    windows_with_results(cli, workdir, monkeypatch)
    out = workdir / f"{period}.xlsx"
    run = cli("export", "--period", period, "--format", "xlsx", "--out", out)
    assert run.code == 0, run.err
    book = load_workbook(out)
    assert book.sheetnames[:2] == ["排名", "分项"]
    for sheet in book.worksheets:
        assert_prints_as_the_notice(sheet)
    assert_chart_on_its_own_page(book["排名"])
    assert "回访满意度通报" in book["排名"].oddHeader.center.text


def test_the_annual_workbook_prints_every_sheet_and_keeps_its_monthly_chart_whole(cli, workdir, monkeypatch):
    windows_with_results(cli, workdir, monkeypatch)
    out = workdir / "2026.xlsx"
    run = cli("export", "--period", "2026", "--format", "xlsx", "--out", out)
    assert run.code == 0, run.err
    book = load_workbook(out)
    assert set(book.sheetnames) == set(HEADER_ROWS) - {"回访清单"}
    for sheet in book.worksheets:
        assert_prints_as_the_notice(sheet)
    assert_chart_on_its_own_page(book["排名"])
    monthly = book["月度得分"]
    assert_chart_on_its_own_page(monthly)
    assert [monthly.cell(row, 1).value for row in range(3, 6)] == ["社保窗口", "税务窗口", "公积金窗口"]
    assert monthly.row_breaks.brk[0].id == 5  # title, header, three windows; then the chart's page
    assert "月度得分" in monthly.oddHeader.center.text


def test_the_call_sheet_prints_with_its_header_row_on_every_page(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T10:00:00+08:00")
    rows = [case_row(f"S{i}", phone=phone_for(i)) for i in range(3)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s", "--channel", "operator").code == 0
    assert cli("dispatch", "--once").code == 0
    out = workdir / "sheet.xlsx"
    assert cli("callsheet", "--round", "1", "--format", "xlsx", "--out", out).code == 0
    book = load_workbook(out)
    assert book.sheetnames == ["回访清单"]
    assert_prints_as_the_notice(book.active)
    assert "回访清单" in book.active.oddHeader.center.text


def test_a_tall_chart_is_cut_to_one_page_and_an_ampersand_in_a_heading_is_printed_as_one(tmp_path):
    book = Workbook()
    sheet = book.active
    for row in range(1, 41):
        sheet.append([f"窗口{row}", row])
    chart = BarChart()
    chart.height, chart.width = 40.0, 60.0
    chart_page(sheet, chart, 40)
    print_setup(sheet, header_rows=(1, 1), heading="A&B")
    assert chart.height == CHART_MAX_HEIGHT_CM and chart.width < 28.4
    assert sheet.oddHeader.center.text == "A&&B"
    assert [brk.id for brk in sheet.row_breaks.brk] == [40]
    # anchored at A42; 15 cm is 29 rows of 15 pt, 27.4 cm is 17 columns of the default width
    assert sheet.print_area == "'Sheet'!$A$1:$Q$71"
