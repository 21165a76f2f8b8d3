"""Ranking exports: each format is written into a folder and read back with an ordinary reader (openpyxl, csv,
html.parser, json): sheets, headers, order and ranks (with a tie), 样本不足 windows, a missing source, per-question
counts, the native chart, the SVG bars, the simulation label, no external assets, no phone number, atomic writes."""

from __future__ import annotations

import csv
import json
import re
import zipfile
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from openpyxl import load_workbook
from openpyxl.chart import BarChart

from callbackd.api.formats import Exporter
from callbackd.api.manager import Registry
from callbackd.core.settings import ScoringSettings
from callbackd.measure.scoring import RANKED, TOO_FEW, Ranking, WindowScore, parse_period, wilson
from callbackd.report.builtin import BUILTIN_EXPORTERS, write_xlsx
from callbackd.report.exports import (
    SIMULATED_LABEL,
    ExportContext,
    default_filename,
    write_csv,
    write_html,
    write_json,
)
from callbackd.store.files import write_atomically

ZONE = ZoneInfo("Asia/Shanghai")
LABELS = {
    "attitude": "服务态度",
    "efficiency": "办事效率",
    "rules": "按章办事",
    "off_book": "体外循环",
    "integrity": "廉洁自律",
    "overall": "总体评价",
}
GENERATED = datetime(2026, 12, 1, 1, 30, tzinfo=UTC)  # 09:30 in Shanghai
HEADERS = [
    "名次",
    "窗口",
    "得分",
    "等级",
    "有效样本",
    "回访得分",
    "现场得分",
    "评价器得分",
    "满意",
    "基本满意",
    "不满意",
    "满意率",
    "95%置信区间",
    "状态",
]
# ranked by rank then name (the tie 2, 2 sorts by name), then the 样本不足 windows in the ranking's order
ORDER = ["社保窗口", "不动产登记窗口", "税务窗口", "公积金窗口", "医保窗口", "档案查询窗口"]
RANKS = [1, 2, 2, 4, None, None]
MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
WRITERS = {"xlsx": write_xlsx, "csv": write_csv, "html": write_html, "json": write_json}


def window(
    name: str,
    score: float | None,
    rank: int | None,
    grade: str | None,
    *,
    contacts: int = 12,
    levels: tuple[int, int, int] = (10, 2, 0),
    sources: tuple[float | None, ...] = (None, None, None),
    status: str = RANKED,
) -> WindowScore:
    """A window's score as `scoring` reports it, with a consistent rate and Wilson interval."""
    rated = sum(levels)
    low, high = wilson(levels[0] + levels[1], rated, 0.95)
    return WindowScore(
        window=name,
        score=score,
        grade=grade,
        rank=rank,
        contacts=contacts,
        satisfaction_rate=round((levels[0] + levels[1]) / rated, 4) if rated else None,
        ci_low=round(low, 4) if low is not None else None,
        ci_high=round(high, 4) if high is not None else None,
        by_source=dict(zip(("callback", "onsite", "evaluator"), sources, strict=True)),
        levels=dict(zip(("满意", "基本满意", "不满意"), levels, strict=True)),
        status=status,
        contacts_by_source={"callback": contacts, "onsite": 0, "evaluator": 0},
    )


def questions() -> dict[str, dict[str, dict[str, int]]]:
    return {
        "社保窗口": {
            "overall": {"满意": 9, "基本满意": 1, "不满意": 0},
            "attitude": {"满意": 10, "基本满意": 0, "不满意": 0},
            "custom_extra": {"满意": 1, "基本满意": 0, "不满意": 1},
        },
        "税务窗口": {"efficiency": {"满意": 6, "基本满意": 3, "不满意": 3}},
    }


def ranking(*, simulated: bool = False, with_questions: bool = True) -> Ranking:
    """Six windows, deliberately out of order: a tie for second place, a window without evaluator data,
    one with too few contacts and one with none at all."""
    windows = [
        window("公积金窗口", 72.25, 4, "合格", levels=(6, 3, 3), sources=(70.0, 80.0, 75.0)),
        window("税务窗口", 88.0, 2, "良好", levels=(8, 3, 1), sources=(86.67, 92.0, None)),
        window("社保窗口", 97.5, 1, "优秀", contacts=20, levels=(18, 2, 0), sources=(98.0, 96.0, 97.0)),
        window("不动产登记窗口", 88.0, 2, "良好", levels=(9, 1, 2), sources=(88.0, None, 88.0)),
        window("医保窗口", 60.0, None, None, contacts=3, levels=(1, 1, 1), sources=(60.0, None, None), status=TOO_FEW),
        window("档案查询窗口", None, None, None, contacts=0, levels=(0, 0, 0), status=TOO_FEW),
    ]
    return Ranking(
        parse_period("2026-11", ZONE),
        windows,
        10,
        ScoringSettings(),
        simulated=simulated,
        questions=questions() if with_questions else {},
    )


