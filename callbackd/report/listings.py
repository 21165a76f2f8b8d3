"""Views of what the ledger and the rounds hold: windows, cases, callbacks. Phones are masked unless revealed,
and every reveal is written to the audit trail."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from callbackd.core.errors import CallbackdError, NotFoundError
from callbackd.core.phones import dialable, mask
from callbackd.core.vocabulary import reason_label
from callbackd.store import audit
from callbackd.store.models import Callback, Case, Window
from callbackd.store.windows import window_id


def list_windows(session: Session) -> list[dict[str, Any]]:
    """Each window with its case counts."""
    rows = session.execute(
        select(
            Window.name,
            func.count(Case.id),
            func.coalesce(func.sum(case((Case.resolved.is_(True), 1), else_=0)), 0),
        )
        .outerjoin(Case, Case.window_id == Window.id)
        .group_by(Window.id, Window.name)
        .order_by(Window.name)
    )
    return [{"window": name, "cases": total, "resolved": resolved} for name, total, resolved in rows]


def list_cases(
    session: Session, *, window: str | None = None, reveal: bool = False, limit: int | None = None,
    confidential: Collection[str] = (),
) -> list[dict[str, Any]]:
    """Cases, newest resolution first; phones masked, and the applicants of `confidential` case types (举报)
    hidden, unless `reveal` (which is audited)."""
    query = select(Case, Window.name).join(Window, Window.id == Case.window_id)
    if window is not None:
        query = query.where(Case.window_id == window_id(session, window))
    query = query.order_by(Case.resolved_at.desc().nulls_last(), Case.case_no)
    if limit is not None:
        query = query.limit(limit)
    rows = [
        {
            "case_id": c.case_no,
            "window": name,
            "matter": c.matter,
            "case_type": c.case_type,
            "applicant": c.applicant if reveal or c.case_type not in confidential else "（保密）",
            "phone": c.phone if reveal else mask(c.phone),
            "sms": c.phone_sms,
            "accepted_at": c.accepted_at.isoformat(),
            "resolved_at": c.resolved_at.isoformat() if c.resolved_at else None,
            "status": c.status,
            "resolved": c.resolved,
        }
        for c, name in session.execute(query)
    ]
    if reveal:
        audit.record(session, "phone.reveal", "cases list", window=window, cases=[r["case_id"] for r in rows])
    return rows


def list_callbacks(
    session: Session, *, round_id: int | None = None, status: str | None = None, reveal: bool = False
) -> list[dict[str, Any]]:
    """Callbacks with their case and window; phones masked unless `reveal` (which is audited)."""
    query = (
        select(Callback, Case.case_no, Case.matter, Window.name)
        .join(Case, Case.id == Callback.case_id)
        .join(Window, Window.id == Callback.window_id)
        .order_by(Callback.round_id, Window.name, Callback.draw_key, Callback.follow_up)
    )
    if round_id is not None:
        query = query.where(Callback.round_id == round_id)
    if status is not None:
        from callbackd.core.vocabulary import FINAL_CALLBACK

        known = ("pending", "in_progress", *FINAL_CALLBACK)
        if status not in known:
            raise CallbackdError(f"--status {status!r} is not a callback state ({', '.join(known)})")
        query = query.where(Callback.status == status)
    rows = [
        {
            "callback": cb.id,
            "round": cb.round_id,
            "window": name,
            "case_id": case_no,
            "matter": matter,
            "phone": cb.phone if reveal else mask(cb.phone),
            "rule": cb.rule,
            "stratum": cb.stratum,
            "due_at": cb.due_at.isoformat() if cb.due_at else None,
            "status": cb.status,
            "reason": cb.reason,
            "reason_label": reason_label(cb.reason) or None,
            "follow_up": cb.follow_up,
            "caller_role": cb.caller_role,
        }
        for cb, case_no, matter, name in session.execute(query)
    ]
    if reveal:
        audit.record(session, "phone.reveal", "callbacks list", round=round_id, callbacks=[r["callback"] for r in rows])
    return rows


def callsheet(session: Session, settings: Any, round_id: int, destination: str, language: str = "zh-CN"
              ) -> dict[str, Any]:
    """The operators' call sheet for a round: its callbacks waiting on the operator channel, with the full
    number (the one view that has it), the script, and the operator result columns. The audit trail records where
    the sheet goes (`destination`: its file) and every case on it."""
    from callbackd.core.vocabulary import OPEN_ATTEMPT
    from callbackd.rounds.surveys import Survey
    from callbackd.store.models import Attempt, Round

    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFoundError(f"no round {round_id} (see `callbackd round list`)")
    survey = Survey.from_snapshot(round_.survey)
    rated = survey.rating_questions()
    header = ["窗口", "办件编号", "事项名称", "申请人", "联系电话", "回访话术", "回访时间",
              *(q.dimension for q in rated), "意见建议"]
    rows = []
    for _callback_id, name, case_no, matter, applicant, phone in session.execute(
        select(Callback.id, Window.name, Case.case_no, Case.matter, Case.applicant, Callback.phone)
        .join(Case, Case.id == Callback.case_id)
        .join(Window, Window.id == Callback.window_id)
        .join(Attempt, Attempt.callback_id == Callback.id)
        .where(Callback.round_id == round_id, Attempt.channel == "operator", Attempt.status.in_(OPEN_ATTEMPT))
        .order_by(Window.name, Case.case_no)
    ):
        context = {"organisation": settings.organisation, "window": name, "matter": matter}
        script = "\n".join([survey.render("greeting_voice", language, **context),
                            *(f"{i}. {q.text('voice', language)}" for i, q in enumerate(survey.questions, 1))])
        rows.append([name, case_no, matter, applicant, dialable(phone), script, "", *([""] * len(rated)), ""])
    audit.record(session, "phone.reveal", f"call sheet {destination}", round=round_id, file=destination,
                 callbacks=len(rows), cases=[row[1] for row in rows])
    return {"title": f"{settings.organisation} 回访清单（第{round_id}批次 {round_.week}）", "header": header,
            "rows": rows, "round": round_id}


# ---- the console's round and callback pages --------------------------------------------------------------

CALLBACK_STATES = ("pending", "in_progress", "completed", "partial", "unreachable", "refused", "opted_out", "invalid")


def round_windows(session: Session, round_id: int) -> list[dict[str, Any]]:
    """A round's tally per window (candidates, quota, selected, shortfall), by window name."""
    from callbackd.store.models import RoundWindow

    return [
        {"window_id": rw.window_id, "window": name, "candidates": rw.candidates, "quota": rw.quota,
         "selected": rw.selected, "shortfall": rw.shortfall}
        for rw, name in session.execute(
            select(RoundWindow, Window.name).join(Window, Window.id == RoundWindow.window_id)
            .where(RoundWindow.round_id == round_id).order_by(Window.name)
        )
    ]


