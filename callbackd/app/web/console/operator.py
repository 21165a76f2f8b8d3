"""The operator's page, `/operator`: the queue of callbacks waiting on the operator channel, one taken at a time
(`contact/queue.py`), the number shown on pressing 显示号码 (audited), the round's survey as a keyboard-first form
(1/2/3 per question, Enter saves), the outcomes of a call that got no answers (无人接听, 忙音, 空号, 拒绝, 要求改期),
and on-site forms (现场征求意见表).

What the form saves goes through `results.record_operator` and `results.record_form`, the functions that import an
operator result file and an on-site form file: a result typed here is stored exactly as the same row in a file.
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from callbackd.app.web.console.access import OPERATOR, SUPERVISOR, Viewer
from callbackd.app.web.console.pages import allow, console_of, form_text, posted, render, require, see_other
from callbackd.contact import queue, results
from callbackd.core import clock
from callbackd.core.errors import CallbackdError
from callbackd.intake.rows import RowProblem, parse_time
from callbackd.rounds.sampling import survey_in_force
from callbackd.rounds.surveys import Question, Survey, round_survey
from callbackd.store.models import Window

router = APIRouter()
AttemptId = Annotated[int, Path(ge=1, lt=2**31)]
calling = allow(OPERATOR, SUPERVISOR)
LANGUAGE = "zh-CN"
OUTCOME_LABELS = {"no_answer": "无人接听", "busy": "忙音", "invalid_number": "空号", "refused": "拒绝"}
DONE = {  # what the page says after a POST sent the browser back to it (never text the request chose)
    "saved": "回访结果已保存。", "outcome": "已记录本次回访结果。", "rescheduled": "已按申请人要求改期。",
    "released": "已放回队列。", "empty": "队列中暂无可回访的号码。", "onsite": "现场征求意见表已保存。",
    "onsite-again": "这张现场征求意见表已保存过，未重复计入。",
}
FORM_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


@router.get("/operator")
def operator_page(request: Request, done: str | None = None, viewer: Viewer = Depends(calling)) -> Response:
    return _page(request, viewer, done=DONE.get(done or "", ""))


@router.post("/operator/take")
def take(request: Request, form: FormData = Depends(posted), viewer: Viewer = Depends(calling)) -> Response:
    return see_other("/operator" if _take_next(request, viewer) else "/operator?done=empty")


@router.post("/operator/{attempt_id}/reveal")
def reveal(request: Request, attempt_id: AttemptId, form: FormData = Depends(posted),
           viewer: Viewer = Depends(calling)) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        phone = require(queue.reveal(session, attempt_id, viewer.id, clock.now()))
    # the page itself, not a redirect: the number is on this response only, and nowhere a reload would show it
    return _page(request, viewer, revealed=phone)


@router.post("/operator/{attempt_id}/result")
def save_result(request: Request, attempt_id: AttemptId, form: FormData = Depends(posted),
                viewer: Viewer = Depends(calling)) -> Response:
    """The applicant's answers (`q_<question key>` = a choice's digit), 意见建议 and 回访人角色."""
    return _record(request, viewer, attempt_id, form, None)


@router.post("/operator/{attempt_id}/outcome")
def save_outcome(request: Request, attempt_id: AttemptId, form: FormData = Depends(posted),
                 viewer: Viewer = Depends(calling)) -> Response:
    """A call that got no answers: `outcome` is no_answer, busy, invalid_number or refused."""
    outcome = form.get("outcome")
    if not isinstance(outcome, str) or outcome not in OUTCOME_LABELS:
        return _page(request, viewer, status=400, error="请选择本次回访的结果")
    return _record(request, viewer, attempt_id, form, outcome)


@router.post("/operator/{attempt_id}/reschedule")
def reschedule(request: Request, attempt_id: AttemptId, form: FormData = Depends(posted),
               viewer: Viewer = Depends(calling)) -> Response:
    """要求改期: `when` (a local date and time) is when the applicant asked to be called."""
    console = console_of(request)
    try:
        when = _local_time(form.get("when"), console.settings.zone)
        with console.session(viewer) as session:
            require(queue.held(session, attempt_id, viewer.id, lock=True))
            queue.reschedule(session, console.settings, attempt_id, when, clock.now())
    except CallbackdError as exc:  # rolled back: the page again, saying what to fix
        return _page(request, viewer, status=400, error=str(exc))
    _take_next(request, viewer)
    return see_other("/operator?done=rescheduled")


@router.post("/operator/{attempt_id}/release")
def release(request: Request, attempt_id: AttemptId, form: FormData = Depends(posted),
            viewer: Viewer = Depends(calling)) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        require(queue.release(session, attempt_id, viewer.id) or None)
    return see_other("/operator?done=released")


@router.post("/operator/onsite")
def save_onsite(request: Request, form: FormData = Depends(posted), viewer: Viewer = Depends(calling)) -> Response:
    """A 现场征求意见表: `window` (its name), `date`, `q_<question key>` digits, `suggestion`, and the page's own
    `form_token`, which makes the form count once however often it is posted."""
    console = console_of(request)
    token = form.get("form_token")
    try:
        if not isinstance(token, str) or not FORM_TOKEN.fullmatch(token):
            raise CallbackdError("表单已失效，请刷新页面后重新填写")
        survey = survey_in_force(console.settings)
        date = parse_time(form_text(form, "date"), console.settings.zone, "日期")
        if date is None:
            raise CallbackdError("请填写日期")
        answers = _answers(form, survey)
        with console.session(viewer) as session:
            recording = results.recording(session, console.settings, console.plugins, survey)
            outcome = results.record_form(recording, results.Result(date, answers, _suggestion(form)), "onsite",
                                          form_text(form, "window"), f"onsite:console:{token}")
    except (CallbackdError, RowProblem) as exc:
        return _page(request, viewer, status=400, onsite_error=str(exc))
    return see_other("/operator?done=" + ("onsite" if outcome == "imported" else "onsite-again"))


# ---- what the routes share ---------------------------------------------------------------------------------


def _record(request: Request, viewer: Viewer, attempt_id: int, form: FormData, outcome: str | None) -> Response:
    """Record what the operator entered for the attempt they hold, as an operator file's row for its case would
    be recorded, then give them the next callback of the queue."""
    console = console_of(request)
    try:
        with console.session(viewer) as session:
            held = require(queue.held(session, attempt_id, viewer.id, lock=True))
            survey = round_survey(session, held.round_id)
            given = {} if outcome is not None else _answers(form, survey)
            suggestion = "" if outcome is not None else _suggestion(form)
            if outcome is None and not given:
                raise CallbackdError("请至少选择一项评价；未能回访请选择下方的回访结果")
            role = form_text(form, "caller_role") or None
            # stored as a file's 回访时间 would be: the zone's wall clock, to the second
            contacted_at = clock.now().astimezone(console.settings.zone).replace(microsecond=0)
            recording = results.recording(session, console.settings, console.plugins, survey)
            results.record_operator(recording, results.Result(contacted_at, given, suggestion), held.case_no, role,
                                    callback_id=held.callback_id, outcome=outcome)
    except (CallbackdError, RowProblem) as exc:  # rolled back: the page again, saying what to fix
        return _page(request, viewer, status=400, error=str(exc))
    _take_next(request, viewer)
    return see_other("/operator?done=" + ("saved" if outcome is None else "outcome"))


def _take_next(request: Request, viewer: Viewer) -> bool:
    console = console_of(request)
    with console.session(viewer) as session:
        return queue.take_next(session, console.settings, viewer.id, clock.now()) is not None


def _answers(form: FormData, survey: Survey) -> dict[str, tuple[str, str]]:
    """The rated answers posted as `q_<key>` = a choice's digit: question -> (level, label), as a result file's
    cell reads. A digit the question's scale does not offer is refused."""
    given = {}
    for question in survey.rating_questions():
        digit = form_text(form, f"q_{question.key}")
        if not digit:
            continue
        choice = survey.read_digit(question, digit)
        if choice is None:
            raise CallbackdError(f"{question.dimension}：无效的选项 {digit[:5]!r}")
        given[question.key] = (choice.level, choice.label)
    return given


