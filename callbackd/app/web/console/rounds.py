"""Rounds (回访批次), for the supervisory unit: `/rounds` lists them and opens a week's round (`round open`);
`/rounds/{id}` shows one, verifies it (`round verify`, a POST: it is audited) and pages through its callbacks,
by window and state."""

from __future__ import annotations

from math import ceil
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import func, select
from starlette.datastructures import FormData
from starlette.responses import Response

from callbackd.app.web.console.access import SUPERVISOR, Viewer
from callbackd.app.web.console.pages import (
    allow,
    console_of,
    form_text,
    page_number,
    posted,
    render,
    require,
    see_other,
    whole_number,
)
from callbackd.core import clock
from callbackd.core.errors import CallbackdError
from callbackd.core.workdays import Calendar
from callbackd.report import listings
from callbackd.rounds import sampling
from callbackd.store.models import Callback, Round

router = APIRouter()
PER_PAGE = 50
ROUNDS_PER_PAGE = 50
PLAN_SLOTS = 3  # channel choices offered when opening a round (first, then fallbacks)
STATE_LABELS = {"pending": "待回访", "in_progress": "回访中", "completed": "已完成", "partial": "部分完成",
                "unreachable": "无法联系", "refused": "拒绝回访", "opted_out": "已退订", "invalid": "号码无效"}
ROUND_LABELS = {"open": "进行中", "closed": "已结束", "replaced": "已重抽"}
RoundId = Annotated[int, Path(ge=1, lt=2**31)]
supervisor = allow(SUPERVISOR)


@router.get("/rounds")
def rounds_page(request: Request, page: str | None = None, viewer: Viewer = Depends(supervisor)) -> Response:
    return _rounds(request, viewer, page_number(page))


@router.post("/rounds")
def open_round(request: Request, form: FormData = Depends(posted), viewer: Viewer = Depends(supervisor)) -> Response:
    console = console_of(request)
    week, seed = form_text(form, "week")[:16], form_text(form, "seed") or None
    plan = [value.strip() for value in form.getlist("channel") if isinstance(value, str) and value.strip()]
    try:
        if not week:
            raise CallbackdError("请填写回访周（如 2026-W48）")
        if len(set(plan)) != len(plan):
            raise CallbackdError("同一回访渠道只能选择一次")
        # an unknown channel is refused before anything is drawn
        console.plugins.check_plan(plan or console.settings.dispatch.plan, console.settings.surveys.rest_by)
        with console.session(viewer) as session:
            round_, _ = sampling.open_round(session, console.settings, week, seed=seed,
                                            replace=form.get("replace") == "1", channels=plan or None)
            round_id = round_.id
    except CallbackdError as exc:  # the transaction has rolled back: the form again, with what to fix
        return _rounds(request, viewer, 1, status=400, error=str(exc),
                       entered={"week": week, "seed": (seed or "")[:128]})
    return see_other(f"/rounds/{round_id}")


@router.get("/rounds/{round_id}")
def round_page(request: Request, round_id: RoundId, window: str | None = None, status: str | None = None,
               page: str | None = None, viewer: Viewer = Depends(supervisor)) -> Response:
    return _round(request, viewer, round_id, window, status, page_number(page))


@router.post("/rounds/{round_id}/verify")
def verify_round(request: Request, round_id: RoundId, form: FormData = Depends(posted),
                 viewer: Viewer = Depends(supervisor)) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        require(session.get(Round, round_id))
        result = sampling.verify_round(session, round_id, Calendar.from_settings(console.settings))
    return _round(request, viewer, round_id, None, None, 1, verification={"ok": result.ok,
                                                                          "problems": result.problems})


def _rounds(request: Request, viewer: Viewer, page: int, *, status: int = 200, error: str = "",
            entered: dict[str, str] | None = None) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        # the weeks' rounds; a callback plan's periods are on /plans
        total = session.scalar(select(func.count()).select_from(Round).where(Round.kind == "sample")) or 0
        rounds = list(session.scalars(select(Round).where(Round.kind == "sample").order_by(Round.id.desc())
                                      .offset((page - 1) * ROUNDS_PER_PAGE).limit(ROUNDS_PER_PAGE)))
        counts = {round_id: n for round_id, n in session.execute(
            select(Callback.round_id, func.count()).where(Callback.round_id.in_([r.id for r in rounds]))
            .group_by(Callback.round_id))}
    now = clock.now().astimezone(console.settings.zone)
    this_week = f"{now.isocalendar().year}-W{now.isocalendar().week:02d}"
    plan = list(console.settings.dispatch.plan)
    return render(
        request, viewer, "rounds.html", status=status, rounds=rounds, counts=counts, round_labels=ROUND_LABELS,
        page=page, pages=max(1, ceil(total / ROUNDS_PER_PAGE)), error=error,
        entered=entered or {"week": this_week, "seed": ""},
        channels=sorted(console.plugins.channels.items), plan=plan + [""] * (PLAN_SLOTS - len(plan)),
    )


def _round(request: Request, viewer: Viewer, round_id: int, window: str | None, status: str | None, page: int,
           verification: dict[str, Any] | None = None) -> Response:
    console = console_of(request)
    window_id = _window_filter(window)
    state = status or None
    if state is not None and state not in STATE_LABELS:
        raise CallbackdError(f"未知的回访状态：{state}")
    with console.session(viewer) as session:
        round_ = require(session.get(Round, round_id))
        windows = listings.round_windows(session, round_id)
        states = listings.round_states(session, round_id)
        total, callbacks = listings.round_callbacks(session, round_id, window_id=window_id, status=state,
                                                    offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
    query = {key: value for key, value in (("window", window_id), ("status", state)) if value is not None}
    return render(
        request, viewer, "round.html", round=round_, round_labels=ROUND_LABELS, windows=windows, states=states,
        state_labels=STATE_LABELS, callbacks=callbacks, total=total, page=page,
        pages=max(1, ceil(total / PER_PAGE)), base=f"/rounds/{round_id}?" + urlencode(query) + ("&" if query else ""),
        window_id=window_id, state=state or "", verification=verification, survey=round_.survey.get("title", ""),
    )


def _window_filter(text: str | None) -> int | None:
    """`?window=` is a window's id; empty means every window."""
    if not text:
        return None
    window = whole_number(text)
    if window is None:
        raise CallbackdError("窗口参数不正确")
    return window