def round_states(session: Session, round_id: int) -> dict[str, int]:
    """How many of a round's callbacks (follow-ups included) are in each state."""
    return {status: count for status, count in session.execute(
        select(Callback.status, func.count()).where(Callback.round_id == round_id).group_by(Callback.status)
    )}


def round_callbacks(
    session: Session, round_id: int, *, window_id: int | None = None, status: str | None = None,
    offset: int = 0, limit: int = 50,
) -> tuple[int, list[dict[str, Any]]]:
    """One page of a round's callbacks (a round may hold tens of thousands), in the draw's order per window,
    optionally of one window and one state: how many match, and the page's rows, phones masked."""
    if status is not None and status not in CALLBACK_STATES:
        raise CallbackdError(f"{status!r} is not a callback state ({', '.join(CALLBACK_STATES)})")
    where = [Callback.round_id == round_id]
    if window_id is not None:
        where.append(Callback.window_id == window_id)
    if status is not None:
        where.append(Callback.status == status)
    total = session.scalar(select(func.count()).select_from(Callback).where(*where)) or 0
    rows = session.execute(
        select(Callback, Case.case_no, Case.matter, Case.case_type, Window.name)
        .join(Case, Case.id == Callback.case_id)
        .join(Window, Window.id == Callback.window_id)
        .where(*where)
        .order_by(Window.name, Callback.draw_key, Callback.follow_up, Callback.id)
        .offset(offset).limit(limit)
    ).all()
    return total, [
        {"callback": cb.id, "window": name, "case_id": case_no, "matter": matter, "case_type": case_type,
         "phone": mask(cb.phone), "rule": cb.rule, "due_at": cb.due_at, "status": cb.status,
         "reason_label": reason_label(cb.reason), "follow_up": cb.follow_up}
        for cb, case_no, matter, case_type, name in rows
    ]


