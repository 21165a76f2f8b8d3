"""Delivering the outbox: each pending delivery through its route's notifier, once.

A delivery is taken (status `sending`, held for `HOLD`) in a transaction of its own before its message goes out,
and marked sent, due again later or failed in another after: two deliverers never send the same delivery, and one
that dies while sending leaves it held until the hold runs out, when the next run takes it again. A notifier's
`DeliveryError` is tried again after `[notify] retry_minutes`, doubling each time, up to `[notify] max_tries` tries;
a permanent one (a revoked robot key, a refused address), or the last try, fails the delivery for good, which is
logged and audited, and counted by `callbackd status`.

Digest deliveries (`[notify] delivery = "digest"`) wait for the day's digest time (`digest_at` on a working day, in
the organisation's zone): then everything a route holds from before it goes out as one message.

Before delivering, each new notification is handed once to the `notify` hook (plugins that forward or archive
notifications hear of it even when it has no route).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from callbackd.api.manager import PluginError, Plugins
from callbackd.api.notifications import DeliveryError, Message, Notification
from callbackd.core.settings import Settings
from callbackd.core.workdays import Calendar
from callbackd.notify import watch
from callbackd.rounds.calling import calendar_for
from callbackd.store import audit
from callbackd.store.db import Database
from callbackd.store.models import Notification as Entry
from callbackd.store.models import NotificationDelivery, Window

log = logging.getLogger("callbackd.notify")

HOLD = timedelta(minutes=5)  # a taken delivery's hold: longer than any notifier's timeout
BATCH = 200
DIGEST_SHOWN = 30


@dataclass
class Report:
    """What one run did."""

    posted: int = 0
    announced: int = 0
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"posted": self.posted, "announced": self.announced, "sent": self.sent, "retried": self.retried,
                "failed": self.failed, "errors": self.errors}


def run_once(database: Database, settings: Settings, plugins: Plugins, now: datetime) -> Report:
    """Scan for what is due or overdue, announce new notifications to the `notify` hook, deliver what is due."""
    report = Report()
    calendar = calendar_for(settings)
    with database.session() as session:
        report.posted = watch.scan(session, settings, calendar, now)
    report.announced = announce(database, settings, plugins, now)
    deliver_due(database, settings, plugins, calendar, now, report)
    return report


# ---- the notify hook --------------------------------------------------------------------------------------


def announce(database: Database, settings: Settings, plugins: Plugins, now: datetime) -> int:
    """Hand each notification not announced yet to the `notify` hook, once (taken in a transaction first)."""
    if not plugins.listens("notify"):
        return 0
    with database.session() as session:
        fresh = list(session.scalars(select(Entry).where(Entry.announced_at.is_(None)).order_by(Entry.id)
                                     .limit(BATCH)))
        taken = [entry for entry in fresh if session.execute(
            update(Entry).where(Entry.id == entry.id, Entry.announced_at.is_(None)).values(announced_at=now)
        ).rowcount == 1]  # type: ignore[attr-defined]
        values = [_as_value(session, settings, entry) for entry in taken]
    for value in values:
        try:
            plugins.notify("notify", notification=value)
        except PluginError as exc:
            log.error("notify hook: %s", exc)
    return len(values)


def _as_value(session: Session, settings: Settings, entry: Entry) -> Notification:
    routes = tuple(session.scalars(select(NotificationDelivery.route)
                                   .where(NotificationDelivery.notification_id == entry.id)
                                   .order_by(NotificationDelivery.id)))
    window = session.get(Window, entry.window_id) if entry.window_id is not None else None
    return Notification(id=entry.id, event=entry.event, message=message_of(settings, entry),
                        window=window.name if window else None, created_at=entry.created_at, recipients=routes)


def message_of(settings: Settings, entry: Entry) -> Message:
    """An outbox entry as a person reads it, linked to its console page when `[web] public_url` is set."""
    return Message(title=entry.title, lines=tuple(entry.lines or ()), link=link(settings, entry.path))


def link(settings: Settings, path: str) -> str:
    base = settings.web.public_url.rstrip("/")
    return f"{base}{path or '/'}" if base else ""


# ---- delivering -------------------------------------------------------------------------------------------


def last_digest(settings: Settings, calendar: Calendar, now: datetime) -> datetime | None:
    """The latest digest time at or before `now`: `[notify] digest_at` on a working day."""
    zone = settings.zone
    day = now.astimezone(zone).date()
    for back in range(0, 31):
        candidate = day - timedelta(days=back)
        moment = datetime.combine(candidate, settings.notify.digest_at, zone)
        if moment <= now and calendar.is_workday(candidate):
            return moment
    return None


def _due(now: datetime) -> Any:
    return or_(
        (NotificationDelivery.status == "pending") & (NotificationDelivery.due_at <= now),
        (NotificationDelivery.status == "sending") & (NotificationDelivery.held_until < now),
    )


def _take(session: Session, ids: Sequence[int], now: datetime) -> list[int]:
    # each delivery taken by one conditional update: a deliverer that lost the race to another takes none
    return [delivery_id for delivery_id in ids if session.execute(
        update(NotificationDelivery).where(NotificationDelivery.id == delivery_id, _due(now))
        .values(status="sending", held_until=now + HOLD)
        .execution_options(synchronize_session=False)
    ).rowcount == 1]  # type: ignore[attr-defined]


def deliver_due(
    database: Database, settings: Settings, plugins: Plugins, calendar: Calendar, now: datetime, report: Report,
) -> None:
    """Deliver the immediate deliveries that are due, then the digests whose time has come."""
    while True:
        with database.session() as session:
            ids = list(session.scalars(
                select(NotificationDelivery.id).where(_due(now), NotificationDelivery.digest.is_(False))
                .order_by(NotificationDelivery.id).limit(BATCH)))
            taken = _take(session, ids, now)
            work = [(delivery.id, delivery.route, message_of(settings, entry)) for delivery, entry in session.execute(
                select(NotificationDelivery, Entry).join(Entry, Entry.id == NotificationDelivery.notification_id)
                .where(NotificationDelivery.id.in_(taken)).order_by(NotificationDelivery.id))]
        for delivery_id, route, message in work:
            _send(database, settings, plugins, [delivery_id], route, message, now, report)
        if len(ids) < BATCH:
            break
    moment = last_digest(settings, calendar, now)
    if moment is not None:
        _deliver_digests(database, settings, plugins, moment, now, report)


def _deliver_digests(
    database: Database, settings: Settings, plugins: Plugins, moment: datetime, now: datetime, report: Report,
) -> None:
    with database.session() as session:
        rows = session.execute(
            select(NotificationDelivery.id, NotificationDelivery.route)
            .join(Entry, Entry.id == NotificationDelivery.notification_id)
            .where(_due(now), NotificationDelivery.digest.is_(True), Entry.created_at < moment)
            .order_by(NotificationDelivery.id)
        ).all()
        taken = set(_take(session, [delivery_id for delivery_id, _ in rows], now))
        by_route: dict[str, list[int]] = defaultdict(list)
        for delivery_id, route in rows:
            if delivery_id in taken:
                by_route[route].append(delivery_id)
        work = []
        for route, ids in by_route.items():
            entries = list(session.scalars(
                select(Entry).join(NotificationDelivery, NotificationDelivery.notification_id == Entry.id)
                .where(NotificationDelivery.id.in_(ids)).order_by(Entry.id)))
            work.append((ids, route, digest_message(settings, moment, entries)))
    for ids, route, message in work:
        _send(database, settings, plugins, ids, route, message, now, report)


def digest_message(settings: Settings, moment: datetime, entries: Sequence[Entry]) -> Message:
    """One message for a route's day: how many, then each notification's title (the first `DIGEST_SHOWN`)."""
    local = moment.astimezone(settings.zone)
    lines = [f"· {entry.title}" for entry in entries[:DIGEST_SHOWN]]
    if len(entries) > DIGEST_SHOWN:
        lines.append(f"……另有 {len(entries) - DIGEST_SHOWN} 条，请在控制台查看")
    return Message(title=f"【回访督办】{local.month}月{local.day}日待办汇总（{len(entries)} 条）", lines=tuple(lines),
                   link=link(settings, "/"))


def _send(
    database: Database, settings: Settings, plugins: Plugins, ids: list[int], route: str, message: Message,
    now: datetime, report: Report,
) -> None:
    kind, _, address = route.partition(":")
    try:
        notifier = plugins.notifier(kind)
        notifier.deliver(address, message, settings)
    except DeliveryError as exc:
        _failed(database, settings, ids, route, exc.reason, exc.permanent, now, report)
    except PluginError as exc:  # no such notifier loaded: trying again cannot help until one is installed
        _failed(database, settings, ids, route, str(exc), True, now, report)
    except Exception as exc:  # a notifier's own bug: kept as a retryable failure naming it, never swallowed silently
        _failed(database, settings, ids, route, f"notifier {kind!r} raised {type(exc).__name__}: {exc}", False,
                now, report)
    else:
        with database.session() as session:
            session.execute(update(NotificationDelivery).where(NotificationDelivery.id.in_(ids))
                            .values(status="sent", sent_at=now, held_until=None, error="")
                            .execution_options(synchronize_session=False))
        report.sent += len(ids)


def _failed(
    database: Database, settings: Settings, ids: list[int], route: str, reason: str, permanent: bool, now: datetime,
    report: Report,
) -> None:
    with database.session() as session:
        for delivery in session.scalars(select(NotificationDelivery).where(NotificationDelivery.id.in_(ids))):
            delivery.tries += 1
            delivery.error = reason[:1000]
            delivery.held_until = None
            if permanent or delivery.tries >= settings.notify.max_tries:
                delivery.status = "failed"
                report.failed += 1
                log.error("notification %s to %s failed for good after %s tries: %s", delivery.notification_id,
                          route, delivery.tries, reason)
                audit.record(session, "notify.failed", f"notification {delivery.notification_id}", route=route,
                             tries=delivery.tries, error=reason[:300])
            else:
                delivery.status = "pending"
                wait = settings.notify.retry_minutes * 2 ** (delivery.tries - 1)
                delivery.due_at = now + timedelta(minutes=wait)
                report.retried += 1
                log.warning("notification %s to %s failed (try %s), trying again in %.0f min: %s",
                            delivery.notification_id, route, delivery.tries, wait, reason)
    report.errors.append(f"{route}: {reason}")
