"""One-key calls and providers' per-number limits, through the real dispatcher: a channel that asks only the
survey's short form, the rest of the survey by SMS afterwards (or not at all), scoring a contact that answered
only the short form, and the calling policy holding attempts under a channel's own limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callbackd.api import NumberLimit, path_token, same_token
from callbackd.api.manager import load_plugins
from callbackd.contact import dispatch
from callbackd.contact.conversation import open_conversation
from callbackd.core.errors import ConfigError
from callbackd.core.settings import load_settings
from callbackd.rounds.calling import CallingPolicy, NumberHolds
from callbackd.store.db import Database
from callbackd.store.models import Answer, Attempt, Callback, Contact
from tests.conftest import case_row, phone_for, write_csv
from tests.unit.test_plugins import install_plugin

NOW = "2026-11-23T10:00:00+08:00"
ZONE = "Asia/Shanghai"
AT_TEN = datetime(2026, 11, 23, 2, tzinfo=UTC)  # 10:00 in Beijing, a Monday inside calling hours

CHANNELS = """
from callbackd.api import NumberLimit, StartResult, hookimpl


class OneKey:
    name = "onekey"
    kind = "voice"
    form = "short"
    number_limits = (NumberLimit(1, 60), NumberLimit(2, 600))

    def start(self, conversation):
        return StartResult.placed(f"K-{conversation.attempt_id}")

    def configuration(self, settings):
        return [("ONEKEY_TOKEN", False)]


class Texts:
    name = "texts"
    kind = "sms"

    def start(self, conversation):
        return StartResult.placed(f"T-{conversation.attempt_id}")


@hookimpl
def register_channels(register):
    register(OneKey())
    register(Texts())