def context() -> ExportContext:
    return ExportContext("政务服务中心", dict(LABELS), GENERATED)


def export(tmp_path: Path, fmt: str, data: Ranking | None = None) -> Path:
    path = tmp_path / f"out.{fmt}"
    WRITERS[fmt](data or ranking(), path, context())
    return path


def all_text(path: Path) -> str:
    """Everything a file says: every part of an xlsx package, or the text itself."""
    if path.suffix == ".xlsx":
        with zipfile.ZipFile(path) as package:
            return "\n".join(package.read(name).decode("utf-8", "replace") for name in package.namelist())
    return path.read_text(encoding="utf-8-sig")


# ---- xlsx ----------------------------------------------------------------------------------------------


def test_xlsx_ranking_sheet_has_titles_headers_and_windows_in_rank_order(tmp_path):
    book = load_workbook(export(tmp_path, "xlsx"))
    assert book.sheetnames == ["排名", "分项"]
    sheet = book["排名"]
    assert "政务服务中心" in sheet["A1"].value and "2026年11月" in sheet["A1"].value
    assert SIMULATED_LABEL not in sheet["A1"].value
    assert "2026-11-01 至 2026-11-30" in sheet["A2"].value and "2026-12-01 09:30" in sheet["A2"].value
    method = sheet["A3"].value
    assert "少于10件" in method and "回访0.6" in method and "≥95优秀" in method
    assert [c.value for c in sheet[4]] == HEADERS
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=5, max_row=sheet.max_row)]
    assert [r[1] for r in rows] == ORDER
    assert [r[0] for r in rows] == RANKS
    assert [r[2] for r in rows] == [97.5, 88.0, 88.0, 72.25, 60.0, None]
    assert [r[3] for r in rows[:4]] == ["优秀", "良好", "良好", "合格"]
    assert [r[13] for r in rows] == ["已排名"] * 4 + ["样本不足"] * 2
    assert rows[2][5:8] == [86.67, 92.0, None]  # 税务窗口 has no evaluator data: an empty cell, not 0
    assert rows[0][8:12] == [18, 2, 0, 1.0]
    assert re.fullmatch(r"\d+\.\d%–\d+\.\d%", rows[1][12])
    assert rows[5][11] is None and rows[5][12] is None  # no contacts: no rate, no interval
    assert sheet["C5"].number_format == "0.00" and sheet["L5"].number_format == "0.00%"
    assert sheet.freeze_panes == "A5"
    assert sheet.column_dimensions["B"].width >= 16  # 不动产登记窗口 is 14 columns wide


def test_xlsx_has_a_native_bar_chart_of_the_ranked_scores(tmp_path):
    sheet = load_workbook(export(tmp_path, "xlsx"))["排名"]
    assert len(sheet._charts) == 1
    chart = sheet._charts[0]
    assert isinstance(chart, BarChart)
    (series,) = chart.series
    assert series.val.numRef.f == "'排名'!$C$5:$C$8"  # the score cells of the four ranked windows
    assert series.cat.strRef.f == "'排名'!$B$5:$B$8"
    assert (chart.y_axis.scaling.min, chart.y_axis.scaling.max) == (0, 100)


def test_xlsx_per_question_sheet_follows_the_label_order(tmp_path):
    sheet = load_workbook(export(tmp_path, "xlsx"))["分项"]
    assert "2026年11月" in sheet["A1"].value
    assert [c.value for c in sheet[2]] == ["窗口", "分项", "满意", "基本满意", "不满意", "满意率"]
    rows = [[c.value for c in row] for row in sheet.iter_rows(min_row=3, max_row=sheet.max_row)]
    assert rows == [
        ["社保窗口", "服务态度", 10, 0, 0, 1.0],
        ["社保窗口", "总体评价", 9, 1, 0, 1.0],
        ["社保窗口", "custom_extra", 1, 0, 1, 0.5],  # a key without a label is kept, after the labelled ones
        ["税务窗口", "办事效率", 6, 3, 3, 0.75],
    ]
    assert sheet["F3"].number_format == "0.00%" and sheet.freeze_panes == "A3"


