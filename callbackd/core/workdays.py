"""The working-day calendar (holidays and 调休 make-up days) and calling hours.

Sources, in order, for each year:
1. `config/holidays.toml`, when it gives the year: the official schedule as published (国务院办公厅通知).
2. `chinese-calendar`, for the years it covers (its current release stops at 2026).
3. The `holidays` package's China rules, with a visible `ProvisionalCalendarWarning`: they know the statutory
   holidays but not every make-up day, so the official schedule should be added to `config/holidays.toml`.
A date in any year gets an answer; a deadline crossing the year end never crashes.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import chinese_calendar

from callbackd.core.errors import CalendarError
from callbackd.core.settings import Settings, read_toml

if TYPE_CHECKING:
    import holidays as holidays_package


class ProvisionalCalendarWarning(UserWarning):
    """A year's working days come from generic rules, not the official schedule."""


@dataclass(frozen=True)
class YearSchedule:
    """An official schedule: days off that would be working days, and make-up working days (调休)."""

    holidays: frozenset[date]
    workdays: frozenset[date]


def load_schedule(path: Path) -> dict[int, YearSchedule]:
    """Read `holidays.toml`: `[years.2027]` tables with `holidays = [...]` and `workdays = [...]` dates."""
    if not path.exists():
        return {}
    data = read_toml(path, "holidays", CalendarError)
    unknown = set(data) - {"years"}
    if unknown:
        raise CalendarError(f"{path}: unknown key {sorted(unknown)[0]!r} (expected [years.YYYY] tables)")
    years = data.get("years", {})
    if not isinstance(years, dict):
        raise CalendarError(f"{path}: 'years' must hold [years.YYYY] tables")
    schedule: dict[int, YearSchedule] = {}
    for key, table in years.items():
        if not key.isdigit() or not isinstance(table, dict):
            raise CalendarError(f"{path}: [years.{key}] must be a year such as [years.2027]")
        year = int(key)
        extra = set(table) - {"holidays", "workdays"}
        if extra:
            raise CalendarError(f"{path}: [years.{key}] has unknown key {sorted(extra)[0]!r}")
        days = {name: frozenset(_dates(path, key, name, table.get(name, []))) for name in ("holidays", "workdays")}
        for name, values in days.items():
            stray = [d for d in values if d.year != year]
            if stray:
                raise CalendarError(f"{path}: [years.{key}] {name} lists {stray[0]}, outside {year}")
        both = sorted(days["holidays"] & days["workdays"])
        if both:
            raise CalendarError(f"{path}: [years.{key}] lists {both[0]} both as a holiday and as a working day")
        schedule[year] = YearSchedule(days["holidays"], days["workdays"])
    return schedule


def _dates(path: Path, key: str, name: str, values: object) -> list[date]:
    if not isinstance(values, list):
        raise CalendarError(f"{path}: [years.{key}] {name} must be a list of dates")
    out = []
    for value in values:
        if isinstance(value, date) and not isinstance(value, datetime):
            out.append(value)
            continue
        try:
            # fromisoformat alone would also take 20270101 and week dates such as 2027-W05-6
            if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
                raise ValueError
            out.append(date.fromisoformat(value))
        except ValueError:
            shown = repr(value) if isinstance(value, str) else str(value)
            raise CalendarError(f"{path}: [years.{key}] {name}: {shown} is not a date (YYYY-MM-DD)") from None
    return out


