"""What whoever runs callbackd watches, in counts: attempts by channel and state, what waits and what is overdue,
imports, and when the recurring jobs last ran. `/metrics` and `callbackd status` read these.

Counts, channel names, states and job names only: nothing here identifies an applicant or a window. Each figure is
one aggregate query; the attempts' and audit trail's use their (status, due) and action indexes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from callbackd.core.vocabulary import FINAL_CALLBACK
from callbackd.store import heartbeats
from callbackd.store.models import Attempt, AuditEvent, Callback, NotificationDelivery, Rectification, Round

# an attempt in one of these states reached its provider (or its operator), whether or not it recorded an id
REACHED = ("in_progress", "answered", "completed", "partial", "no_answer", "busy", "machine", "refused", "opted_out",
           "hung_up")
# the audit actions of imports, by what they import
IMPORTS = {"ledger.import": "ledger", "results.import": "results", "plan.import": "plan"}
RECLAIM = "attempt.reclaim"  # recorded by `contact.dispatch` for each attempt it takes back from a lost worker


@dataclass
class Backlog:
    """What waits and what is overdue at one moment."""

    attempts_due: Counter[str] = field(default_factory=Counter)  # due and waiting (due time passed), by channel
    oldest_due: datetime | None = None  # the due time of the attempt waiting longest
    notifications_waiting: int = 0  # pending and due, or being sent
    notifications_failed: int = 0  # gave up after their last try
    rectifications_overdue: int = 0  # open past their feedback deadline
    follow_ups_failed: int = 0  # responded, their follow-up callback failed: awaiting verification by hand
    callbacks_past_deadline: int = 0  # a category rule's deadline (complaints in 3 working days, ...) passed

    def as_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "attempts_due": sum(self.attempts_due.values()),
            "attempts_due_by_channel": dict(sorted(self.attempts_due.items())),
            "attempts_due_oldest_seconds": None if self.oldest_due is None else
            round((now - self.oldest_due).total_seconds(), 1),
            "notifications_waiting": self.notifications_waiting,
            "notifications_failed": self.notifications_failed,
            "rectifications_overdue": self.rectifications_overdue,
            "rectification_follow_ups_failed": self.follow_ups_failed,
            "callbacks_past_deadline": self.callbacks_past_deadline,
        }


def backlog(session: Session, now: datetime) -> Backlog:
    """What waits and what is overdue at `now`."""
    found = Backlog()
    for channel, count, oldest in session.execute(
        select(Attempt.channel, func.count(), func.min(Attempt.due_at))
        .where(Attempt.status == "due", Attempt.due_at <= now).group_by(Attempt.channel)
    ):
        found.attempts_due[channel] = count
        found.oldest_due = oldest if found.oldest_due is None else min(found.oldest_due, oldest)
    waiting = case((NotificationDelivery.status == "sending", True),
                   else_=(NotificationDelivery.status == "pending") & (NotificationDelivery.due_at <= now))
    found.notifications_waiting = session.scalar(
        select(func.count()).select_from(NotificationDelivery).where(waiting)) or 0
    found.notifications_failed = session.scalar(
        select(func.count()).select_from(NotificationDelivery).where(NotificationDelivery.status == "failed")) or 0
    found.rectifications_overdue = session.scalar(
        select(func.count()).select_from(Rectification)
        .where(Rectification.status == "open", Rectification.due_at < now)) or 0
    found.follow_ups_failed = session.scalar(
        select(func.count()).select_from(Rectification)
        .where(Rectification.status == "responded", Rectification.follow_up_failed_at.is_not(None))) or 0
    found.callbacks_past_deadline = session.scalar(
        select(func.count()).select_from(Callback)
        .where(Callback.rule.is_not(None), Callback.due_at < now, Callback.status.not_in(FINAL_CALLBACK),
               Callback.follow_up == 0)) or 0
    return found


@dataclass
class Activity:
    """What the dispatcher, the imports and the outbox have done so far, and the state of things now."""

    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, status) -> attempts
    placed: Counter[str] = field(default_factory=Counter)  # by channel: reached the provider
    failed: Counter[str] = field(default_factory=Counter)  # by channel: ended failed
    reclaimed: Counter[tuple[str, str]] = field(default_factory=Counter)  # (channel, how: lease|lookup)
    imports: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, clean|with_errors) -> files
    import_rows: Counter[tuple[str, str]] = field(default_factory=Counter)  # (kind, imported|updated|bad) -> rows
    notifications: Counter[str] = field(default_factory=Counter)  # deliveries by status
    rectifications: Counter[str] = field(default_factory=Counter)  # by status
    rounds_open: Counter[str] = field(default_factory=Counter)  # by kind


def activity(session: Session) -> Activity:
    """Attempts by channel and state (placed and failed among them), reclaims, imports, notification deliveries,
    rectifications by state and rounds open."""
    found = Activity()
    has_provider = case((Attempt.provider_id.is_not(None), True), else_=False)
    for channel, status, provider, count in session.execute(
        select(Attempt.channel, Attempt.status, has_provider, func.count())
        .group_by(Attempt.channel, Attempt.status, has_provider)
    ):
        found.attempts[channel, status] += count
        if provider or status in REACHED:
            found.placed[channel] += count
        if status == "failed":
            found.failed[channel] += count
    channel_of, how = AuditEvent.detail["channel"].as_string(), AuditEvent.detail["how"].as_string()
    for channel, way, count in session.execute(
        select(channel_of, how, func.count()).where(AuditEvent.action == RECLAIM).group_by(channel_of, how)
    ):
        found.reclaimed[channel or "", way or ""] += count
    rows = {name: func.coalesce(func.sum(AuditEvent.detail[name].as_integer()), 0)
            for name in ("imported", "updated", "errors")}
    with_errors = case((AuditEvent.detail["errors"].as_integer() > 0, True), else_=False)
    for action, bad, files, imported, updated, errors in session.execute(
        select(AuditEvent.action, with_errors, func.count(), rows["imported"], rows["updated"], rows["errors"])
        .where(AuditEvent.action.in_(list(IMPORTS))).group_by(AuditEvent.action, with_errors)
    ):
        kind = IMPORTS[action]
        found.imports[kind, "with_errors" if bad else "clean"] += files
        for name, value in (("imported", imported), ("updated", updated), ("bad", errors)):
            found.import_rows[kind, name] += int(value or 0)
    counted = (
        (found.notifications, select(NotificationDelivery.status, func.count()).group_by(NotificationDelivery.status)),
        (found.rectifications, select(Rectification.status, func.count()).group_by(Rectification.status)),
        (found.rounds_open, select(Round.kind, func.count()).where(Round.status == "open").group_by(Round.kind)),
    )
    for counter, query in counted:
        for key, count in session.execute(query):
            counter[key] += count
    return found


@dataclass(frozen=True)
class Beat:
    """A recurring job's last run: when, how long before `now`, and what it reported."""

    name: str
    at: datetime
    age_seconds: float
    detail: dict[str, Any]


def beats(session: Session, now: datetime) -> dict[str, Beat]:
    """Every recurring job's last run, by name ("beat.tick", "dispatch.run", ...)."""
    return {name: Beat(name, at, max((now - at).total_seconds(), 0.0), detail)
            for name, (at, detail) in heartbeats.read(session).items()}
