"""Ranking exports (排名导出): xlsx with a native chart, csv, a printable html notice (通报) and json.

Every format shows the same ranking table, built once by `ranking_table` so the columns cannot drift apart:
ranked windows in rank order, then the windows with too few contacts (样本不足), unranked. A ranking that
includes simulated contacts says so visibly in every format. Nothing here reads a phone number: a `Ranking`
carries none, and the only per-window data written is what `WindowScore` and `Ranking.questions` hold.

Each writer builds the whole file beside the target and moves it into place with `os.replace`, so a reader
never sees half a file and a failed export leaves the previous one untouched.
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callbackd.api.formats import Exporter
from callbackd.core.vocabulary import LEVEL_NAMES, SOURCES
from callbackd.measure.scoring import RANKED, Ranking, WindowScore
from callbackd.store.files import spreadsheet_text, write_atomically

if TYPE_CHECKING:
    from callbackd.measure.evaluation import Evaluation
    from callbackd.measure.publication import Standing

SIMULATED_LABEL = "（含模拟数据，仅供演示）"
SOURCE_LABELS = {"callback": "回访", "onsite": "现场", "evaluator": "评价器"}
STATUS_LABELS = {RANKED: "已排名"}  # other statuses (样本不足) are already Chinese
FILENAME_PREFIXES = {"ranking": "回访排名"}

# Column kinds decide the number format in xlsx and the text in csv/html.
INT, SCORE, RATE, TEXT = "int", "score", "rate", "text"
NUMBER_FORMATS = {INT: "0", SCORE: "0.00", RATE: "0.00%"}


@dataclass(frozen=True)
class ExportContext:
    """What an export needs beyond the ranking: who publishes it, the question labels, and when."""

    organisation: str  # shown in titles, e.g. 政务服务中心
    question_labels: dict[str, str]  # question key -> Chinese dimension, in column order
    generated_at: datetime  # aware
    # monthly scores, indicators, rectifications and the draws, shown beside the ranking when given
    evaluation: Evaluation | None = None
    # frozen as published, or live (and which shorter periods within it are published): said under the title
    standing: Standing | None = None

    def __post_init__(self) -> None:
        if self.generated_at.tzinfo is None:
            raise ValueError("ExportContext.generated_at must be timezone-aware")


# ---- the shared table ----------------------------------------------------------------------------------


def ranking_columns(ranking: Ranking) -> list[tuple[str, str]]:
    """(header, kind) of the ranking table, the same in xlsx, csv and html."""
    confidence = f"{ranking.rules.confidence * 100:g}%置信区间"
    return [
        ("名次", INT),
        ("窗口", TEXT),
        ("得分", SCORE),
        ("等级", TEXT),
        ("有效样本", INT),
        *((f"{SOURCE_LABELS[source]}得分", SCORE) for source in SOURCES),
        *((level, INT) for level in LEVEL_NAMES),
        ("满意率", RATE),
        (confidence, TEXT),
        ("状态", TEXT),
    ]


def ordered_windows(ranking: Ranking) -> tuple[list[WindowScore], list[WindowScore]]:
    """The ranked windows by rank (then name), and the unranked ones in the order the ranking gives them."""
    ranked = sorted((w for w in ranking.windows if w.rank is not None), key=lambda w: (w.rank or 0, w.window))
    return ranked, [w for w in ranking.windows if w.rank is None]


def table_row(window: WindowScore) -> list[Any]:
    """One window's cells as plain values (None for nothing to show), in `ranking_columns` order."""
    interval = None
    if window.ci_low is not None and window.ci_high is not None:
        interval = f"{window.ci_low:.1%}–{window.ci_high:.1%}"
    return [
        window.rank,
        window.window,
        window.score,
        window.grade,
        window.contacts,
        *(window.by_source.get(source) for source in SOURCES),
        *(window.levels.get(level, 0) for level in LEVEL_NAMES),
        window.satisfaction_rate,
        interval,
        STATUS_LABELS.get(window.status, window.status),
    ]


