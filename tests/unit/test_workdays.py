"""The working-day calendar: 2026 holidays and 调休 make-up days from chinese-calendar, the 2026/2027 year end,
the provisional fallback and its warning, config/holidays.toml (authoritative, and its mistakes), calling hours."""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from time import sleep
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callbackd.core.errors import CalendarError
from callbackd.core.settings import bundled_config_dir, load_settings
from callbackd.core.workdays import Calendar, ProvisionalCalendarWarning

pytestmark = pytest.mark.no_database

SHANGHAI = ZoneInfo("Asia/Shanghai")
CALLING_HOURS = [(time(9, 0), time(12, 0)), (time(14, 0), time(20, 0))]


# tests/conftest.py's autouse `workdir` fixture runs each test in an empty folder with no CALLBACKD_*.


# ---- builders ---------------------------------------------------------------------------------------------


def shanghai_calendar(calling_hours: list[tuple[time, time]] | None = None) -> Calendar:
    """A calendar with no holidays.toml: chinese-calendar, then the provisional fallback."""
    return Calendar(SHANGHAI, CALLING_HOURS if calling_hours is None else calling_hours)


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    """An instant given in Shanghai wall-clock time."""
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def holidays_toml(years: dict[int, dict[str, list[str]]]) -> str:
    lines = []
    for year, table in years.items():
        lines.append(f"[years.{year}]")
        lines += [f"{name} = [{', '.join(repr(d) for d in days)}]" for name, days in table.items()]
    return "\n".join(lines) + "\n"


