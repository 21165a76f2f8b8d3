"""Rectification notices (整改通知单): the written notice a problem found in a callback sends to the window (for a
repair, the repair staff, within 24 hours: `[rectification] due_hours_by_case_type`).

A notice is issued once per rectification, by a supervisor, and keeps its number: ZG-<year>-<sequence>, the
sequence counting from 1 each year (the year of issue, in the organisation's zone), unique by the database's own
constraint (two supervisors issuing at once: one retries with the next number). It shows what the window must act
on as every window-facing output shows it (`rectify.view`, masked): the window, the case number and matter (hidden
for a confidential case type), the problem (the answers and the suggestion, phone numbers starred), the deadline
and the issuing unit — never the applicant's name or number.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callbackd.contact import rectify
from callbackd.core.phones import without_numbers
from callbackd.core.settings import Settings
from callbackd.store import audit
from callbackd.store.models import RectificationNotice

PREFIX = "ZG"
TRIES = 5  # numbers taken by concurrent issuers before one is free


def number_for(year: int, sequence: int) -> str:
    """A notice's number: ZG-2026-000123."""
    return f"{PREFIX}-{year}-{sequence:06d}"


def notice_of(session: Session, rectification_id: int) -> RectificationNotice | None:
    """The notice issued for a rectification, None before one is."""
    return session.scalar(select(RectificationNotice).where(RectificationNotice.rectification_id == rectification_id))


def issue(session: Session, settings: Settings, rectification_id: int, now: datetime) -> RectificationNotice:
    """The rectification's notice: issued now with the year's next number (audited), or the one issued before."""
    existing = notice_of(session, rectification_id)
    if existing is not None:
        return existing
    rectify.get(session, rectification_id)  # NotFoundError for none
    year = now.astimezone(settings.zone).year
    for _ in range(TRIES):
        sequence = (session.scalar(select(func.max(RectificationNotice.sequence))
                                   .where(RectificationNotice.year == year)) or 0) + 1
        notice = RectificationNotice(rectification_id=rectification_id, year=year, sequence=sequence,
                                     number=number_for(year, sequence), issued_at=now, issued_by=audit.actor())
        try:
            with session.begin_nested():
                session.add(notice)
                session.flush()
        except IntegrityError:
            found = notice_of(session, rectification_id)  # issued meanwhile by someone else
            if found is not None:
                return found
            continue
        audit.record(session, "rectification.notice", notice.number, rectification=rectification_id)
        return notice
    raise rectify.RectificationError("整改通知单编号冲突，请稍后重试")


def content(session: Session, settings: Settings, rectification_id: int, now: datetime,
            window_ids: frozenset[int] | None = None) -> dict[str, Any] | None:
    """What the printed notice shows, None when the rectification is missing, another window's (for a window head,
    `window_ids`) or has no notice yet."""
    notice = notice_of(session, rectification_id)
    shown = rectify.view(session, settings, rectification_id, now, window_ids=window_ids, masked=True)
    if notice is None or shown is None:
        return None
    zone = settings.zone
    return {
        "number": notice.number,
        "issued_at": notice.issued_at.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "issuer": settings.organisation,
        "window": shown["window"],
        "case_id": shown["case_id"] or "—",
        "case_type": shown["case_type"] or "—",
        "matter": shown["matter"] or "—",
        "trigger": shown["trigger"],
        "reason": without_numbers(shown["reason"]),
        "answers": {dimension: without_numbers(str(answer)) for dimension, answer in shown["answers"].items()},
        "suggestion": shown["suggestion"],
        "opened_at": datetime.fromisoformat(shown["opened_at"]).astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "due_at": datetime.fromisoformat(shown["due_at"]).astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "due_hours": settings.rectification.due_hours_by_case_type.get(shown["case_type"] or ""),
    }