def ranking_table(ranking: Ranking) -> list[list[Any]]:
    """Every window's row: ranked ones first, 样本不足 ones after with no rank."""
    ranked, unranked = ordered_windows(ranking)
    return [table_row(w) for w in ranked + unranked]


def question_rows(ranking: Ranking, context: ExportContext) -> list[list[Any]]:
    """Per window and question: 窗口, 分项, one count per level, 满意率 (None when nothing was rated)."""
    ranked, unranked = ordered_windows(ranking)
    rows = []
    for window in [w.window for w in ranked + unranked]:
        answers = ranking.questions.get(window, {})
        # configured questions in their order, then any other key the survey used, so no count is dropped
        known = [key for key in context.question_labels if key in answers]
        keys = known + sorted(set(answers) - set(context.question_labels))
        for key in keys:
            counts = [answers[key].get(level, 0) for level in LEVEL_NAMES]
            rated = sum(counts)
            rate = round((counts[0] + counts[1]) / rated, 4) if rated else None
            rows.append([window, context.question_labels.get(key, key), *counts, rate])
    return rows


def cell_text(value: Any, kind: str) -> str:
    """A value as csv and html show it; nothing is an empty string."""
    if value is None:
        return ""
    if kind == SCORE:
        return f"{value:.2f}"
    if kind == RATE:
        return f"{value:.2%}"
    return str(value)


def title(ranking: Ranking, context: ExportContext) -> str:
    """The notice title, with the simulation label when the data includes simulated contacts."""
    text = f"{context.organisation}窗口服务回访满意度通报（{ranking.period.label}）"
    return text + SIMULATED_LABEL if ranking.simulated else text


def method_note(ranking: Ranking, context: ExportContext) -> str:
    """How the scores were computed, from the rules in force, so a reader can recompute them."""
    rules = ranking.rules
    points = "、".join(f"{level}{rules.points[level]:g}分" for level in LEVEL_NAMES)
    weights = "、".join(f"{SOURCE_LABELS[s]}{rules.weights.get(s, 0):g}" for s in SOURCES)
    if rules.question_weights:
        questions = (
            "分项权重"
            + "、".join(f"{context.question_labels.get(k, k)}{w:g}" for k, w in rules.question_weights.items())
            + "（其余为1）"
        )
    else:
        questions = "各分项等权"
    grades = "、".join(f"≥{bound:g}{grade}" for bound, grade in rules.grades) + f"、其余{rules.failing_grade}"
    return (
        f"计分方法：{points}，{questions}；来源权重{weights}，按有样本的来源重新归一；等级{grades}；"
        f"有效样本少于{ranking.minimum_contacts}件的窗口列为样本不足，不排名、不定等级；"
        f"满意率=（满意+基本满意）/有效评价数，区间为Wilson {rules.confidence * 100:g}%置信区间；"
        "一键回访（语音只问简表，默认为总体评价）的样本按所答分项计分，满意率与分项统计只计其所答分项，"
        "未问的分项不计为未答。"
    )


def local_time(ranking: Ranking, context: ExportContext) -> str:
    """When the export was made, in the organisation's zone (the period's)."""
    return f"{context.generated_at.astimezone(ranking.period.start.tzinfo):%Y-%m-%d %H:%M}"


def standing_note(context: ExportContext) -> str:
    """The sentence saying whether the exported period is frozen as published or live, or nothing when unknown."""
    return context.standing.note if context.standing is not None else ""


def period_span(ranking: Ranking) -> str:
    """The period's first and last day (its end is exclusive)."""
    last = ranking.period.end - timedelta(days=1)
    return f"{ranking.period.start:%Y-%m-%d} 至 {last:%Y-%m-%d}"


# ---- xlsx ----------------------------------------------------------------------------------------------


# ---- csv -----------------------------------------------------------------------------------------------


