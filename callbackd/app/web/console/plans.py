"""Callback plans (回访计划): `/plans` lists the plans and creates one (`callbackd plans create`); `POST
/plans/{id}/members` uploads a plan's population (`callbackd plans import FILE --plan NAME`), bad rows shown by
line; `/plans/report?period=P` shows plan against done per assignee and area (`callbackd plans report`) and
`/plans/report.csv?period=P` downloads it, every cell neutralised for spreadsheets.

Supervisors and admins only: the pages name plans, windows, assignees and areas, never a member's name or number.
The upload is read as `/imports` reads one (size-capped, a private temporary copy deleted afterwards).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response

from callbackd.app.web.console.access import ADMIN, SUPERVISOR, Viewer, check_csrf
from callbackd.app.web.console.imports import SUFFIXES, UploadTooLarge, _read_form, _safe_name, private_copy
from callbackd.app.web.console.pages import allow, console_of, form_text, posted, render, require, see_other
from callbackd.core import clock
from callbackd.core.errors import CallbackdError
from callbackd.core.periods import PeriodError
from callbackd.intake.rows import ImportReport
from callbackd.rounds import plans
from callbackd.store.models import Plan, Window

router = APIRouter()
ROLES = (SUPERVISOR, ADMIN)
PeriodText = Annotated[str, Query(max_length=40)]
PlanText = Annotated[str, Query(max_length=100)]
SHOWN_ERRORS = 1000


@router.get("/plans")
def plan_list(request: Request, viewer: Viewer = Depends(allow(*ROLES))) -> Response:
    return _page(request, viewer)


@router.post("/plans")
def plan_create(request: Request, form: FormData = Depends(posted),
                viewer: Viewer = Depends(allow(*ROLES))) -> Response:
    """Create a plan from the form; a bad field is a 400 with one line saying what to fix."""
    console = console_of(request)
    entered = {name: form_text(form, name) for name in
               ("name", "window", "frequency", "assignee", "channels", "survey", "topic", "starts_on")}
    try:
        starts_on = date.fromisoformat(entered["starts_on"]) if entered["starts_on"] else None
    except ValueError:
        return _page(request, viewer, status=400, message="开始日期格式不正确，请按 2026-11-01 的格式填写。",
                     entered=entered)
    channels = tuple(c.strip() for c in entered["channels"].replace("，", ",").split(",") if c.strip())
    new = plans.NewPlan(entered["name"], entered["window"], entered["frequency"], entered["assignee"] or None,
                        channels, entered["survey"] or None, entered["topic"], starts_on)
    try:
        console.plugins.check_plan(list(channels or console.settings.dispatch.plan), console.settings.surveys.rest_by)
        now = clock.now()
        with console.session(viewer) as session:
            plans.create_plan(session, console.settings, new, now.astimezone(console.settings.zone).date(), now)
    except CallbackdError as exc:
        return _page(request, viewer, status=400, message=f"未创建回访计划：{exc}", entered=entered)
    return see_other("/plans")


@router.post("/plans/{plan_id}/members")
async def member_upload(request: Request, plan_id: int, viewer: Viewer = Depends(allow(*ROLES))) -> Response:
    """Read the population upload (within the limit), check its CSRF token, then import it in a worker thread."""
    try:
        form = await _read_form(request)
    except UploadTooLarge:
        return _page(request, viewer, status=413, message="文件过大，未导入。")
    try:
        check_csrf(form, viewer.csrf)
        file = form.get("file")
        if not isinstance(file, UploadFile) or not file.filename:
            return _page(request, viewer, status=400, message="请选择要导入的名单文件（CSV 或 XLSX）。")
        name = _safe_name(file.filename)
        if Path(name).suffix.lower() not in SUFFIXES:
            return _page(request, viewer, status=415, message=f"文件「{name}」不是 CSV 或 XLSX 文件，未导入。")
        return await run_in_threadpool(_import, request, viewer, plan_id, file.file, name)
    finally:
        await form.close()


def _import(request: Request, viewer: Viewer, plan_id: int, upload: IO[bytes], name: str) -> Response:
    console = console_of(request)
    with private_copy(upload, name) as path:
        try:
            with console.session(viewer) as session:
                plan = require(session.get(Plan, plan_id))
                report = plans.import_members(session, console.settings, plan, path, clock.now(),
                                              readers=console.plugins.readers_by_suffix())
                plan_name = plan.name
        except CallbackdError as exc:  # the file cannot be read: nothing was written
            message = str(exc).replace(str(path), name)
            return _page(request, viewer, status=400, message=f"名单「{name}」未导入：{message}")
    return _page(request, viewer, report=report, imported=(plan_name, name))


@router.get("/plans/report")
def plan_report(request: Request, period: PeriodText = "", plan: PlanText = "",
                viewer: Viewer = Depends(allow(*ROLES))) -> Response:
    console = console_of(request)
    if not period.strip():
        return _page(request, viewer)
    try:
        with console.session(viewer) as session:
            report = plans.plan_report(session, console.settings, period, plan.strip() or None)
    except (PeriodError, plans.PlanError) as exc:
        return _page(request, viewer, status=400, message=_report_problem(exc, period))
    return _page(request, viewer, report=None, figures=report, table=plans.report_table(report),
                 columns=[h for h, _ in plans.REPORT_COLUMNS])


@router.get("/plans/report.csv")
def plan_report_csv(request: Request, period: PeriodText = "", plan: PlanText = "",
                    viewer: Viewer = Depends(allow(*ROLES))) -> Response:
    console = console_of(request)
    try:
        with console.session(viewer) as session:
            report = plans.plan_report(session, console.settings, period, plan.strip() or None)
    except (PeriodError, plans.PlanError) as exc:
        return _page(request, viewer, status=400, message=_report_problem(exc, period))
    filename = f"plan-report-{report['period']}.csv"
    return Response(plans.report_csv(report), media_type="text/csv; charset=utf-8",
                    headers={"content-disposition": f'attachment; filename="{filename}"'})


def _report_problem(exc: Exception, period: str) -> str:
    if isinstance(exc, PeriodError):
        return f"期间「{period}」格式不正确。请按以下格式填写：2026-11（月）、2026-Q4（季度）或 2026（年）。"
    return f"{exc}"


def _page(request: Request, viewer: Viewer, *, status: int = 200, message: str = "",
          entered: dict[str, str] | None = None, report: ImportReport | None = None, **context: Any) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        rows = plans.list_plans(session)
        windows = list(session.scalars(select(Window.name).order_by(Window.name)))
    errors = report.errors if report is not None else []
    return render(request, viewer, "plans.html", status=status, plans=rows, windows=windows, message=message,
                  entered=entered or {}, frequencies=plans.FREQUENCIES, report=report, errors=errors[:SHOWN_ERRORS],
                  more_errors=max(0, len(errors) - SHOWN_ERRORS), default_channels=", ".join(
                      console.settings.dispatch.plan), **context)
