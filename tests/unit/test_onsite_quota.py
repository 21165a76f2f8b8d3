"""The on-site form quota: a period's weeks, 现场征求完成率 and the alert for a window short two complete weeks
running, against hand-counted forms."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from callbackd.api.manager import load_plugins
from callbackd.contact import answers
from callbackd.core.periods import parse_period
from callbackd.core.settings import OnsiteSettings
from callbackd.measure import indicators, onsite_quota, scoring
from callbackd.store.models import Window

SHANGHAI = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)  # Friday 4 December, 10:00 in Shanghai: the week of 30 Nov under way
ALERT = "连续2周现场征求意见表不足5份"


def period(text: str):
    return parse_period(text, SHANGHAI)


def test_a_periods_weeks_are_the_iso_weeks_whose_monday_it_holds_and_has_come():
    assert onsite_quota.mondays(period("2026-11"), NOW) == [date(2026, 11, d) for d in (2, 9, 16, 23, 30)]
    assert onsite_quota.mondays(period("2026-12"), NOW) == []  # Monday 7 December has not come
    assert onsite_quota.mondays(period("2026-W47"), NOW) == [date(2026, 11, 16)]
    assert len(onsite_quota.mondays(period("2026"), datetime(2027, 1, 4, tzinfo=UTC))) == 52  # 5 Jan .. 28 Dec
    assert len(onsite_quota.mondays(period("2026-Q4"), datetime(2027, 1, 4, tzinfo=UTC))) == 13
    # the two most recent complete weeks: the week under way is not one
    assert onsite_quota.complete_weeks(period("2026-11"), NOW) == [date(2026, 11, 23), date(2026, 11, 16)]
    assert onsite_quota.complete_weeks(period("2026-W47"), NOW) == [date(2026, 11, 16), date(2026, 11, 9)]
    assert onsite_quota.complete_weeks(period("2026-10"), NOW) == [date(2026, 10, 26), date(2026, 10, 19)]


def window(session, name: str, created: datetime) -> int:
    row = Window(name=name, created_at=created)
    session.add(row)
    session.flush()
    return row.id


def forms(session, plugins, window_id: int, day: date, count: int) -> None:
    at = datetime(day.year, day.month, day.day, 15, 0, tzinfo=SHANGHAI)
    for _ in range(count):
        row = answers.new_contact(session, answers.NewContact(source="onsite", channel="onsite", window_id=window_id,
                                                              contacted_at=at), at)
        answers.add_answer(session, plugins, row, "overall", "满意", "满意", at)


def test_completion_rate_and_the_two_week_alert(session, settings):
    plugins = load_plugins()
    long_ago = datetime(2026, 10, 1, tzinfo=UTC)
    a = window(session, "甲窗口", long_ago)
    b = window(session, "乙窗口", long_ago)
    window(session, "丙窗口", datetime(2026, 11, 20, tzinfo=UTC))  # known since Friday 20 November
    # 甲: 5, 5, 4 (Wed 18), 3 (Thu 26), 2 (Tue 1 Dec: its week's Monday is 30 November); Sat 31 Oct is October's
    for day, count in ((date(2026, 10, 31), 7), (date(2026, 11, 3), 5), (date(2026, 11, 10), 5),
                       (date(2026, 11, 18), 4), (date(2026, 11, 26), 3), (date(2026, 12, 1), 2)):
        forms(session, plugins, a, day, count)
    # 乙: short only in the week of 23 November
    for day, count in ((date(2026, 11, 16), 5), (date(2026, 11, 22), 1), (date(2026, 11, 23), 1)):
        forms(session, plugins, b, day, count)
    ranking = scoring.score_period(session, settings, "2026-11")
    figures = {i.window: i for i in indicators.compute(session, settings, ranking, NOW)}
    # five weeks (Mondays 2, 9, 16, 23, 30 November): quota 25; 甲 handed in 5 + 5 + 4 + 3 + 2 = 19
    assert (figures["甲窗口"].onsite_forms, figures["甲窗口"].onsite_quota) == (19, 25)
    assert figures["甲窗口"].onsite_completion_rate == 0.76
    # 乙: 5 + 1 (Sunday 22: the week of 16 Nov) + 1 = 7 of 25
    assert (figures["乙窗口"].onsite_forms, figures["乙窗口"].onsite_completion_rate) == (7, 0.28)
    assert (figures["丙窗口"].onsite_forms, figures["丙窗口"].onsite_completion_rate) == (0, 0.0)
    # short in the weeks of 23 and 16 November: 甲 (3 and 4); 乙 had 6 in the week of 16 November; 丙 was not
    # known when the week of 16 November began
    assert ALERT in figures["甲窗口"].alerts
    assert ALERT not in figures["乙窗口"].alerts and ALERT not in figures["丙窗口"].alerts
    # a week period: that week and the one before
    week_47 = scoring.score_period(session, settings, "2026-W47")
    assert all(ALERT not in i.alerts for i in indicators.compute(session, settings, week_47, NOW))  # 甲: 4 and 5
    week_48 = scoring.score_period(session, settings, "2026-W48")
    alerted = {i.window for i in indicators.compute(session, settings, week_48, NOW) if ALERT in i.alerts}
    assert alerted == {"甲窗口"}
    # a week later 丙, known for both weeks now, is short too; a quota of 0 gives neither rate nor alert
    later = NOW + timedelta(days=7)
    assert {i.window for i in indicators.compute(session, settings, ranking, later) if ALERT in i.alerts} == {
        "甲窗口", "乙窗口", "丙窗口"}  # the weeks of 30 Nov and 23 Nov
    none = settings.model_copy(update={"onsite": OnsiteSettings(per_window_weekly=0)})
    quiet = indicators.compute(session, none, ranking, NOW)
    assert all(i.onsite_completion_rate is None and i.onsite_quota == 0 and ALERT not in i.alerts for i in quiet)
