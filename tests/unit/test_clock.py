"""The clock: real time, aware and in UTC, unless CALLBACKD_NOW fixes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from callbackd.core import clock
from callbackd.core.errors import ConfigError

pytestmark = pytest.mark.no_database


@pytest.fixture(autouse=True)
def real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CALLBACKD_NOW", raising=False)
    monkeypatch.delenv("CALLBACKD_CLOCK_OFFSET", raising=False)


def test_the_real_clock_is_aware_utc() -> None:
    before = datetime.now(UTC)
    value = clock.now()
    after = datetime.now(UTC)
    assert value.utcoffset() == timedelta(0)
    assert before <= value <= after


@pytest.mark.parametrize(
    ("fixed", "expected"),
    [
        ("2026-11-24T10:00:00+08:00", datetime(2026, 11, 24, 2, 0, tzinfo=UTC)),
        ("2026-11-24T02:00:00Z", datetime(2026, 11, 24, 2, 0, tzinfo=UTC)),
        ("2027-01-01T00:30:00+08:00", datetime(2026, 12, 31, 16, 30, tzinfo=UTC)),  # the day before in UTC
        ("  2026-11-24T10:00:00+08:00\n", datetime(2026, 11, 24, 2, 0, tzinfo=UTC)),
    ],
)
def test_callbackd_now_fixes_the_clock(monkeypatch: pytest.MonkeyPatch, fixed: str, expected: datetime) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", fixed)
    value = clock.now()
    assert value == expected
    assert value.tzinfo is UTC
    assert clock.now() == value  # fixed: it does not move


def test_an_empty_callbackd_now_means_the_real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", "")
    assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=5)


@pytest.mark.parametrize(
    ("fixed", "message"),
    [
        ("2026-11-24T10:00:00", "needs an offset"),
        ("2026-11-24", "needs an offset"),
        ("tomorrow", "is not an ISO 8601 time"),
        ("24/11/2026 10:00 +08:00", "is not an ISO 8601 time"),
        ("2026-11-31T10:00:00+08:00", "is not an ISO 8601 time"),
        ("0001-01-01T00:00:00+08:00", "out of range"),
    ],
)
def test_a_bad_callbackd_now_is_an_error(monkeypatch: pytest.MonkeyPatch, fixed: str, message: str) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", fixed)
    with pytest.raises(ConfigError) as raised:
        clock.now()
    assert message in str(raised.value)
    assert fixed.strip() in str(raised.value)


def test_an_offset_shifts_a_clock_that_keeps_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACKD_CLOCK_OFFSET", "-86400.5")
    before = datetime.now(UTC) - timedelta(days=1, seconds=0.5)
    value = clock.now()
    after = datetime.now(UTC) - timedelta(days=1, seconds=0.5)
    assert before <= value <= after
    assert value.tzinfo is UTC


def test_a_fixed_time_wins_over_an_offset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACKD_CLOCK_OFFSET", "3600")
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T10:00:00+08:00")
    assert clock.now() == datetime(2026, 11, 24, 2, 0, tzinfo=UTC)


def test_a_bad_offset_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACKD_CLOCK_OFFSET", "an hour")
    with pytest.raises(ConfigError, match="CALLBACKD_CLOCK_OFFSET='an hour' is not a number of seconds"):
        clock.now()
