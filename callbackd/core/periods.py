"""Periods as supervisory units write them: ISO weeks (2026-W48), months (2026-11), quarters (2026-Q4) and years,
with their bounds in the organisation's zone."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from callbackd.core.errors import CallbackdError


class PeriodError(CallbackdError):
    """A period or week written in a way callbackd does not read."""


_WEEK = re.compile(r"^(\d{4})-W(\d{1,2})$")
_MONTH = re.compile(r"^(\d{4})-(\d{1,2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR = re.compile(r"^(\d{4})$")
_HINT = "such as 2026-W48, 2026-11, 2026-Q4 or 2026"
# the years a period may fall in: anything else is a typing mistake (and year 1's bounds have no UTC instant)
FIRST_YEAR, LAST_YEAR = 1900, 2999


@dataclass(frozen=True)
class Period:
    """A scoring period: an ISO week, a month, a quarter or a year, in the organisation's zone."""

    text: str
    kind: str  # week, month, quarter, year
    start: datetime
    end: datetime  # exclusive

    @property
    def label(self) -> str:
        local = self.start
        if self.kind == "week":
            iso = local.date().isocalendar()
            return f"{iso.year}年第{iso.week}周"
        if self.kind == "month":
            return f"{local.year}年{local.month}月"
        if self.kind == "quarter":
            return f"{local.year}年第{(local.month - 1) // 3 + 1}季度"
        return f"{local.year}年"


def parse_week(text: str) -> tuple[str, date]:
    """An ISO week written YYYY-Www: its canonical spelling and its Monday."""
    match = _WEEK.match(text.strip().upper())
    try:
        if match is None:
            raise ValueError
        if not FIRST_YEAR <= int(match[1]) <= LAST_YEAR:
            raise ValueError
        monday = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    except (ValueError, OverflowError):
        raise PeriodError(f"week {text!r} is not an ISO week such as 2026-W48") from None
    return f"{match[1]}-W{int(match[2]):02d}", monday


def add_months(day: date, months: int) -> date:
    """The first of the month `months` after `day`'s month."""
    month = day.month - 1 + months
    return date(day.year + month // 12, month % 12 + 1, 1)


def parse_period(text: str, zone: ZoneInfo) -> Period:
    """Read 2026-W48, 2026-11, 2026-Q4 or 2026 as local bounds in `zone`."""
    value = text.strip().upper()
    try:
        if _WEEK.match(value):
            value, first = parse_week(value)
            last, kind = first + timedelta(days=7), "week"
        elif match := _MONTH.match(value):
            first = date(int(match[1]), int(match[2]), 1)
            last, kind = add_months(first, 1), "month"
            value = f"{first:%Y-%m}"
        elif match := _QUARTER.match(value):
            first = date(int(match[1]), 3 * int(match[2]) - 2, 1)
            last, kind = add_months(first, 3), "quarter"
        elif match := _YEAR.match(value):
            first, last, kind = date(int(match[1]), 1, 1), date(int(match[1]) + 1, 1, 1), "year"
        else:
            raise ValueError
        if not FIRST_YEAR <= first.year <= LAST_YEAR:
            raise ValueError
    except (ValueError, OverflowError, PeriodError):
        raise PeriodError(f"period {text!r} is not a week, month, quarter or year {_HINT}") from None
    return Period(value, kind, datetime.combine(first, datetime.min.time(), zone),
                  datetime.combine(last, datetime.min.time(), zone))


def shift(period: Period, steps: int, zone: ZoneInfo) -> Period:
    """The period of the same kind `steps` periods after `period` (before it when negative)."""
    first = period.start.date()
    if period.kind == "week":
        iso = (first + timedelta(weeks=steps)).isocalendar()
        text = f"{iso.year}-W{iso.week:02d}"
    elif period.kind == "month":
        text = f"{add_months(first, steps):%Y-%m}"
    elif period.kind == "quarter":
        moved = add_months(first, 3 * steps)
        text = f"{moved.year}-Q{(moved.month - 1) // 3 + 1}"
    else:
        text = f"{first.year + steps}"
    return parse_period(text, zone)


def months_of(period: Period, zone: ZoneInfo) -> list[Period]:
    """The months a period spans (one for a month; none for a week, which may straddle two)."""
    if period.kind == "week":
        return []
    months = []
    month = parse_period(f"{period.start:%Y-%m}", zone)
    while month.start < period.end:
        months.append(month)
        month = shift(month, 1, zone)
    return months
