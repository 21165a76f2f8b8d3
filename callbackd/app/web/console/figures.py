"""Figures the pages show, computed once and shared by every viewer until the data they read changes.

A year's ranking and indicators take a while to compute (a second or more on a province's database); fifty people
opening the dashboard at nine must not compute them fifty times. Each figure is kept with the data's version (the
newest answer and the newest audit entry: every answer recorded, every correction, import, publication and
rectification step moves one of them) and recomputed when that version moves, or when it is older than `MAX_AGE`
(callbacks closing unreached change indicators without an audit entry). One request computes; the others wait for
it rather than computing the same thing again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callbackd.core.periods import Period, parse_period, shift
from callbackd.core.settings import Settings
from callbackd.measure import indicators, rankings
from callbackd.measure.indicators import WindowIndicators
from callbackd.measure.scoring import Ranking, score_period
from callbackd.store.models import Answer, AuditEvent

T = TypeVar("T")
MAX_AGE = 60.0  # seconds a figure is shown before it is computed again, whatever the version says
LIVE_AGE = 15.0  # for the live panels (a round's progress, channel health), which read no versioned data
KEPT = 256  # figures kept at most; the oldest go first


def version(session: Session) -> tuple[int, int]:
    """The data's version: two primary-key lookups, cheap on any size of database."""
    answers = session.scalar(select(func.max(Answer.id))) or 0
    events = session.scalar(select(func.max(AuditEvent.id))) or 0
    return int(answers), int(events)


@dataclass
class _Kept:
    value: Any
    version: tuple[int, int]
    at: float
    computed_at: float


@dataclass
class Figures:
    """The console's shared figures, by key (`("ranking", "2026")`, ...)."""

    kept: dict[Any, _Kept] = field(default_factory=dict)
    _locks: dict[Any, threading.Lock] = field(default_factory=dict)
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def at(self, session: Session) -> Shared:
        """The figures as of the data's current version (read once, here, for the whole request)."""
        return Shared(self, session, version(session))

    def get(self, key: Any, current: tuple[int, int], compute: Callable[[], T], age: float) -> tuple[T, float]:
        found = self._fresh(key, current, age)
        if found is not None:
            return found.value, found.computed_at
        with self._lock_for(key):
            found = self._fresh(key, current, age)  # another request may have computed it meanwhile
            if found is not None:
                return found.value, found.computed_at
            with self._guard:  # what this replaces is dropped first: two of a province's rankings would be held else
                self._forget_stale(current)
                if key in self.kept and self.kept[key].version <= current:
                    del self.kept[key]
            value = compute()
            now = time.time()
            with self._guard:
                self._forget_stale(current)
                if len(self.kept) >= KEPT:
                    oldest = min(self.kept, key=lambda k: self.kept[k].at)
                    del self.kept[oldest]
                    self._locks.pop(oldest, None)
                self.kept[key] = _Kept(value, current, time.monotonic(), now)
            return value, now

    def _forget_stale(self, current: tuple[int, int]) -> None:
        """Drop the figures no request can be shown any more (an older version of the data, or older than
        `MAX_AGE`): a province's ranking is megabytes, and a console browsing many periods must not keep them all."""
        moment = time.monotonic()
        for key in [k for k, kept in self.kept.items() if kept.version < current or moment - kept.at > MAX_AGE]:
            del self.kept[key]
            if not self._locks.get(key, threading.Lock()).locked():  # one being computed keeps its lock
                self._locks.pop(key, None)

    def _fresh(self, key: Any, current: tuple[int, int], age: float) -> _Kept | None:
        found = self.kept.get(key)
        if found is None or found.version != current or time.monotonic() - found.at > age:
            return None
        return found

    def _lock_for(self, key: Any) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())


@dataclass(frozen=True)
class Shared:
    """The shared figures for one request: the data's version is read once, when the request starts."""

    figures: Figures
    session: Session
    version: tuple[int, int]

    def get(self, key: Any, compute: Callable[[], T], *, live: bool = False) -> tuple[T, float]:
        """The figure for `key` and when it was computed (epoch seconds): kept, or `compute()`d now. A live
        figure also reads data without a version (callbacks' states, attempts): it is kept `LIVE_AGE` seconds."""
        return self.figures.get(key, self.version, compute, LIVE_AGE if live else MAX_AGE)


def ranking_of(figures: Shared, settings: Settings, period: str, *,
               with_questions: bool = False, published: bool = True) -> tuple[Ranking, float]:
    """A period's ranking exactly as `callbackd score --period` computes it (as published, when `published` and
    the period is), shared by every viewer, and when it was computed."""
    session, canonical = figures.session, parse_period(period, settings.zone).text
    if published:
        return figures.get(("ranking", canonical, with_questions),
                           lambda: rankings.ranking_for(session, settings, canonical, with_questions=with_questions))
    return figures.get(("current", canonical, with_questions),
                       lambda: score_period(session, settings, canonical, with_questions=with_questions))


def indicators_of(figures: Shared, settings: Settings, ranking: Ranking,
                  now: datetime) -> list[WindowIndicators]:
    """The indicators and alerts of the ranking's period, per window (`callbackd indicators`)."""
    value, _ = figures.get(("indicators", ranking.period.text),
                           lambda: indicators.compute(figures.session, settings, ranking, now))
    return value


def trend_of(figures: Shared, settings: Settings, latest: Period,
             count: int) -> list[tuple[Period, Ranking]]:
    """The `count` periods of `latest`'s kind up to it, oldest first, each with its ranking."""
    periods = [shift(latest, -back, settings.zone) for back in range(count - 1, -1, -1)]
    return [(period, ranking_of(figures, settings, period.text)[0]) for period in periods]
