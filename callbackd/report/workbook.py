"""The ranking as an Excel workbook (the xlsx exporter's work; see `callbackd.report.exports`).

Its own module, so openpyxl, slow to import, is loaded only when a workbook is written, not by every command.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openpyxl import Workbook
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.chart.data_source import AxDataSource, StrRef
from openpyxl.chart.label import DataLabelList
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from callbackd.core.vocabulary import LEVEL_NAMES, SOURCES
from callbackd.measure.scoring import Ranking
from callbackd.report.exports import (
    INT,
    NUMBER_FORMATS,
    RATE,
    SCORE,
    SIMULATED_LABEL,
    SOURCE_LABELS,
    STATUS_LABELS,
    TEXT,
    ExportContext,
    cell_text,
    local_time,
    method_note,
    ordered_windows,
    period_span,
    question_rows,
    ranking_columns,
    ranking_table,
    standing_note,
    title,
)
from callbackd.store.files import spreadsheet_text, write_atomically
from callbackd.store.printing import chart_page, print_setup

if TYPE_CHECKING:
    from callbackd.measure.evaluation import Evaluation


HEADER_ROW = 4  # rows 1-3: title, period and generation time, method
HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
THIN = Side(style="thin", color="999999")
GRID = Border(left=THIN, right=THIN, top=THIN, bottom=THIN)


def put(sheet: Worksheet, row: int, column: int, value: Any) -> Any:
    """Write one cell; text is never evaluated as a formula and never holds what xlsx cannot (`spreadsheet_text`)."""
    return sheet.cell(row, column, spreadsheet_text(value))


def display_width(text: str) -> int:
    """Columns a text takes in a spreadsheet: CJK characters are two wide."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def fill_table(sheet: Worksheet, header_row: int, columns: list[tuple[str, str]], rows: list[list[Any]]) -> None:
    """Header and rows with borders and number formats; widths fitted to the contents; header frozen."""
    for col, (header, _) in enumerate(columns, start=1):
        cell = put(sheet, header_row, col, header)
        cell.font, cell.fill, cell.border = Font(bold=True), HEADER_FILL, GRID
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for offset, row in enumerate(rows, start=1):
        for col, ((_, kind), value) in enumerate(zip(columns, row, strict=True), start=1):
            cell = put(sheet, header_row + offset, col, value)
            cell.border = GRID
            if kind in NUMBER_FORMATS:
                cell.number_format = NUMBER_FORMATS[kind]
                cell.alignment = Alignment(horizontal="right")
    for col, (header, kind) in enumerate(columns, start=1):
        texts = [header] + [cell_text(row[col - 1], kind) for row in rows]
        sheet.column_dimensions[get_column_letter(col)].width = min(40, max(6, *map(display_width, texts)) + 2)
    sheet.freeze_panes = sheet.cell(header_row + 1, 1)


def title_rows(sheet: Worksheet, lines: list[str], width: int) -> None:
    """Merged title lines above a table: the first large and bold, the rest small and wrapped."""
    for row, line in enumerate(lines, start=1):
        sheet.merge_cells(start_row=row, start_column=1, end_row=row, end_column=width)
        cell = put(sheet, row, 1, line)
        cell.font = Font(bold=True, size=14) if row == 1 else Font(size=9, color="555555")
        cell.alignment = Alignment(horizontal="center" if row == 1 else "left", vertical="center", wrap_text=True)
    sheet.row_dimensions[1].height = 24


def score_chart(sheet: Worksheet, ranked: int, score_column: int, after_row: int) -> None:
    """A native horizontal bar chart of the ranked windows' scores, reading the sheet's own cells, on a printed
    page of its own after row `after_row`."""
    chart = BarChart()
    chart.type = "bar"
    chart.title = "窗口得分"
    chart.legend = None
    chart.add_data(
        Reference(sheet, min_col=score_column, min_row=HEADER_ROW, max_row=HEADER_ROW + ranked), titles_from_data=True
    )
    # window names are text: a string reference (set_categories would declare them numbers)
    names = Reference(sheet, min_col=2, min_row=HEADER_ROW + 1, max_row=HEADER_ROW + ranked)
    chart.series[0].cat = AxDataSource(strRef=StrRef(f=str(names)))
    chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 100
    chart.y_axis.number_format = "0"
    chart.x_axis.scaling.orientation = "maxMin"  # first place on top, as in the table
    chart.y_axis.crosses = "max"  # keeps the value axis at the bottom once categories are reversed
    chart.x_axis.delete = chart.y_axis.delete = False  # openpyxl 3.1 hides axes unless told otherwise
    # only the value: readers otherwise default to also printing the window and series names on each bar
    chart.dataLabels = DataLabelList(showVal=True, showCatName=False, showSerName=False, showLegendKey=False)
    chart.width, chart.height = 18, max(7.5, 0.8 * ranked + 2.5)  # at most a page high: `chart_page` caps it
    chart_page(sheet, chart, after_row)


