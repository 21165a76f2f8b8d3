"""限时办结: whether cases were resolved within the time limit their ledger gave, in working days, and the overdue
cases (超期件) of a window and period.

The rules, as the README states them:
- A case's limit is its 承诺时限 when the ledger gives one, else its 法定时限, in working days. A case with neither
  (every case imported before ledgers carried them) counts nowhere: neither in 按时办结率 nor as 超期件.
- The limit starts on the working day after the day of acceptance (受理当日不计), as the usual rule has it: the
  due day is `Calendar.add_workdays(accepted day, N)`, holidays skipped and 调休 make-up days counted. A case
  accepted on a holiday starts on the next working day too.
- A case is resolved in time when at most N working days lie after its day of acceptance up to its day of
  resolution (local days, by 办结时间). One resolved on the weekend after its due day has used no further working
  day and is in time; on the next working day it is one working day over.
- 按时办结率 of a window and period = cases resolved in time / cases resolved with a limit, both in the period by
  办结时间.
- 超期件 of a period: the cases resolved in it after their limit (超期办结, the working days over counted to the
  day of resolution), and the cases still open at its end, or at today for a period not over (not resolved, or
  resolved only after it), already past their limit by that day (超期未办结, counted to that day). A case late and
  open for months is thus in the list of every month it stayed open, and finally in its month of resolution.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from callbackd.core.periods import Period
from callbackd.core.settings import Settings
from callbackd.core.workdays import Calendar
from callbackd.store.models import Case, Window

PROMISED, STATUTORY = "承诺时限", "法定时限"
RESOLVED_LATE, STILL_OPEN = "超期办结", "超期未办结"
HIDDEN = "（保密）"


def limit_of(promised: int | None, statutory: int | None) -> tuple[int, str] | None:
    """The limit a case is held to, in working days, and which one it is: the promised one when given."""
    if promised is not None:
        return promised, PROMISED
    if statutory is not None:
        return statutory, STATUTORY
    return None


def due_day(calendar: Calendar, accepted: date, days: int) -> date:
    """The last day a case accepted on `accepted` may be resolved on: `days` working days after it, that day not
    counted."""
    return calendar.add_workdays(accepted, days)


class WorkingDays:
    """Working days between days from `first` to `last`, counted once as a running total: many cases' days at
    the price of one walk over the calendar."""

    def __init__(self, calendar: Calendar, first: date, last: date) -> None:
        self.first = first
        self.totals = [0]
        day = first
        while day < last:
            day += timedelta(days=1)
            self.totals.append(self.totals[-1] + calendar.is_workday(day))

    def after(self, start: date, end: date) -> int:
        """Working days in (start, end] (negative when `end` is before `start`)."""
        return self.totals[(end - self.first).days] - self.totals[(start - self.first).days]


@dataclass(frozen=True)
class OverdueCase:
    """One 超期件 as a window may see it: never the applicant."""

    window: str
    case_no: str
    matter: str
    case_type: str
    limit_days: int
    limit_kind: str  # 承诺时限, 法定时限
    accepted_on: date
    due_on: date
    resolved_at: datetime | None  # None while open
    days_over: int  # working days past the due day, to the day of resolution or the period's last day
    state: str  # 超期办结, 超期未办结

    def masked(self, confidential: Collection[str]) -> OverdueCase:
        """The case as exports and window heads see it: for a confidential case type (举报) neither its number nor
        its matter, which could point at the informant."""
        return replace(self, case_no=HIDDEN, matter=HIDDEN) if self.case_type in confidential else self

    def as_dict(self) -> dict[str, Any]:
        return {
            "window": self.window, "case_no": self.case_no, "matter": self.matter, "case_type": self.case_type,
            "limit_days": self.limit_days, "limit_kind": self.limit_kind, "accepted_on": self.accepted_on.isoformat(),
            "due_on": self.due_on.isoformat(),
            "resolved_at": None if self.resolved_at is None else self.resolved_at.isoformat(),
            "days_over": self.days_over, "state": self.state,
        }


@dataclass
class WindowTimeLimits:
    """A window's 限时办结 figures for one period."""

    resolved: int = 0  # resolved in the period, with a limit
    on_time: int = 0  # of those, resolved in time
    overdue: list[OverdueCase] = field(default_factory=list)  # the period's 超期件, oldest due first


