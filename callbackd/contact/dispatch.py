"""Dispatch: scheduling attempts from a round's channel plan and placing them through channel plugins. What follows
each outcome (a retry, a fallback channel, a final state) is the state machine's (`transitions.py`, applied by
`attempts.py`).

Scheduling lives in the database: a tick (the embedded runner's pass, or beat's task) claims what is due in one
transaction and only then hands the ids to whoever places them; placing takes a claimed attempt with one
conditional update, so a message delivered twice places nothing twice. A claim is a lease of
`[dispatch] lease_seconds`: an attempt still queued when it runs out (its worker never took it, or the message
was lost) goes back to due. One still placing without a provider id is in doubt: its worker was killed after
taking it, perhaps after asking the provider. It is never placed again blindly: the channel's `lookup` asks the
provider (`reconcile_in_doubt`), and only a provider that never placed it gets it again; a channel that cannot look
up ends it failed, its placing outcome unknown, and the callback's retry or next channel follows.
"""

from __future__ import annotations

import time as time_module
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import cast

from sqlalchemy import Table, and_, bindparam, case, func, select, update
from sqlalchemy.orm import Session

from callbackd.api.channels import InDoubt, LookupResult, StartResult, number_limits
from callbackd.api.manager import PluginError, Plugins
from callbackd.contact import notifications, transitions
from callbackd.contact.attempts import close_callback, record_opt_out, usable_channels
from callbackd.contact.context import Context
from callbackd.contact.conversation import open_conversation
from callbackd.contact.ratelimit import ProviderLimiter
from callbackd.core import clock
from callbackd.core.phones import mask_in
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT
from callbackd.rounds import plans
from callbackd.rounds.calling import CallingPolicy
from callbackd.store import audit, heartbeats
from callbackd.store.db import Database, among, chunks, insert_rows, write_row
from callbackd.store.models import Attempt, Callback, Case, OptOut, Round

_attempts = cast(Table, Attempt.__table__)


@dataclass
class TickReport:
    """One tick: what it reclaimed (lapsed leases; `reconciled` of them were in doubt and settled by their
    provider's word), ended, scheduled, held and claimed (the claimed ids, committed), and the errors of channels
    that failed looking an attempt up."""

    reclaimed: int = 0
    reconciled: int = 0
    ended: int = 0
    scheduled: int = 0
    held: int = 0
    claimed: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class DispatchReport:
    scheduled: int = 0
    placed: int = 0
    held: int = 0  # due, but outside calling hours or over a number's limits: moved to when they may go
    ended: int = 0  # waited too long for their channel
    outcomes: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)  # rounds whose callbacks all became final

    def as_dict(self) -> dict[str, object]:
        return {"scheduled": self.scheduled, "placed": self.placed, "held": self.held, "ended": self.ended,
                "outcomes": dict(self.outcomes), "errors": self.errors, "rounds_closed": self.closed}


# ---- scheduling ------------------------------------------------------------------------------------------


def schedule_new(session: Session, settings: Settings, plugins: Plugins, now: datetime) -> int:
    """Create the first attempt of every pending callback of a round in force (a week's round not replaced, or a
    callback plan's period), due at the first calling hour.

    Taking a callback is one atomic transition (pending to in_progress), so two schedulers at once never give
    a callback two first attempts.
    """
    first = CallingPolicy(settings).first_slot(now)
    rows = session.execute(
        select(Callback.id, Callback.round_id, Case.phone_sms, OptOut.id.is_not(None).label("opted_out"))
        .join(Round, Round.id == Callback.round_id)
        .join(Case, Case.id == Callback.case_id)
        .outerjoin(OptOut, OptOut.phone == Callback.phone)
        .where(Callback.status == "pending", Round.active_week.is_not(None) | (Round.kind == "plan"))
        .order_by(Callback.id)
    ).all()
    if not rows:
        return 0
    plans: dict[int, list[str]] = {round_id: plan for round_id, plan in session.execute(
        select(Round.id, Round.channel_plan).where(Round.id.in_({row.round_id for row in rows}))
    )}
    taken: set[int] = set()
    for among_ids in among(session, Callback.id, [row.id for row in rows]):
        taken.update(session.scalars(
            update(Callback).where(among_ids, Callback.status == "pending")
            .values(status="in_progress").returning(Callback.id)
            .execution_options(synchronize_session=False)
        ))
    first_attempts = []
    context = Context(session, settings, plugins, now)
    for callback_id, round_id, sms_capable, blocked in rows:
        if callback_id not in taken:
            continue  # another scheduler took it
        step = transitions.begin(usable_channels(plugins, plans[round_id], sms_capable), opted_out=bool(blocked))
        if isinstance(step, transitions.Close):
            callback = session.get(Callback, callback_id)
            assert callback is not None
            session.refresh(callback)
            close_callback(context, callback, step)
            continue
        first_attempts.append({"callback_id": callback_id, "channel": step.channel, "number": 1, "status": "due",
                               "due_at": first, "detail": ""})
    insert_rows(session, Attempt, first_attempts)
    return len(first_attempts)


