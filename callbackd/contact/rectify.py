"""Rectifications (整改): what a window owes after a 不满意 answer or a complaint callback that could not be made.

A rectification opens in the transaction that records its cause: a callback closing (`callback_closed`, called by
`attempts.close_callback`) or a result file recording a 不满意 on-site form, evaluator rating or operator answer
(`review_contact`). It is due in working days of the calendar (holidays skipped, 调休 make-up days counted),
`[rectification] due_workdays` by default, per case type where configured; a case type of
`[rectification] due_hours_by_case_type` (报修 = 24) is due that many clock hours after opening instead, weekends and
holidays included (a repair's problem is notified in writing to the repair staff within 24 hours:
`callbackd.contact.notices`).

    open --respond--> responded --follow-up satisfied--> closed
      |                   |--follow-up still 不满意--> open again (a loop), or escalated after `max_loops` loops
      |--answers corrected, no 不满意 left--> withdrawn (open again should a later correction bring one back)

The window's response (its explanation and measures) creates a follow-up callback (整改回访): a new callback of
the same round and case, numbered by `Callback.follow_up`, which the dispatcher places through the round's channel
plan like any other. Its answers are kept apart from scoring (source `follow_up`). A rectification with nobody to
call back (an on-site form, an evaluator rating) or whose follow-up could not be made is verified by hand.
Every step is kept in the rectification's history and in the audit trail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import Row, Select, func, select, update
from sqlalchemy import case as when
from sqlalchemy.orm import Session

from callbackd.contact import notifications
from callbackd.contact.answers import ContactFacts, KnownAnswers
from callbackd.core.errors import CallbackdError, NotFoundError
from callbackd.core.phones import without_numbers
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import DISSATISFIED, reason_label
from callbackd.core.workdays import Calendar
from callbackd.rounds.calling import calendar_for
from callbackd.store import audit
from callbackd.store.models import Answer, Callback, Case, Contact, Rectification, Round, Window

STATES = ("open", "responded", "closed", "escalated", "withdrawn")
STATE_LABELS = {"open": "待整改", "responded": "待验证", "closed": "已办结", "escalated": "已上报督查",
                "withdrawn": "已撤销"}
TRIGGER_LABELS = {"dissatisfied": "回访不满意", "unreachable": "投诉回访无法联系"}
CONFIDENTIAL = "（保密）"
FOLLOW_UP_SOURCE = "follow_up"


class RectificationError(CallbackdError):
    """A rectification step asked of a rectification in the wrong state, or with what it needs missing."""


def due_after(settings: Settings, calendar: Calendar, case_type: str, start: datetime) -> datetime:
    """The end of the working day that lies the case type's number of working days after `start`'s day; for a case
    type due in hours, `start` plus those clock hours (a Friday 17:00 repair is due Saturday 17:00)."""
    hours = settings.rectification.due_hours_by_case_type.get(case_type)
    if hours is not None:
        return (start + timedelta(hours=hours)).astimezone(UTC)
    days = settings.rectification.due_workdays_by_case_type.get(case_type, settings.rectification.due_workdays)
    day = calendar.add_workdays(start.astimezone(settings.zone).date(), days)
    return datetime.combine(day, time(23, 59, 59), settings.zone).astimezone(UTC)


def _step(rectification: Rectification, step: str, at: datetime, **detail: Any) -> None:
    # a new list: the JSON column notices assignment, not changes made in place
    rectification.history = [*rectification.history, {"step": step, "at": at.isoformat(), **detail}]


def is_overdue(status: str, due_at: datetime, follow_up_failed_at: datetime | None, now: datetime) -> bool:
    """Overdue: open past its due time, or responded but its follow-up could not be made (it then waits on a
    verification by hand, which is late from that moment)."""
    return (status == "open" and due_at < now) or (status == "responded" and follow_up_failed_at is not None)


def overdue_clause(now: datetime) -> Any:
    """`is_overdue` as a condition on the rectifications table."""
    return ((Rectification.status == "open") & (Rectification.due_at < now)) | (
        (Rectification.status == "responded") & Rectification.follow_up_failed_at.is_not(None))


# ---- opening ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cause:
    """Why a rectification opens and for whom: its window, its trigger (`dissatisfied`, `unreachable`), the reason
    as the window reads it, the answers by dimension, and the callback, contact and case type it comes from."""

    window_id: int
    trigger: str
    reason: str
    answers: dict[str, str] = field(default_factory=dict)
    callback: Callback | None = None
    contact: ContactFacts | None = None
    case_type: str = ""


def open_rectification(
    session: Session, settings: Settings, cause: Cause, now: datetime, calendar: Calendar | None = None,
) -> Rectification:
    """Open a rectification for a window, due in the configured working days, and audit it."""
    calendar = calendar or calendar_for(settings)
    due = due_after(settings, calendar, cause.case_type, now)
    rectification = Rectification(
        window_id=cause.window_id, callback_id=cause.callback.id if cause.callback else None,
        contact_id=cause.contact.id if cause.contact else None,
        case_id=cause.callback.case_id if cause.callback else None, case_type=cause.case_type,
        trigger=cause.trigger, reason=cause.reason, answers=cause.answers, status="open", opened_at=now, due_at=due,
        response="", loops=0,
        history=[{"step": "opened", "at": now.isoformat(), "due": due.isoformat(), "reason": cause.reason}],
    )
    session.add(rectification)
    session.flush()
    audit.record(session, "rectification.open", f"rectification {rectification.id}", window_id=cause.window_id,
                 trigger=cause.trigger, case_type=cause.case_type, due=due.isoformat())
    notifications.rectification_opened(session, settings, rectification, now)
    return rectification


def review_contact(
    session: Session, settings: Settings, contact: ContactFacts, now: datetime, labels: dict[str, str] | None = None,
    known: KnownAnswers | None = None,
) -> Rectification | None:
    """Open a rectification when `contact` holds a 不满意 answer and has none yet (a follow-up callback's contact
    verifies a rectification instead). `labels` names the questions (key -> dimension); `known`, the contact's
    rated answers as the caller knows them (with whether it made the contact in this transaction, so that none
    can name it yet, and its callback's case type), spares reading them."""
    if contact.source == FOLLOW_UP_SOURCE:
        return None
    rated = known.rated if known is not None else _rated(session, contact.id)
    if not any(level == DISSATISFIED for _, level, _ in rated):
        return None
    case_type = known.case_type if known is not None else None
    # what these read is not among the session's pending changes: they go to the database once, with the new
    # rectification, not once per read
    with session.no_autoflush:
        if known is None or not known.contact_is_new:
            existing = session.scalar(select(Rectification).where(Rectification.contact_id == contact.id))
            if existing is not None:
                return existing
        callback = _callback_of(session, contact)
        if callback is None:
            case_type = ""
        elif case_type is None:
            case_type = session.scalar(select(Case.case_type).where(Case.id == callback.case_id)) or ""
    reason, answers = _cause(session, callback, rated, labels)
    return open_rectification(session, settings, Cause(
        contact.window_id, "dissatisfied", reason, answers, callback=callback, contact=contact, case_type=case_type,
    ), now)


def _rated(session: Session, contact_id: int) -> list[tuple[str, str | None, str]]:
    # a contact's rated answers (question, level, raw), in the order they were recorded
    return [(question, level, raw) for question, level, raw in session.execute(
        select(Answer.question, Answer.level, Answer.raw)
        .where(Answer.contact_id == contact_id, Answer.level.is_not(None))
        .order_by(Answer.id)
    )]


def _callback_of(session: Session, contact: ContactFacts) -> Callback | None:
    return session.get(Callback, contact.callback_id) if contact.callback_id is not None else None


def _cause(
    session: Session, callback: Callback | None, rated: Sequence[tuple[str, str | None, str]],
    labels: dict[str, str] | None,
) -> tuple[str, dict[str, str]]:
    # a 不满意 contact's rectification reason (the questions answered 不满意) and its answers, by dimension
    if labels is None and callback is not None:
        labels = _round_labels(session, callback.round_id)
    labels = labels or {}
    unhappy = [question for question, level, _ in rated if level == DISSATISFIED]
    answers = {labels.get(question, question): raw for question, _, raw in rated}
    return "、".join(labels.get(question, question) for question in unhappy) + DISSATISFIED, answers


def answers_corrected(session: Session, settings: Settings, contact: ContactFacts, now: datetime) -> None:
    """After a contact's answers were corrected (an operator's sheet typed in again): a 不满意 now opens its
    rectification, or opens again one withdrawn; no 不满意 left withdraws one the window has not answered yet, so
    that it owes nothing for a slip of the keyboard. One the window has answered, or that a follow-up reopened,
    goes on as it is, the correction noted in its history."""
    rated = _rated(session, contact.id)
    unhappy = any(level == DISSATISFIED for _, level, _ in rated)
    existing = session.scalar(select(Rectification).where(Rectification.contact_id == contact.id))
    if existing is None:
        review_contact(session, settings, contact, now, known=KnownAnswers(contact, rated))
        return
    subject = f"rectification {existing.id}"
    if unhappy and existing.status == "withdrawn":
        callback = _callback_of(session, contact)
        existing.reason, existing.answers = _cause(session, callback, rated, None)
        existing.status, existing.closed_at = "open", None
        existing.due_at = due_after(settings, calendar_for(settings), existing.case_type, now)
        _step(existing, "reopened", now, due=existing.due_at.isoformat(), reason=existing.reason, via="correction")
        audit.record(session, "rectification.reopen", subject, via="correction", due=existing.due_at.isoformat())
    elif not unhappy and existing.status == "open" and existing.loops == 0:
        existing.status, existing.closed_at = "withdrawn", now
        why = "answers corrected: no 不满意 left"
        _step(existing, "withdrawn", now, reason=why)
        audit.record(session, "rectification.withdraw", subject, reason=why)
    elif existing.status in ("open", "responded"):
        _step(existing, "answers_corrected", now, dissatisfied=unhappy)


def _round_labels(session: Session, round_id: int) -> dict[str, str]:
    from callbackd.rounds.surveys import round_survey

    return {q.key: q.dimension for q in round_survey(session, round_id).rating_questions()}


# a complaint callback closed so is one that could not be made: nobody reached (unreachable), or the number is
# wrong or no channel of the plan can reach it (invalid: invalid_number, no_channel)
NOT_MADE = ("unreachable", "invalid")


def callback_closed(
    session: Session, settings: Settings, callback: Callback, now: datetime, *, answers: KnownAnswers | None = None
) -> None:
    """What a closed callback means for rectifications, in the transaction that closed it: a follow-up verifies
    its rectification; a contact with a 不满意 answer opens one whatever the callback's final status (an applicant
    may answer 不满意 and then opt out: the answer counts in the score); a callback of a case type in
    `open_on_unreachable` that could not be made (unreachable or invalid) opens one with the reason. A `refused`
    or `opted_out` callback without a 不满意 answer opens none: the applicant was reached and declined.
    `answers`, the callback's contact and rated answers when the caller knows them (a conversation does), spares
    reading them."""
    if callback.follow_up:
        _follow_up_closed(session, settings, callback, now)
        return
    if answers is None:
        unhappy: ContactFacts | None = session.scalar(
            select(Contact)
            .join(Answer, Answer.contact_id == Contact.id)
            .where(Contact.callback_id == callback.id, Answer.level == DISSATISFIED)
            .limit(1)
        )  # one contact per callback at most
        if unhappy is not None:
            review_contact(session, settings, unhappy, now)
            return
    elif answers.contact is not None and any(level == DISSATISFIED for _, level, _ in answers.rated):
        review_contact(session, settings, answers.contact, now, known=answers)
        return
    if callback.status not in NOT_MADE:
        return  # refused, opted_out: the applicant was reached and declined, which the window does not owe
    case_type = session.scalar(select(Case.case_type).where(Case.id == callback.case_id)) or ""
    if case_type in settings.rectification.open_on_unreachable and session.scalar(
        select(Rectification.id).where(Rectification.callback_id == callback.id)
    ) is None:
        open_rectification(session, settings, Cause(
            callback.window_id, "unreachable", f"{case_type}回访无法联系：{reason_label(callback.reason)}",
            callback=callback, case_type=case_type,
        ), now)


def date_from_entry(session: Session, settings: Settings, callback_id: int, now: datetime) -> None:
    """A rectification opened by a result entered after the contact (an operator's sheet typed in days later)
    counts its working days from the entry, when the window can first learn of it."""
    rectification = session.scalar(select(Rectification).where(Rectification.callback_id == callback_id))
    if rectification is None or rectification.status != "open" or len(rectification.history) != 1:
        return
    if rectification.opened_at >= now:
        return
    rectification.opened_at = now
    rectification.due_at = due_after(settings, calendar_for(settings), rectification.case_type, now)
    rectification.history = [{**rectification.history[0], "at": now.isoformat(),
                              "due": rectification.due_at.isoformat()}]


# ---- the window's response and verification ------------------------------------------------------------


def get(session: Session, rectification_id: int) -> Rectification:
    found = session.get(Rectification, rectification_id)
    if found is None:
        raise NotFoundError(f"no rectification {rectification_id} (see `callbackd rectifications list`)")
    return found


def respond(
    session: Session, settings: Settings, rectification_id: int, text: str, now: datetime
) -> tuple[Rectification, Callback | None]:
    """Record the window's explanation and measures; when there is an applicant to call back, create the
    follow-up callback that verifies them (the dispatcher places it). Returns the rectification and that callback."""
    rectification = get(session, rectification_id)
    text = text.strip()
    if not text:
        raise RectificationError("--text is empty: give the window's explanation and measures")
    _claim(session, rectification, "open")
    if rectification.status != "open":
        raise RectificationError(f"rectification {rectification.id} is {STATE_LABELS[rectification.status]} "
                                 f"({rectification.status}); only an open one takes a response")
    rectification.response = text[:4000]
    rectification.responded_at = now
    rectification.responded_by = audit.actor()
    rectification.on_time = now <= rectification.due_at
    rectification.status = "responded"
    _step(rectification, "responded", now, on_time=rectification.on_time, due=rectification.due_at.isoformat(),
          by=rectification.responded_by, text=rectification.response)
    follow_up = _schedule_follow_up(session, settings, rectification, now)
    audit.record(session, "rectification.respond", f"rectification {rectification.id}",
                 on_time=rectification.on_time, follow_up=follow_up.id if follow_up else None)
    return rectification, follow_up


def _claim(session: Session, rectification: Rectification, status: str) -> None:
    """Hold the rectification's row for this transaction while it is still in `status`, and read it afresh: two
    people answering (or verifying) the same one at once take turns, and the second finds it already moved on
    instead of scheduling a second follow-up."""
    session.execute(
        update(Rectification).where(Rectification.id == rectification.id, Rectification.status == status)
        .values(status=status).execution_options(synchronize_session=False)
    )
    session.refresh(rectification)


def _original(session: Session, rectification: Rectification) -> Callback | None:
    if rectification.callback_id is None:
        return None
    return session.get(Callback, rectification.callback_id)


def _schedule_follow_up(
    session: Session, settings: Settings, rectification: Rectification, now: datetime
) -> Callback | None:
    original = _original(session, rectification)
    if original is None:
        return None
    in_force = session.scalar(select(Round.active_week.is_not(None) | (Round.kind == "plan"))
                              .where(Round.id == original.round_id))
    if not in_force:
        return None
    number = (session.scalar(
        select(func.max(Callback.follow_up)).where(Callback.round_id == original.round_id,
                                                  Callback.case_id == original.case_id)
    ) or 0) + 1
    follow_up = Callback(
        round_id=original.round_id, case_id=original.case_id, window_id=original.window_id, phone=original.phone,
        rule=original.rule, stratum=original.stratum, draw_key=original.draw_key,
        due_at=due_after(settings, calendar_for(settings), rectification.case_type, now),
        status="pending", created_at=now, follow_up=number,
    )
    session.add(follow_up)
    # the round has a callback under way again: no longer closed (it closes again once the follow-up ends)
    session.execute(update(Round).where(Round.id == original.round_id, Round.status == "closed")
                    .values(status="open").execution_options(synchronize_session=False))
    session.flush()
    _step(rectification, "follow_up", now, callback=follow_up.id, number=number)
    return follow_up


def open_follow_up(session: Session, rectification: Rectification) -> Callback | None:
    """The rectification's follow-up callback still under way, if any."""
    original = _original(session, rectification)
    if original is None:
        return None
    from callbackd.core.vocabulary import FINAL_CALLBACK

    return session.scalar(
        select(Callback).where(Callback.round_id == original.round_id, Callback.case_id == original.case_id,
                               Callback.follow_up > 0, Callback.status.not_in(FINAL_CALLBACK))
        .order_by(Callback.follow_up.desc()).limit(1)
    )


def verify(
    session: Session, settings: Settings, rectification_id: int, level: str, now: datetime, note: str = ""
) -> Rectification:
    """Verify a responded rectification by hand (no applicant to call back, or the follow-up could not be
    made): 满意 or 基本满意 closes it; 不满意 reopens it or escalates it."""
    rectification = get(session, rectification_id)
    if level not in ("满意", "基本满意", DISSATISFIED):
        raise RectificationError(f"--level must be 满意, 基本满意 or 不满意, not {level!r}")
    _claim(session, rectification, "responded")
    if rectification.status != "responded":
        raise RectificationError(f"rectification {rectification.id} is {STATE_LABELS[rectification.status]} "
                                 f"({rectification.status}); only a responded one can be verified")
    pending = open_follow_up(session, rectification)
    if pending is not None:
        raise RectificationError(f"rectification {rectification.id} awaits its follow-up callback {pending.id}; "
                                 f"verify it by hand only once that has ended")
    _verified(session, settings, rectification, level != DISSATISFIED, now, via="manual", level=level, note=note)
    return rectification


def _follow_up_closed(session: Session, settings: Settings, callback: Callback, now: datetime) -> None:
    rectification = session.scalar(
        select(Rectification)
        .join(Callback, Callback.id == Rectification.callback_id)
        .where(Callback.round_id == callback.round_id, Callback.case_id == callback.case_id)
    )
    if rectification is None or rectification.status != "responded":
        return
    levels = list(session.scalars(
        select(Answer.level).join(Contact, Contact.id == Answer.contact_id)
        .where(Contact.callback_id == callback.id, Answer.level.is_not(None))
    ))
    if callback.status in ("completed", "partial") and levels:
        satisfied = DISSATISFIED not in levels
        _verified(session, settings, rectification, satisfied, now, via="follow_up", callback=callback.id,
                  level="满意" if satisfied else DISSATISFIED)
        return
    # nobody answered the follow-up: the rectification stays responded, to be verified by hand, and is overdue
    rectification.follow_up_failed_at = now
    _step(rectification, "follow_up_failed", now, callback=callback.id, reason=callback.reason or callback.status)
    audit.record(session, "rectification.follow_up_failed", f"rectification {rectification.id}",
                 callback=callback.id, reason=callback.reason or callback.status)
    notifications.follow_up_failed(session, settings, rectification, now)


def _verified(
    session: Session, settings: Settings, rectification: Rectification, satisfied: bool, now: datetime, **detail: Any
) -> None:
    subject = f"rectification {rectification.id}"
    if satisfied:
        rectification.status, rectification.closed_at = "closed", now
        _step(rectification, "closed", now, **detail)
        audit.record(session, "rectification.close", subject, **detail)
        return
    rectification.loops += 1
    if rectification.loops >= settings.rectification.max_loops:
        rectification.status, rectification.escalated_at = "escalated", now
        _step(rectification, "escalated", now, loops=rectification.loops, **detail)
        audit.record(session, "rectification.escalate", subject, loops=rectification.loops, **detail)
        notifications.rectification_escalated(session, settings, rectification, now)
        return
    rectification.status = "open"
    rectification.due_at = due_after(settings, calendar_for(settings), rectification.case_type, now)
    rectification.response, rectification.responded_at, rectification.responded_by = "", None, None
    rectification.follow_up_failed_at = None
    _step(rectification, "reopened", now, loops=rectification.loops, due=rectification.due_at.isoformat(), **detail)
    audit.record(session, "rectification.reopen", subject, loops=rectification.loops, **detail)
    notifications.rectification_opened(session, settings, rectification, now)


# ---- listing (window-facing: no applicant, no number; informants not even by case) ---------------------


@dataclass(frozen=True)
class Filter:
    """Which rectifications a listing holds: only overdue ones, one window's (by name), one status; and only those
    of `window_ids` (a window head's windows) unless it is None."""

    overdue: bool = False
    window: str | None = None
    status: str | None = None
    window_ids: frozenset[int] | None = None


def list_rectifications(
    session: Session, settings: Settings, now: datetime, wanted: Filter = Filter()
) -> list[dict[str, Any]]:
    """Rectifications as a window may see them, oldest first: never an applicant's name or number, and for a
    confidential case type (举报) neither case number, matter nor suggestion."""
    rows = session.execute(_listing(session, wanted, now).order_by(Rectification.id)).all()
    return _described(session, settings, rows, now)


# a listing's row: the rectification, its window's name, its case's number and matter, its contact's suggestion
_Listing = Select[Rectification, str, str | None, str | None, str | None]


def _listing(session: Session, wanted: Filter, now: datetime) -> _Listing:
    # the rectifications `wanted` selects, with what a listing shows beside each (see `Listed`)
    if wanted.status is not None and wanted.status not in STATES:
        raise RectificationError(f"--status must be one of {', '.join(STATES)}, not {wanted.status!r}")
    query: _Listing = (
        select(Rectification, Window.name, Case.case_no, Case.matter, Contact.suggestion)
        .join(Window, Window.id == Rectification.window_id)
        .outerjoin(Case, Case.id == Rectification.case_id)
        .outerjoin(Contact, Contact.id == Rectification.contact_id)
    )
    if wanted.window is not None:
        from callbackd.store.windows import window_id

        query = query.where(Rectification.window_id == window_id(session, wanted.window))
    if wanted.window_ids is not None:
        query = query.where(Rectification.window_id.in_(sorted(wanted.window_ids)))
    if wanted.status is not None:
        query = query.where(Rectification.status == wanted.status)
    if wanted.overdue:
        query = query.where(overdue_clause(now))
    return query


def _described(
    session: Session, settings: Settings, rows: Sequence[Row[Rectification, str, str | None, str | None, str | None]],
    now: datetime, *, masked: bool = True,
) -> list[dict[str, Any]]:
    # rows of `_listing` as `describe` shows them; `masked`: a confidential case type's case hidden
    follow_ups = _follow_up_states(session, [r for r, *_ in rows])
    confidential = set(settings.policies.confidential_case_types) if masked else set()
    return [
        describe(rectification, Listed(window, case_no, matter, suggestion), now,
                 rectification.case_type in confidential, follow_ups.get(rectification.id))
        for rectification, window, case_no, matter, suggestion in rows
    ]


def _follow_up_states(session: Session, rectifications: Iterable[Rectification]) -> dict[int, str]:
    by_callback = {r.callback_id: r.id for r in rectifications if r.callback_id is not None}
    if not by_callback:
        return {}
    original = Callback.__table__.alias("original")
    states: dict[int, str] = {}
    for original_id, status in session.execute(
        select(original.c.id, Callback.status)
        .join(Callback, (Callback.round_id == original.c.round_id) & (Callback.case_id == original.c.case_id))
        .where(original.c.id.in_(by_callback), Callback.follow_up > 0)
        .order_by(Callback.follow_up)
    ):
        states[by_callback[original_id]] = status  # the latest follow-up wins
    return states


@dataclass(frozen=True)
class Listed:
    """What a listing reads beside a rectification: its window's name, and its case's number and matter and its
    contact's suggestion, when it has them."""

    window: str
    case_no: str | None = None
    matter: str | None = None
    suggestion: str | None = None


def describe(
    rectification: Rectification, listed: Listed, now: datetime, confidential: bool, follow_up: str | None = None,
) -> dict[str, Any]:
    """One rectification as every window-facing output shows it."""
    window, case_no, matter, suggestion = listed.window, listed.case_no, listed.matter, listed.suggestion
    overdue = is_overdue(rectification.status, rectification.due_at, rectification.follow_up_failed_at, now)
    return {
        "id": rectification.id,
        "window": window,
        "case_id": CONFIDENTIAL if confidential and case_no else case_no,
        "case_type": rectification.case_type,
        "matter": CONFIDENTIAL if confidential and matter else matter,
        "trigger": TRIGGER_LABELS.get(rectification.trigger, rectification.trigger),
        "reason": rectification.reason,
        "answers": {} if confidential else rectification.answers,
        "suggestion": "" if confidential else without_numbers(suggestion or ""),
        "status": rectification.status,
        "state": STATE_LABELS[rectification.status],
        "opened_at": rectification.opened_at.isoformat(),
        "due_at": rectification.due_at.isoformat(),
        "overdue": overdue,
        "response": rectification.response,
        "responded_at": rectification.responded_at.isoformat() if rectification.responded_at else None,
        "on_time": rectification.on_time,
        "loops": rectification.loops,
        "follow_up": follow_up,
        "closed_at": rectification.closed_at.isoformat() if rectification.closed_at else None,
        "escalated_at": rectification.escalated_at.isoformat() if rectification.escalated_at else None,
        "history": rectification.history,  # every step: opened, responded, follow_up, reopened, closed, ...
    }


def summary(session: Session, start: datetime, end: datetime, now: datetime) -> list[dict[str, Any]]:
    """Per window, the rectifications opened in [start, end): by cause, and where they stand now. Counts only."""
    rows: dict[str, dict[str, Any]] = {}
    for name, trigger, status, due_at, failed_at in session.execute(
        select(Window.name, Rectification.trigger, Rectification.status, Rectification.due_at,
               Rectification.follow_up_failed_at)
        .join(Window, Window.id == Rectification.window_id)
        .where(Rectification.opened_at >= start, Rectification.opened_at < end)
        .order_by(Window.name)
    ):
        row = rows.setdefault(name, {"window": name, "opened": 0, "dissatisfied": 0, "unreachable": 0, "open": 0,
                                     "responded": 0, "closed": 0, "escalated": 0, "withdrawn": 0, "overdue": 0})
        row["opened"] += 1
        row[trigger if trigger in ("dissatisfied", "unreachable") else "dissatisfied"] += 1
        row[status] += 1
        row["overdue"] += is_overdue(status, due_at, failed_at, now)
    return list(rows.values())


# ---- the console: a page at a time, with the working days left -----------------------------------------

# what still waits on someone (the window, a follow-up, the supervisory unit): listed before what has ended
_ACTIVE = ("open", "responded", "escalated")


def page_of(
    session: Session, settings: Settings, now: datetime, wanted: Filter, *, offset: int, limit: int,
    masked: bool = True,
) -> tuple[list[dict[str, Any]], int]:
    """One page of the rectifications `wanted` selects, as `describe` shows them (`masked`: a confidential case
    type's case hidden, as a window must see it), those still waiting on someone first, each group by due time;
    and how many `wanted` selects in all. Each row adds `workdays_left` (see `workdays_left`)."""
    query = _listing(session, wanted, now)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(when((Rectification.status.in_(_ACTIVE), 0), else_=1), Rectification.due_at, Rectification.id)
        .offset(offset).limit(limit)
    ).all()
    calendar = calendar_for(settings)
    described = _described(session, settings, rows, now, masked=masked)
    for shown, (rectification, *_) in zip(described, rows, strict=True):
        shown["workdays_left"] = workdays_left(settings, calendar, rectification, now)
    return described, total


