"""Scoring against hand-computed examples: weights renormalised over present sources, ties sharing a rank,
样本不足, 未评 contacts, the Wilson interval, periods in local time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callbackd.api.manager import load_plugins
from callbackd.contact import answers
from callbackd.core.errors import CallbackdError
from callbackd.measure import scoring
from callbackd.measure.scoring import parse_period, wilson
from callbackd.store.models import Window

QUESTIONS = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")
MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, 2026-W48


@pytest.fixture
def plugins():
    return load_plugins()


def window(session, name: str) -> int:
    row = Window(name=name, created_at=MONDAY)
    session.add(row)
    session.flush()
    return row.id


def contact(session, plugins, window_id: int, source: str, levels: list[str | None], *, at: datetime = MONDAY,
            suggestion: str = "") -> None:
    """One contact with one answer per level (None: a text answer only)."""
    row = answers.new_contact(session, answers.NewContact(source=source, channel=source, window_id=window_id,
                                                          contacted_at=at), at)
    row.suggestion = suggestion
    keys = QUESTIONS if source != "evaluator" else ("overall",)
    for key, level in zip(keys, levels, strict=False):
        answers.add_answer(session, plugins, row, key, level, level or "意见建议", at)


def test_the_documented_example(session, settings, plugins):
    a = window(session, "甲窗口")
    contact(session, plugins, a, "callback", ["满意"] * 6)                       # 100
    contact(session, plugins, a, "callback", ["基本满意"] * 3 + ["不满意"] * 3)     # 40  -> callback 70
    contact(session, plugins, a, "onsite", ["满意"] * 6)                         # onsite 100
    contact(session, plugins, a, "evaluator", ["满意"])                          # 100
    contact(session, plugins, a, "evaluator", ["不满意"])                        # 0   -> evaluator 50
    ranking = scoring.score_period(session, settings, "2026-W48")
    (only,) = ranking.windows
    # 0.6 * 70 + 0.2 * 100 + 0.2 * 50 = 72
    assert only.score == 72.0 and only.grade == "合格" and only.rank == 1 and only.status == "ranked"
    assert only.by_source == {"callback": 70.0, "onsite": 100.0, "evaluator": 50.0}
    assert only.contacts == 5 and only.contacts_by_source == {"callback": 2, "onsite": 1, "evaluator": 2}
    assert only.levels == {"满意": 13, "基本满意": 3, "不满意": 4}
    assert only.satisfaction_rate == 0.8  # 16 of 20 rated answers
    assert (only.ci_low, only.ci_high) == (0.584, 0.9193)  # Wilson 95% for 16/20


def test_missing_sources_renormalise_ties_share_a_rank_and_small_samples_are_not_ranked(session, settings, plugins):
    full, c, e, small = (window(session, n) for n in ("乙窗口", "丙窗口", "丁窗口", "戊窗口"))
    for _ in range(5):
        contact(session, plugins, full, "callback", ["满意"] * 6)
        contact(session, plugins, c, "callback", ["基本满意"] * 6)
        contact(session, plugins, e, "callback", ["基本满意"] * 6)
    contact(session, plugins, c, "onsite", ["满意"] * 6)
    contact(session, plugins, e, "onsite", ["满意"] * 6)
    contact(session, plugins, full, "callback", [None], suggestion="只留了意见")  # 未评: not a contact
    for _ in range(4):
        contact(session, plugins, small, "callback", ["满意"] * 6)

    ranking = scoring.score_period(session, settings, "2026-W48")
    by_name = {w.window: w for w in ranking.windows}
    assert by_name["乙窗口"].score == 100.0 and by_name["乙窗口"].contacts == 5
    # no evaluator: (0.6 * 80 + 0.2 * 100) / 0.8 = 85
    assert by_name["丙窗口"].score == by_name["丁窗口"].score == 85.0
    assert {w.window: w.rank for w in ranking.windows[:3]} == {"乙窗口": 1, "丙窗口": 2, "丁窗口": 2}
    assert by_name["丙窗口"].grade == "良好" and by_name["丙窗口"].by_source["evaluator"] is None
    assert by_name["戊窗口"].status == "样本不足" and by_name["戊窗口"].rank is None
    assert by_name["戊窗口"].grade is None and by_name["戊窗口"].score == 100.0
    assert ranking.windows[-1].window == "戊窗口"


def test_ranks_follow_one_two_two_four(session, settings, plugins):
    levels = {"A": ["满意"] * 6, "B": ["基本满意"] * 6, "C": ["基本满意"] * 6, "D": ["不满意"] * 6}
    for name, answered in levels.items():
        w = window(session, name)
        for _ in range(5):
            contact(session, plugins, w, "callback", answered)
    ranking = scoring.score_period(session, settings, "2026-W48")
    assert [(w.window, w.rank, w.grade) for w in ranking.windows] == [
        ("A", 1, "优秀"), ("B", 2, "合格"), ("C", 2, "合格"), ("D", 4, "不合格")
    ]


def test_a_window_without_contacts_is_listed_unranked(session, settings, plugins):
    window(session, "空窗口")
    (empty,) = scoring.score_period(session, settings, "2026-11").windows
    assert (empty.score, empty.rank, empty.contacts, empty.status) == (None, None, 0, "样本不足")
    assert empty.satisfaction_rate is None and empty.ci_low is None


def test_periods_are_local_time(session, settings, plugins):
    w = window(session, "社保窗口")
    sunday_night = datetime(2026, 11, 22, 15, 30, tzinfo=UTC)  # 23:30 Sunday in Shanghai: week 47
    monday_morning = datetime(2026, 11, 22, 16, 10, tzinfo=UTC)  # 00:10 Monday in Shanghai: week 48
    contact(session, plugins, w, "callback", ["满意"] * 6, at=sunday_night)
    contact(session, plugins, w, "callback", ["不满意"] * 6, at=monday_morning)
    assert scoring.score_period(session, settings, "2026-W47").windows[0].by_source["callback"] == 100.0
    assert scoring.score_period(session, settings, "2026-W48").windows[0].by_source["callback"] == 0.0
    assert scoring.score_period(session, settings, "2026-11").windows[0].contacts == 2
    assert scoring.score_period(session, settings, "2026-Q4").windows[0].contacts == 2
    assert scoring.score_period(session, settings, "2026").windows[0].contacts == 2
    assert scoring.score_period(session, settings, "2026-10").windows[0].contacts == 0


def test_every_number_comes_from_the_settings(session, workdir, plugins):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(
        '[scoring]\npoints = { "满意" = 10, "基本满意" = 6, "不满意" = 0 }\n'
        'weights = { callback = 1, onsite = 0, evaluator = 0 }\n'
        'grades = [[9, "A"], [5, "B"]]\nfailing_grade = "C"\nminimum_contacts = { week = 1 }\n'
        'question_weights = { overall = 4 }\n',
        encoding="utf-8",
    )
    from callbackd.core.settings import load_settings

    custom = load_settings()
    w = window(session, "社保窗口")
    contact(session, plugins, w, "callback", ["不满意"] * 5 + ["满意"])  # (5*0 + 4*10) / 9
    contact(session, plugins, w, "onsite", ["不满意"] * 6)  # weight 0: ignored
    (only,) = scoring.score_period(session, custom, "2026-W48").windows
    assert only.score == round(40 / 9, 2) and only.grade == "C" and only.rank == 1


def test_wilson_interval_matches_published_values():
    low, high = wilson(16, 20, 0.95)
    assert round(low, 3) == 0.584 and round(high, 3) == 0.919
    assert wilson(0, 0, 0.95) == (None, None)
    low, high = wilson(10, 10, 0.95)
    assert high == 1.0 and round(low, 3) == 0.722


@pytest.mark.parametrize("text", ["2026-W54", "2026-13", "2026-Q5", "26", "last month", "2026/11"])
def test_bad_periods_are_refused(text):
    with pytest.raises(CallbackdError, match="2026-W48"):
        parse_period(text, datetime.now(UTC).astimezone().tzinfo)  # type: ignore[arg-type]


def test_score_command_json_contract(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    assert cli("init").code == 0
    document = cli("score", "--period", "2026-W48", "--json").json()
    assert document["period"] == "2026-W48" and document["windows"] == []
    assert cli("score", "--period", "nonsense").code == 1
