"""The attempt state machine: how an attempt's outcome ends it, what follows (a retry on the same channel, the
plan's next channel, or a final state for the callback), closing a callback, and an applicant's opt-out (退订).

Callback states: pending (nothing placed yet), in_progress, and the final completed, partial, unreachable,
refused, opted_out, invalid. Attempt states: due, queued (claimed by a tick, handed to a worker), placing (taken
by the worker that places it), in_progress, answered, then its outcome."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, cast

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from callbackd.api import events
from callbackd.api.events import CallbackEvent
from callbackd.api.manager import Plugins
from callbackd.contact import rectify
from callbackd.contact.answers import KnownAnswers
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT
from callbackd.rounds.calling import CallingPolicy
from callbackd.store.db import show_written, write_through
from callbackd.store.models import Attempt, Callback, Case, OptOut, Round, Window

if TYPE_CHECKING:
    from callbackd.contact.conversation import Conversation

_attempts = cast(Table, Attempt.__table__)


RETRYABLE = ("no_answer", "busy", "failed", "machine", "hung_up", "not_configured", "rate_limited")


# ended without ever reaching the applicant through no fault of theirs: they do not use up the applicant's tries
NOT_A_TRY = ("not_configured", "rate_limited", "cancelled")


OUTCOMES = ("completed", "invalid_number", "refused", *RETRYABLE)


# the outcomes that close the callback: (its final status, the reason)
FINAL_FOR: dict[str, tuple[str, str | None]] = {
    "completed": ("completed", None), "partial": ("partial", None), "invalid_number": ("invalid", "invalid_number"),
    "refused": ("refused", "refused"),
}


def usable_channels(plugins: Plugins, plan: list[str], sms_capable: bool) -> list[str]:
    """The plan's channels that can reach this number: an SMS channel only for a mobile."""
    return [name for name in plan if sms_capable or plugins.channel(name).kind != "sms"]


