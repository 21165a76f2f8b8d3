"""投诉率: complaints over the cases a window accepted in the period, against the target, hand-counted."""

from __future__ import annotations

from datetime import UTC, datetime

from callbackd.core.settings import IndicatorSettings
from callbackd.measure import indicators, scoring
from callbackd.store.models import Case, Window

CREATED = datetime(2026, 10, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


def cases(session, window: str, accepted: datetime, count: int, case_type: str = "即办件") -> None:
    row = session.query(Window).filter_by(name=window).one_or_none()
    if row is None:
        row = Window(name=window, created_at=CREATED)
        session.add(row)
        session.flush()
    start = session.query(Case).count()
    session.add_all(
        Case(case_no=f"C{start + n}", window_id=row.id, matter="物业报事", case_type=case_type, applicant="李四",
             phone="+8613900000002", phone_sms=True, accepted_at=accepted, resolved_at=None, status="办理中",
             resolved=False, digest="d", created_at=CREATED, updated_at=CREATED)
        for n in range(count)
    )
    session.flush()


def test_complaint_rate_by_acceptance_against_the_target(session, settings):
    november = datetime(2026, 11, 10, 2, tzinfo=UTC)
    cases(session, "甲窗口", november, 197)
    cases(session, "甲窗口", november, 2, "投诉")
    cases(session, "甲窗口", datetime(2026, 11, 30, 15, 59, tzinfo=UTC), 1, "投诉")  # 23:59 on 30 Nov in Shanghai
    cases(session, "甲窗口", datetime(2026, 10, 31, 15, 30, tzinfo=UTC), 4, "投诉")  # 23:30 on 31 Oct: October's
    cases(session, "甲窗口", datetime(2026, 11, 30, 16, 0, tzinfo=UTC), 4, "投诉")  # 00:00 on 1 Dec: December's
    cases(session, "乙窗口", november, 99)
    cases(session, "乙窗口", november, 1, "投诉")
    ranking = scoring.score_period(session, settings, "2026-11")
    figures = {i.window: i for i in indicators.compute(session, settings, ranking, NOW)}
    # 甲: 3 complaints of 200 cases accepted in November, 1.5% over the 1% target; 乙: 1 of 100, not over it
    assert (figures["甲窗口"].complaints, figures["甲窗口"].cases_accepted) == (3, 200)
    assert figures["甲窗口"].complaint_rate == 0.015 and figures["甲窗口"].complaint_rate_target == 0.01
    assert "投诉率1.5%超过目标1%" in figures["甲窗口"].alerts
    other = figures["乙窗口"]
    assert (other.complaints, other.cases_accepted, other.complaint_rate) == (1, 100, 0.01)
    assert not any(alert.startswith("投诉率") for alert in figures["乙窗口"].alerts)
    # a 2% target clears 甲; complaint types come from the settings
    lenient = settings.model_copy(update={"indicators": IndicatorSettings(complaint_rate_target=0.02)})
    assert not any(a.startswith("投诉率") for i in indicators.compute(session, lenient, ranking, NOW) for a in i.alerts)
    december = scoring.score_period(session, settings, "2026-12")
    (first, *_) = [i for i in indicators.compute(session, settings, december, NOW) if i.window == "甲窗口"]
    assert (first.complaints, first.cases_accepted, first.complaint_rate) == (4, 4, 1.0)
    # a window without a case accepted has no rate, and no alert
    empty = scoring.score_period(session, settings, "2026-09")
    assert all(i.complaint_rate is None for i in indicators.compute(session, settings, empty, NOW))