_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass
class Calendar:
    """Working days and calling hours in the organisation's zone."""

    zone: ZoneInfo
    calling_hours: list[tuple[time, time]]
    schedule: dict[int, YearSchedule] = field(default_factory=dict)
    _fallback: dict[int, holidays_package.HolidayBase] = field(default_factory=dict, repr=False)
    _known: dict[date, bool] = field(default_factory=dict, repr=False)  # working or not, as the calendars said

    def __post_init__(self) -> None:
        # next_calling_slot walks the periods in order, so an unsorted list would skip an earlier one
        self.calling_hours = sorted(self.calling_hours)

    @classmethod
    def from_settings(cls, settings: Settings) -> Calendar:
        path = settings.config_file(settings.calendar.holidays_file)
        return cls(settings.zone, list(settings.calendar.calling_hours), load_schedule(path))

    # ---- working days ---------------------------------------------------------------------------------

    def source(self, year: int) -> str:
        """Which source answers for `year`: holidays.toml, chinese-calendar or holidays (provisional)."""
        if year in self.schedule:
            return "holidays.toml"
        try:
            chinese_calendar.is_workday(date(year, 6, 1))
        except NotImplementedError:
            return "holidays (provisional)"
        return "chinese-calendar"

    def is_workday(self, day: date) -> bool:
        """True on a working day: a weekday that is no holiday, or a make-up working day (调休)."""
        official = self.schedule.get(day.year)
        if official is not None:
            if day in official.workdays:
                return True
            if day in official.holidays:
                return False
            return day.weekday() < 5
        known = self._known.get(day)
        if known is None:
            try:
                known = bool(chinese_calendar.is_workday(day))
            except NotImplementedError:
                known = bool(self._provisional(day.year).is_working_day(day))
            self._known[day] = known  # every deadline and calling slot asks again for the same few days
        return known

    def _provisional(self, year: int) -> holidays_package.HolidayBase:
        # imported only for a year no other source covers: the package's import alone costs a command ~60 ms
        import holidays as holidays_package

        if year not in self._fallback:
            warnings.warn(
                f"working days for {year} come from the holidays package's China rules, which may miss make-up "
                f"days; add the official {year} schedule to config/holidays.toml as a [years.{year}] table",
                ProvisionalCalendarWarning,
                stacklevel=3,
            )
            self._fallback[year] = holidays_package.China(years=year)
        return self._fallback[year]

    def next_workday(self, day: date) -> date:
        """`day` itself when it is a working day, else the first working day after it."""
        while not self.is_workday(day):
            day += timedelta(days=1)
        return day

    def add_workdays(self, day: date, count: int) -> date:
        """The date `count` working days after `day` (`day` itself not counted; negative counts go back)."""
        step = 1 if count >= 0 else -1
        remaining = abs(count)
        while remaining:
            day += timedelta(days=step)
            if self.is_workday(day):
                remaining -= 1
        return day

    def workdays_between(self, start: date, end: date) -> int:
        """How many working days `end` lies after `start` (negative before it): the inverse of `add_workdays`.

        Forwards it counts the working days in (start, end]; backwards, minus those in [end, start), so that
        `workdays_between(day, add_workdays(day, n)) == n` also when `day` itself is a holiday.
        """
        if end >= start:
            return sum(self.is_workday(start + timedelta(days=i)) for i in range(1, (end - start).days + 1))
        return -sum(self.is_workday(end + timedelta(days=i)) for i in range((start - end).days))

    # ---- calling hours --------------------------------------------------------------------------------

    def in_calling_hours(self, instant: datetime) -> bool:
        """True when `instant` falls inside calling hours on a working day, in the organisation's zone."""
        local = _aware(instant).astimezone(self.zone)
        if not self.is_workday(local.date()):
            return False
        moment = local.time().replace(tzinfo=None)
        return any(start <= moment < end for start, end in self.calling_hours)

    def next_calling_slot(self, instant: datetime) -> datetime:
        """The earliest instant at or after `instant` inside calling hours on a working day."""
        if not self.calling_hours:
            raise CalendarError("no calling hours are configured ([calendar] calling_hours)")
        local = _aware(instant).astimezone(self.zone)
        day = local.date()
        for _ in range(3660):  # ten years of days: far beyond any real run of holidays
            if self.is_workday(day):
                for start, end in self.calling_hours:
                    opens = datetime.combine(day, start, self.zone)
                    closes = datetime.combine(day, end, self.zone)
                    if local < closes:
                        return max(local, opens).astimezone(instant.tzinfo)
            day += timedelta(days=1)
            local = datetime.combine(day, time(0, 0), self.zone)
        raise CalendarError(f"no working day found in the ten years after {instant.date()}")


def _aware(instant: datetime) -> datetime:
    # a naive time would silently be read in the host's zone, giving each server its own answer
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"naive datetime {instant!r}; calling hours need an aware time (UTC or with an offset)")
    return instant