def end_attempt(conversation: Conversation, outcome: str, detail: str = "") -> None:
    """Record how an attempt ended and decide what follows. A second report for an ended attempt changes
    nothing (providers deliver status callbacks more than once)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown attempt outcome {outcome!r} (known: {', '.join(OUTCOMES)})")
    attempt, callback, now = conversation.attempt, conversation.callback, conversation.now
    if attempt.status not in OPEN_ATTEMPT:
        return
    ratings = {q.key for q in conversation.survey.rating_questions()}
    answered = conversation.answered_keys() & ratings
    if outcome == "completed" and answered != ratings:
        outcome = "hung_up"
    if outcome == "hung_up" and answered:
        outcome = "partial"
    conversation.set_attempt(status=outcome, ended_at=now, detail=detail[:500])
    if callback.status in FINAL_CALLBACK:
        return  # a late report for a callback closed meanwhile (an opt-out, another attempt) reopens nothing
    final = FINAL_FOR.get(outcome)
    if final is None:
        follow_up(conversation, outcome)
        return
    close_through(conversation, *final)


def follow_up(conversation: Conversation, outcome: str) -> None:
    """After a failed attempt: retry the same channel while it has tries left, then fall back to the plan's
    next channel that can reach the number, else the callback is unreachable with the last reason."""
    settings, session, plugins = conversation.settings, conversation.session, conversation.plugins
    attempt, callback, now = conversation.attempt, conversation.callback, conversation.now
    conversation.write_attempt()  # the counts and spacing below read the attempt's outcome from the database
    round_ = session.get(Round, callback.round_id)
    assert round_ is not None
    plan = usable_channels(plugins, round_.channel_plan, conversation.sms_capable)
    tries = session.scalar(
        select(func.count()).select_from(Attempt).where(
            Attempt.callback_id == callback.id, Attempt.channel == attempt.channel,
            Attempt.status.not_in(NOT_A_TRY),
        )
    ) or 0
    number = (session.scalar(select(func.max(Attempt.number)).where(Attempt.callback_id == callback.id)) or 0) + 1
    policy = CallingPolicy(settings)
    if tries < settings.dispatch.attempts_per_channel:
        due = policy.retry_at(session, callback.id, attempt.channel, now)
        session.add(Attempt(callback_id=callback.id, channel=attempt.channel, number=number, status="due",
                            due_at=due, detail=""))
        write_through(session, callback, status="in_progress")
        return
    later = plan[plan.index(attempt.channel) + 1:] if attempt.channel in plan else []
    if later:
        session.add(Attempt(callback_id=callback.id, channel=later[0], number=number, status="due",
                            due_at=policy.first_slot(now), detail=""))
        return
    close_through(conversation, "unreachable", outcome)


def close_through(conversation: Conversation, status: str, reason: str | None) -> None:
    """Close the conversation's callback with what the conversation knows: its answers, and whether another
    attempt of the callback is open (when it read that)."""
    others_open = conversation.facts.others_open is not False
    if others_open:
        conversation.write_attempt()  # ending the callback's open attempts must not take this one for open
    close_callback(conversation.session, conversation.plugins, conversation.callback, status, reason,
                   conversation.now, settings=conversation.settings, answers=conversation.known_answers(),
                   others_open=others_open, write=conversation.set_callback)


def close_callback(
    session: Session, plugins: Plugins, callback: Callback, status: str, reason: str | None, now: datetime,
    *, settings: Settings, open_attempts: str = "cancelled", answers: KnownAnswers | None = None,
    others_open: bool = True, write: Callable[..., None] | None = None,
) -> None:
    """Put a callback in a final state, end its attempts still due or under way (as `open_attempts`), and tell
    the plugins once the transaction commits. In the same transaction a 不满意 answer, or a complaint callback that
    could not be made (unreachable or invalid), opens a rectification, and a follow-up callback moves its
    rectification. What the caller knows spares the queries: `answers`, the callback's contact and its rated
    answers; `others_open` False, that no attempt of the callback but the caller's own is still open. `write`
    sets the callback's columns (a conversation's `set_callback`, which holds them while its channel places the
    attempt); by default they are written at once."""
    if callback.status in FINAL_CALLBACK:
        return
    if write is None:
        write_through(session, callback, status=status, reason=reason, closed_at=now)
    else:
        write(status=status, reason=reason, closed_at=now)
    if others_open:
        end_open_attempts(session, callback.id, now, open_attempts)
    rectify.callback_closed(session, settings, callback, now, answers=answers)
    if not plugins.listens("callback_closed"):
        return
    window_name = select(Window.name).where(Window.id == callback.window_id).scalar_subquery()
    case_no, case_type, window = session.execute(
        select(Case.case_no, Case.case_type, window_name).where(Case.id == callback.case_id)
    ).one()
    events.defer(session, plugins, "callback_closed", callback=CallbackEvent(
        callback_id=callback.id, round_id=callback.round_id, window=window, case_no=case_no, case_type=case_type,
        status=status, reason=reason, closed_at=now,
    ))


def record_opt_out(
    session: Session, plugins: Plugins, phone: str, source: str, now: datetime, note: str = "",
    *, settings: Settings,
) -> None:
    """Record an opt-out (退订) and close every open callback of the number: no survey contacts it again. A closed
    callback's 不满意 answer opens its rectification."""
    if not opted_out(session, phone):
        session.add(OptOut(phone=phone, source=source, note=note, created_at=now))
        session.flush()
    for callback in session.scalars(
        select(Callback).where(Callback.phone == phone, Callback.status.not_in(FINAL_CALLBACK))
    ).all():
        close_callback(session, plugins, callback, "opted_out", "opted_out", now, open_attempts="opted_out",
                       settings=settings)


def opted_out(session: Session, phone: str) -> bool:
    return session.scalar(select(OptOut.id).where(OptOut.phone == phone)) is not None


_END_OPEN_ATTEMPTS = (
    update(_attempts)
    .where(_attempts.c.callback_id == bindparam("callback"), _attempts.c.status.in_(OPEN_ATTEMPT))
    .values(status=bindparam("ended_as"), ended_at=bindparam("ended"))
    .returning(_attempts.c.id)
)


def end_open_attempts(session: Session, callback_id: int, now: datetime, status: str = "cancelled") -> None:
    """End every attempt of a callback that is still due or under way (the callback has closed)."""
    session.flush()
    ended = session.connection().execute(
        _END_OPEN_ATTEMPTS, {"callback": callback_id, "ended_as": status, "ended": now}
    ).scalars()
    show_written(session, Attempt, ended, status=status, ended_at=now)