def write_csv(ranking: Ranking, path: Path, context: ExportContext) -> None:
    """The ranking table in UTF-8 with a byte-order mark, which Excel needs to show Chinese correctly.

    A simulated ranking gets a last column 备注 saying so on every row, so the header stays the first line.
    """
    columns = ranking_columns(ranking)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    note = [SIMULATED_LABEL.strip("（）")] if ranking.simulated else []
    writer.writerow([header for header, _ in columns] + (["备注"] if note else []))
    for row in ranking_table(ranking):
        cells = [spreadsheet_text(cell_text(value, kind)) for (_, kind), value in zip(columns, row, strict=True)]
        writer.writerow(cells + note)
    data = buffer.getvalue().encode("utf-8-sig")
    write_atomically(path, lambda temporary: temporary.write_bytes(data))


# ---- html ----------------------------------------------------------------------------------------------

STYLE = """
@page { size: A4 landscape; margin: 15mm 12mm; }
body { margin: 0; background: #e9e9e9; color: #111;
       font-family: "SimSun", "Songti SC", "Noto Serif CJK SC", "Source Han Serif SC", serif; font-size: 14px; }
main { max-width: 1060px; margin: 24px auto; padding: 40px 48px; background: #fff; box-shadow: 0 1px 6px #999; }
h1 { text-align: center; font-size: 26px; margin: 0 0 8px; letter-spacing: 1px;
     font-family: "SimHei", "Heiti SC", "Noto Sans CJK SC", "Source Han Sans SC", sans-serif; }
h1 .simulated, .simulated-note { color: #b00000; }
h2 { font-size: 17px; margin: 26px 0 10px; font-family: "SimHei", "Noto Sans CJK SC", sans-serif; }
.meta { text-align: center; color: #444; margin: 0 0 18px; padding-bottom: 12px; border-bottom: 2px solid #b00000; }
.standing { text-align: center; color: #444; font-size: 13px; margin: -8px 0 18px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { border: 1px solid #666; padding: 4px 5px; text-align: center; }
th { background: #eef2f7; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.name { text-align: left; white-space: nowrap; }
svg { display: block; margin: 0 auto; max-width: 100%; height: auto; }
svg .bar { fill: #3b6aa0; } svg .grid { stroke: #ccc; } svg text { font-size: 12px; fill: #222; }
.method { font-size: 12px; color: #333; line-height: 1.7; }
.sign { text-align: right; margin-top: 36px; line-height: 1.8; }
@media print {
  body { background: #fff; }
  main { margin: 0; padding: 0; max-width: none; box-shadow: none; }
  thead { display: table-header-group; }
  tr, svg, .method, .sign { break-inside: avoid; }
  h2 { break-after: avoid; }
  th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"""


