"""Rectification notices (整改通知单): `/rectifications/{id}/notice` shows the printable notice (an HTML document with
a print stylesheet), and a supervisor issues it (`POST`, once: it keeps its number, ZG-2026-000123). A window head
sees their own windows' notices (another's is 404), as `notices.content` shows them: never the applicant's name or
number.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from callbackd.app.web.console.access import SUPERVISOR, WINDOW, Missing, Viewer
from callbackd.app.web.console.pages import allow, console_of, posted, render, see_other
from callbackd.app.web.console.rectifications import scope_of
from callbackd.contact import notices, rectify
from callbackd.core import clock

router = APIRouter()
RectificationId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/rectifications/{rectification_id}/notice")
def notice_page(request: Request, rectification_id: RectificationId,
                viewer: Viewer = Depends(allow(SUPERVISOR, WINDOW))) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        now = clock.now()
        shown = notices.content(session, console.settings, rectification_id, now, window_ids=scope_of(viewer))
        if shown is None and rectify.view(session, console.settings, rectification_id, now,
                                          window_ids=scope_of(viewer)) is None:
            raise Missing("未找到此整改")
    return render(request, viewer, "notice.html", n=shown, rectification_id=rectification_id,
                  can_issue=viewer.is_(SUPERVISOR))


@router.post("/rectifications/{rectification_id}/notice")
def issue(request: Request, rectification_id: RectificationId, form: FormData = Depends(posted),
          viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        if rectify.view(session, console.settings, rectification_id, clock.now()) is None:
            raise Missing("未找到此整改")
        notices.issue(session, console.settings, rectification_id, clock.now())
    return see_other(f"/rectifications/{rectification_id}/notice")
