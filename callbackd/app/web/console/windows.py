"""`/windows/{id}`: one window's scores over time, its indicators, this month's overdue cases (超期件: case number,
matter, limit and working days over, never the applicant; for a confidential case type not even the case, except
to supervisors), its suggestions (意见建议, never who gave them) and its rectifications. Supervisors and leaders
see any window; a window head only their own (another is 404)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from callbackd.app.web.console import charts
from callbackd.app.web.console.access import LEADER, SUPERVISOR, WINDOW, Viewer
from callbackd.app.web.console.figures import indicators_of, trend_of
from callbackd.app.web.console.pages import allow, console_of, render, require
from callbackd.contact.rectify import Filter, list_rectifications
from callbackd.core import clock
from callbackd.core.periods import parse_period
from callbackd.measure.indicators import FORMULAS, RATES
from callbackd.measure.time_limits import overdue_cases
from callbackd.report import overview
from callbackd.report.exports import SOURCE_LABELS
from callbackd.store.models import Window

router = APIRouter()
MONTHS = 12
WEEKS = 12
OVERDUE_SHOWN = 100


@router.get("/windows/{window_id}")
def window_page(request: Request, window_id: Annotated[int, Path(ge=1, lt=2**31)],
                viewer: Viewer = Depends(allow(SUPERVISOR, LEADER, WINDOW))) -> Response:
    console = console_of(request)
    settings, now = console.settings, clock.now()
    local = now.astimezone(settings.zone)
    iso = local.isocalendar()
    with console.session(viewer) as session:
        window = require(session.get(Window, window_id), viewer.sees_window(window_id))
        shared = console.figures.at(session)
        months = trend_of(shared, settings, parse_period(f"{local:%Y-%m}", settings.zone), MONTHS)
        weeks = trend_of(shared, settings,
                         parse_period(f"{iso.year}-W{iso.week:02d}", settings.zone), WEEKS)
        this_month = months[-1][1]
        indicators = next((i for i in indicators_of(shared, settings, this_month, now)
                           if i.window == window.name), None)
        said = overview.suggestions(session, settings, window.id, now - timedelta(days=92),
                                    for_window=viewer.role != SUPERVISOR)
        owed = [] if viewer.role == LEADER else list_rectifications(session, settings, now, Filter(window=window.name))
        overdue = overdue_cases(session, settings, this_month.period, now, window_id=window.id)
    if viewer.role != SUPERVISOR:
        overdue = [case.masked(settings.policies.confidential_case_types) for case in overdue]
    history = [(period, next((w for w in ranking.windows if w.window == window.name), None))
               for period, ranking in months]
    week_scores = [next((w.score for w in r.windows if w.window == window.name), None) for _, r in weeks]
    return render(
        request, viewer, "window.html", window=window, history=history, indicators=indicators, rates=RATES,
        formulas=FORMULAS, suggestions=said, overdue=overdue[:OVERDUE_SHOWN], overdue_total=len(overdue),
        rectifications=owed[::-1][:50], sources=SOURCE_LABELS,
        month_chart=charts.trend(f"{window.name}近 12 个月得分", [p.text for p, _ in months],
                                 ("得分", [w.score if w else None for _, w in history])),
        week_chart=charts.trend(f"{window.name}近 12 周得分", [p.text[5:] for p, _ in weeks], ("得分", week_scores)),
    )
