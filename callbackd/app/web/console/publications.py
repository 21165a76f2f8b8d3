"""Publications (公示): `/publications` lists every publication and one period's history (`publication.history`);
`POST /publications` publishes a period and `POST /publications/republish` publishes a published one again, with
its mandatory reason: the service of `callbackd publish --period P [--republish --reason TEXT]`. A period's history
comes with its standing and that of the months, quarters and years around it (`publication.standing`): published,
it is frozen; they stay live until they are published themselves.

The supervisor publishes; a leader reads. A period is written 2026-W48, 2026-11, 2026-Q4 or 2026; anything else
is a 400 that says so.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from callbackd.app.web.console.access import LEADER, SUPERVISOR, Viewer
from callbackd.app.web.console.pages import allow, console_of, form_text, page_number, posted, render, see_other
from callbackd.core import clock
from callbackd.core.periods import Period, PeriodError, parse_period
from callbackd.measure import publication, rankings

router = APIRouter()
PER_PAGE = 20
PeriodText = Annotated[str, Query(max_length=40)]


@router.get("/publications")
def publication_list(
    request: Request, period: PeriodText = "", page: str = "", viewer: Viewer = Depends(allow(SUPERVISOR, LEADER)),
) -> Response:
    wanted = _period(request, period) if period.strip() else None
    if period.strip() and wanted is None:
        return _page(request, viewer, page_number(page), None, status=400, problem="period", entered=period)
    return _page(request, viewer, page_number(page), wanted, entered=period)


@router.post("/publications")
def publish(request: Request, form: FormData = Depends(posted),
            viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    """Freeze a period's ranking and indicators as they stand now."""
    return _publish(request, viewer, form, republish=False)


@router.post("/publications/republish")
def republish(request: Request, form: FormData = Depends(posted),
              viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    """Publish a published period again: the reason is mandatory; the earlier publication is kept."""
    return _publish(request, viewer, form, republish=True)


def _publish(request: Request, viewer: Viewer, form: FormData, *, republish: bool) -> Response:
    console = console_of(request)
    entered, reason = form_text(form, "period"), form_text(form, "reason")[:1000]
    period = _period(request, entered)
    if period is None:
        return _page(request, viewer, 1, None, status=400, problem="period", entered=entered, reason=reason)
    if republish and not reason:
        return _page(request, viewer, 1, period, status=400, problem="no_reason", entered=entered)
    with console.session(viewer) as session:
        # the service refuses these too; asked first, so that the page says why in the user's words
        existing = rankings.current(session, period.text)
        if existing is None and republish or existing is not None and not republish:
            problem = "unpublished" if republish else "published"
        else:
            publication.publish(session, console.settings, period.text, clock.now(), republish=republish,
                                reason=reason)
            return see_other(f"/publications?period={period.text}")
    return _page(request, viewer, 1, period, status=409, problem=problem, entered=entered, reason=reason)


def _period(request: Request, text: str) -> Period | None:
    # the period written, or None when it is not a period callbackd reads
    try:
        return parse_period(text, console_of(request).settings.zone)
    except PeriodError:
        return None


def _page(
    request: Request, viewer: Viewer, page: int, period: Period | None, *, status: int = 200, problem: str = "",
    entered: str = "", reason: str = "",
) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        listed, total = publication.publications(session, console.settings, offset=(page - 1) * PER_PAGE,
                                                 limit=PER_PAGE)
        history = publication.history(session, period.text, console.settings) if period is not None else []
        standings = [] if period is None else [publication.standing(session, console.settings, period.text),
                                               *publication.containing(session, console.settings, period.text)]
    for row in [*listed, *history]:
        row["published_local"] = _local(request, row["published_at"])
    return render(request, viewer, "publications.html", status=status, problem=problem, entered=entered,
                  reason=reason, period=period, history=history, standings=standings, publications=listed,
                  total=total, page=page,
                  pages=max(1, -(-total // PER_PAGE)), can_publish=viewer.is_(SUPERVISOR),
                  pager_base=f"/publications?period={period.text}&" if period is not None else "/publications?")


def _local(request: Request, iso: str) -> str:
    return console_of(request).local(datetime.fromisoformat(iso))