def calendar_in(folder: Path, *, settings_text: str = "", holidays_text: str | None = None) -> Calendar:
    """A calendar built as the application builds it: from a callbackd.toml in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    if holidays_text is not None:
        (folder / "holidays.toml").write_text(holidays_text, encoding="utf-8")
    path = folder / "callbackd.toml"
    path.write_text(settings_text, encoding="utf-8")
    return Calendar.from_settings(load_settings(path))


OFFICIAL_2027 = {
    2027: {
        "holidays": ["2027-01-01", *(f"2027-02-{d:02d}" for d in range(5, 12))],  # 02-05 Fri .. 02-11 Thu
        "workdays": ["2027-02-20"],  # a Saturday
    }
}


# ---- 2026 from chinese-calendar -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "working"),
    [
        (date(2026, 2, 14), True),  # Saturday, 调休 for the Spring Festival
        (date(2026, 2, 28), True),  # Saturday, 调休 for the Spring Festival
        (date(2026, 1, 4), True),  # Sunday, 调休 for New Year
        (date(2026, 9, 20), True),  # Sunday, 调休 for National Day
        (date(2026, 10, 10), True),  # Saturday, 调休 for National Day
        (date(2026, 2, 16), False),  # Monday, Spring Festival
        (date(2026, 2, 23), False),  # Monday, Spring Festival
        (date(2026, 10, 1), False),  # Thursday, National Day
        (date(2026, 10, 2), False),
        (date(2026, 10, 5), False),  # Monday in the National Day block
        (date(2026, 10, 7), False),
        (date(2026, 10, 8), True),  # Thursday after the block
        (date(2026, 11, 28), False),  # an ordinary Saturday
        (date(2026, 11, 29), False),  # an ordinary Sunday
        (date(2026, 11, 24), True),  # an ordinary Tuesday
    ],
)
def test_2026_holidays_and_make_up_days(day: date, working: bool) -> None:
    assert shanghai_calendar().is_workday(day) is working


def test_the_make_up_saturdays_are_what_chinese_calendar_publishes() -> None:
    # the test's hand-picked dates agree with the package's own 2026 data
    weekend_workdays = {
        date(2026, 1, 1) + timedelta(days=i)
        for i in range(365)
        if (date(2026, 1, 1) + timedelta(days=i)).weekday() >= 5
        and chinese_calendar.is_workday(date(2026, 1, 1) + timedelta(days=i))
    }
    assert {date(2026, 2, 14), date(2026, 2, 28), date(2026, 10, 10)} <= weekend_workdays
    calendar = shanghai_calendar()
    assert all(calendar.is_workday(day) for day in weekend_workdays)


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        (date(2026, 2, 12), 3, date(2026, 2, 24)),  # Fri 13, make-up Sat 14, then Tue 24 after the block
        (date(2026, 2, 13), 1, date(2026, 2, 14)),  # Friday -> the make-up Saturday
        (date(2026, 2, 24), 4, date(2026, 2, 28)),  # Wed 25 .. Fri 27, make-up Sat 28
        (date(2026, 9, 30), 1, date(2026, 10, 8)),  # over the whole National Day block
        (date(2026, 9, 28), 3, date(2026, 10, 8)),  # a 3-working-day rectification deadline
        (date(2026, 9, 30), 3, date(2026, 10, 10)),  # Thu 8, Fri 9, make-up Sat 10
        (date(2026, 9, 18), 1, date(2026, 9, 20)),  # Friday -> make-up Sunday, Saturday skipped
        (date(2026, 11, 27), 1, date(2026, 11, 30)),  # an ordinary weekend
        (date(2026, 10, 8), -1, date(2026, 9, 30)),  # backwards over the block
        (date(2026, 2, 24), -1, date(2026, 2, 14)),
        (date(2026, 2, 24), -2, date(2026, 2, 13)),
        (date(2026, 11, 30), -1, date(2026, 11, 27)),
        (date(2026, 11, 24), 0, date(2026, 11, 24)),
        (date(2026, 10, 1), 0, date(2026, 10, 1)),  # zero is the day itself, even a holiday
    ],
)
def test_add_workdays(start: date, count: int, expected: date) -> None:
    assert shanghai_calendar().add_workdays(start, count) == expected


def test_next_workday_and_workdays_between() -> None:
    calendar = shanghai_calendar()
    assert calendar.next_workday(date(2026, 10, 1)) == date(2026, 10, 8)
    assert calendar.next_workday(date(2026, 2, 14)) == date(2026, 2, 14)
    assert calendar.workdays_between(date(2026, 9, 30), date(2026, 10, 10)) == 3
    assert calendar.workdays_between(date(2026, 10, 10), date(2026, 9, 30)) == -3
    assert calendar.workdays_between(date(2026, 10, 3), date(2026, 10, 3)) == 0
    # from a holiday, the working day just before it is one working day back, as add_workdays(-1) says
    assert calendar.add_workdays(date(2026, 10, 1), -1) == date(2026, 9, 30)
    assert calendar.workdays_between(date(2026, 10, 1), date(2026, 9, 30)) == -1


_CALENDAR = shanghai_calendar()


@settings(max_examples=200, deadline=None)
@given(
    # ends stay in 2026, the year chinese-calendar covers: crossing into 2027 is tested on its own below
    start=st.dates(min_value=date(2026, 1, 1), max_value=date(2026, 11, 24)),
    count=st.integers(min_value=-25, max_value=25),
)
def test_add_workdays_lands_on_a_working_day_counted_by_workdays_between(start: date, count: int) -> None:
    end = _CALENDAR.add_workdays(start, count)
    assert _CALENDAR.workdays_between(start, end) == count
    if count:
        assert _CALENDAR.is_workday(end)
        assert (end > start) is (count > 0)


# ---- the year end and years chinese-calendar does not cover ---------------------------------------------


def test_a_deadline_across_the_2026_year_end_gives_a_2027_date() -> None:
    with pytest.warns(ProvisionalCalendarWarning, match=r"config/holidays\.toml"):
        # Thu 31, then New Year's Day (Fri) and the weekend, then Mon 4 and Tue 5
        assert shanghai_calendar().add_workdays(date(2026, 12, 30), 3) == date(2027, 1, 5)


def test_2027_answers_provisionally_and_warns_once_per_year() -> None:
    calendar = shanghai_calendar()
    with pytest.warns(ProvisionalCalendarWarning, match=r"2027.*config/holidays\.toml") as caught:
        assert calendar.is_workday(date(2027, 1, 1)) is False  # New Year's Day
        assert calendar.is_workday(date(2027, 1, 2)) is False  # Saturday
        assert calendar.is_workday(date(2027, 1, 4)) is True  # Monday
        assert calendar.is_workday(date(2027, 10, 1)) is False  # National Day
    assert len([w for w in caught if w.category is ProvisionalCalendarWarning]) == 1
    assert "[years.2027]" in str(caught[0].message)


def test_sources_without_a_holidays_file(tmp_path: Path) -> None:
    calendar = calendar_in(tmp_path / "site")  # no holidays.toml there: the bundled one, which lists no year
    assert calendar.schedule == {}
    assert calendar.source(2026) == "chinese-calendar"
    assert calendar.source(2027) == "holidays (provisional)"


def test_a_holidays_file_beside_the_settings_is_authoritative_and_silent(tmp_path: Path) -> None:
    calendar = calendar_in(tmp_path / "site", holidays_text=holidays_toml(OFFICIAL_2027))
    assert calendar.source(2027) == "holidays.toml"
    assert calendar.source(2026) == "chinese-calendar"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert date(2027, 2, 20).weekday() == 5
        assert calendar.is_workday(date(2027, 2, 20)) is True  # listed make-up Saturday
        assert calendar.is_workday(date(2027, 2, 11)) is False  # listed holiday on a Thursday
        assert calendar.is_workday(date(2027, 1, 1)) is False
        assert calendar.is_workday(date(2027, 2, 12)) is True  # unlisted Friday follows the week
        assert calendar.is_workday(date(2027, 2, 13)) is False  # unlisted Saturday follows the week
        # the year-end deadline now comes from the file, without a warning
        assert calendar.add_workdays(date(2026, 12, 30), 3) == date(2027, 1, 5)
        assert calendar.add_workdays(date(2027, 2, 4), 2) == date(2027, 2, 15)  # Fri 12, Mon 15


def test_a_holidays_file_overrides_chinese_calendar_for_a_year_it_lists(tmp_path: Path) -> None:
    calendar = calendar_in(tmp_path, holidays_text=holidays_toml({2026: {"holidays": ["2026-11-24"]}}))
    assert calendar.source(2026) == "holidays.toml"
    assert calendar.is_workday(date(2026, 11, 24)) is False
    assert calendar.is_workday(date(2026, 2, 14)) is False  # not listed as a make-up day: a plain Saturday


def test_holidays_file_is_named_relative_to_the_settings_file(tmp_path: Path) -> None:
    (tmp_path / "official").mkdir()
    (tmp_path / "official" / "2027.toml").write_text(holidays_toml(OFFICIAL_2027), encoding="utf-8")
    calendar = calendar_in(tmp_path, settings_text='[calendar]\nholidays_file = "official/2027.toml"\n')
    assert calendar.source(2027) == "holidays.toml"
    assert calendar.is_workday(date(2027, 2, 20)) is True


def test_the_bundled_holidays_file_parses() -> None:
    # whatever years the shipped file gives, it must load; each listed make-up day is then a working day
    settings_path = bundled_config_dir() / "callbackd.toml"
    calendar = Calendar.from_settings(load_settings(settings_path))
    for schedule in calendar.schedule.values():
        assert all(calendar.is_workday(day) for day in schedule.workdays)


def test_a_holidays_file_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    (tmp_path / "holidays.toml").write_bytes(b"\xef\xbb\xbf" + holidays_toml(OFFICIAL_2027).encode())
    calendar = calendar_in(tmp_path)
    assert calendar.is_workday(date(2027, 2, 20)) is True


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[years.2027\nholidays = []\n", "not valid TOML"),
        ('[years.2027]\nholidays = ["2026-10-01"]\n', "lists 2026-10-01, outside 2027"),
        ('[years.2027]\nworkdays = ["2028-01-02"]\n', "lists 2028-01-02, outside 2027"),
        ('[years.2027]\nholidays = ["10月1日"]\n', "'10月1日' is not a date"),
        ('[years.2027]\nholidays = ["2027-02-30"]\n', "'2027-02-30' is not a date"),
        ("[years.2027]\nholidays = [20270101]\n", "20270101 is not a date"),
        ("[years.2027]\nholidays = [2027-01-01T00:00:00]\n", "is not a date"),
        ('[years.2027]\nholidays = "2027-01-01"\n', "holidays must be a list of dates"),
        ('[years.2027]\nholiday = ["2027-01-01"]\n', "unknown key 'holiday'"),
        ('[holiday.2027]\nholidays = ["2027-01-01"]\n', "unknown key 'holiday'"),
        ('[years.next]\nholidays = ["2027-01-01"]\n', "must be a year such as [years.2027]"),
        ("years = 2027\n", "'years' must hold [years.YYYY] tables"),
        (
            '[years.2027]\nholidays = ["2027-02-20"]\nworkdays = ["2027-02-20"]\n',
            "2027-02-20 both as a holiday and as a working day",
        ),
    ],
)
def test_a_malformed_holidays_file_is_an_error_naming_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(CalendarError) as raised:
        calendar_in(tmp_path, holidays_text=text)
    assert problem in str(raised.value)
    assert str(tmp_path / "holidays.toml") in str(raised.value)


def test_a_holidays_file_not_in_utf8_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "holidays.toml").write_bytes("# 国务院办公厅通知\n[years.2027]\n".encode("gbk"))
    with pytest.raises(CalendarError, match="not UTF-8"):
        calendar_in(tmp_path)


# ---- calling hours --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "inside"),
    [
        (8, 59, False),
        (9, 0, True),
        (11, 59, True),
        (12, 0, False),
        (13, 30, False),
        (14, 0, True),
        (19, 59, True),
        (20, 0, False),
    ],
)
def test_calling_hours_on_a_working_day(hour: int, minute: int, inside: bool) -> None:
    assert shanghai_calendar().in_calling_hours(at(2026, 11, 24, hour, minute)) is inside


def test_calling_hours_are_read_in_the_organisations_zone() -> None:
    calendar = shanghai_calendar()
    assert calendar.in_calling_hours(datetime(2026, 11, 24, 1, 0, tzinfo=UTC)) is True  # 09:00 in Shanghai
    assert calendar.in_calling_hours(datetime(2026, 11, 24, 4, 30, tzinfo=UTC)) is False  # 12:30, lunch
    assert calendar.in_calling_hours(datetime(2026, 11, 24, 12, 0, tzinfo=UTC)) is False  # 20:00
    # 23:30 UTC on Monday is 07:30 on Tuesday in Shanghai: the zone's date decides, not UTC's
    assert calendar.in_calling_hours(datetime(2026, 11, 23, 23, 30, tzinfo=UTC)) is False
    assert calendar.in_calling_hours(datetime(2026, 11, 29, 2, 0, tzinfo=UTC)) is False  # Sunday 10:00


@pytest.mark.parametrize(
    "instant",
    [at(2026, 10, 1, 10, 0), at(2026, 10, 7, 15, 0), at(2026, 2, 17, 9, 30), at(2026, 11, 28, 10, 0)],
)
def test_no_calling_hours_on_holidays_and_weekends(instant: datetime) -> None:
    assert shanghai_calendar().in_calling_hours(instant) is False


def test_calling_hours_on_a_make_up_saturday() -> None:
    assert shanghai_calendar().in_calling_hours(at(2026, 2, 14, 10, 0)) is True


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        (at(2026, 11, 27, 20, 30), at(2026, 11, 30, 9, 0)),  # Friday evening -> Monday 09:00
        (at(2026, 11, 27, 20, 0), at(2026, 11, 30, 9, 0)),  # the closing minute is outside
        (at(2026, 2, 13, 20, 30), at(2026, 2, 14, 9, 0)),  # Friday evening -> the make-up Saturday
        (at(2026, 9, 30, 20, 15), at(2026, 10, 8, 9, 0)),  # before National Day -> after the block
        (at(2026, 10, 1, 10, 0), at(2026, 10, 8, 9, 0)),  # inside the block
        (at(2026, 2, 14, 20, 30), at(2026, 2, 24, 9, 0)),  # make-up Saturday evening -> after Spring Festival
        (at(2026, 11, 24, 7, 0), at(2026, 11, 24, 9, 0)),  # early morning -> opening
        (at(2026, 11, 24, 12, 30), at(2026, 11, 24, 14, 0)),  # lunch -> afternoon
        (at(2026, 11, 24, 10, 15), at(2026, 11, 24, 10, 15)),  # already inside: the same instant
        (at(2026, 11, 24, 19, 59), at(2026, 11, 24, 19, 59)),
    ],
)
def test_next_calling_slot(instant: datetime, expected: datetime) -> None:
    slot = shanghai_calendar().next_calling_slot(instant)
    assert slot == expected
    assert slot.tzinfo is not None and slot.utcoffset() == timedelta(hours=8)


def test_next_calling_slot_keeps_the_callers_zone() -> None:
    slot = shanghai_calendar().next_calling_slot(datetime(2026, 9, 30, 12, 30, tzinfo=UTC))  # 20:30 Shanghai
    assert slot == datetime(2026, 10, 8, 1, 0, tzinfo=UTC)
    assert slot.utcoffset() == timedelta(0)


def test_next_calling_slot_across_the_year_end() -> None:
    with pytest.warns(ProvisionalCalendarWarning):
        slot = shanghai_calendar().next_calling_slot(at(2026, 12, 31, 20, 30))
    assert slot == at(2027, 1, 4, 9, 0)


def test_next_calling_slot_from_settings_hours(tmp_path: Path) -> None:
    calendar = calendar_in(tmp_path, settings_text='[calendar]\ncalling_hours = [["10:30", "16:00"]]\n')
    assert calendar.calling_hours == [(time(10, 30), time(16, 0))]
    assert calendar.next_calling_slot(at(2026, 11, 24, 16, 0)) == at(2026, 11, 25, 10, 30)
    assert calendar.in_calling_hours(at(2026, 11, 24, 10, 0)) is False


def test_calling_hours_given_out_of_order_still_open_at_the_earliest() -> None:
    calendar = shanghai_calendar([(time(14, 0), time(20, 0)), (time(9, 0), time(12, 0))])
    assert calendar.next_calling_slot(at(2026, 11, 24, 8, 0)) == at(2026, 11, 24, 9, 0)


def test_no_calling_hours_is_an_error() -> None:
    with pytest.raises(CalendarError, match="no calling hours"):
        shanghai_calendar([]).next_calling_slot(at(2026, 11, 24, 10, 0))


def test_a_naive_instant_is_refused() -> None:
    # it would otherwise be read in the host's zone, and two servers would disagree
    calendar = shanghai_calendar()
    with pytest.raises(ValueError, match="naive"):
        calendar.in_calling_hours(datetime(2026, 11, 24, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        calendar.next_calling_slot(datetime(2026, 11, 24, 10, 0))


def test_a_running_process_takes_an_edited_holidays_file_within_a_second(tmp_path: Path) -> None:
    from callbackd.rounds.calling import calendar_for

    folder = tmp_path / "site"
    calendar_in(folder)
    settings = load_settings(folder / "callbackd.toml")
    assert calendar_for(settings).source(2027) == "holidays (provisional)"
    assert calendar_for(settings) is calendar_for(settings)  # not read again for every attempt
    (folder / "holidays.toml").write_text(holidays_toml(OFFICIAL_2027), encoding="utf-8")
    sleep(1.1)
    assert calendar_for(settings).source(2027) == "holidays.toml"
