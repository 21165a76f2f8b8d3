"""Indicators against hand-computed examples, and the alerts for windows last or failing periods in a row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from callbackd.api.manager import load_plugins
from callbackd.contact import answers, attempts, rectify
from callbackd.contact.context import Context
from callbackd.contact.transitions import Close
from callbackd.measure import indicators, scoring
from callbackd.rounds.sampling import survey_in_force
from callbackd.store.models import Callback, Case, Rectification, Round, Window

MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, 2026-W48
QUESTIONS = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")


def window(session, name: str) -> int:
    row = Window(name=name, created_at=MONDAY)
    session.add(row)
    session.flush()
    return row.id


def round_of(session, settings, week: str) -> int:
    row = Round(week=week, active_week=week, status="open", seed="s", policy={}, candidate_hash="h", watermarks={},
                month_start=MONDAY, cutoff_at=MONDAY, opened_at=MONDAY, opened_by="t", channel_plan=["operator"],
                survey=survey_in_force(settings).snapshot())
    session.add(row)
    session.flush()
    return row.id


def callback(session, round_id: int, window_id: int, n: int, status: str) -> Callback:
    case = Case(case_no=f"N{n}", window_id=window_id, matter="社保卡补办", case_type="即办件", applicant="张三",
                phone=f"+86139000000{n:02d}", phone_sms=True, accepted_at=MONDAY, resolved_at=MONDAY, status="已办结",
                resolved=True, digest="d", created_at=MONDAY, updated_at=MONDAY)
    session.add(case)
    session.flush()
    row = Callback(round_id=round_id, case_id=case.id, window_id=window_id, phone=case.phone, draw_key=f"k{n}",
                   status=status, created_at=MONDAY, closed_at=None if status == "pending" else MONDAY)
    session.add(row)
    session.flush()
    return row


def contact(session, plugins, window_id: int, source: str, levels: list[str], *, callback_id: int | None = None,
            at: datetime = MONDAY):
    row = answers.new_contact(session, answers.NewContact(
        source=source, channel=source, window_id=window_id, contacted_at=at, callback_id=callback_id), at)
    keys = QUESTIONS if source != "evaluator" else ("overall",)
    for key, level in zip(keys, levels, strict=False):
        answers.add_answer(session, plugins, row, key, level, level, at)
    return row


def test_indicator_formulas_against_a_hand_computed_week(session, settings):
    plugins = load_plugins()
    a = window(session, "甲窗口")
    week = round_of(session, settings, "2026-W48")
    cb1 = callback(session, week, a, 1, "completed")
    cb2 = callback(session, week, a, 2, "completed")
    cb3 = callback(session, week, a, 3, "partial")
    callback(session, week, a, 4, "unreachable")
    callback(session, week, a, 5, "refused")
    contact(session, plugins, a, "callback", ["满意"] * 6, callback_id=cb1.id)
    unhappy = contact(session, plugins, a, "callback", ["满意"] * 5 + ["不满意"], callback_id=cb2.id)
    contact(session, plugins, a, "callback", ["基本满意"] * 2, callback_id=cb3.id)
    form = contact(session, plugins, a, "onsite", ["满意"] * 5 + ["不满意"])

    # two rectifications opened on Monday 23 November, due Thursday 26 November
    r1 = rectify.review_contact(session, settings, unhappy, MONDAY)
    r2 = rectify.review_contact(session, settings, form, MONDAY)
    assert r1 is not None and r2 is not None
    _, follow_up = rectify.respond(session, settings, r1.id, "已整改", MONDAY + timedelta(days=1))  # in time
    assert follow_up is not None and follow_up.follow_up == 1
    # the follow-up on Wednesday finds the applicant still 不满意: reopened, due Monday 30 November (next week)
    follow_up.status = "in_progress"
    contact(session, plugins, a, "follow_up", ["不满意"], callback_id=follow_up.id, at=MONDAY + timedelta(days=2))
    attempts.close_callback(Context(session, settings, plugins, MONDAY + timedelta(days=2)), follow_up,
                            Close("completed", None))
    assert session.get(Rectification, r1.id).status == "open"

    ranking = scoring.score_period(session, settings, "2026-W48")
    now = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    (figures,) = indicators.compute(session, settings, ranking, now)
    # 回访率: 2 completed of 5 selected (the follow-up is no selected callback)
    assert (figures.selected, figures.completed, figures.callback_rate) == (5, 2, 0.4)
    # 未评率: the unreachable and the refused callbacks gave no rating: 2 of 5
    assert (figures.unrated, figures.unrated_rate) == (2, 0.4)
    # rated answers over every score source, follow-up excluded: 满意 16, 基本满意 2, 不满意 2
    assert (figures.rated_answers, figures.satisfied_answers, figures.dissatisfied_answers) == (20, 18, 2)
    assert (figures.satisfied_rate, figures.dissatisfied_rate) == (0.9, 0.1)
    # 整改按时率: two responses fell due on Thursday; one came on Tuesday, the other never (overdue by now)
    assert (figures.rectifications_due, figures.rectifications_on_time) == (2, 1)
    assert figures.rectification_on_time_rate == 0.5
    # 回访整改满意率: one follow-up, still 不满意
    assert (figures.follow_ups, figures.follow_ups_satisfied, figures.follow_up_satisfied_rate) == (1, 0, 0.0)
    assert figures.alerts == []

    # before the due time, an unanswered rectification is not yet counted against the window
    (early,) = indicators.compute(session, settings, ranking, MONDAY + timedelta(days=2))
    assert (early.rectifications_due, early.rectifications_on_time) == (1, 1)
    # the reopened response falls due next week
    next_week = scoring.score_period(session, settings, "2026-W49")
    (later,) = indicators.compute(session, settings, next_week, now + timedelta(days=1))
    assert (later.rectifications_due, later.rectifications_on_time, later.selected) == (1, 0, 0)
    assert later.callback_rate is None and later.rectification_on_time_rate == 0.0


def evaluator_week(session, plugins, windows: dict[str, int], levels: dict[str, str], monday: datetime) -> None:
    for name, level in levels.items():
        for _ in range(5):
            contact(session, plugins, windows[name], "evaluator", [level], at=monday)


def test_alerts_for_a_window_last_or_failing_two_periods_in_a_row(session, settings):
    plugins = load_plugins()
    windows = {name: window(session, name) for name in ("甲窗口", "乙窗口", "丙窗口")}
    evaluator_week(session, plugins, windows, {"甲窗口": "满意", "乙窗口": "不满意", "丙窗口": "基本满意"},
                   MONDAY - timedelta(days=7))
    evaluator_week(session, plugins, windows, {"甲窗口": "满意", "乙窗口": "不满意", "丙窗口": "满意"}, MONDAY)
    ranking = scoring.score_period(session, settings, "2026-W48")
    alerts = {i.window: i.alerts for i in indicators.compute(session, settings, ranking, MONDAY)}
    assert alerts == {"甲窗口": [], "乙窗口": ["连续2期排名末位", "连续2期不合格"], "丙窗口": []}
    # one period earlier there is no period before it with data: no alert yet
    earlier = scoring.score_period(session, settings, "2026-W47")
    assert all(not i.alerts for i in indicators.compute(session, settings, earlier, MONDAY))


def test_a_single_ranked_window_is_never_last(session, settings):
    plugins = load_plugins()
    windows = {"甲窗口": window(session, "甲窗口")}
    for monday in (MONDAY - timedelta(days=7), MONDAY):
        evaluator_week(session, plugins, windows, {"甲窗口": "基本满意"}, monday)
    ranking = scoring.score_period(session, settings, "2026-W48")
    assert indicators.compute(session, settings, ranking, MONDAY)[0].alerts == []
    assert session.scalar(select(Rectification.id)) is None  # imported this way, nothing opened
