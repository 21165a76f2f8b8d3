"""`/rankings/{period}`: a period's ranking exactly as `callbackd score --period` computes it, with the breakdowns by
source and by question, a chart, the publication in force, and downloads (xlsx, html, csv) written by the same
exporters as `callbackd export`.

Its table is the exports' own (`ranking_columns`, `ranking_table`), so the page, the files and the command line
cannot disagree. A window head sees the rows of their own windows only, and no download.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response

from callbackd.app.web.console import charts
from callbackd.app.web.console.access import LEADER, SUPERVISOR, WINDOW, Viewer
from callbackd.app.web.console.figures import Shared, ranking_of
from callbackd.app.web.console.pages import (
    Console,
    Missing,
    allow,
    console_of,
    fragment,
    page_number,
    render,
    see_other,
)
from callbackd.core import clock
from callbackd.core.periods import PeriodError, parse_period, shift
from callbackd.core.vocabulary import LEVEL_NAMES
from callbackd.measure.publication import standing
from callbackd.report import exports, overview
from callbackd.report.reports import export_context
from callbackd.rounds.sampling import survey_in_force
from callbackd.store import audit

router = APIRouter()
PER_PAGE = 100
DOWNLOADS = {"xlsx": "Excel 表格", "html": "通报（网页）", "csv": "CSV"}


@router.get("/rankings")
def this_month(request: Request, period: str | None = None,
               viewer: Viewer = Depends(allow(SUPERVISOR, LEADER, WINDOW))) -> Response:
    """This month's ranking, or the period typed in the page's form."""
    if period:
        return see_other(f"/rankings/{quote(period.strip(), safe='')}")
    local = clock.now().astimezone(console_of(request).settings.zone)
    return see_other(f"/rankings/{local:%Y-%m}")


@router.get("/rankings/{period}")
def ranking_page(request: Request, period: str, page: str | None = None, view: str | None = None,
                 viewer: Viewer = Depends(allow(SUPERVISOR, LEADER, WINDOW))) -> Response:
    console = console_of(request)
    try:
        canonical = parse_period(period, console.settings.zone)
    except PeriodError as exc:
        raise Missing(f"没有这个期间：{period}（期间写作 2026-W48、2026-11、2026-Q4 或 2026）") from exc
    if canonical.text != period:
        return see_other(f"/rankings/{canonical.text}")
    shown = Shown(period, view == "current", page_number(page))
    with console.session(viewer) as session:
        shared = console.figures.at(session)
        if viewer.role == WINDOW:
            body = _body(console, shared, shown, set(overview.window_names(session, viewer.windows).values()))
        else:  # the same for every supervisor and leader: rendered once per version of the data
            body, _ = shared.get(("ranking page", shown), lambda: _body(console, shared, shown, None))
    return render(request, viewer, "ranking.html", title=f"{canonical.label}排名", body=body)


@dataclass(frozen=True)
class Shown:
    """Which ranking page: the period, the current figures rather than the published ones, the page number."""

    period: str
    current: bool
    page: int


def _body(console: Console, shared: Shared, shown: Shown, mine: set[str] | None) -> Markup:
    """The page's content: the ranking (the rows of `mine` only, when given), its breakdowns and its chart."""
    settings = console.settings
    ranking, computed_at = ranking_of(shared, settings, shown.period, with_questions=True,
                                      published=not shown.current)
    rows = exports.ranking_table(ranking)
    if mine is not None:
        rows = [row for row in rows if row[1] in mine]
    pages = max(1, -(-len(rows) // PER_PAGE))
    number = min(shown.page, pages)
    on_page = rows[(number - 1) * PER_PAGE: number * PER_PAGE]
    columns = exports.ranking_columns(ranking)
    questions = [(q.key, q.dimension) for q in survey_in_force(settings).rating_questions()]
    by_question = {
        row[1]: {key: _rate(ranking.questions.get(row[1], {}).get(key)) for key, _ in questions} for row in on_page
    }
    ranked = [w for w in ranking.windows if w.rank is not None and (mine is None or w.window in mine)]
    flagged = frozenset(w.window for w in ranked if w.grade == ranking.rules.failing_grade)
    chart_rows = ranked[:15] + (ranked[-5:] if len(ranked) > 20 else [])
    grades: dict[str, int] = {}
    for w in ranking.windows:
        if mine is None or w.window in mine:
            grades[w.grade or w.status] = grades.get(w.grade or w.status, 0) + 1
    return fragment(
        console, "_ranking_body.html",
        ranking=ranking, period=ranking.period, columns=columns, rows=[_cells(row, columns) for row in on_page],
        questions=questions, by_question=by_question, page=number, pages=pages, total=len(rows),
        chart=charts.bars(f"{ranking.period.label}得分（前 15 名与末 5 名）",
                          [(w.window, w.score or 0.0) for w in chart_rows], flagged=flagged),
        grades=sorted(grades.items()), current=shown.current, downloads=DOWNLOADS if mine is None else {},
        standing=standing(shared.session, settings, ranking.period.text),
        previous=shift(ranking.period, -1, settings.zone).text, following=shift(ranking.period, 1, settings.zone).text,
        computed=time.strftime("%H:%M:%S", time.localtime(computed_at)),
    )


@router.get("/rankings/{period}/download")
def download(request: Request, period: str, format: str = "xlsx",  # noqa: A002 - the query parameter's name
             viewer: Viewer = Depends(allow(SUPERVISOR, LEADER))) -> Response:
    console = console_of(request)
    if format not in DOWNLOADS:
        raise Missing(f"没有这种下载格式：{format}（可选 xlsx、html、csv）")
    exporter = console.plugins.exporter(format)
    try:
        parse_period(period, console.settings.zone)
    except PeriodError as exc:
        raise Missing(f"没有这个期间：{period}") from exc
    folder = Path(tempfile.mkdtemp(prefix="callbackd-export-"))  # 0700: the file is ours until it is sent
    try:
        with console.session(viewer) as session:
            ranking, _ = ranking_of(console.figures.at(session), console.settings, period, with_questions=True)
            path = folder / exports.default_filename(ranking, exporter)
            exporter.write(ranking, path, export_context(session, console.settings, ranking, clock.now()))
            audit.record(session, "export", path.name, period=ranking.period.text, format=format, console=True,
                         published=ranking.published["publication"] if ranking.published else None)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return FileResponse(path, filename=path.name, background=BackgroundTask(shutil.rmtree, folder, True),
                        headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(path.name)}"})


def _rate(counts: dict[str, int] | None) -> float | None:
    if not counts:
        return None
    rated = sum(counts.get(level, 0) for level in LEVEL_NAMES)
    return (counts.get(LEVEL_NAMES[0], 0) + counts.get(LEVEL_NAMES[1], 0)) / rated if rated else None


def _cells(row: list[object], columns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(text, kind) per cell, as the csv and html exports write it."""
    return [(exports.cell_text(value, kind), kind) for value, (_, kind) in zip(row, columns, strict=True)]
