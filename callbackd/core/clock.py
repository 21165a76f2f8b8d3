"""The clock. `CALLBACKD_NOW` (ISO 8601 with an offset) fixes it for every command: tests and rehearsals.

`CALLBACKD_CLOCK_OFFSET` (seconds, may be negative) shifts a clock that keeps running instead: workers, beat and
the web app of a rehearsal all live on, say, a Monday morning while time passes as usual. A fixed time wins.

Either makes the command a rehearsal: the audit trail records the real time (`wall_clock`) and marks its entries
(`rehearsing`).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from callbackd.core.errors import ConfigError


def now() -> datetime:
    """The current instant, aware, in UTC."""
    fixed = os.environ.get("CALLBACKD_NOW", "").strip()
    if not fixed:
        return datetime.now(UTC) + _offset()
    try:
        value = datetime.fromisoformat(fixed)
    except ValueError:
        raise ConfigError(
            f"CALLBACKD_NOW={fixed!r} is not an ISO 8601 time such as 2026-11-24T10:00:00+08:00"
        ) from None
    if value.tzinfo is None:
        raise ConfigError(f"CALLBACKD_NOW={fixed!r} needs an offset, such as +08:00")
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+08:00 has no UTC equivalent
        raise ConfigError(f"CALLBACKD_NOW={fixed!r} is out of range") from None


def wall_clock() -> datetime:
    """The real current instant, aware, in UTC, whatever `CALLBACKD_NOW` or `CALLBACKD_CLOCK_OFFSET` say."""
    return datetime.now(UTC)


def rehearsing() -> bool:
    """Whether `CALLBACKD_NOW` or `CALLBACKD_CLOCK_OFFSET` moves this process's clock away from the real one."""
    return any(os.environ.get(name, "").strip() for name in ("CALLBACKD_NOW", "CALLBACKD_CLOCK_OFFSET"))


def _offset() -> timedelta:
    shift = os.environ.get("CALLBACKD_CLOCK_OFFSET", "").strip()
    if not shift:
        return timedelta(0)
    try:
        return timedelta(seconds=float(shift))
    except (ValueError, OverflowError):
        raise ConfigError(f"CALLBACKD_CLOCK_OFFSET={shift!r} is not a number of seconds such as -3600") from None
