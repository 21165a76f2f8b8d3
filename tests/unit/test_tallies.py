"""Score tallies kept with the answers: scoring a period from them gives exactly the figures scoring the answers
gives, after answers are recorded (by a conversation, an import, a form), corrected and withdrawn; what the writers
kept equals a rebuild from the answers; days are local; other rules read the answers until `callbackd init`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.api.manager import load_plugins
from callbackd.contact import answers
from callbackd.core.settings import load_settings
from callbackd.core.vocabulary import LEVEL_NAMES
from callbackd.measure import scoring
from callbackd.store import tallies
from callbackd.store.db import Database
from callbackd.store.models import QuestionTally, ScoreTally, Window
from callbackd.store.tallies import TallyRules
from tests.conftest import case_row, phone_for, write_csv

QUESTIONS = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")
DIMENSIONS = ["服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价"]
MONDAY = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai, 2026-W48
PERIODS = ("2026-W48", "2026-11", "2026-Q4", "2026")


@pytest.fixture
def plugins():
    return load_plugins()


def window(session: Session, name: str) -> int:
    row = Window(name=name, created_at=MONDAY)
    session.add(row)
    session.flush()
    return row.id


def rows(session: Session) -> set[tuple[Any, ...]]:
    """Every tally row that counts something (a row emptied by withdrawals counts nothing)."""
    found = set()
    for model in (ScoreTally, QuestionTally):
        table = model.__table__
        for row in session.execute(select(table)):
            if any(row._mapping[c.name] for c in table.columns if not c.primary_key):
                found.add((model.__name__, *row))
    return found


def check(session: Session, settings, periods=PERIODS) -> None:
    """Scoring from the tallies equals scoring from the answers for every period, and the tallies the writers kept
    equal those a rebuild makes from the answers."""
    assert tallies.rules_in_force(session) == TallyRules.of(settings)  # the tallies are what is read
    for period in periods:
        kept = scoring.score_period(session, settings, period, with_questions=True)
        raw = scoring.score_period(session, settings, period, with_questions=True, raw=True)
        assert kept.as_dict() == raw.as_dict(), period
        assert kept.questions == raw.questions, period
    maintained = rows(session)
    tallies.rebuild(session.connection(), TallyRules.of(settings))
    assert rows(session) == maintained


def contact(session, plugins, window_id: int, source: str, levels: list[str | None], *, at: datetime = MONDAY,
            simulated: bool = False):
    made = answers.new_contact(session, answers.NewContact(source=source, channel=source, window_id=window_id,
                                                           contacted_at=at, simulated=simulated), at)
    for key, level in zip(QUESTIONS, levels, strict=False):
        answers.add_answer(session, plugins, made, key, level, level or "意见", at)
    return made


def test_answers_recorded_every_way_score_alike_from_the_tallies(session, settings, plugins):
    a, b = window(session, "甲窗口"), window(session, "乙窗口")
    contact(session, plugins, a, "callback", ["满意"] * 6)
    contact(session, plugins, a, "callback", ["基本满意", "不满意", None])  # a text answer beside two rated
    contact(session, plugins, a, "onsite", ["满意", "基本满意", "基本满意"])
    contact(session, plugins, a, "evaluator", ["不满意"], simulated=True)
    contact(session, plugins, b, "callback", [None])  # 未评: not a contact
    contact(session, plugins, b, "follow_up", ["不满意"] * 6)  # a follow-up callback: not scored
    made = answers.insert_contact(session, answers.NewContact(
        source="callback", channel="simulator", window_id=b, contacted_at=MONDAY, simulated=True), MONDAY,
        [("attitude", "满意", "1"), ("efficiency", "基本满意", "2")])
    answers.write_answers(session, made, [("rules", "不满意", "3")], MONDAY)  # the rest of the call
    answers.write_answers(session, made, [("off_book", "满意", "1")], MONDAY, answered={
        "attitude": "满意", "efficiency": "基本满意", "rules": "不满意"})
    check(session, settings)
    ranking = scoring.score_period(session, settings, "2026-W48")
    by_name = {w.window: w for w in ranking.windows}
    assert by_name["甲窗口"].contacts == 4 and by_name["乙窗口"].contacts == 1
    assert by_name["甲窗口"].simulated and by_name["乙窗口"].simulated
    assert by_name["乙窗口"].by_source["callback"] == round((100 + 80 + 0 + 100) / 4, 2)


def test_corrections_and_withdrawals_take_the_old_answers_out(session, settings, plugins):
    a = window(session, "甲窗口")
    made = contact(session, plugins, a, "callback", ["满意", "满意", "不满意"])
    other = contact(session, plugins, a, "callback", ["基本满意"])
    check(session, settings)
    answers.correct_answers(session, plugins, made, {"attitude": ("基本满意", "基本满意"),
                                                     "overall": ("满意", "满意")}, MONDAY)  # two withdrawn, one added
    check(session, settings)
    answers.correct_answers(session, plugins, other, {}, MONDAY)  # every answer withdrawn: no longer a contact
    check(session, settings)
    (only,) = scoring.score_period(session, settings, "2026-W48").windows
    assert only.contacts == 1 and only.by_source["callback"] == 90.0
    assert only.levels == {"满意": 1, "基本满意": 1, "不满意": 0}


def test_a_contact_just_before_and_after_local_midnight_lands_on_its_local_day(session, settings, plugins):
    a = window(session, "社保窗口")
    contact(session, plugins, a, "callback", ["满意"], at=datetime(2026, 11, 30, 15, 59, 59, tzinfo=UTC))  # 23:59:59
    contact(session, plugins, a, "callback", ["不满意"], at=datetime(2026, 11, 30, 16, 0, tzinfo=UTC))  # 00:00, Dec 1
    days = {(span, str(starts)): contacts for span, starts, contacts in session.execute(
        select(ScoreTally.span, ScoreTally.starts, ScoreTally.contacts))}
    assert days == {("day", "2026-11-30"): 1, ("day", "2026-12-01"): 1, ("year", "2026-01-01"): 2,
                    ("month", "2026-11-01"): 1, ("month", "2026-12-01"): 1}
    assert scoring.score_period(session, settings, "2026-11").windows[0].by_source["callback"] == 100.0
    assert scoring.score_period(session, settings, "2026-12").windows[0].by_source["callback"] == 0.0
    assert scoring.score_period(session, settings, "2026-W49").windows[0].contacts == 2  # Monday 30 Nov to 6 Dec
    check(session, settings, ("2026-W49", "2026-11", "2026-12", "2026-Q4", "2026"))


def test_a_rebuild_cuts_days_in_the_zone_as_the_writers_do(session, settings, plugins):
    a = window(session, "社保窗口")
    for hour in range(0, 48, 5):
        contact(session, plugins, a, "onsite", ["满意", "不满意"], at=datetime(2026, 12, 31, tzinfo=UTC)
                + timedelta(hours=hour, minutes=59, seconds=59))
    check(session, settings, ("2026", "2027", "2026-W53", "2027-W01", "2026-12", "2027-01"))


def test_calls_answered_through_conversations_keep_the_tallies(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    rows_ = [case_row(f"C{n}", ("社保窗口", "税务窗口")[n % 2], phone=phone_for(n)) for n in range(12)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows_)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "t").code == 0
    ran = cli("dispatch", "--once", "--json")
    assert ran.code == 0, ran.err
    settings = load_settings()
    database = Database(settings.database_url)
    with database.session() as session:
        ranking = scoring.score_period(session, settings, "2026-W48")
        assert sum(w.contacts for w in ranking.windows) > 0 and ranking.simulated
        check(session, settings)
    database.dispose()


def test_an_operator_sheet_corrected_and_emptied_keeps_the_tallies(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    cases = [case_row("K1", "社保窗口", phone=phone_for(11)), case_row("K2", "社保窗口", phone=phone_for(12))]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", cases)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s", "--channel", "operator").code == 0
    assert cli("dispatch", "--once").code == 0
    header = ["办件编号", "回访时间", *DIMENSIONS, "意见建议"]
    settings = load_settings()
    database = Database(settings.database_url)

    def imported(k1: list[str], k2: list[str]) -> dict:
        path = write_csv(workdir / "r.csv", [["K1", "2026-11-23 11:00", *k1, ""], ["K2", "2026-11-23 23:50", *k2, ""]],
                         header=header)
        done = cli("results", "import", path, "--source", "operator", "--json")
        assert done.code == 0, done.err
        with database.session() as session:
            check(session, settings)
        return done.json()

    assert imported(["满意"] * 6, ["不满意"] * 6)["imported"] == 2
    assert imported(["满意"] * 5 + ["基本满意"], ["满意"] * 6)["updated"] == 2  # corrected
    assert imported(["满意"] * 5 + [""], ["满意", "", "", "", "", ""])["updated"] == 2  # answers withdrawn
    with database.session() as session:
        (only,) = scoring.score_period(session, settings, "2026-W48").windows
        assert only.contacts == 2 and only.levels == {"满意": 6, "基本满意": 0, "不满意": 0}
    database.dispose()


def test_other_rules_read_the_answers_until_init_rebuilds_the_tallies(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    assert cli("init").code == 0
    settings = load_settings()
    database = Database(settings.database_url)
    with database.session() as session:
        a = window(session, "社保窗口")
        contact(session, load_plugins(), a, "callback", ["不满意"] * 5 + ["满意"])
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(
        '[scoring]\npoints = { "满意" = 10, "基本满意" = 6, "不满意" = 0 }\nquestion_weights = { overall = 4 }\n',
        encoding="utf-8")
    custom = load_settings()
    with database.session() as session:
        assert tallies.scores(session, TallyRules.of(custom), MONDAY.date(), MONDAY.date() + timedelta(days=1)) \
            is None
        (only,) = scoring.score_period(session, custom, "2026-W48").windows
        assert only.score == round(40 / 9, 2)  # (5 * 0 + 4 * 10) / 9, read from the answers
    rebuilt = cli("init")
    assert rebuilt.code == 0 and "tallies rebuilt" in rebuilt.out
    with database.session() as session:
        assert tallies.rules_in_force(session) == TallyRules.of(custom)
        (only,) = scoring.score_period(session, custom, "2026-W48").windows
        assert only.score == round(40 / 9, 2)
        check(session, custom)
    assert "tallies" not in cli("init").out  # already under these rules: nothing to do
    database.dispose()


# ---- a property: whatever happens to the answers, the tallies score as the answers do -------------------------

LEVEL = st.sampled_from([*LEVEL_NAMES, None])
ANSWERS = st.dictionaries(st.sampled_from(QUESTIONS), LEVEL, max_size=6)
CONTACT = st.fixed_dictionaries({
    "window": st.integers(0, 1),
    "source": st.sampled_from(["callback", "onsite", "evaluator", "follow_up"]),
    # around the year's end in Shanghai: local days, weeks, months, quarters and years all change there
    "at": st.integers(-60 * 60 * 30, 60 * 60 * 30).map(
        lambda s: datetime(2026, 12, 31, 16, tzinfo=UTC) + timedelta(seconds=s)),
    "simulated": st.booleans(),
    "first": ANSWERS,
    "then": st.lists(st.tuples(st.sampled_from(["add", "correct"]), ANSWERS), max_size=3),
})


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(CONTACT, min_size=1, max_size=6))
def test_any_answers_added_corrected_and_withdrawn_score_alike_from_the_tallies(database, settings, plugins, made):
    with database.engine.connect() as connection:
        transaction = connection.begin()
        session = Session(connection)
        try:
            windows = [window(session, f"窗口{i}") for i in range(2)]
            for spec in made:
                row = answers.new_contact(session, answers.NewContact(
                    source=spec["source"], channel="operator", window_id=windows[spec["window"]],
                    contacted_at=spec["at"], simulated=spec["simulated"]), spec["at"])
                answers.write_answers(session, row, [(q, lv, lv or "意见") for q, lv in spec["first"].items()],
                                      spec["at"])
                for step, given_ in spec["then"]:
                    if step == "add":
                        held = set(answers.answers_of(session, row.id))
                        answers.add_answers(session, plugins, row, [(q, lv, lv or "意见") for q, lv in given_.items()
                                                                    if q not in held], spec["at"])
                    else:
                        answers.correct_answers(session, plugins, row, {q: (lv, lv) for q, lv in given_.items()
                                                                        if lv is not None}, spec["at"])
                        session.flush()
            check(session, settings, ("2026", "2027", "2026-Q4", "2027-Q1", "2026-12", "2027-01", "2026-W53"))
        finally:
            session.close()
            transaction.rollback()


@given(st.dates(min_value=datetime(2024, 1, 1).date(), max_value=datetime(2028, 12, 31).date()),
       st.integers(0, 800))
def test_the_rows_read_for_a_period_cover_each_of_its_days_once(first, days):
    end = first + timedelta(days=days)
    covered = []
    for span, low, high in tallies._pieces(first, end):
        day = low
        while day < high:  # every row of the span starting in [low, high) covers its days
            following = (day + timedelta(days=1) if span == "day" else
                         tallies._next_month(day) if span == "month" else tallies._next_year(day))
            covered.extend(low_day for low_day in _days(day, following))
            day = following
    assert covered == list(_days(first, end))


def _days(first, end):
    day = first
    while day < end:
        yield day
        day += timedelta(days=1)
