"""The operator queue: callbacks the dispatcher handed to the `operator` channel, waiting for a person to call.

The dispatcher places an operator attempt as it places any other (inside calling hours, within the per-number
limits: `dispatch.py`, `rounds/calling.py`); the operator channel's `start` leaves it in progress until a result is
entered. An operator takes one at a time from the queue (`take_next`), the oldest first. Taking is one conditional
update (on PostgreSQL after `SELECT ... FOR UPDATE SKIP LOCKED`, so operators taking at the same moment skip each
other's rows instead of waiting), so no two operators ever hold the same attempt. A hold lapses after `HOLD`
without a word from its holder (revealing the number renews it); another operator may then take the attempt.

Only the holder sees the full number, on pressing 显示号码 (`reveal`, audited). What the operator enters is recorded
by `results.record_operator`, as an operator result file's row would be; an applicant who asks to be called at
another time gets a new operator attempt due then (`reschedule`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from callbackd.core.errors import CallbackdError
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import OPEN_ATTEMPT
from callbackd.rounds.calling import CallingPolicy
from callbackd.store import audit
from callbackd.store.models import Attempt, Callback, Case, Round, User, Window

OPERATOR_CHANNEL = "operator"
HOLD = timedelta(minutes=30)  # a taken attempt its holder has left alone this long may be taken by another
RESCHEDULE_DAYS = 30  # how far ahead an applicant may ask to be called again
WAITING = "in_progress"  # an operator attempt the dispatcher placed: waiting for an operator's call


class QueueError(CallbackdError):
    """A queue action that cannot be done as asked (a reschedule time in the past, ...)."""


@dataclass(frozen=True)
class Waiting:
    """One callback on the queue, as the queue lists it: never the applicant's name or number."""

    attempt_id: int
    callback_id: int
    window: str
    matter: str
    case_type: str
    attempt_number: int
    due_at: datetime
    follow_up: int


@dataclass(frozen=True)
class Held:
    """The attempt an operator holds, with what calling needs: the case, the round (its survey) and the number."""

    attempt_id: int
    attempt_number: int
    assigned_at: datetime | None
    callback_id: int
    round_id: int
    follow_up: int
    case_no: str
    matter: str
    case_type: str
    applicant: str
    phone: str
    window: str
    week: str


def _free(now: datetime, user_id: int | None = None) -> ColumnElement[bool]:
    """An operator attempt nobody holds, or whose hold lapsed (held by someone else than `user_id`)."""
    lapsed = Attempt.assigned_at < now - HOLD
    if user_id is not None:
        lapsed = and_(lapsed, Attempt.assigned_to != user_id)
    return or_(Attempt.assigned_to.is_(None), lapsed)


def _waiting(now: datetime) -> list[ColumnElement[bool]]:
    return [Attempt.channel == OPERATOR_CHANNEL, Attempt.status == WAITING, _free(now)]


def in_calling_hours(settings: Settings, now: datetime) -> bool:
    """Whether operators may call now (calling hours on a working day)."""
    return CallingPolicy(settings).calendar.in_calling_hours(now)


def waiting(session: Session, now: datetime, limit: int = 20) -> tuple[int, list[Waiting]]:
    """How many callbacks wait on the queue, and the first `limit` of them, oldest first."""
    total = session.scalar(select(func.count()).select_from(Attempt).where(*_waiting(now))) or 0
    rows = session.execute(
        select(Attempt.id, Callback.id, Window.name, Case.matter, Case.case_type, Attempt.number, Attempt.due_at,
               Callback.follow_up)
        .join(Callback, Callback.id == Attempt.callback_id)
        .join(Case, Case.id == Callback.case_id)
        .join(Window, Window.id == Callback.window_id)
        .where(*_waiting(now))
        .order_by(Attempt.due_at, Attempt.id)
        .limit(limit)
    ).all()
    return total, [Waiting(*row) for row in rows]


def take_next(session: Session, settings: Settings, user_id: int, now: datetime) -> int | None:
    """Give the operator `user_id` the oldest waiting callback: the id of the attempt they now hold (the one they
    held already, if any), or None when the queue is empty or it is outside calling hours."""
    # one take at a time per operator (two tabs, a double click): PostgreSQL holds the account's row; SQLite's
    # single writer makes the guard in the UPDATE below see the other take's hold
    session.execute(select(User.id).where(User.id == user_id).with_for_update())
    held = held_attempt(session, user_id)
    if held is not None:
        return held
    if not in_calling_hours(settings, now):
        return None
    other = aliased(Attempt)
    holds_none = ~exists().where(other.assigned_to == user_id, other.channel == OPERATOR_CHANNEL,
                                 other.status.in_(OPEN_ATTEMPT))
    for _ in range(5):  # on SQLite another operator may take the candidate between our read and our write
        # one candidate at a time: PostgreSQL locks only the row offered (the others stay free for the others)
        attempt_id = session.scalar(
            select(Attempt.id).where(*_waiting(now)).order_by(Attempt.due_at, Attempt.id).limit(1)
            .with_for_update(skip_locked=True)
        )
        if attempt_id is None:
            return None
        taken = session.execute(
            update(Attempt).where(Attempt.id == attempt_id, *_waiting(now), holds_none)
            .values(assigned_to=user_id, assigned_at=now).execution_options(synchronize_session=False)
        )
        if taken.rowcount == 1:  # type: ignore[attr-defined]
            return attempt_id
        held = held_attempt(session, user_id)
        if held is not None:  # this operator's other take (another tab) won: that is the one they hold
            return held
    return None


