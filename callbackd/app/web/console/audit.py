"""The audit trail: `/audit` lists it, newest first, filtered by action, actor and from a day on, a page at a time;
`POST /audit/export` downloads what the filter selects as CSV, written by `audit.write` as `callbackd audit export`
writes it (every cell a spreadsheet could evaluate neutralised) and recorded in the trail as that command records
it. A rehearsal's entries are marked 演练. Supervisor and admin.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from callbackd.app.web.console.access import ADMIN, SUPERVISOR, Viewer
from callbackd.app.web.console.pages import allow, console_of, form_text, page_number, posted, render
from callbackd.core import clock
from callbackd.core.periods import FIRST_YEAR, LAST_YEAR
from callbackd.store import audit

router = APIRouter()
PER_PAGE = 50
FIELD_LIMIT = 100  # characters of a filter's text: actions and actors are shorter


@router.get("/audit")
def audit_trail(
    request: Request, action: str = "", actor: str = "", since: str = "", page: str = "",
    viewer: Viewer = Depends(allow(SUPERVISOR, ADMIN)),
) -> Response:
    console = console_of(request)
    wanted = _filter(action, actor, since)
    if wanted is None:
        return _page(request, viewer, [], 0, 1, action, actor, since, status=400)
    number = page_number(page)
    with console.session(viewer) as session:
        total = audit.count_events(session, console.settings.zone, wanted)
        rows = audit.find_events(session, console.settings.zone, wanted, offset=(number - 1) * PER_PAGE,
                                 limit=PER_PAGE)
        actions = audit.actions(session)
    return _page(request, viewer, rows, total, number, action, actor, since, actions=actions)


@router.post("/audit/export")
def export(request: Request, form: FormData = Depends(posted),
           viewer: Viewer = Depends(allow(SUPERVISOR, ADMIN))) -> Response:
    """The selected events as a CSV download (UTF-8 with BOM, for Excel), oldest first; the export is audited."""
    console = console_of(request)
    action, actor, since = (form_text(form, name) for name in ("action", "actor", "since"))
    wanted = _filter(action, actor, since)
    if wanted is None:
        return _page(request, viewer, [], 0, 1, action, actor, since, status=400)
    name = f"callbackd-audit-{clock.wall_clock().astimezone(console.settings.zone):%Y%m%d-%H%M%S}.csv"
    with console.session(viewer) as session:
        rows = audit.find_events(session, console.settings.zone, wanted, newest_first=False)
        body = _written(rows, name)
        audit.record(session, "audit.export", f"console download {name}", events=len(rows), only=wanted.action,
                     actor=wanted.actor, since=since or None)
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


def _written(rows: list[dict[str, Any]], name: str) -> bytes:
    # through the CLI's own writer (it writes files, atomically): into a private folder, read back, deleted
    folder = Path(tempfile.mkdtemp(prefix="callbackd-audit-"))
    try:
        path = folder / name
        audit.write(rows, path)
        return path.read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _filter(action: str, actor: str, since: str) -> audit.EventFilter | None:
    # the filter the fields ask for; None when one cannot be read (a day that is no date, a text far too long)
    if len(action) > FIELD_LIMIT or len(actor) > FIELD_LIMIT:
        return None
    day = None
    if since.strip():
        try:
            day = date.fromisoformat(since.strip())
        except ValueError:
            return None
        if not FIRST_YEAR <= day.year <= LAST_YEAR:
            return None
    return audit.EventFilter(action.strip() or None, actor.strip() or None, day)



def _page(
    request: Request, viewer: Viewer, rows: list[dict[str, Any]], total: int, page: int, action: str, actor: str,
    since: str, *, status: int = 200, actions: list[str] | None = None,
) -> Response:
    kept = urlencode({k: v for k, v in (("action", action), ("actor", actor), ("since", since)) if v})
    shown = [{**row, "at_local": _to_second(row["at"]), "clock_local": _to_second(row["clock_at"]),
              "detail_text": json.dumps(row["detail"], ensure_ascii=False)} for row in rows]
    return render(request, viewer, "audit.html", status=status, rows=shown, total=total, page=page,
                  pages=max(1, -(-total // PER_PAGE)), pager_base=f"/audit?{kept}&" if kept else "/audit?",
                  action=action, actor=actor, since=since, actions=actions or [], bad_filter=status == 400)


def _to_second(iso: Any) -> str:
    # the entries' times are already in the organisation's zone (`find_events`): shown to the second
    return datetime.fromisoformat(iso).strftime("%Y-%m-%d %H:%M:%S") if isinstance(iso, str) else ""