def view(
    session: Session, settings: Settings, rectification_id: int, now: datetime, *,
    window_ids: frozenset[int] | None = None, masked: bool = True,
) -> dict[str, Any] | None:
    """One rectification as `describe` shows it, with `workdays_left` and `awaiting_follow_up` (the id of its
    follow-up callback still under way, if any); None when there is none, or when it is a window's outside
    `window_ids`: to a window head another window's rectification and a missing one look the same."""
    found = session.execute(
        _listing(session, Filter(window_ids=window_ids), now).where(Rectification.id == rectification_id)
    ).first()
    if found is None:
        return None
    (shown,) = _described(session, settings, [found], now, masked=masked)
    shown["workdays_left"] = workdays_left(settings, calendar_for(settings), found[0], now)
    pending = open_follow_up(session, found[0])
    shown["awaiting_follow_up"] = pending.id if pending is not None else None
    return shown


def workdays_left(settings: Settings, calendar: Calendar, rectification: Rectification, now: datetime) -> int | None:
    """For an open rectification, the working days from today to its due day: 0 on the due day, negative once
    overdue (minus the working days since, at least 1). None in any other state: nothing is due of the window."""
    if rectification.status != "open":
        return None
    today = now.astimezone(settings.zone).date()
    due = rectification.due_at.astimezone(settings.zone).date()
    if rectification.due_at >= now:
        return max(0, calendar.workdays_between(today, due))
    return -max(1, calendar.workdays_between(due, today))


def windows_to_filter(session: Session, window_ids: frozenset[int] | None = None) -> list[tuple[int, str]]:
    """The windows a listing can be narrowed to, (id, name) by name: every window, or those of `window_ids`."""
    query = select(Window.id, Window.name).order_by(Window.name)
    if window_ids is not None:
        query = query.where(Window.id.in_(sorted(window_ids)))
    return [(id_, name) for id_, name in session.execute(query)]