def evaluate(
    session: Session, settings: Settings, period: Period, now: datetime, *, window_id: int | None = None,
    calendar: Calendar | None = None,
) -> dict[int, WindowTimeLimits]:
    """Per window id, the period's 限时办结 figures and 超期件 (oldest due first); only windows with a case
    that has a limit appear. `window_id` limits it to one window."""
    calendar = calendar or Calendar.from_settings(settings)
    zone = settings.zone
    start_day = period.start.date()
    last_day = (period.end - timedelta(days=1)).date()  # bounds are local midnights
    today = now.astimezone(zone).date()
    open_until = min(last_day, today)  # open cases are judged on this day
    query = (
        select(Case.window_id, Window.name, Case.case_no, Case.matter, Case.case_type, Case.accepted_at,
               Case.resolved_at, Case.resolved, Case.promised_days, Case.statutory_days)
        .join(Window, Window.id == Case.window_id)
        .where(or_(Case.promised_days.is_not(None), Case.statutory_days.is_not(None)),
               Case.accepted_at < period.end,
               or_(Case.resolved.is_(False), Case.resolved_at.is_(None), Case.resolved_at >= period.start))
    )
    if window_id is not None:
        query = query.where(Case.window_id == window_id)
    rows = session.execute(query).all()
    out: dict[int, WindowTimeLimits] = {}
    if not rows:
        return out
    accepted_days = [row.accepted_at.astimezone(zone).date() for row in rows]
    resolved_days = [row.resolved_at.astimezone(zone).date() for row in rows if row.resolved_at is not None]
    counter = WorkingDays(calendar, min(min(accepted_days), min(resolved_days, default=start_day), start_day),
                          max(max(accepted_days), max(resolved_days, default=today), today, last_day))
    for row, accepted in zip(rows, accepted_days, strict=True):
        limit = limit_of(row.promised_days, row.statutory_days)
        assert limit is not None  # the query asked for one
        days, kind = limit
        resolved_day = row.resolved_at.astimezone(zone).date() if row.resolved and row.resolved_at else None
        figures = out.setdefault(row.window_id, WindowTimeLimits())
        if resolved_day is not None and start_day <= resolved_day <= last_day:
            over = counter.after(accepted, resolved_day) - days
            figures.resolved += 1
            figures.on_time += over <= 0
            state = RESOLVED_LATE
        elif open_until >= start_day and (resolved_day is None or resolved_day > last_day):
            over = counter.after(accepted, open_until) - days if accepted <= open_until else 0
            state = STILL_OPEN
        else:
            continue
        if over > 0:
            figures.overdue.append(OverdueCase(
                window=row.name, case_no=row.case_no, matter=row.matter, case_type=row.case_type, limit_days=days,
                limit_kind=kind, accepted_on=accepted, due_on=due_day(calendar, accepted, days),
                resolved_at=row.resolved_at if state == RESOLVED_LATE else None, days_over=over, state=state,
            ))
    for figures in out.values():
        figures.overdue.sort(key=lambda case: (case.due_on, case.case_no))
    return out


def overdue_cases(
    session: Session, settings: Settings, period: Period, now: datetime, *, window_id: int | None = None,
) -> list[OverdueCase]:
    """The period's 超期件 of every window (or of one), by window name, then oldest due first."""
    found = evaluate(session, settings, period, now, window_id=window_id)
    return sorted((case for figures in found.values() for case in figures.overdue),
                  key=lambda case: (case.window, case.due_on, case.case_no))