def html_table(columns: list[tuple[str, str]], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(header)}</th>" for header, _ in columns)
    body = []
    for row in rows:
        cells = []
        for (header, kind), value in zip(columns, row, strict=True):
            css = ' class="num"' if kind != TEXT else ' class="name"' if header == "窗口" else ""
            text = cell_text(value, kind) or ("—" if header != "名次" else "")  # a dash reads as "no data"
            cells.append(f"<td{css}>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def svg_bars(windows: list[WindowScore]) -> str:
    """A horizontal bar chart of the windows' scores on a 0..100 scale, drawn as plain SVG elements."""
    label_width, plot_width, bar_height, gap, top = 170, 560, 20, 8, 24
    height = top + len(windows) * (bar_height + gap) + 10
    parts = [
        f'<svg class="chart" width="{label_width + plot_width + 60}" height="{height}" role="img" '
        f'aria-label="窗口得分条形图">'
    ]
    for tick in range(0, 101, 20):
        x = label_width + plot_width * tick / 100
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 6}"/>'
            f'<text x="{x:.1f}" y="{top - 10}" text-anchor="middle">{tick}</text>'
        )
    for index, window in enumerate(windows):
        y = top + index * (bar_height + gap)
        score = min(100.0, max(0.0, window.score or 0.0))
        width = plot_width * score / 100
        name = html.escape(window.window)
        parts.append(
            f'<text x="{label_width - 8}" y="{y + bar_height * 0.72:.1f}" text-anchor="end">{name}</text>'
            f'<rect class="bar" x="{label_width}" y="{y}" width="{width:.1f}" height="{bar_height}">'
            f"<title>{name} {cell_text(window.score, SCORE)}</title></rect>"
            f'<text x="{label_width + width + 5:.1f}" y="{y + bar_height * 0.72:.1f}">'
            f"{cell_text(window.score, SCORE)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def write_html(ranking: Ranking, path: Path, context: ExportContext) -> None:
    """One self-contained printable notice (通报): title, ranking table, bar chart, 样本不足 windows, method.

    No external asset of any kind (stylesheet, script, font, image), so the file prints the same anywhere.
    """
    esc = html.escape
    columns = ranking_columns(ranking)
    ranked, unranked = ordered_windows(ranking)
    heading = esc(title(ranking, context).removesuffix(SIMULATED_LABEL))
    if ranking.simulated:
        heading += f'<span class="simulated">{esc(SIMULATED_LABEL)}</span>'
    sections = [
        f"<h1>{heading}</h1>",
        f'<p class="meta">统计周期：{esc(period_span(ranking))}　　生成时间：{esc(local_time(ranking, context))}</p>',
    ]
    if standing_note(context):
        sections.append(f'<p class="standing">{esc(standing_note(context))}</p>')
    if ranking.simulated:
        sections.append('<p class="simulated-note">本通报所用数据含模拟回访结果，仅供演示，不作考评依据。</p>')
    sections.append('<section class="ranked"><h2>一、窗口排名</h2>')
    sections.append(
        html_table(columns, [table_row(w) for w in ranked]) if ranked else "<p>本期没有样本充足、可参与排名的窗口。</p>"
    )
    sections.append("</section>")
    number = iter("二三四")
    if ranked:
        sections.append(f'<section class="chart"><h2>{next(number)}、得分对比</h2>{svg_bars(ranked)}</section>')
    if unranked:
        sections.append(
            f'<section class="too-few"><h2>{next(number)}、样本不足窗口</h2>'
            f"<p>以下窗口本期有效样本少于{ranking.minimum_contacts}件，不参与排名、不定等级：</p>"
            f"{html_table(columns, [table_row(w) for w in unranked])}</section>"
        )
    sections.append(
        f'<section class="method"><h2>{next(number)}、计分说明</h2>'
        f"<p>{esc(method_note(ranking, context).removeprefix('计分方法：'))}</p></section>"
    )
    day = context.generated_at.astimezone(ranking.period.start.tzinfo)
    sections.append(f'<p class="sign">{esc(context.organisation)}<br>{day.year}年{day.month}月{day.day}日</p>')
    document = (
        '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title(ranking, context))}</title>\n<style>{STYLE}</style>\n</head>\n"
        "<body>\n<main>\n" + "\n".join(sections) + "\n</main>\n</body>\n</html>\n"
    )
    data = document.encode("utf-8")
    write_atomically(path, lambda temporary: temporary.write_bytes(data))


# ---- json ----------------------------------------------------------------------------------------------


def write_json(ranking: Ranking, path: Path, context: ExportContext) -> None:
    """`Ranking.as_dict()` with the organisation, the generation time and the per-question counts."""
    document = ranking.as_dict()
    document["organisation"] = context.organisation
    document["generated_at"] = context.generated_at.isoformat()
    document.setdefault("questions", ranking.questions)
    if context.evaluation is not None:
        document["evaluation"] = context.evaluation.as_dict()
    if context.standing is not None:
        document["standing"] = context.standing.as_dict()
    data = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    write_atomically(path, lambda temporary: temporary.write_bytes(data))


# ---- registry ------------------------------------------------------------------------------------------


def default_filename(ranking: Ranking, exporter: Exporter) -> str:
    """The file name an export gets when none is given, e.g. 回访排名-2026-11.xlsx."""
    prefix = FILENAME_PREFIXES.get(exporter.target, exporter.name)
    return f"{prefix}-{ranking.period.text}{exporter.suffix}"