def write_ranking(ranking: Ranking, path: Path, context: ExportContext) -> None:
    """A workbook with the ranking sheet 排名 (title, method, table, bar chart) and the per-question sheet 分项."""
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "排名"
    columns = ranking_columns(ranking)
    rows = ranking_table(ranking)
    title_rows(
        sheet,
        [
            title(ranking, context),
            f"统计周期：{period_span(ranking)}　　生成时间：{local_time(ranking, context)}"
            + (f"　　{standing_note(context)}" if standing_note(context) else ""),
            method_note(ranking, context),
        ],
        len(columns),
    )
    if standing_note(context):
        sheet.row_dimensions[2].height = 28  # the standing may wrap onto a second line
    sheet.row_dimensions[3].height = 42  # the method note wraps over about three lines
    fill_table(sheet, HEADER_ROW, columns, rows)
    ranked = len(ordered_windows(ranking)[0])
    if ranked:
        score_chart(sheet, ranked, 3, HEADER_ROW + len(rows))
    print_setup(sheet, header_rows=(HEADER_ROW, HEADER_ROW), heading=title(ranking, context))

    detail = workbook.create_sheet("分项")
    detail_columns = [("窗口", TEXT), ("分项", TEXT), *((level, INT) for level in LEVEL_NAMES), ("满意率", RATE)]
    details = question_rows(ranking, context)
    heading = f"分项满意度（{ranking.period.label}）" + (SIMULATED_LABEL if ranking.simulated else "")
    title_rows(detail, [heading], len(detail_columns))
    fill_table(detail, 2, detail_columns, details)
    if not details:
        put(detail, 3, 1, "本期无分项数据")
    print_setup(detail, header_rows=(2, 2), heading=heading)
    if context.evaluation is not None:
        evaluation_sheets(workbook, ranking, context, context.evaluation)

    write_atomically(path, lambda temporary: workbook.save(temporary))


# ---- the evaluation sheets (年终考评) -------------------------------------------------------------------

INDICATOR_COLUMNS: list[tuple[str, str, str]] = [  # (header, kind, WindowIndicators attribute)
    ("窗口", TEXT, "window"),
    ("抽取回访", INT, "selected"),
    ("已完成回访", INT, "completed"),
    ("回访率", RATE, "callback_rate"),
    ("未评回访", INT, "unrated"),
    ("未评率", RATE, "unrated_rate"),
    ("满意率", RATE, "satisfied_rate"),
    ("不满意率", RATE, "dissatisfied_rate"),
    ("到期整改", INT, "rectifications_due"),
    ("按期反馈", INT, "rectifications_on_time"),
    ("整改按时率", RATE, "rectification_on_time_rate"),
    ("整改回访", INT, "follow_ups"),
    ("回访整改满意率", RATE, "follow_up_satisfied_rate"),
    ("办结有时限", INT, "limited_resolved"),
    ("按时办结", INT, "resolved_on_time"),
    ("按时办结率", RATE, "on_time_resolution_rate"),
    ("超期件", INT, "overdue_cases"),
    ("现场征求意见表", INT, "onsite_forms"),
    ("应征求份数", INT, "onsite_quota"),
    ("现场征求完成率", RATE, "onsite_completion_rate"),
    ("受理办件", INT, "cases_accepted"),
    ("投诉件", INT, "complaints"),
    ("投诉率", RATE, "complaint_rate"),
    ("投诉率目标", RATE, "complaint_rate_target"),
]
OVERDUE_COLUMNS: list[tuple[str, str]] = [
    ("窗口", TEXT), ("办件编号", TEXT), ("事项名称", TEXT), ("办件类型", TEXT), ("时限类型", TEXT),
    ("时限（工作日）", INT), ("受理日期", TEXT), ("应办结日期", TEXT), ("办结时间", TEXT), ("超期（工作日）", INT),
    ("状态", TEXT),
]
RECTIFICATION_COLUMNS: list[tuple[str, str, str]] = [
    ("窗口", TEXT, "window"),
    ("新开整改", INT, "opened"),
    ("回访不满意", INT, "dissatisfied"),
    ("投诉无法联系", INT, "unreachable"),
    ("待整改", INT, "open"),
    ("待验证", INT, "responded"),
    ("已办结", INT, "closed"),
    ("已上报督查", INT, "escalated"),
    ("已撤销", INT, "withdrawn"),
    ("逾期未反馈", INT, "overdue"),
]


