"""What the dashboard shows beside the scores: this week's round by window, rectifications due, category deadlines
at risk and the channels' last day. Counts and names of windows only: nothing here identifies an applicant.

Each function takes the windows a viewer may see (`None` for all), so a window head's dashboard is the same
computation restricted to their windows.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from callbackd.contact.rectify import is_overdue
from callbackd.core.phones import without_numbers
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FINAL_CALLBACK
from callbackd.core.workdays import Calendar
from callbackd.store.models import Attempt, Callback, Case, Contact, Rectification, Round, Window

# how a callback's state counts on the dashboard's round table
ROUND_COLUMNS = ("selected", "completed", "partial", "unreachable", "open", "other")


def current_round(session: Session, week: str) -> Round | None:
    """The round in force for an ISO week (YYYY-Www), if one was opened."""
    return session.scalar(select(Round).where(Round.active_week == week))


def window_names(session: Session, windows: Collection[int]) -> dict[int, str]:
    """The names of these windows, by id."""
    if not windows:
        return {}
    return {window_id: name for window_id, name in
            session.execute(select(Window.id, Window.name).where(Window.id.in_(list(windows))))}


def round_progress(session: Session, round_id: int, windows: Collection[int] | None = None) -> list[dict[str, Any]]:
    """Per window of a round: callbacks selected, completed, partial, unreachable, still open and otherwise ended
    (refused, opted out, invalid), by window name."""
    query = (
        select(Window.id, Window.name, Callback.status, func.count())
        .join(Window, Window.id == Callback.window_id)
        .where(Callback.round_id == round_id, Callback.follow_up == 0)
        .group_by(Window.id, Window.name, Callback.status)
    )
    if windows is not None:
        query = query.where(Callback.window_id.in_(list(windows)))
    rows: dict[int, dict[str, Any]] = {}
    for window_id, name, status, count in session.execute(query):
        row = rows.setdefault(window_id, {"window_id": window_id, "window": name, **dict.fromkeys(ROUND_COLUMNS, 0)})
        row["selected"] += count
        if status in ("completed", "partial", "unreachable"):
            row[status] += count
        elif status in FINAL_CALLBACK:
            row["other"] += count
        else:
            row["open"] += count
    return sorted(rows.values(), key=lambda r: (-r["open"], r["window"]))


def rectifications_due(
    session: Session, calendar: Calendar, now: datetime, windows: Collection[int] | None = None
) -> dict[str, int]:
    """Rectifications awaiting the window: overdue, due within the next working day, later; and awaiting
    verification, and escalated."""
    zone = calendar.zone
    soon = datetime.combine(calendar.add_workdays(now.astimezone(zone).date(), 1), datetime.max.time(), zone)
    query = select(Rectification.status, Rectification.due_at, Rectification.follow_up_failed_at).where(
        Rectification.status.in_(("open", "responded", "escalated")))
    if windows is not None:
        query = query.where(Rectification.window_id.in_(list(windows)))
    counts = dict.fromkeys(("overdue", "due_soon", "open", "responded", "escalated"), 0)
    for status, due_at, failed_at in session.execute(query):
        if is_overdue(status, due_at, failed_at, now):
            counts["overdue"] += 1
        elif status != "open":
            counts[status] += 1
        elif due_at < now:
            counts["overdue"] += 1
        elif due_at <= soon:
            counts["due_soon"] += 1
        else:
            counts["open"] += 1
    return counts


def deadlines_at_risk(
    session: Session, settings: Settings, calendar: Calendar, now: datetime, windows: Collection[int] | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Callbacks a category rule requires by a deadline (complaints within 3 working days, ...) that are not done
    and are overdue or due by the end of the next working day: the window, the rule, the deadline, the state."""
    soon = datetime.combine(calendar.add_workdays(now.astimezone(settings.zone).date(), 1), datetime.max.time(),
                            settings.zone)
    query = (
        select(Callback.id, Window.name, Callback.rule, Callback.due_at, Callback.status)
        .join(Window, Window.id == Callback.window_id)
        .where(Callback.rule.is_not(None), Callback.due_at.is_not(None), Callback.due_at <= soon,
               Callback.status.not_in(FINAL_CALLBACK), Callback.follow_up == 0)
        .order_by(Callback.due_at)
        .limit(limit)
    )
    if windows is not None:  # a window head: not even that a report (举报) about their window awaits its callback
        query = query.where(Callback.window_id.in_(list(windows)))
        confidential = list(settings.policies.confidential_case_types)
        if confidential:
            query = query.join(Case, Case.id == Callback.case_id).where(Case.case_type.not_in(confidential))
    return [{"callback": callback_id, "window": name, "rule": rule, "due_at": due_at, "status": status,
             "overdue": due_at is not None and due_at < now}
            for callback_id, name, rule, due_at, status in session.execute(query)]


def channel_health(session: Session, now: datetime, hours: int = 24) -> list[dict[str, Any]]:
    """Per channel, the attempts that ended in the last `hours`: how many, by outcome, and the failed share."""
    rows: dict[str, dict[str, Any]] = {}
    for channel, status, count in session.execute(
        select(Attempt.channel, Attempt.status, func.count())
        .where(Attempt.ended_at >= now - timedelta(hours=hours))
        .group_by(Attempt.channel, Attempt.status)
    ):
        row = rows.setdefault(channel, {"channel": channel, "ended": 0, "outcomes": {}, "failed": 0})
        row["ended"] += count
        row["outcomes"][status] = count
        row["failed"] += count if status == "failed" else 0
    for row in rows.values():
        row["failed_rate"] = round(row["failed"] / row["ended"], 4) if row["ended"] else None
    return sorted(rows.values(), key=lambda r: r["channel"])


def suggestions(
    session: Session, settings: Settings, window_id: int, since: datetime, *, for_window: bool, limit: int = 100,
) -> list[dict[str, Any]]:
    """A window's suggestions (意见建议) since a time, newest first: when, from which source, what was said. Never
    who said it; for the window's own head, nothing from a confidential case type (举报) at all."""
    query = (
        select(Contact.contacted_at, Contact.source, Contact.suggestion, Case.case_type)
        .outerjoin(Callback, Callback.id == Contact.callback_id)
        .outerjoin(Case, Case.id == Callback.case_id)
        .where(Contact.window_id == window_id, Contact.contacted_at >= since, Contact.suggestion != "")
        .order_by(Contact.contacted_at.desc())
        .limit(limit)
    )
    confidential = list(settings.policies.confidential_case_types)
    if for_window and confidential:
        query = query.where(or_(Case.case_type.is_(None), Case.case_type.not_in(confidential)))
    return [{"at": at, "source": source, "text": without_numbers(text) if for_window else text}
            for at, source, text, _ in session.execute(query)]