def callback_timeline(session: Session, callback_id: int, confidential: Collection[str] = ()) -> dict[str, Any] | None:
    """One callback as its page shows it: the case, every attempt (and who held it on the operator queue), the
    answers, and the steps of the rectifications it opened or verifies. The number is masked; the applicant of a
    `confidential` case type (举报) is hidden. None when there is no such callback."""
    from sqlalchemy import or_

    from callbackd.rounds.surveys import round_survey
    from callbackd.store.models import Answer, Attempt, Contact, Rectification, Round, User

    found = session.execute(
        select(Callback, Case, Window.name, Round.week)
        .join(Case, Case.id == Callback.case_id)
        .join(Window, Window.id == Callback.window_id)
        .join(Round, Round.id == Callback.round_id)
        .where(Callback.id == callback_id)
    ).one_or_none()
    if found is None:
        return None
    cb, case_, window, week = found
    attempts = [
        {"number": a.number, "channel": a.channel, "status": a.status, "due_at": a.due_at,
         "started_at": a.started_at, "ended_at": a.ended_at, "detail": a.detail, "held_by": holder}
        for a, holder in session.execute(
            select(Attempt, User.name).outerjoin(User, User.id == Attempt.assigned_to)
            .where(Attempt.callback_id == callback_id).order_by(Attempt.number)
        )
    ]
    contact = session.scalar(select(Contact).where(Contact.callback_id == callback_id))
    survey = round_survey(session, cb.round_id)
    labels = {q.key: q.dimension for q in survey.questions}
    answers: list[dict[str, Any]] = []
    if contact is not None:
        stored = {a.question: a for a in session.scalars(select(Answer).where(Answer.contact_id == contact.id))}
        order = [q.key for q in survey.questions] + sorted(set(stored) - set(labels))
        answers = [{"question": labels.get(key, key), "level": stored[key].level, "raw": stored[key].raw,
                    "recorded_at": stored[key].recorded_at} for key in order if key in stored]
    linked = [Rectification.callback_id == callback_id]
    if contact is not None:
        linked.append(Rectification.contact_id == contact.id)
    if cb.follow_up:  # a follow-up (整改回访) verifies the rectification its case's callback opened
        linked.append(Rectification.case_id == cb.case_id)
    rectifications = [
        {"id": r.id, "status": r.status, "reason": r.reason, "due_at": r.due_at,
         "steps": [{"step": step.get("step", ""), "at": _moment(step.get("at")), "reason": step.get("reason") or "",
                    "text": step.get("text") or ""} for step in r.history]}
        for r in session.scalars(select(Rectification).where(or_(*linked)).order_by(Rectification.id))
    ]
    hidden = case_.case_type in confidential
    return {
        "callback": cb.id, "round": cb.round_id, "week": week, "window": window, "window_id": cb.window_id,
        "case_id": case_.case_no, "matter": case_.matter, "case_type": case_.case_type,
        "applicant": "（保密）" if hidden else case_.applicant, "phone": mask(cb.phone), "status": cb.status,
        "reason_label": reason_label(cb.reason), "due_at": cb.due_at, "created_at": cb.created_at,
        "closed_at": cb.closed_at, "follow_up": cb.follow_up, "caller_role": cb.caller_role, "rule": cb.rule,
        "attempts": attempts, "contact": None if contact is None else {
            "source": contact.source, "channel": contact.channel, "contacted_at": contact.contacted_at,
            "suggestion": contact.suggestion, "simulated": contact.simulated},
        "answers": answers, "rectifications": rectifications,
    }


def _moment(text: Any) -> datetime | None:
    """A time kept as ISO text in a JSON column (a rectification's history), read back."""
    try:
        return datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