def month_label(month: Ranking) -> str:
    return f"{month.period.start.month}月"


def monthly_rows(ranking: Ranking, evaluation: Evaluation) -> list[list[Any]]:
    """Per window (in the period's ranking order), its score in each month of the period."""
    ranked, unranked = ordered_windows(ranking)
    scores = [{w.window: w.score for w in month.windows} for month in evaluation.months]
    return [[w.window, *(month.get(w.window) for month in scores)] for w in ranked + unranked]


def monthly_chart(sheet: Worksheet, windows: int, months: int, after_row: int) -> None:
    """A native line chart: one line per window across the months, reading the sheet's own cells, on a printed
    page of its own after row `after_row`."""
    chart = LineChart()
    chart.title = "月度得分走势"
    chart.y_axis.title = "得分"
    chart.y_axis.scaling.min, chart.y_axis.scaling.max = 0, 100
    chart.x_axis.delete = chart.y_axis.delete = False
    chart.add_data(Reference(sheet, min_col=1, max_col=months + 1, min_row=3, max_row=2 + windows),
                   from_rows=True, titles_from_data=True)
    months_ref = Reference(sheet, min_col=2, max_col=months + 1, min_row=2, max_row=2)
    for series in chart.series:
        series.cat = AxDataSource(strRef=StrRef(f=str(months_ref)))
        series.smooth = False
        series.marker.symbol = "circle"  # a month between gaps (样本不足, no data) still shows as a point
    chart.width, chart.height = 24, 12
    chart_page(sheet, chart, after_row)


def evaluation_sheets(workbook: Workbook, ranking: Ranking, context: ExportContext, evaluation: Evaluation) -> None:
    """Sheets 月度得分 (with a line chart), 指标, 整改汇总 and 计分方法 beside the ranking."""
    suffix = SIMULATED_LABEL if ranking.simulated else ""
    if evaluation.months:
        monthly = workbook.create_sheet("月度得分")
        columns = [("窗口", TEXT), *((month_label(m), SCORE) for m in evaluation.months)]
        rows = monthly_rows(ranking, evaluation)
        heading = f"各窗口月度得分（{ranking.period.label}）{suffix}"
        title_rows(monthly, [heading], len(columns))
        fill_table(monthly, 2, columns, rows)
        if rows:
            monthly_chart(monthly, len(rows), len(evaluation.months), 2 + len(rows))
        print_setup(monthly, header_rows=(2, 2), heading=heading)

    sheet = workbook.create_sheet("指标")
    columns = [(header, kind) for header, kind, _ in INDICATOR_COLUMNS] + [("预警", TEXT)]
    rows = [[getattr(item, name) for _, _, name in INDICATOR_COLUMNS] + ["；".join(item.alerts) or None]
            for item in evaluation.indicators]
    heading = f"回访考核指标（{ranking.period.label}）{suffix}"
    title_rows(sheet, [heading], len(columns))
    fill_table(sheet, 2, columns, rows)
    print_setup(sheet, header_rows=(2, 2), heading=heading)

    sheet = workbook.create_sheet("整改汇总")
    columns = [(header, kind) for header, kind, _ in RECTIFICATION_COLUMNS]
    rows = [[row[name] for _, _, name in RECTIFICATION_COLUMNS] for row in evaluation.rectifications]
    title_rows(sheet, [f"整改情况汇总（{ranking.period.label}开启的整改，状态截至导出时）"], len(columns))
    fill_table(sheet, 2, columns, rows)
    if not rows:
        put(sheet, 3, 1, "本期无整改")
    print_setup(sheet, header_rows=(2, 2), heading=f"整改情况汇总（{ranking.period.label}）{suffix}")

    overdue_sheet(workbook, ranking, context, evaluation)
    methods_sheet(workbook, ranking, context, evaluation)


