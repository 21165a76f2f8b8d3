"""The calling policy every channel obeys: when an attempt may be placed.

- only inside calling hours (09:00-12:00, 14:00-20:00 by default) on working days, from the working-day
  calendar (holidays and 调休 make-up days);
- retries spaced at least `retry_minutes` apart, at most `attempts_per_day` a day, then from the next
  working day's first calling hour;
- per number, whatever the round or window: at most one attempt a minute and `per_number_per_day` a day;
- per number and channel, the channel's own limits (`NumberLimit`: a provider's flow control, such as 1 a minute,
  5 an hour and 20 a day): the strictest of all that apply decides.
"""

from __future__ import annotations

import time as time_module
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callbackd.api.channels import NumberLimit
from callbackd.core.settings import Settings
from callbackd.core.workdays import Calendar, load_schedule
from callbackd.store.db import among
from callbackd.store.models import Attempt, Callback


@lru_cache(maxsize=8)
def _calendar(zone: str, hours: tuple[tuple[time, time], ...], holidays: Path, stamp: float) -> Calendar:
    from zoneinfo import ZoneInfo

    # `stamp` (the file's modification time) makes an edited holidays.toml take effect without a restart
    return Calendar(ZoneInfo(zone), sorted(hours), load_schedule(holidays))


def calendar_for(settings: Settings) -> Calendar:
    """The working-day calendar of `settings`, read once per holidays file; whether the file changed is looked at
    once a second at most (every attempt placed, every rectification opened asks)."""
    key = (settings.config_dir, settings.calendar.holidays_file, settings.timezone,
           tuple(settings.calendar.calling_hours))
    checked = time_module.monotonic()
    recent = _recent.get(key)
    if recent is not None and checked - recent[0] < 1.0:
        return recent[1]
    path = settings.config_file(settings.calendar.holidays_file)
    stamp = path.stat().st_mtime if path.exists() else 0.0
    calendar = _calendar(settings.timezone, key[3], path, stamp)
    _recent[key] = (checked, calendar)
    return calendar


_recent: dict[tuple[Any, ...], tuple[float, Calendar]] = {}


class CallingPolicy:
    """When attempts may be placed, for one set of settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.rules = settings.dispatch
        self.calendar = calendar_for(settings)

    def first_slot(self, now: datetime) -> datetime:
        """The earliest time at or after `now` inside calling hours on a working day."""
        return self.calendar.next_calling_slot(now)

    def next_day_slot(self, now: datetime) -> datetime:
        """The first calling hour of the next working day after `now`'s local day."""
        local = now.astimezone(self.calendar.zone)
        tomorrow = datetime.combine(local.date() + timedelta(days=1), time(0, 0), self.calendar.zone)
        return self.calendar.next_calling_slot(tomorrow)

    def day_start(self, now: datetime) -> datetime:
        local = now.astimezone(self.calendar.zone)
        return datetime.combine(local.date(), time(0, 0), self.calendar.zone)

    def retry_at(self, session: Session, callback_id: int, channel: str, now: datetime) -> datetime:
        """When the next try of a callback on `channel` may go: spaced, capped per day, in calling hours."""
        today = session.scalar(
            select(func.count()).select_from(Attempt).where(
                Attempt.callback_id == callback_id, Attempt.channel == channel,
                Attempt.started_at >= self.day_start(now),
            )
        ) or 0
        if today >= self.rules.attempts_per_day:
            return self.next_day_slot(now)
        return self.first_slot(now + timedelta(minutes=self.rules.retry_minutes))

    def holds(self, session: Session, phones: Iterable[str], now: datetime,
              limits: Mapping[str, Sequence[NumberLimit]] | None = None) -> NumberHolds:
        """The recent attempts to each of `phones`, read at once, to decide attempt after attempt which may go now
        under the core's per-number rules and each channel's own `limits` (channel name -> its number limits)."""
        own = {name: tuple(found) for name, found in (limits or {}).items() if found}
        wanted = set(phones)
        recent: dict[str, list[tuple[str, datetime]]] = {}
        if wanted and self.calendar.in_calling_hours(now):
            longest = max((limit.seconds for found in own.values() for limit in found), default=0)
            since = min(self.day_start(now), now - timedelta(seconds=longest))
            for among_phones in among(session, Callback.phone, sorted(wanted)):
                rows = session.execute(
                    select(Callback.phone, Attempt.channel, Attempt.started_at)
                    .join(Callback, Callback.id == Attempt.callback_id)
                    .where(among_phones, Attempt.started_at.is_not(None), Attempt.started_at >= since)
                ).all()
                for phone, channel, started in rows:
                    if started is not None:
                        started = started if started.tzinfo else started.replace(tzinfo=now.tzinfo)
                        recent.setdefault(phone, []).append((channel, started))
        return NumberHolds(self, now, recent, own)


class NumberHolds:
    """Per number, whatever the round or window: the calling hours, at most `per_number_per_day` attempts a day
    and `per_number_gap_seconds` between two; and per number and channel, the channel's own limits (a provider's
    频率限制: at most so many within so long). `take` counts an attempt placed now."""

    def __init__(self, policy: CallingPolicy, now: datetime, recent: dict[str, list[tuple[str, datetime]]],
                 limits: Mapping[str, tuple[NumberLimit, ...]]) -> None:
        self.policy = policy
        self.now = now
        self.recent = recent  # phone -> (channel, started at) of its attempts since the earliest window begins
        self.limits = limits

    def next_for(self, phone: str, channel: str = "") -> datetime | None:
        """None when an attempt to `phone` on `channel` may go now, else the earliest time it may."""
        policy, now = self.policy, self.now
        if not policy.calendar.in_calling_hours(now):
            return policy.first_slot(now)
        recent = self.recent.get(phone, [])
        day_start = policy.day_start(now)
        today = [started for _, started in recent if started >= day_start]
        if len(today) >= policy.rules.per_number_per_day:
            return policy.next_day_slot(now)
        free = now
        gap = timedelta(seconds=policy.rules.per_number_gap_seconds)
        if today:
            free = max(free, max(today) + gap)
        for limit in self.limits.get(channel, ()):
            window = timedelta(seconds=limit.seconds)
            inside = sorted(started for name, started in recent if name == channel and started > now - window)
            if len(inside) >= limit.count:  # the oldest that must leave the window before one more may go
                free = max(free, inside[len(inside) - limit.count] + window)
        return None if free <= now else policy.first_slot(free)

    def take(self, phone: str, channel: str = "") -> None:
        self.recent.setdefault(phone, []).append((channel, self.now))