def test_xlsx_without_question_counts_or_ranked_windows_still_writes(tmp_path):
    data = ranking(with_questions=False)
    data.windows = [w for w in data.windows if w.rank is None]
    book = load_workbook(export(tmp_path, "xlsx", data))
    assert book["分项"]["A3"].value == "本期无分项数据"
    assert book["排名"]._charts == []
    assert [c.value for c in book["排名"]["B"][4:]] == ["医保窗口", "档案查询窗口"]


# ---- csv -----------------------------------------------------------------------------------------------


def test_csv_is_utf8_with_bom_and_has_the_ranking_columns(tmp_path):
    path = export(tmp_path, "csv")
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert header == HEADERS
    assert [r[1] for r in rows] == ORDER
    assert [r[0] for r in rows] == ["1", "2", "2", "4", "", ""]
    assert rows[0][2] == "97.50" and rows[0][11] == "100.00%"
    assert rows[2][5:8] == ["86.67", "92.00", ""]
    assert rows[4][13] == "样本不足" and rows[5][2] == ""


# ---- html ----------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """What a reader of the page sees: texts of a few elements, table cells, SVG bars, and every attribute."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str, str]] = []
        self.texts: dict[str, list[str]] = {}
        self.tables: list[list[list[str]]] = []
        self.bars: list[dict[str, str]] = []
        self.svg_texts: list[str] = []
        self.styles: list[str] = []
        self.open: list[str] = []
        self.cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes += [(tag, name, value or "") for name, value in attrs]
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []
        elif tag == "rect" and ("class", "bar") in attrs:
            self.bars.append({name: value or "" for name, value in attrs})
        if tag not in ("meta", "line", "br"):  # void elements never close
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None
        if tag in self.open:  # pop up to the element this closes
            while self.open.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)
        for tag in ("title", "h1", "h2", "p"):
            if tag in self.open and "svg" not in self.open:  # an SVG <title> is a tooltip, not the page's
                self.texts.setdefault(tag, []).append(data)
        if "svg" in self.open and self.open[-1] == "text":
            self.svg_texts.append(data)
        if self.open and self.open[-1] == "style":
            self.styles.append(data)

    def text(self, tag: str) -> str:
        return "".join(self.texts.get(tag, []))


def test_html_is_a_self_contained_notice_with_tables_and_an_svg_chart(tmp_path):
    raw = export(tmp_path, "html").read_text(encoding="utf-8")
    page = Page(raw)
    assert ("meta", "charset", "utf-8") in page.attributes
    assert page.text("title") == "政务服务中心窗口服务回访满意度通报（2026年11月）"
    assert page.text("h1") == page.text("title")
    ranked, too_few = page.tables
    assert ranked[0] == HEADERS and too_few[0] == HEADERS
    assert [r[1] for r in ranked[1:]] == ORDER[:4] and [r[0] for r in ranked[1:]] == ["1", "2", "2", "4"]
    assert ranked[1][2] == "97.50" and ranked[3][7] == "—"  # 税务窗口 has no evaluator data
    assert too_few[2][0] == "" and too_few[2][2] == "—" and too_few[2][11] == "—"  # no rank, score or rate
    assert [r[1] for r in too_few[1:]] == ORDER[4:] and {r[13] for r in too_few[1:]} == {"样本不足"}
    assert "样本不足窗口" in page.text("h2") and "少于10件" in page.text("p")
    # one bar per ranked window, widths scaled to 0..100 of the same plot
    assert "svg" in page.tags and len(page.bars) == 4
    widths = [float(bar["width"]) for bar in page.bars]
    assert widths[0] == pytest.approx(widths[3] * 97.5 / 72.25, rel=1e-3)
    assert widths[1] == widths[2]
    assert "社保窗口" in page.svg_texts and "97.50" in page.svg_texts
    style = "".join(page.styles)
    assert "@media print" in style and "@page" in style
    # nothing fetched from anywhere: no links, scripts, images, fonts or imports
    assert not {"link", "script", "img", "iframe", "object"} & set(page.tags)
    for tag, name, value in page.attributes:
        assert name not in ("src", "href", "xlink:href") or not re.match(r"\s*(https?:|//)", value), (tag, name)
    assert "http" not in raw and "url(" not in raw and "@import" not in raw and "@font-face" not in raw


def test_html_escapes_every_text(tmp_path):
    data = ranking()
    data.windows[2].window = '<script>alert("x")</script>&窗口'
    raw = export(tmp_path, "html", data).read_text(encoding="utf-8")
    page = Page(raw)
    assert "script" not in page.tags
    assert '<script>alert("x")</script>&窗口' in [row[1] for row in page.tables[0]]
    assert '<script>alert("x")</script>&窗口' in page.svg_texts