def overdue_sheet(workbook: Workbook, ranking: Ranking, context: ExportContext, evaluation: Evaluation) -> None:
    """超期件: the period's cases resolved after their time limit, or open past it at its end; never the
    applicant."""
    sheet = workbook.create_sheet("超期件")
    zone = ranking.period.start.tzinfo  # the organisation's
    rows = [[case.window, case.case_no, case.matter, case.case_type, case.limit_kind, case.limit_days,
             case.accepted_on.isoformat(), case.due_on.isoformat(),
             None if case.resolved_at is None else f"{case.resolved_at.astimezone(zone):%Y-%m-%d %H:%M}",
             case.days_over, case.state] for case in evaluation.overdue]
    title_rows(sheet, [f"超期件（{ranking.period.label}：期内超期办结，及期末仍未办结且已超期的办件；"
                       f"按工作日计，状态截至导出时）"], len(OVERDUE_COLUMNS))
    fill_table(sheet, 2, OVERDUE_COLUMNS, rows)
    if not rows:
        put(sheet, 3, 1, "本期无超期件")
    print_setup(sheet, header_rows=(2, 2), heading=f"超期件（{ranking.period.label}）")


def methods_sheet(workbook: Workbook, ranking: Ranking, context: ExportContext, evaluation: Evaluation) -> None:
    """计分方法: the formula, the weights, each window's sample sizes and every round's seed."""
    sheet = workbook.create_sheet("计分方法")
    rules = ranking.rules
    lines = [
        f"计分方法与复核依据（{ranking.period.label}）",
        method_note(ranking, context),
        "窗口得分 = Σ(来源权重 × 来源得分) ÷ Σ(有样本来源的权重)；来源得分 = 该来源各有效样本得分的平均；"
        "有效样本得分 = 各已评分项得分的（加权）平均。",
        "等级点数：" + "、".join(f"{level} {rules.points[level]:g}" for level in LEVEL_NAMES)
        + "；来源权重：" + "、".join(f"{SOURCE_LABELS[s]} {rules.weights.get(s, 0):g}" for s in SOURCES)
        + "；排名按得分保留两位小数降序，得分相同名次相同。",
        *(f"{name}：{formula}" for name, formula in evaluation.formulas.items()),
        "抽样：每个批次以记录的种子对候选办件编号计算 HMAC-SHA256，按键值升序抽取；`callbackd round verify 批次` "
        "可据此重抽并核对。",
    ]
    for row, line in enumerate(lines, start=1):
        sheet.merge_cells(start_row=row, start_column=1, end_row=row, end_column=8)
        cell = put(sheet, row, 1, line)
        cell.font = Font(bold=True, size=14) if row == 1 else Font(size=10)
        cell.alignment = Alignment(wrap_text=True, vertical="top")
        if row > 1:
            sheet.row_dimensions[row].height = 30
    top = len(lines) + 2
    put(sheet, top, 1, "各窗口样本量").font = Font(bold=True)
    sample_columns = [("窗口", TEXT), ("有效样本", INT), *((f"{SOURCE_LABELS[s]}样本", INT) for s in SOURCES),
                      ("得分", SCORE), ("状态", TEXT)]
    ranked, unranked = ordered_windows(ranking)
    samples = [[w.window, w.contacts, *(w.contacts_by_source.get(s, 0) for s in SOURCES), w.score,
                STATUS_LABELS.get(w.status, w.status)] for w in ranked + unranked]
    fill_table(sheet, top + 1, sample_columns, samples)
    top += len(samples) + 4
    put(sheet, top, 1, "回访批次与抽样种子").font = Font(bold=True)
    round_columns = [("批次", INT), ("周", TEXT), ("状态", TEXT), ("种子", TEXT), ("候选集哈希", TEXT),
                     ("抽取数", INT), ("开启时间", TEXT), ("替代批次", INT)]
    rounds = [[r["round"], r["week"], r["status"], r["seed"], r["candidate_hash"], r["selected"], r["opened_at"],
               r["replaces"]] for r in evaluation.rounds]
    fill_table(sheet, top + 1, round_columns, rounds)
    sheet.freeze_panes = None
    # two tables one under the other: no one header row belongs on every page
    print_setup(sheet, header_rows=None, heading=f"计分方法与复核依据（{ranking.period.label}）")