def held_attempt(session: Session, user_id: int) -> int | None:
    """The open operator attempt `user_id` holds, if any (an operator holds one at a time)."""
    return session.scalar(
        select(Attempt.id).where(Attempt.assigned_to == user_id, Attempt.channel == OPERATOR_CHANNEL,
                                 Attempt.status.in_(OPEN_ATTEMPT))
        .order_by(Attempt.assigned_at.desc(), Attempt.id.desc()).limit(1)
    )


def held(session: Session, attempt_id: int, user_id: int, *, lock: bool = False) -> Held | None:
    """The attempt, when `user_id` holds it and it is still open; None otherwise (never theirs, ended, or taken
    by another operator after their hold lapsed). `lock` locks the attempt's row until the transaction ends."""
    query = (
        select(Attempt.id, Attempt.number, Attempt.assigned_at, Callback.id, Callback.round_id, Callback.follow_up,
               Case.case_no, Case.matter, Case.case_type, Case.applicant, Callback.phone, Window.name, Round.week)
        .join(Callback, Callback.id == Attempt.callback_id)
        .join(Case, Case.id == Callback.case_id)
        .join(Window, Window.id == Callback.window_id)
        .join(Round, Round.id == Callback.round_id)
        .where(Attempt.id == attempt_id, Attempt.assigned_to == user_id, Attempt.channel == OPERATOR_CHANNEL,
               Attempt.status.in_(OPEN_ATTEMPT))
    )
    if lock:
        query = query.with_for_update(of=Attempt)
    row = session.execute(query).one_or_none()
    return None if row is None else Held(*tuple(row))


def release(session: Session, attempt_id: int, user_id: int) -> bool:
    """Put a held attempt back on the queue for another operator; False when `user_id` did not hold it."""
    result = session.execute(
        update(Attempt).where(Attempt.id == attempt_id, Attempt.assigned_to == user_id,
                              Attempt.status.in_(OPEN_ATTEMPT))
        .values(assigned_to=None, assigned_at=None).execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def reveal(session: Session, attempt_id: int, user_id: int, now: datetime) -> str | None:
    """The full number of the callback `user_id` holds, recorded in the audit trail (as `cases list --reveal` is)
    under the account the session acts for; renews the hold. None when they do not hold it: nothing recorded."""
    found = held(session, attempt_id, user_id, lock=True)
    if found is None:
        return None
    session.execute(update(Attempt).where(Attempt.id == attempt_id).values(assigned_at=now)
                    .execution_options(synchronize_session=False))
    audit.record(session, "phone.reveal", f"callback {found.callback_id}", attempt=attempt_id,
                 case=found.case_no, round=found.round_id)
    return found.phone


def reschedule(session: Session, settings: Settings, attempt_id: int, when: datetime, now: datetime) -> datetime:
    """The applicant asked to be called at `when` (要求改期): the attempt ends (`cancelled`, which uses up none of
    the applicant's tries) and a new operator attempt of the callback is due then, or at the first calling hour
    after it. Returns that due time. The callback's own deadline (`Callback.due_at`) does not move."""
    if when <= now:
        raise QueueError("改期时间须晚于当前时间")
    if when > now + timedelta(days=RESCHEDULE_DAYS):
        raise QueueError(f"改期时间须在 {RESCHEDULE_DAYS} 天之内")
    attempt = session.get(Attempt, attempt_id, with_for_update=True)
    if attempt is None or attempt.status not in OPEN_ATTEMPT:
        raise QueueError("此回访已结束，无法改期")
    due = CallingPolicy(settings).first_slot(when)
    local = due.astimezone(settings.zone)
    attempt.status, attempt.ended_at = "cancelled", now
    attempt.detail = f"applicant asked to be called again at {local:%Y-%m-%d %H:%M}"
    number = (session.scalar(select(func.max(Attempt.number)).where(Attempt.callback_id == attempt.callback_id))
              or 0) + 1
    session.add(Attempt(callback_id=attempt.callback_id, channel=OPERATOR_CHANNEL, number=number, status="due",
                        due_at=due, detail=f"要求改期 {local:%Y-%m-%d %H:%M}"))
    session.flush()
    return due


def operator_sees(session: Session, callback_id: int, user_id: int) -> bool:
    """Whether an operator may open a callback's page: they hold, or held, one of its attempts (what merely waits
    on the queue is theirs to see only once they take it)."""
    return session.scalar(
        select(Attempt.id).where(
            Attempt.callback_id == callback_id, Attempt.channel == OPERATOR_CHANNEL, Attempt.assigned_to == user_id,
        ).limit(1)
    ) is not None