def due_attempts(session: Session, now: datetime, limit: int | None = None) -> list[int]:
    query = (
        select(Attempt.id).where(Attempt.status == "due", Attempt.due_at <= now).order_by(Attempt.due_at, Attempt.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def claim(session: Session, attempt_id: int, now: datetime) -> bool:
    """Take a due attempt for placing: one atomic transition, so no attempt is placed twice."""
    result = session.execute(
        update(Attempt)
        .where(Attempt.id == attempt_id, Attempt.status == "due")
        .values(status="placing", started_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


# ---- placing ---------------------------------------------------------------------------------------------


def start_claimed(
    session: Session, settings: Settings, plugins: Plugins, attempt_id: int, now: datetime,
    taken_at: datetime | None = None,
) -> tuple[str, StartResult | None]:
    """Hand a claimed attempt to its channel. Returns the attempt's state and the channel's result, which
    `record_start` records in another transaction; None when there is nothing more to record (the conversation
    happened inside `start`, and its outcome and the channel's word are in this transaction). With `taken_at`,
    the take this worker made: an attempt whose lease ran out and that another worker took since is left to
    that worker."""
    conversation = open_conversation(session, settings, plugins, attempt_id, now, placing=True)
    facts, attempt = conversation.facts, conversation.attempt
    if attempt.status != "placing" or (taken_at is not None and attempt.started_at != taken_at):
        return attempt.status, None
    if facts.callback_status in FINAL_CALLBACK or not facts.in_force:
        write_row(session, Attempt, attempt_id, status="cancelled", ended_at=now)  # closed, or its round replaced
        return "cancelled", None
    if facts.number_opted_out:
        record_opt_out(session, plugins, facts.phone, "earlier", now, settings=settings)
        return attempt.status, None
    # Nothing is written before the channel is called: a provider may call its webhooks before it answers,
    # and those must find the attempt as the claim left it.
    channel = plugins.channel(facts.channel)
    try:
        result = channel.start(conversation)
    except PluginError:
        raise
    except Exception as exc:
        owner = plugins.channels.owners.get(channel.name, "?")
        raise PluginError(  # kept with the attempt and logged: never with the applicant's number
            f"plugin {owner!r} failed placing attempt {attempt_id} on channel {channel.name!r}: "
            f"{type(exc).__name__}: {mask_in(exc, facts.phone)}"
        ) from exc
    if attempt.status == "placing":
        return attempt.status, result
    # the conversation happened inside `start` (the simulator): the channel's word goes with its outcome
    if result.provider_id and attempt.provider_id is None:
        conversation.set_attempt(provider_id=result.provider_id)
    return attempt.status, None


def record_start(
    session: Session, settings: Settings, plugins: Plugins, attempt_id: int, result: StartResult, now: datetime
) -> str:
    """Record what the channel said when it placed an attempt, unless the attempt has moved on meanwhile (a
    webhook already reported the call busy, the simulator already finished it): conditional updates only."""
    if result.provider_id or result.ok:
        state = session.connection().execute(_RECORD_START, {
            "attempt": attempt_id, "provider_id": result.provider_id or None, "ok": result.ok,
        }).scalar()
        if result.ok:
            return state or "failed"
    conversation = open_conversation(session, settings, plugins, attempt_id, now)
    if conversation.attempt.status == "placing":
        conversation.finish(result.failure or "failed", result.detail)
    return conversation.attempt.status


# on the table, not the entity: every placing runs it, and the ORM's bulk update machinery costs more than the write
_RECORD_START = (
    update(_attempts).where(_attempts.c.id == bindparam("attempt"))
    .values(
        provider_id=func.coalesce(_attempts.c.provider_id, bindparam("provider_id")),
        status=case((and_(bindparam("ok"), _attempts.c.status == "placing"), "in_progress"),
                    else_=_attempts.c.status),
    )
    .returning(_attempts.c.status)
)


def fail_attempt(session: Session, settings: Settings, plugins: Plugins, attempt_id: int, now: datetime,
                 detail: str) -> None:
    """End an attempt whose placing raised as `failed` (the next try or fallback follows as usual)."""
    conversation = open_conversation(session, settings, plugins, attempt_id, now)
    if conversation.attempt.status in OPEN_ATTEMPT:
        conversation.finish("failed", detail)


# ---- ticks and placing: the embedded runner and the Celery tasks share these --------------------------------


def reclaim_expired(session: Session, settings: Settings, now: datetime) -> int:
    """Put back to due every claimed attempt whose lease ran out while it was still queued: no worker took it (the
    worker was killed first, or its message was lost with the broker), so no provider was asked. An attempt a
    worker took (placing) is in doubt instead: `reconcile_in_doubt`."""
    cutoff = now - timedelta(seconds=settings.dispatch.lease_seconds)
    reclaimed = session.execute(
        update(Attempt)
        .where(Attempt.status == "queued", Attempt.started_at < cutoff, Attempt.provider_id.is_(None))
        .values(status="due", started_at=None).returning(Attempt.id, Attempt.channel)
        .execution_options(synchronize_session=False)
    ).all()
    for attempt_id, channel in reclaimed:  # rare (a worker or a message lost): kept, and counted by /metrics
        audit.record(session, "attempt.reclaim", f"attempt {attempt_id}", channel=channel, how="lease")
    return len(reclaimed)


# ---- attempts in doubt: taken for placing by a worker that stopped before recording the provider's word --------


@dataclass(frozen=True)
class Doubt:
    """An attempt in doubt: its id, channel and number, and when its worker took it (its lease's start)."""

    attempt_id: int
    channel: str
    phone: str
    taken_at: datetime


def in_doubt(session: Session, settings: Settings, now: datetime) -> list[Doubt]:
    """Attempts taken for placing whose lease ran out with no provider id recorded: their worker stopped, before or
    after asking the provider. (One a provider's webhook reached meanwhile is no longer placing.)"""
    cutoff = now - timedelta(seconds=settings.dispatch.lease_seconds)
    rows = session.execute(
        select(Attempt.id, Attempt.channel, Callback.phone, Attempt.started_at)
        .join(Callback, Callback.id == Attempt.callback_id)
        .where(Attempt.status == "placing", Attempt.started_at < cutoff, Attempt.provider_id.is_(None))
        .order_by(Attempt.id)
    ).all()
    return [Doubt(attempt_id, channel, phone, taken_at) for attempt_id, channel, phone, taken_at in rows
            if taken_at is not None]  # always, by the filter


def look_up(settings: Settings, plugins: Plugins, doubt: Doubt) -> tuple[LookupResult, str | None]:
    """Ask the attempt's channel whether its provider placed it: the answer, and the error when looking up raised
    (then the answer is "cannot tell"). A channel without `lookup` cannot tell. No transaction is open meanwhile."""
    channel = plugins.channel(doubt.channel) if doubt.channel in plugins.channels else None
    lookup = getattr(channel, "lookup", None)
    if channel is None or lookup is None:
        return LookupResult.unknown(f"channel {doubt.channel!r} cannot look up its provider's records"), None
    try:
        return lookup(InDoubt(doubt.attempt_id, doubt.phone, doubt.taken_at, settings)), None
    except Exception as exc:
        owner = plugins.channels.owners.get(channel.name, "?")
        error = (f"plugin {owner!r} failed looking up attempt {doubt.attempt_id} on channel {channel.name!r}: "
                 f"{type(exc).__name__}: {mask_in(exc, doubt.phone)}")  # never the applicant's number
        return LookupResult.unknown(f"looking it up failed: {error}"), f"attempt {doubt.attempt_id}: {error}"


def settle_in_doubt(
    session: Session, settings: Settings, plugins: Plugins, doubt: Doubt, found: LookupResult, now: datetime
) -> bool:
    """Apply what the provider said to an attempt in doubt (`transitions.reconcile`), unless it moved on since it
    was found (its worker was only slow, or another tick settled it first): False then. Due again, under way with
    the provider's id, or ended through its conversation (so its retry, next channel or final state follows)."""
    still = session.scalar(
        select(Attempt.id).where(Attempt.id == doubt.attempt_id, Attempt.status == "placing",
                                 Attempt.started_at == doubt.taken_at, Attempt.provider_id.is_(None))
        .with_for_update()
    )
    if still is None:
        return False
    decided = transitions.reconcile(found.placed, found.outcome, found.detail)
    audit.record(session, "attempt.reclaim", f"attempt {doubt.attempt_id}", channel=doubt.channel, how="lookup",
                 then=decided.outcome or decided.then)
    if decided.then == "due":
        write_row(session, Attempt, doubt.attempt_id, status="due", started_at=None)
    elif decided.then == "in_progress":
        write_row(session, Attempt, doubt.attempt_id, status="in_progress", provider_id=found.provider_id,
                  detail=decided.detail[:500])
    else:
        assert decided.outcome is not None
        conversation = open_conversation(session, settings, plugins, doubt.attempt_id, now)
        if found.provider_id:
            conversation.set_attempt(provider_id=found.provider_id)
        conversation.finish(decided.outcome, decided.detail)
    return True


def reconcile_in_doubt(database: Database, settings: Settings, plugins: Plugins, now: datetime
                       ) -> tuple[int, list[str]]:
    """Settle every attempt in doubt by its provider's word, each in its own transaction after its channel's
    `lookup` answered: how many were settled, and the errors of lookups that raised."""
    with database.session() as session:
        doubts = in_doubt(session, settings, now)
    settled, errors = 0, []
    for doubt in doubts:
        found, error = look_up(settings, plugins, doubt)
        if error is not None:
            errors.append(error)
        with database.session() as session:
            settled += settle_in_doubt(session, settings, plugins, doubt, found, now)
    return settled, errors


def claim_due(session: Session, settings: Settings, plugins: Plugins, now: datetime,
              limit: int) -> tuple[list[int], int]:
    """Claim due attempts (due to queued, the lease starting now) until `limit` are queued, counting those
    queued earlier and not yet taken, and hold those that may not go now to when they may. Returns (claimed
    ids, held count). Topping up rather than adding keeps the queue no longer than what the workers place well
    within a lease, however often ticks come.

    On PostgreSQL the due rows are locked with SKIP LOCKED, so two ticks at once split the work instead of
    waiting for each other; every transition is conditional on the state it leaves, so no attempt is claimed
    twice on any database.
    """
    policy = CallingPolicy(settings)
    if not policy.calendar.in_calling_hours(now):
        waiting = session.execute(
            update(Attempt).where(Attempt.status == "due", Attempt.due_at <= now)
            .values(due_at=policy.first_slot(now)).execution_options(synchronize_session=False)
        )
        return [], waiting.rowcount  # type: ignore[attr-defined]
    queued = session.scalar(select(func.count()).select_from(Attempt).where(Attempt.status == "queued")) or 0
    if queued >= limit:
        return [], 0
    rows = session.execute(
        select(Attempt.id, Callback.phone, Attempt.channel)
        .join(Callback, Callback.id == Attempt.callback_id)
        .where(Attempt.status == "due", Attempt.due_at <= now)
        .order_by(Attempt.due_at, Attempt.id)
        .limit(limit - queued)
        .with_for_update(of=Attempt, skip_locked=True)
    ).all()
    limits = {name: number_limits(plugins.channel(name)) for name in {channel for *_, channel in rows}
              if name in plugins.channels}
    numbers = policy.holds(session, {phone for _, phone, _ in rows}, now, limits)
    chosen: list[int] = []
    later: dict[datetime, list[int]] = {}
    for attempt_id, phone, channel in rows:
        when = numbers.next_for(phone, channel)
        if when is None:
            numbers.take(phone, channel)
            chosen.append(attempt_id)
        else:
            later.setdefault(when, []).append(attempt_id)
    held = 0
    for when, ids in later.items():
        for among_ids in among(session, Attempt.id, ids):
            moved = session.execute(
                update(Attempt).where(among_ids, Attempt.status == "due").values(due_at=when)
                .execution_options(synchronize_session=False)
            )
            held += moved.rowcount  # type: ignore[attr-defined]
    taken: set[int] = set()
    for among_ids in among(session, Attempt.id, chosen):
        taken.update(session.scalars(
            update(Attempt).where(among_ids, Attempt.status == "due")
            .values(status="queued", started_at=now).returning(Attempt.id)
            .execution_options(synchronize_session=False)
        ))
    return [attempt_id for attempt_id in chosen if attempt_id in taken], held  # in due order


def tick(database: Database, settings: Settings, plugins: Plugins, now: datetime | None = None) -> TickReport:
    """One scheduler pass: settle attempts in doubt by their providers' word (each in a transaction of its own,
    the provider asked outside any), then in one transaction reclaim lapsed leases, end stale attempts, schedule
    new callbacks, claim what is due. The claimed ids are returned once the transaction has committed, so whoever
    places them finds them claimed."""
    now = now or clock.now()
    report = TickReport()
    report.reconciled, report.errors = reconcile_in_doubt(database, settings, plugins, now)
    with database.session() as session:
        report.reclaimed = report.reconciled + reclaim_expired(session, settings, now)
        report.ended = end_stale(session, settings, plugins, now)
        report.errors += plans.generate(session, settings, now).errors  # callback plans' periods, once each
        report.scheduled = schedule_new(session, settings, plugins, now)
        report.claimed, report.held = claim_due(session, settings, plugins, now, settings.dispatch.batch)
    return report


@dataclass(frozen=True)
class Placement:
    """What placing one claimed attempt came to: its state afterwards, and the error when placing raised."""

    state: str
    error: str | None = None


def place_queued(
    database: Database, settings: Settings, plugins: Plugins, attempt_id: int, now: datetime | None = None
) -> Placement | None:
    """Place one claimed attempt; None when it is no longer queued (another delivery of the same message took
    it, or it closed meanwhile)."""
    return place_many(database, settings, plugins, [attempt_id], now)[0]


def place_many(
    database: Database, settings: Settings, plugins: Plugins, attempt_ids: Sequence[int], now: datetime | None = None
) -> list[Placement | None]:
    """Place claimed attempts one after the other: for each, its placement, or None when it is no longer queued
    (another delivery of the same message took it, or it closed meanwhile).

    Taking them (queued to placing, in one statement) commits before anything else, so a provider is never asked
    twice for one attempt and no transaction stays open while a provider answers. Each attempt is then placed in
    its own transaction (all of them on one connection), after waiting for the provider account's rate. An
    attempt whose placing raises ends as `failed` (its retry or fallback follows); the others go on.
    """
    taken_at = now or clock.now()
    taken: dict[int, str] = {}
    with database.one_connection() as connected:
        with connected.session() as session:
            for chunk in chunks(attempt_ids):
                taken.update((attempt_id, channel) for attempt_id, channel in session.execute(
                    update(Attempt).where(Attempt.id.in_(chunk), Attempt.status == "queued")
                    .values(status="placing", started_at=taken_at).returning(Attempt.id, Attempt.channel)
                    .execution_options(synchronize_session=False)
                ))
        placing = Placing(connected, settings, plugins, taken_at, now)
        return [None if attempt_id not in taken else placing.place(attempt_id, taken[attempt_id])
                for attempt_id in attempt_ids]


@dataclass(frozen=True)
class Placing:
    """Placing the attempts one take took: the database (on one connection), settings, plugins, when the take
    was made, and the time to place them at (None: the clock's, each when its turn comes)."""

    database: Database
    settings: Settings
    plugins: Plugins
    taken_at: datetime
    now: datetime | None

    def place(self, attempt_id: int, channel_name: str) -> Placement:
        """Place one taken attempt in its own transaction; an attempt whose placing raises ends `failed`."""
        settings, plugins = self.settings, self.plugins
        try:
            rate = getattr(plugins.channel(channel_name), "rate_limit", None)
            limit = rate(settings) if rate is not None else None
            if limit is not None:
                limiter_for(settings.dispatch.rate_storage).wait(*limit)  # shared by every dispatcher
            when = self.now or clock.now()
            with self.database.session() as session:
                state, result = start_claimed(session, settings, plugins, attempt_id, when, self.taken_at)
            if result is not None:
                with self.database.session() as session:
                    state = record_start(session, settings, plugins, attempt_id, result, when)
        except Exception as exc:
            message = str(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {exc}"
            with self.database.session() as session:
                fail_attempt(session, settings, plugins, attempt_id, self.now or clock.now(), message)
            return Placement("failed", f"attempt {attempt_id}: {message}")
        return Placement(state)


# ---- the embedded runner ---------------------------------------------------------------------------------


def run_once(
    database: Database, settings: Settings, plugins: Plugins, now: datetime | None = None,
    on_placed: Callable[[int], None] | None = None,
) -> DispatchReport:
    """Schedule new callbacks and place every due attempt: ticks, each placing what it claimed, until nothing
    more is due now; then close the rounds that finished. The same steps as the Celery tasks, in one process."""
    report = DispatchReport()
    while True:
        ticked = tick(database, settings, plugins, now)
        report.errors.extend(ticked.errors)
        report.ended += ticked.ended
        report.scheduled += ticked.scheduled
        report.held += ticked.held
        for chunk in chunks(ticked.claimed, settings.workers.chunk):
            for attempt_id, placement in zip(chunk, place_many(database, settings, plugins, chunk, now), strict=True):
                if placement is None:
                    continue
                if placement.error is not None:
                    report.errors.append(placement.error)
                report.placed += 1
                report.outcomes[placement.state] += 1
                if on_placed is not None:
                    on_placed(attempt_id)
        if len(ticked.claimed) < settings.dispatch.batch:
            with database.session() as session:  # once the pass committed: `callbackd status` and /metrics read it
                report.closed = close_finished_rounds(session, settings, now or clock.now())
                heartbeats.beat(session, "dispatch.run", now or clock.now(), placed=report.placed,
                                scheduled=report.scheduled)
            return report


@lru_cache(maxsize=4)
def limiter_for(storage: str) -> ProviderLimiter:
    """One limiter per storage, kept for the process: its window must outlive a single pass."""
    return ProviderLimiter(storage)


def end_stale(session: Session, settings: Settings, plugins: Plugins, now: datetime) -> int:
    """End attempts that waited too long for their channel: an SMS nobody answered, a call whose status never
    came back, an operator's call never entered. They count as no answer (or a hang-up once answered)."""
    waiting = settings.dispatch.waiting_minutes
    ended = 0
    for attempt in session.scalars(
        select(Attempt).where(Attempt.status.in_(("placing", "in_progress", "answered")))
    ).all():
        if attempt.channel not in plugins.channels or attempt.started_at is None:
            continue
        limit = waiting.get(plugins.channel(attempt.channel).kind)
        if limit is None or now - attempt.started_at < timedelta(minutes=limit):
            continue
        conversation = open_conversation(session, settings, plugins, attempt.id, now)
        conversation.finish("hung_up" if attempt.status == "answered" else "no_answer",
                            f"no word from the channel for {limit} minutes")
        ended += 1
    return ended


def close_finished_rounds(session: Session, settings: Settings, now: datetime) -> list[int]:
    """Mark `closed` every open round whose callbacks have all reached a final state; returns their ids. A round
    closed below `[notify] round_completion_target` is reported to the supervisors."""
    unfinished = select(Callback.id).where(Callback.round_id == Round.id, Callback.status.not_in(FINAL_CALLBACK))
    ids = list(session.scalars(
        select(Round.id).where(Round.status == "open", ~unfinished.exists()).order_by(Round.id)
    ))
    if ids:
        session.execute(update(Round).where(Round.id.in_(ids), Round.status == "open").values(status="closed")
                        .execution_options(synchronize_session=False))
        audit.record(session, "round.close", ", ".join(f"round {i}" for i in ids), rounds=ids, at=now.isoformat())
        notifications.rounds_closed(session, settings, ids, now)
    return ids


def next_due(database: Database) -> datetime | None:
    with database.session() as session:
        return session.scalar(select(func.min(Attempt.due_at)).where(Attempt.status == "due"))


def run_forever(database: Database, settings: Settings, plugins: Plugins, poll_seconds: float = 15.0) -> None:
    """Dispatch until interrupted: place what is due, then sleep until the next due time (or the poll)."""
    while True:
        run_once(database, settings, plugins)
        upcoming = next_due(database)
        wait = poll_seconds
        if upcoming is not None:
            wait = min(poll_seconds, max((upcoming - clock.now()).total_seconds(), 0.5))
        time_module.sleep(wait)
