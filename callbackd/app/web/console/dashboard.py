"""`/`: the dashboard of the signed-in role.

Supervisors and leaders see every window; a window head the same panels for their windows only; an operator their
queue; an admin the accounts and the settings in force. The scores come from the shared figures
(`figures.ranking_of`): fifty people opening the page compute a year's ranking once.
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from markupsafe import Markup
from starlette.responses import Response

from callbackd.app.web.console import charts
from callbackd.app.web.console.access import ADMIN, LEADER, OPERATOR, SUPERVISOR, WINDOW, Viewer
from callbackd.app.web.console.figures import Shared, indicators_of, ranking_of, trend_of
from callbackd.app.web.console.pages import Console, console_of, fragment, page_number, render, signed_in
from callbackd.core import clock
from callbackd.core.periods import parse_period, shift
from callbackd.core.vocabulary import REASON_LABELS
from callbackd.core.workdays import Calendar
from callbackd.measure.scoring import Ranking
from callbackd.report import overview
from callbackd.store.accounts import list_users

router = APIRouter()
TREND = 12  # weeks, and months, on the trend chart
PER_PAGE = 50
OUTCOMES = {"completed": "完成", "partial": "部分完成", **REASON_LABELS}


@router.get("/")
def dashboard(request: Request, viewer: Viewer = Depends(signed_in), page: str | None = None) -> Response:
    console = console_of(request)
    if viewer.role == ADMIN:
        return _admin(request, console, viewer)
    if viewer.role == OPERATOR:
        return render(request, viewer, "dashboard_operator.html")
    return _overview(request, console, viewer, page_number(page))


def _overview(request: Request, console: Console, viewer: Viewer, page: int) -> Response:
    with console.session(viewer) as session:
        shared = console.figures.at(session)
        if viewer.role in (SUPERVISOR, LEADER):  # the same for every supervisor, and for every leader
            body, _ = shared.get(("dashboard", viewer.role, page), live=True,
                                 compute=lambda: _panels(console, shared, viewer.role, None, page))
        else:
            body = _panels(console, shared, viewer.role, viewer.windows, page)
    return render(request, viewer, "dashboard.html", body=body)


def _panels(console: Console, shared: Shared, role: str, scope: frozenset[int] | None, page: int) -> Markup:
    """The dashboard's panels for a role over some windows (`None`: all of them)."""
    settings, now, session = console.settings, clock.now(), shared.session
    local = now.astimezone(settings.zone)
    iso = local.isocalendar()
    week, month = f"{iso.year}-W{iso.week:02d}", f"{local:%Y-%m}"
    calendar = Calendar.from_settings(settings)
    ranking, computed_at = ranking_of(shared, settings, month)
    if not any(w.contacts for w in ranking.windows):  # the first days of a month: last month's scores instead
        month = shift(parse_period(month, settings.zone), -1, settings.zone).text
        ranking, computed_at = ranking_of(shared, settings, month)
    weeks = trend_of(shared, settings, parse_period(week, settings.zone), TREND)
    months = trend_of(shared, settings, parse_period(f"{local:%Y-%m}", settings.zone), TREND)
    indicators = indicators_of(shared, settings, ranking, now)
    round_ = overview.current_round(session, week)
    progress = overview.round_progress(session, round_.id, scope) if round_ is not None else []
    due = overview.rectifications_due(session, calendar, now, scope)
    risks = overview.deadlines_at_risk(session, settings, calendar, now, scope)
    own = {} if scope is None else overview.window_names(session, scope)
    mine = None if scope is None else set(own.values())
    health = overview.channel_health(session, now) if role == SUPERVISOR else []
    windows = [w for w in ranking.windows if mine is None or w.window in mine]
    alerts = [i for i in indicators if i.alerts and (mine is None or i.window in mine)]
    totals = {column: sum(row[column] for row in progress) for column in overview.ROUND_COLUMNS}
    pages = max(1, -(-len(progress) // PER_PAGE))
    page = min(page, pages)
    week_scores = [_overall(r, mine) for _, r in weeks]
    month_scores = [_overall(r, mine) for _, r in months]
    return fragment(
        console, "_dashboard_body.html", role=role,
        week=week, month=month, month_label=ranking.period.label, round_=round_, totals=totals,
        progress=progress[(page - 1) * PER_PAGE: page * PER_PAGE], page=page, pages=pages,
        windows=windows[:10] if mine is None else windows, ranked=sum(w.rank is not None for w in ranking.windows),
        satisfaction=_satisfaction(windows), alerts=alerts, due=due, risks=risks, health=health, outcomes=OUTCOMES,
        week_chart=charts.trend("近 12 周平均得分", [p.text[5:] for p, _ in weeks], ("平均得分", week_scores)),
        month_chart=charts.trend("近 12 个月平均得分", [p.text for p, _ in months], ("平均得分", month_scores)),
        week_rows=list(zip([p.label for p, _ in weeks], week_scores, strict=True)),
        month_rows=list(zip([p.label for p, _ in months], month_scores, strict=True)),
        own=sorted(own.items(), key=lambda item: item[1]),
        computed=time.strftime("%H:%M:%S", time.localtime(computed_at)), published=ranking.published,
    )


def _overall(ranking: Ranking, names: set[str] | None) -> float | None:
    """The mean score of the ranked windows (or of the viewer's windows that have a score)."""
    scores = [w.score for w in ranking.windows if w.score is not None and (names is not None or w.rank is not None)
              and (names is None or w.window in names)]
    return round(sum(scores) / len(scores), 2) if scores else None


def _satisfaction(windows: list[Any]) -> float | None:
    satisfied = sum(w.levels.get("满意", 0) + w.levels.get("基本满意", 0) for w in windows)
    rated = sum(sum(w.levels.values()) for w in windows)
    return satisfied / rated if rated else None


def _admin(request: Request, console: Console, viewer: Viewer) -> Response:
    with console.session(viewer) as session:
        users = list_users(session)
    settings = _without_passwords(console.settings.model_dump(mode="json", exclude={"channels"}))
    # the notifiers' own tables hold robot keys and secrets: their names only, like the channels'
    notifiers = sorted(console.settings.notify.model_extra or {})
    settings["notify"] = {key: value for key, value in settings["notify"].items() if key not in notifiers}
    channels = sorted(console.settings.channels) + [f"notify.{name}" for name in notifiers]
    return render(request, viewer, "dashboard_admin.html", users=users, settings_items=sorted(settings.items()),
                  channels=channels, window_role=WINDOW)


_CREDENTIALS = re.compile(r"(://[^/:@\s]*:)[^@\s]*@")


def _without_passwords(value: Any) -> Any:
    """Settings as an admin may read them: a password inside a URL (the database's, the broker's) is starred."""
    if isinstance(value, dict):
        return {key: _without_passwords(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_passwords(item) for item in value]
    if isinstance(value, str):
        return _CREDENTIALS.sub(r"\1***@", value)
    return value