def _suggestion(form: FormData) -> str:
    return form_text(form, "suggestion")[:2000]



def _local_time(value: Any, zone: Any) -> datetime:
    """A `datetime-local` field's value (2026-11-24T15:30) in the organisation's zone."""
    text = value.strip() if isinstance(value, str) else ""
    for pattern in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(text, pattern).replace(tzinfo=zone)
        except ValueError:
            continue
    raise CallbackdError("请填写改期的日期和时间")


def _prompt(question: Question) -> str:
    """What the operator reads out for a question: its own voice wording, without the keypad options."""
    return question.texts.get(LANGUAGE, {}).get("voice", question.dimension)


def _page(request: Request, viewer: Viewer, *, status: int = 200, revealed: str | None = None, error: str = "",
          onsite_error: str = "", done: str = "") -> Response:
    """The operator's page: the callback they hold (or the queue), and the on-site form."""
    console = console_of(request)
    settings, now = console.settings, clock.now()
    with console.session(viewer) as session:
        held_id = queue.held_attempt(session, viewer.id)
        held = queue.held(session, held_id, viewer.id) if held_id is not None else None
        survey = round_survey(session, held.round_id) if held is not None else None
        total, waiting = queue.waiting(session, now)
        windows = list(session.scalars(select(Window.name).order_by(Window.name)))
    greeting = ""
    if held is not None and survey is not None:
        try:
            greeting = survey.render("greeting_voice", LANGUAGE, organisation=settings.organisation,
                                     window=held.window, matter=held.matter)
        except (KeyError, ValueError):  # a survey without Chinese wording: the operator speaks freely
            greeting = ""
    confidential = held is not None and held.case_type in settings.policies.confidential_case_types
    onsite = survey_in_force(settings)
    local_now = now.astimezone(settings.zone)
    return render(
        request, viewer, "operator.html", status=status, held=held, survey=survey, greeting=greeting,
        prompts={q.key: _prompt(q) for q in (survey.questions if survey else ())}, revealed=revealed,
        applicant=(held.applicant if held is not None and (revealed or not confidential) else "（保密）"),
        total=total, waiting=waiting, calling_hours=queue.in_calling_hours(settings, now), error=error, done=done,
        hours="，".join(f"{start:%H:%M}–{end:%H:%M}" for start, end in settings.calendar.calling_hours),
        outcome_labels=OUTCOME_LABELS,
        roles=list(settings.policies.role_minimum_shares), onsite=onsite, windows=windows,
        onsite_error=onsite_error, form_token=secrets.token_urlsafe(18), today=f"{local_now:%Y-%m-%d}",
        earliest=f"{local_now:%Y-%m-%dT%H:%M}",
    )
