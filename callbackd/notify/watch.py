"""The scans that find what needs someone, run before each delivery (`callbackd notify --once`, the workers'
tick): rectifications due by the end of the next working day and overdue ones (their window's heads and the
supervisors), and, once per finished week and month, the indicator alerts (the supervisors, and the window's heads
for their own window). Each is posted once: the outbox's key names the rectification and its due time, or the
period and the window.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.contact.notifications import case_line, when
from callbackd.contact.rectify import overdue_clause
from callbackd.core.periods import parse_period, shift
from callbackd.core.settings import Settings
from callbackd.core.workdays import Calendar
from callbackd.store import heartbeats, outbox
from callbackd.store.db import among
from callbackd.store.models import Heartbeat, Notification, Rectification, Window

ALERTS_SCANNED = "notify.alerts"


def scan(session: Session, settings: Settings, calendar: Calendar, now: datetime) -> int:
    """Post what is due, overdue or alarming and not posted yet; returns how many notifications were written."""
    return deadlines(session, settings, calendar, now) + alerts(session, settings, now)


def deadlines(session: Session, settings: Settings, calendar: Calendar, now: datetime) -> int:
    """Open rectifications due by the end of the next working day (opened before today), and overdue ones."""
    zone = settings.zone
    today = now.astimezone(zone).date()
    soon = datetime.combine(calendar.add_workdays(today, 1), datetime.max.time(), zone)
    start_of_today = datetime.combine(today, datetime.min.time(), zone)
    due_soon = session.scalars(
        select(Rectification).where(Rectification.status == "open", Rectification.due_at >= now,
                                    Rectification.due_at <= soon, Rectification.opened_at < start_of_today)
        .order_by(Rectification.id)
    ).all()
    overdue = session.scalars(
        select(Rectification).where(overdue_clause(now), Rectification.status == "open").order_by(Rectification.id)
    ).all()
    candidates = [
        (event, title, rectification, f"{event}:{rectification.id}:{rectification.due_at.isoformat()}")
        for event, rectifications, title in (
            ("rectification.due_tomorrow", due_soon, "【整改即将到期】{window}：请于{due}前反馈"),
            ("rectification.overdue", overdue, "【整改逾期】{window}：反馈期限{due}已过"),
        )
        for rectification in rectifications
    ]
    # every tick scans: what was told already is found with one query, not one (and a case's) per rectification
    told: set[str] = set()
    for condition in among(session, Notification.key, [key for *_, key in candidates]):
        told.update(session.scalars(select(Notification.key).where(condition)))
    fresh = [candidate for candidate in candidates if candidate[3] not in told]
    if not fresh:
        return 0
    names = dict(session.execute(select(Window.id, Window.name)
                                 .where(Window.id.in_({r.window_id for _, _, r, _ in fresh}))).all())
    written = 0
    for event, title, rectification, key in fresh:
        written += outbox.post(session, settings, outbox.Post(
            event=event, key=key,
            title=title.format(window=names.get(rectification.window_id, ""), due=when(settings, rectification.due_at)),
            lines=(case_line(session, settings, rectification),), window_id=rectification.window_id,
            audience=("window", "supervisor"), path=f"/rectifications/{rectification.id}",
        ), now) is not None
    return written


def finished_periods(settings: Settings, now: datetime) -> list[str]:
    """The last finished ISO week and month before `now`, in the organisation's zone: 2026-W48, 2026-11."""
    local = now.astimezone(settings.zone)
    last_week = (local - timedelta(days=7)).isocalendar()
    month = shift(parse_period(f"{local.year}-{local.month:02d}", settings.zone), -1, settings.zone)
    return [f"{last_week.year}-W{last_week.week:02d}", month.text]


def alerts(session: Session, settings: Settings, now: datetime) -> int:
    """Indicator alerts of the last finished week and month, each period scanned once."""
    from callbackd.measure import publication, rankings

    beat = session.get(Heartbeat, ALERTS_SCANNED)
    done = list((beat.detail or {}).get("periods", [])) if beat is not None else []
    wanted = [period for period in finished_periods(settings, now) if period not in done]
    if not wanted:
        return 0
    written = 0
    ids = {name: window_id for window_id, name in session.execute(select(Window.id, Window.name))}
    for period in wanted:
        ranking = rankings.ranking_for(session, settings, period)
        for figures in publication.indicators_for(session, settings, ranking, now):
            if not figures.alerts:
                continue
            written += outbox.post(session, settings, outbox.Post(
                event="indicator.alert", key=f"indicator.alert:{period}:{figures.window}",
                title=f"【指标预警】{figures.window}（{ranking.period.label}）", lines=tuple(figures.alerts),
                window_id=ids.get(figures.window), audience=("supervisor", "window"),
                path=f"/rankings/{period}",
            ), now) is not None
    # an upsert: two deliverers scanning at once leave one row (the posts' keys keep each alert to one message)
    heartbeats.beat(session, ALERTS_SCANNED, now, periods=(done + wanted)[-12:])
    return written