"""


def configure(workdir: Path, text: str) -> None:
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(text, encoding="utf-8")


@pytest.fixture
def one_key(cli, workdir, monkeypatch):
    install_plugin(workdir / "site", "onekey_plugin", CHANNELS, monkeypatch)
    monkeypatch.setenv("CALLBACKD_NOW", NOW)


def open_round(cli, workdir: Path, phones: list[str], *channels: str) -> None:
    rows = [case_row(f"K{i}", "社保窗口", phone=phone) for i, phone in enumerate(phones)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    opened = cli("round", "open", "--week", "2026-W48", "--seed", "t", *[a for c in channels for a in ("--channel", c)])
    assert opened.code == 0, opened.err


def placed(now: datetime) -> list[int]:
    """One tick and placing what it claimed, as the embedded dispatcher does: the attempts placed."""
    settings, plugins = load_settings(), load_plugins()
    database = Database(settings.database_url)
    try:
        claimed = dispatch.tick(database, settings, plugins, now).claimed
        dispatch.place_many(database, settings, plugins, claimed, now)
        return claimed
    finally:
        database.dispose()


def converse(attempt_id: int, now: datetime, act) -> object:
    settings, plugins = load_settings(), load_plugins()
    database = Database(settings.database_url)
    try:
        with database.session() as session:
            return act(open_conversation(session, settings, plugins, attempt_id, now))
    finally:
        database.dispose()


def rows(query) -> list:
    database = Database(load_settings().database_url)
    try:
        with database.session() as session:
            return list(session.execute(query).all())
    finally:
        database.dispose()


def test_a_one_key_call_asks_the_short_form_and_answering_it_completes_the_callback(cli, workdir, one_key):
    open_round(cli, workdir, [phone_for(1)], "onekey")
    (attempt,) = placed(AT_TEN)

    def press_two(conversation):
        assert [q.key for q in conversation.survey.questions] == ["overall"]
        assert conversation.current_question().key == "overall"
        assert conversation.press("2").level == "基本满意"
        conversation.finish("completed")

    converse(attempt, AT_TEN, press_two)
    assert rows(select(Callback.status)) == [("completed",)]
    assert rows(select(Answer.question, Answer.level)) == [("overall", "基本满意")]
    scored = cli("score", "--period", "2026-W48", "--json").json()["windows"][0]
    assert scored["contacts"] == 1 and scored["score"] == 80.0


def test_a_one_key_call_with_no_key_is_a_hang_up_and_retried(cli, workdir, one_key):
    open_round(cli, workdir, [phone_for(1)], "onekey")
    (attempt,) = placed(AT_TEN)
    converse(attempt, AT_TEN, lambda c: (c.pick_up(), c.press("7"), c.finish("completed")))
    assert rows(select(Attempt.channel, Attempt.status).order_by(Attempt.id)) == [
        ("onekey", "hung_up"), ("onekey", "due")]
    assert rows(select(Callback.status)) == [("in_progress",)]


def test_the_rest_of_the_survey_follows_by_sms_and_the_callback_is_complete_either_way(cli, workdir, one_key):
    configure(workdir, '[surveys]\nrest_by = "texts"\n')
    open_round(cli, workdir, [phone_for(1), phone_for(2)], "onekey")
    first, second = placed(AT_TEN)
    for attempt in (first, second):
        converse(attempt, AT_TEN, lambda c: (c.press("1"), c.finish("completed")))
    assert rows(select(Callback.status)) == [("in_progress",), ("in_progress",)]  # the SMS follows
    later = AT_TEN + timedelta(minutes=5)
    sms_first, sms_second = placed(later)
    assert rows(select(Attempt.channel).where(Attempt.id.in_((sms_first, sms_second)))) == [("texts",), ("texts",)]

    def answer_the_rest(conversation):
        assert [q.key for q in conversation.pending_ratings()] == [
            "attitude", "efficiency", "rules", "off_book", "integrity"]
        assert conversation.reply("1 2 1 1 1").kind == "answers"
        conversation.finish("completed")

    converse(sms_first, later, answer_the_rest)
    converse(sms_second, later, lambda c: c.finish("no_answer"))  # nobody replied: the short form stands
    assert rows(select(Callback.status).order_by(Callback.id)) == [("completed",), ("completed",)]
    answered = rows(select(Contact.callback_id, Answer.question).join(Contact, Contact.id == Answer.contact_id)
                    .order_by(Answer.id))
    assert len([1 for callback, _ in answered if callback == answered[0][0]]) == 6
    assert [q for callback, q in answered if callback != answered[0][0]] == ["overall"]
    assert rows(select(Attempt.status).where(Attempt.id == sms_second)) == [("no_answer",)]


def test_rest_by_must_name_an_sms_channel(cli, workdir, one_key):
    configure(workdir, '[surveys]\nrest_by = "onekey"\n')
    rows_ = [case_row("K1", "社保窗口", phone=phone_for(1))]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows_)).code == 0
    opened = cli("round", "open", "--week", "2026-W48", "--channel", "onekey")
    assert opened.code != 0 and "rest_by" in opened.err and "not an SMS channel" in opened.err


def test_a_channels_own_number_limits_hold_attempts_to_one_number(cli, workdir, one_key):
    # the core's own rules loosened (retries at once, no gap, ten a day): the channel's limits are the strictest
    configure(workdir, "[dispatch]\nper_number_gap_seconds = 0\nper_number_per_day = 10\nretry_minutes = 0\n"
                       "attempts_per_day = 10\nattempts_per_channel = 10\n")
    open_round(cli, workdir, [phone_for(7)], "onekey")

    def unanswered(at: datetime) -> None:
        (attempt,) = placed(at)
        converse(attempt, at, lambda c: c.finish("no_answer"))

    def held_until() -> list[datetime]:
        return [when.astimezone(UTC) for (when,) in rows(select(Attempt.due_at).where(Attempt.status == "due"))]

    unanswered(AT_TEN)
    assert placed(AT_TEN + timedelta(seconds=30)) == []  # 1 a minute
    assert held_until() == [AT_TEN + timedelta(seconds=60)]
    unanswered(AT_TEN + timedelta(seconds=60))
    assert placed(AT_TEN + timedelta(seconds=120)) == []  # 2 in ten minutes: until the first leaves the window
    assert held_until() == [AT_TEN + timedelta(seconds=600)]
    assert len(placed(AT_TEN + timedelta(seconds=600))) == 1
    assert len(rows(select(Attempt.id))) == 3


def test_the_strictest_limit_decides(workdir, one_key):
    policy = CallingPolicy(load_settings())  # the core's own: 3 a day, 60 s apart
    limits = {"onekey": (NumberLimit(1, 30), NumberLimit(2, 600), NumberLimit(3, 86400))}
    recent = {"+8613900000001": [("onekey", AT_TEN - timedelta(seconds=100)),
                                 ("other", AT_TEN - timedelta(seconds=20))]}
    numbers = NumberHolds(policy, AT_TEN, {k: list(v) for k, v in recent.items()}, limits)
    # the core's 60 s gap after the other channel's attempt 20 s ago is stricter than the channel's 30 s
    assert numbers.next_for("+8613900000001", "onekey") == AT_TEN + timedelta(seconds=40)
    numbers = NumberHolds(policy, AT_TEN + timedelta(seconds=60), {k: list(v) for k, v in recent.items()}, limits)
    assert numbers.next_for("+8613900000001", "onekey") is None
    numbers.take("+8613900000001", "onekey")  # the third today: the core's 3 a day is the strictest now
    assert numbers.next_for("+8613900000001", "onekey") == datetime(2026, 11, 24, 9, 0, tzinfo=ZoneInfo(ZONE))
    assert numbers.next_for("+8613900000002", "onekey") is None  # another number is free
    twice = {"+8613900000002": [("onekey", AT_TEN - timedelta(seconds=300)),
                                ("onekey", AT_TEN - timedelta(seconds=100))]}
    numbers = NumberHolds(policy, AT_TEN, twice, limits)  # 2 in ten minutes: free when the first leaves it
    assert numbers.next_for("+8613900000002", "onekey") == AT_TEN + timedelta(seconds=300)
    assert numbers.next_for("+8613900000002", "other") is None  # the limits are the channel's own


def test_plugins_list_shows_each_channels_limits_form_and_set_up(cli, one_key):
    listed = cli("plugins", "list", "--json")
    assert listed.code == 0, listed.err
    (plugin,) = [p for p in listed.json() if p["name"] == "onekey_plugin"]
    one = {c["channel"]: c for c in plugin["channel_details"]}["onekey"]
    assert one["form"] == "short" and one["number_limits"] == ["1 per minute", "2 per 10 minutes"]
    assert one["configuration"] == {"ONEKEY_TOKEN": False}
    shown = cli("plugins", "list")
    assert "2 per 10 minutes" in shown.out and "ONEKEY_TOKEN: MISSING" in shown.out


def test_a_callback_token_must_be_long_and_is_compared_whole():
    token = "A" * 21 + "b"
    assert path_token(f" {token} ", "[channels.x] callback_token") == token
    for bad in ("", "short", "A" * 21, "A" * 30 + "/"):
        with pytest.raises(ConfigError, match=r"\[channels.x\] callback_token"):
            path_token(bad, "[channels.x] callback_token")
    assert same_token(token, token)
    assert not same_token(token[:-1], token) and not same_token(token + "x", token) and not same_token("", "")
    assert not same_token("\udcff" * 22, token)  # a path that is not UTF-8 matches nothing, and raises nothing


def test_a_surveys_short_form_is_its_own_choice_or_overall_and_names_only_rating_questions():
    from callbackd.rounds.surveys import load_survey

    survey = load_survey(Path(__file__).parents[2] / "config" / "surveys" / "default.toml")
    assert survey.short_form_keys() == ("overall",) and survey.form("short").version == survey.version
    data = survey.snapshot()
    del data["version"]
    chosen = type(survey).from_snapshot({**data, "short_form": ["attitude", "efficiency"]})
    assert [q.key for q in chosen.form("short").questions] == ["attitude", "efficiency"]
    assert chosen.version != survey.version  # a survey's short form is part of what a round froze
    assert type(survey).from_snapshot(chosen.snapshot()).short_form == ("attitude", "efficiency")
    without = {**data, "questions": [q for q in data["questions"] if q["key"] != "overall"]}
    assert type(survey).from_snapshot(without).short_form_keys() == ("attitude",)
    text_key = next(q["key"] for q in data["questions"] if q.get("kind") == "text")
    with pytest.raises(ConfigError, match=f"short_form names '{text_key}'"):
        type(survey).from_snapshot({**data, "short_form": [text_key]})
