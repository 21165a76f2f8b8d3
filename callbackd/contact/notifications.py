"""What the contact layer tells staff (through the outbox, `callbackd.store.outbox`): a rectification opened (its
window's heads), escalated (supervisors and leaders), its follow-up not made (supervisors), and a round closed below
its completion target (supervisors).

Messages are short Chinese text naming the window, the case type and, except for a confidential case type (举报),
the case's number; never an applicant's name, number or suggestion.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callbackd.core.phones import without_numbers
from callbackd.core.settings import Settings
from callbackd.store import outbox
from callbackd.store.models import Callback, Case, Rectification, Round, Window

FINAL_DONE = ("completed", "partial")


def when(settings: Settings, instant: datetime) -> str:
    """A time as staff read it: 12月8日 23:59, in the organisation's zone."""
    local = instant.astimezone(settings.zone)
    return f"{local.month}月{local.day}日 {local:%H:%M}"


def _window_name(session: Session, window_id: int) -> str:
    return session.scalar(select(Window.name).where(Window.id == window_id)) or f"窗口{window_id}"


def case_line(session: Session, settings: Settings, rectification: Rectification) -> str:
    """The case as a notification may name it: its type and number, or only its type when confidential."""
    case_type = rectification.case_type or "办件"
    if case_type in settings.policies.confidential_case_types or rectification.case_id is None:
        return f"办件：{case_type}" + ("（保密）" if case_type in settings.policies.confidential_case_types else "")
    case_no = session.scalar(select(Case.case_no).where(Case.id == rectification.case_id)) or ""
    return f"办件：{case_type} {case_no}".rstrip()


def _cause_line(rectification: Rectification) -> str:
    # the reason is made of the survey's dimension labels or a reason label, never of what an applicant said
    if rectification.trigger == "unreachable":
        return f"原因：投诉回访无法联系（{without_numbers(rectification.reason)}）"
    return f"原因：回访{without_numbers(rectification.reason)}"


def rectification_opened(session: Session, settings: Settings, rectification: Rectification, now: datetime) -> None:
    """Tell the window's heads of a new rectification and its deadline."""
    window = _window_name(session, rectification.window_id)
    outbox.post(session, settings, outbox.Post(
        event="rectification.opened", key=f"rectification.opened:{rectification.id}:{rectification.loops}",
        title=f"【整改】{window}：新增整改一件", window_id=rectification.window_id, audience=("window",),
        lines=(_cause_line(rectification), case_line(session, settings, rectification),
               f"反馈期限：{when(settings, rectification.due_at)}"),
        path=f"/rectifications/{rectification.id}",
    ), now)


def rectification_escalated(session: Session, settings: Settings, rectification: Rectification, now: datetime) -> None:
    """Tell the supervisors and leaders that a rectification was escalated after its follow-ups."""
    window = _window_name(session, rectification.window_id)
    outbox.post(session, settings, outbox.Post(
        event="rectification.escalated", key=f"rectification.escalated:{rectification.id}",
        title=f"【整改上报】{window}：整改经{rectification.loops}次回访仍不满意", window_id=rectification.window_id,
        audience=("supervisor", "leader"),
        lines=(case_line(session, settings, rectification), "请督查科跟进处理"),
        path=f"/rectifications/{rectification.id}",
    ), now)


def follow_up_failed(session: Session, settings: Settings, rectification: Rectification, now: datetime) -> None:
    """Tell the supervisors that a rectification's follow-up could not be made: it awaits verification by hand."""
    window = _window_name(session, rectification.window_id)
    outbox.post(session, settings, outbox.Post(
        event="rectification.follow_up_failed",
        key=f"rectification.follow_up_failed:{rectification.id}:{rectification.loops}",
        title=f"【整改逾期】{window}：整改回访未能联系，待人工验证", window_id=rectification.window_id,
        audience=("supervisor",), lines=(case_line(session, settings, rectification),),
        path=f"/rectifications/{rectification.id}",
    ), now)


def rounds_closed(session: Session, settings: Settings, round_ids: list[int], now: datetime) -> None:
    """Tell the supervisors of each closed round whose completed callbacks fall short of
    `[notify] round_completion_target`."""
    target = settings.notify.round_completion_target
    if not round_ids or target <= 0:
        return
    rows = session.execute(
        select(Callback.round_id, func.count(), func.count().filter(Callback.status.in_(FINAL_DONE)))
        .where(Callback.round_id.in_(round_ids), Callback.follow_up == 0)
        .group_by(Callback.round_id)
    ).all()
    weeks = dict(session.execute(select(Round.id, Round.week).where(Round.id.in_(round_ids))).all())
    for round_id, total, done in rows:
        if not total or done / total >= target:
            continue
        outbox.post(session, settings, outbox.Post(
            event="round.below_target", key=f"round.below_target:{round_id}",
            title=f"【回访完成率未达标】{weeks.get(round_id, '')} 回访批次已结束",
            lines=(f"完成 {done}/{total}（{done / total:.0%}），目标 {target:.0%}",),
            audience=("supervisor",), path=f"/rounds/{round_id}",
        ), now)