# ---- json ----------------------------------------------------------------------------------------------


def test_json_is_the_ranking_with_organisation_and_generation_time(tmp_path):
    path = export(tmp_path, "json")
    text = path.read_text(encoding="utf-8")
    assert "社保窗口" in text and "  " in text  # not \u-escaped, indented
    document = json.loads(text)
    expected = ranking().as_dict()
    assert {k: document[k] for k in expected} == json.loads(json.dumps(expected))
    assert document["organisation"] == "政务服务中心"
    assert document["generated_at"] == "2026-12-01T01:30:00+00:00"
    assert document["simulated"] is False and document["label"] == "2026年11月"
    assert document["questions"]["税务窗口"]["efficiency"] == {"满意": 6, "基本满意": 3, "不满意": 3}


# ---- every format --------------------------------------------------------------------------------------


def simulated_marks(path: Path) -> bool:
    """Whether the file visibly says it includes simulated data, where each format shows it."""
    if path.suffix == ".xlsx":
        book = load_workbook(path)
        return SIMULATED_LABEL in book["排名"]["A1"].value and SIMULATED_LABEL in book["分项"]["A1"].value
    if path.suffix == ".csv":
        header, *rows = list(csv.reader(path.read_text(encoding="utf-8-sig").splitlines()))
        return header[-1] == "备注" and all(row[-1] == "含模拟数据，仅供演示" for row in rows)
    if path.suffix == ".html":
        page = Page(path.read_text(encoding="utf-8"))
        return SIMULATED_LABEL in page.text("h1") and SIMULATED_LABEL in page.text("title")
    return json.loads(path.read_text(encoding="utf-8"))["simulated"] is True


@pytest.mark.parametrize("fmt", WRITERS)
def test_simulation_is_labelled_only_when_simulated(tmp_path, fmt):
    (tmp_path / "sim").mkdir()
    marked = export(tmp_path / "sim", fmt, ranking(simulated=True))
    plain = export(tmp_path, fmt, ranking())
    assert simulated_marks(marked)
    assert not simulated_marks(plain)
    assert "模拟" not in all_text(plain)


@pytest.mark.parametrize("fmt", WRITERS)
def test_no_phone_number_in_any_export(tmp_path, fmt):
    text = all_text(export(tmp_path, fmt, ranking(simulated=True)))
    assert MOBILE.findall(text) == []


@pytest.mark.parametrize("fmt", WRITERS)
def test_writing_replaces_the_file_and_leaves_no_temporary_behind(tmp_path, fmt):
    path = tmp_path / f"out.{fmt}"
    path.write_text("old")
    WRITERS[fmt](ranking(), path, context())
    assert path.read_bytes() != b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "回访排名-2026-11.csv"
    path.write_text("previous")

    def half_then_fail(temporary: Path) -> None:
        temporary.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomically(path, half_then_fail)
    assert path.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


# ---- registry and names --------------------------------------------------------------------------------


def test_builtin_exporters_register_by_name():
    registry: Registry[Exporter] = Registry("export format", lambda e: e.name)
    register = registry.register_for("builtin")
    for exporter in BUILTIN_EXPORTERS:
        register(exporter)
    assert list(registry) == ["xlsx", "csv", "html", "json"]
    assert {e.target for e in BUILTIN_EXPORTERS} == {"ranking"}
    assert [e.suffix for e in BUILTIN_EXPORTERS] == [".xlsx", ".csv", ".html", ".json"]


def test_default_filename_names_the_period():
    data = ranking()
    assert [default_filename(data, e) for e in BUILTIN_EXPORTERS] == [
        "回访排名-2026-11.xlsx",
        "回访排名-2026-11.csv",
        "回访排名-2026-11.html",
        "回访排名-2026-11.json",
    ]
    sheet = Exporter("callsheet-xlsx", "callsheet", ".xlsx", "operator call sheet", write_xlsx)
    assert default_filename(data, sheet) == "callsheet-xlsx-2026-11.xlsx"
    week = Ranking(parse_period("2026-w48", ZONE), [], 5, ScoringSettings())
    assert default_filename(week, BUILTIN_EXPORTERS[0]) == "回访排名-2026-W48.xlsx"


def test_context_needs_an_aware_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        ExportContext("政务服务中心", LABELS, datetime(2026, 12, 1, 9, 30))


@pytest.mark.parametrize("fmt", WRITERS)
def test_an_empty_ranking_exports(tmp_path, fmt):
    empty = Ranking(parse_period("2026-11", ZONE), [], 10, ScoringSettings())
    assert export(tmp_path, fmt, empty).stat().st_size > 0
