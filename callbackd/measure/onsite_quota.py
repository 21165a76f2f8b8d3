"""The on-site form quota (现场征求意见表): `[onsite] per_window_weekly` forms per window per week.

- A period's weeks are the ISO weeks whose Monday falls in it and has come (today or earlier): a week is one, a
  month four or five, a year 52 or 53; a period still running counts the weeks begun so far. These are the weeks
  rounds count in (a round belongs to the period of its Monday), so a week straddling two months is November's
  when its Monday is, with every form of it.
- 现场征求完成率 = the window's on-site forms (contacts of source onsite, by their time in the organisation's
  zone; a form still lacking a required signature (签名确认) is not one yet) in those weeks / (per_window_weekly ×
  those weeks). It may pass 100%: a week's surplus shows, and the alert below still catches a short week.
- Alert: a window short of the quota in each of the two most recent complete weeks (as of now, or of the end of
  the period's last week for a period over): for a week period that week and the one before. A window callbackd
  learnt of (its first ledger import) after the earlier of those weeks began is not flagged yet: it cannot have
  been asked for forms it was not known to owe.
A quota of 0 gives neither rate nor alert.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.core.periods import Period
from callbackd.core.settings import Settings
from callbackd.store.models import Contact

WEEK = timedelta(days=7)
SHORT_WEEKS = 2  # weeks running a window must fall short in to be flagged


@dataclass(frozen=True)
class OnsiteQuota:
    """A window's on-site forms in a period's weeks against its quota."""

    forms: int
    quota: int


def mondays(period: Period, now: datetime) -> list[date]:
    """The Mondays of the ISO weeks that count for `period`: in it, and come by `now`."""
    today = now.astimezone(period.start.tzinfo).date()
    first = period.start.date()
    day = first + timedelta(days=(7 - first.weekday()) % 7)  # the first Monday on or after the start
    out = []
    while datetime.combine(day, datetime.min.time(), period.start.tzinfo) < period.end and day <= today:
        out.append(day)
        day += WEEK
    return out


def complete_weeks(period: Period, now: datetime, count: int = SHORT_WEEKS) -> list[date]:
    """The Mondays of the `count` most recent weeks complete by `now`, or by the end of the period's last week
    when that is earlier; the latest first."""
    today = now.astimezone(period.start.tzinfo).date()
    last_day = (period.end - timedelta(days=1)).date()
    last_monday = last_day - timedelta(days=last_day.weekday())  # the period's last week
    this_monday = today - timedelta(days=today.weekday())  # the week under way: not complete
    newest = min(last_monday, this_monday - WEEK)
    return [newest - WEEK * back for back in range(count)]


def forms_by_week(session: Session, settings: Settings, weeks: list[date]) -> dict[tuple[int, date], int]:
    """On-site forms per (window id, Monday of its week), for the weeks starting on these Mondays."""
    if not weeks:
        return {}
    zone = settings.zone
    start = datetime.combine(min(weeks), datetime.min.time(), zone)
    end = datetime.combine(max(weeks) + WEEK, datetime.min.time(), zone)
    wanted = set(weeks)
    counts: dict[tuple[int, date], int] = {}
    for window_id, at in session.execute(
        select(Contact.window_id, Contact.contacted_at)
        .where(Contact.source == "onsite", Contact.contacted_at >= start, Contact.contacted_at < end,
               Contact.unsigned.is_(False))
    ):
        day = at.astimezone(zone).date()
        monday = day - timedelta(days=day.weekday())
        if monday in wanted:
            counts[window_id, monday] = counts.get((window_id, monday), 0) + 1
    return counts


def quota_figures(
    session: Session, settings: Settings, period: Period, now: datetime, window_ids: list[int]
) -> dict[int, OnsiteQuota]:
    """Per window id, its forms in the period's weeks and its quota for them; empty when there is no quota."""
    weekly = settings.onsite.per_window_weekly
    if not weekly:
        return {}
    weeks = mondays(period, now)
    counts = forms_by_week(session, settings, weeks)
    forms: dict[int, int] = {}
    for (window_id, _), count in counts.items():
        forms[window_id] = forms.get(window_id, 0) + count
    return {window_id: OnsiteQuota(forms.get(window_id, 0), weekly * len(weeks)) for window_id in window_ids}


def short_windows(session: Session, settings: Settings, period: Period, now: datetime,
                  known: dict[int, datetime]) -> list[int]:
    """The windows (of `known`: window id -> when callbackd learnt of it) short of the weekly quota in each of the
    two most recent complete weeks (see the module)."""
    weekly = settings.onsite.per_window_weekly
    if not weekly:
        return []
    weeks = complete_weeks(period, now)
    since = datetime.combine(min(weeks), datetime.min.time(), settings.zone)
    counts = forms_by_week(session, settings, weeks)
    return [window_id for window_id, created in known.items()
            if created <= since and all(counts.get((window_id, monday), 0) < weekly for monday in weeks)]


def alert_text(settings: Settings) -> str:
    return f"连续{SHORT_WEEKS}周现场征求意见表不足{settings.onsite.per_window_weekly}份"
