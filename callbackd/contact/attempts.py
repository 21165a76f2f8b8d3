"""Applying the attempt state machine (`transitions.py`) to the database: recording how an attempt ended, adding
the retry or the next channel's attempt, closing a callback, an applicant's opt-out (退订). What follows is decided
by `transitions`; this module reads what it needs for that and writes the result, in the caller's transaction.
A conversation and the dispatcher call it; it calls neither."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from callbackd.api import events
from callbackd.api.events import CallbackEvent
from callbackd.api.manager import Plugins
from callbackd.contact import rectify, transitions
from callbackd.contact.answers import KnownAnswers
from callbackd.contact.context import Context
from callbackd.contact.transitions import Close, Ended, NextChannel, Retry, Step
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT
from callbackd.rounds.calling import CallingPolicy
from callbackd.store.db import write_through
from callbackd.store.models import Attempt, Callback, Case, OptOut, Round, Window


def usable_channels(plugins: Plugins, plan: Sequence[str], sms_capable: bool) -> list[str]:
    """The plan's channels that can reach this number: an SMS channel only for a mobile."""
    return transitions.reachable(plan, {name: plugins.channel(name).kind for name in plan}, sms_capable)


def follow(context: Context, attempt: Attempt, ended: Ended, *, sms_capable: bool,
           answers: KnownAnswers | None = None, others_open: bool = True) -> None:
    """Carry out what follows an attempt that has ended (its outcome written already): for a failure, read the
    tries its channel has used and the round's plan, and add the retry or the next channel's attempt, or close
    the callback; for an outcome that closes the callback, close it. What the caller knows spares queries:
    `answers`, the callback's contact and rated answers; `others_open` False, that no other attempt of the
    callback is open."""
    step: Step | None = ended.then
    if ended.retryable:
        step = _after_failure(context, attempt, ended.outcome, sms_capable)
    if step is None:
        return
    if isinstance(step, Close):
        callback = context.session.get(Callback, attempt.callback_id)
        assert callback is not None
        close_callback(context, callback, step, answers=answers, others_open=others_open)
        return
    take_step(context, attempt.callback_id, step)


def _after_failure(context: Context, attempt: Attempt, outcome: str, sms_capable: bool) -> Step:
    session = context.session
    plan = session.scalar(
        select(Round.channel_plan).join(Callback, Callback.round_id == Round.id)
        .where(Callback.id == attempt.callback_id)
    ) or []
    outcomes = list(session.scalars(select(Attempt.status).where(
        Attempt.callback_id == attempt.callback_id, Attempt.channel == attempt.channel)))
    return transitions.after_failure(
        outcome, attempt.channel, tries=transitions.tries_used(outcomes),
        per_channel=context.settings.dispatch.attempts_per_channel,
        plan=usable_channels(context.plugins, plan, sms_capable),
    )


def take_step(context: Context, callback_id: int, step: Step) -> None:
    """Write a step of a callback: add its next attempt (a retry, spaced; the next channel's, at the next calling
    slot), or close it."""
    session, now = context.session, context.now
    callback = session.get(Callback, callback_id)
    assert callback is not None
    if isinstance(step, Close):
        close_callback(context, callback, step)
        return
    if callback.status == "pending":  # an attempt added by hand (an operator's result) before any tick took it
        write_through(session, callback, status="in_progress")
    policy = CallingPolicy(context.settings)
    number = (session.scalar(select(func.max(Attempt.number)).where(Attempt.callback_id == callback_id)) or 0) + 1
    if isinstance(step, Retry):
        due = policy.retry_at(session, callback_id, step.channel, now)
    else:
        assert isinstance(step, NextChannel)
        due = policy.first_slot(now)
    session.add(Attempt(callback_id=callback_id, channel=step.channel, number=number, status="due", due_at=due,
                        detail=""))


def close_callback(
    context: Context, callback: Callback, close: Close, *, answers: KnownAnswers | None = None,
    others_open: bool = True,
) -> None:
    """Put a callback in a final state, end its attempts still due or under way (as `close.open_attempts`), and
    tell the plugins once the transaction commits. In the same transaction a 不满意 answer, or a complaint callback
    that could not be made (unreachable or invalid), opens a rectification, and a follow-up callback moves its
    rectification. `answers`, the callback's contact and its rated answers when the caller knows them, spares
    reading them; `others_open` False (the caller's own attempt has ended, and it read that no other was open)
    spares ending them."""
    session, now = context.session, context.now
    if callback.status in FINAL_CALLBACK:
        return
    write_through(session, callback, status=close.status, reason=close.reason, closed_at=now)
    if others_open:
        end_open_attempts(session, callback.id, now, close.open_attempts)
    rectify.callback_closed(session, context.settings, callback, now, answers=answers)
    plugins = context.plugins
    if not plugins.listens("callback_closed"):
        return
    window_name = select(Window.name).where(Window.id == callback.window_id).scalar_subquery()
    case_no, case_type, window = session.execute(
        select(Case.case_no, Case.case_type, window_name).where(Case.id == callback.case_id)
    ).one()
    events.defer(session, plugins, "callback_closed", callback=CallbackEvent(
        callback_id=callback.id, round_id=callback.round_id, window=window, case_no=case_no, case_type=case_type,
        status=close.status, reason=close.reason, closed_at=now,
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
    context = Context(session, settings, plugins, now)
    callbacks = {callback.id: callback for callback in session.scalars(
        select(Callback).where(Callback.phone == phone, Callback.status.not_in(FINAL_CALLBACK)))}
    closing = transitions.opt_out({callback_id: callback.status for callback_id, callback in callbacks.items()})
    for callback_id, close in closing.items():
        close_callback(context, callbacks[callback_id], close)


def opted_out(session: Session, phone: str) -> bool:
    return session.scalar(select(OptOut.id).where(OptOut.phone == phone)) is not None


def end_open_attempts(session: Session, callback_id: int, now: datetime, status: str = "cancelled") -> None:
    """End every attempt of a callback that is still due or under way (the callback has closed)."""
    session.execute(
        update(Attempt).where(Attempt.callback_id == callback_id, Attempt.status.in_(OPEN_ATTEMPT))
        .values(status=status, ended_at=now)
    )
