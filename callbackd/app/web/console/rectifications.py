"""Rectifications (整改): `/rectifications` (the list, by window, status and due date, with the working days left),
`/rectifications/escalated` (those escalated to the supervisory unit), `/rectifications/{id}` (one, with its
history), the window head's response (`POST .../respond`) and the supervisor's manual verification
(`POST .../verify`): the services of `callbackd rectifications list|respond|verify`.

The supervisor sees every window's; a window head sees and answers only their own windows' (another's is 404), as
`rectify.describe` shows them to a window: never an applicant's name or number, and for a confidential case type
(举报) not the case either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response

from callbackd.app.web.console.access import SUPERVISOR, WINDOW, Missing, Viewer
from callbackd.app.web.console.pages import (
    Console,
    allow,
    console_of,
    error_page,
    page_number,
    posted,
    render,
    see_other,
    whole_number,
)
from callbackd.contact import rectify
from callbackd.core import clock
from callbackd.core.vocabulary import LEVEL_NAMES

router = APIRouter()
PER_PAGE = 20
RectificationId = Annotated[int, Path(ge=1, le=2**31 - 1)]  # beyond it no id exists (and SQLite cannot bind it)


def scope_of(viewer: Viewer) -> frozenset[int] | None:
    """The windows whose rectifications the viewer sees: a window head's own, else (a supervisor) every one."""
    return viewer.windows if viewer.is_(WINDOW) else None


@router.get("/rectifications")
def rectification_list(
    request: Request, window: str = "", status: str = "", overdue: str = "", page: str = "",
    viewer: Viewer = Depends(allow(SUPERVISOR, WINDOW)),
) -> Response:
    return _listing(request, viewer, window, status, overdue, page, escalated=False)


@router.get("/rectifications/escalated")
def escalation_list(
    request: Request, window: str = "", page: str = "", viewer: Viewer = Depends(allow(SUPERVISOR, WINDOW)),
) -> Response:
    return _listing(request, viewer, window, "escalated", "", page, escalated=True)


def _listing(
    request: Request, viewer: Viewer, window: str, status: str, overdue: str, page_text: str, *, escalated: bool,
) -> Response:
    console = console_of(request)
    if status and status not in rectify.STATES or window and whole_number(window) is None:
        return error_page(request, 400, "筛选条件不正确：请从列表中选择窗口和状态")
    page, scope = page_number(page_text), scope_of(viewer)
    with console.session(viewer) as session:
        windows = rectify.windows_to_filter(session, scope)
        window_ids = scope
        if window:
            chosen = whole_number(window)
            if chosen not in {id_ for id_, _ in windows}:
                raise Missing("未找到此窗口")  # another window's, or none: the same to a window head
            window_ids = frozenset({chosen})
        wanted = rectify.Filter(overdue=overdue == "1", status=status or None, window_ids=window_ids)
        rows, total = rectify.page_of(session, console.settings, clock.now(), wanted, offset=(page - 1) * PER_PAGE,
                                      limit=PER_PAGE, masked=not viewer.is_(SUPERVISOR))
    kept = urlencode({k: v for k, v in (("window", window), ("status", "" if escalated else status),
                                         ("overdue", overdue)) if v})
    return render(request, viewer, "rectifications.html", rows=[_local_times(console, row) for row in rows],
                  total=total, page=page, pages=max(1, -(-total // PER_PAGE)),
                  pager_base=f"{request.url.path}?{kept}&" if kept else f"{request.url.path}?",
                  windows=windows, window=window, chosen_status=status, overdue=overdue == "1", escalated=escalated,
                  states=rectify.STATE_LABELS)


@router.get("/rectifications/{rectification_id}")
def rectification_page(
    request: Request, rectification_id: RectificationId, viewer: Viewer = Depends(allow(SUPERVISOR, WINDOW)),
) -> Response:
    return _detail(request, viewer, rectification_id)


@router.post("/rectifications/{rectification_id}/respond")
def respond(
    request: Request, rectification_id: RectificationId, form: FormData = Depends(posted),
    viewer: Viewer = Depends(allow(WINDOW)),
) -> Response:
    """The window head's explanation and measures (整改情况), through `rectify.respond` like the CLI's."""
    console = console_of(request)
    text = form.get("text")
    text = text.strip() if isinstance(text, str) else ""
    with console.session(viewer) as session:
        now = clock.now()
        shown = _visible(session, console, viewer, rectification_id, now)
        if not text or shown["status"] != "open":
            problem = "empty" if not text else "not_open"
        else:
            rectify.respond(session, console.settings, rectification_id, text, now)
            return see_other(f"/rectifications/{rectification_id}")
    return _detail(request, viewer, rectification_id, status=400 if problem == "empty" else 409, problem=problem,
                   text=text)


@router.post("/rectifications/{rectification_id}/verify")
def verify(
    request: Request, rectification_id: RectificationId, form: FormData = Depends(posted),
    viewer: Viewer = Depends(allow(SUPERVISOR)),
) -> Response:
    """The supervisor's verification by hand (no applicant to call back, or the follow-up could not be made),
    through `rectify.verify` like the CLI's."""
    console = console_of(request)
    level, note = form.get("level"), form.get("note")
    note = note.strip()[:500] if isinstance(note, str) else ""
    with console.session(viewer) as session:
        now = clock.now()
        shown = _visible(session, console, viewer, rectification_id, now)
        if level not in LEVEL_NAMES:
            problem = "level"
        elif shown["status"] != "responded" or shown["awaiting_follow_up"] is not None:
            problem = "not_verifiable"
        else:
            rectify.verify(session, console.settings, rectification_id, str(level), now, note)
            return see_other(f"/rectifications/{rectification_id}")
    return _detail(request, viewer, rectification_id, status=400 if problem == "level" else 409, problem=problem)


def _visible(
    session: Session, console: Console, viewer: Viewer, rectification_id: int, now: datetime
) -> dict[str, Any]:
    # the rectification as the viewer may see it; 404 (nothing done) when it is missing or another window's
    shown = rectify.view(session, console.settings, rectification_id, now, window_ids=scope_of(viewer),
                         masked=not viewer.is_(SUPERVISOR))
    if shown is None:
        raise Missing("未找到此整改")
    return shown


def _detail(
    request: Request, viewer: Viewer, rectification_id: int, *, status: int = 200, problem: str = "", text: str = "",
) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        shown = _visible(session, console, viewer, rectification_id, clock.now())
    history = [{**step, "at": _local(console, step.get("at"))} for step in shown["history"]]
    return render(request, viewer, "rectification.html", status=status, r=_local_times(console, shown),
                  history=history, problem=problem, text=text, levels=LEVEL_NAMES,
                  can_respond=viewer.is_(WINDOW) and shown["status"] == "open",
                  can_verify=viewer.is_(SUPERVISOR) and shown["status"] == "responded"
                  and shown["awaiting_follow_up"] is None)


def _local_times(console: Console, row: dict[str, Any]) -> dict[str, Any]:
    # the times a page shows, in the organisation's zone
    return {**row, **{f"{key}_local": _local(console, row.get(key))
                      for key in ("opened_at", "due_at", "responded_at", "closed_at", "escalated_at")}}


def _local(console: Console, iso: Any) -> str:
    return console.local(datetime.fromisoformat(iso)) if isinstance(iso, str) and iso else ""
