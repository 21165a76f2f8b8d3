"""Recording contacts and answers, on the database of the pass (SQLite, or PostgreSQL in its pass)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, select

from callbackd.contact import answers
from callbackd.store.db import Database
from callbackd.store.models import Answer, Contact, Window

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CONTACTED = NOW - timedelta(minutes=3)


def a_window(database: Database) -> int:
    with database.session() as session:
        window = Window(name="第01号窗口", created_at=NOW)
        session.add(window)
        session.flush()
        return window.id


def test_a_contact_made_with_its_first_answers_holds_them_all(database):
    window_id = a_window(database)
    long_raw = "按键9：一段超过二十个字符的原始记录会被截断保存"
    given = [("q1", "满意", "1"), ("q2", None, long_raw), ("q3", "不满意", "3"), ("q4", "基本满意", 'say "2" \\ [2]')]
    with database.session() as session:
        made = answers.insert_contact(session, answers.NewContact(
            source="callback", channel="simulator", window_id=window_id, contacted_at=CONTACTED, simulated=True,
            survey_version="v2"), NOW, given)

    with database.session() as session:
        contact = session.get(Contact, made.id)
        assert (contact.source, contact.channel, contact.window_id, contact.simulated, contact.survey_version,
                contact.suggestion, contact.contacted_at, contact.created_at) == (
            "callback", "simulator", window_id, True, "v2", "", CONTACTED, NOW)
        rows = session.execute(
            select(Answer.question, Answer.level, Answer.raw, Answer.window_id, Answer.source, Answer.contacted_at,
                   Answer.recorded_at).where(Answer.contact_id == made.id).order_by(Answer.question)
        ).all()
    assert [tuple(row) for row in rows] == [
        ("q1", "满意", "1", window_id, "callback", CONTACTED, NOW),
        ("q2", None, long_raw[:20], window_id, "callback", CONTACTED, NOW),
        ("q3", "不满意", "3", window_id, "callback", CONTACTED, NOW),
        ("q4", "基本满意", 'say "2" \\ [2]', window_id, "callback", CONTACTED, NOW),
    ]


def test_a_contact_made_without_answers_has_none(database):
    window_id = a_window(database)
    with database.session() as session:
        made = answers.insert_contact(session, answers.NewContact(
            source="follow_up", channel="ivr", window_id=window_id, contacted_at=CONTACTED), NOW)
    with database.session() as session:
        assert session.get(Contact, made.id).source == "follow_up"
        assert session.scalars(select(Answer).where(Answer.contact_id == made.id)).all() == []


def test_a_surveys_answers_go_in_one_statement_on_postgresql(database):
    window_id = a_window(database)
    statements: list[str] = []

    def seen(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    with database.session() as session:
        made = answers.insert_contact(session, answers.NewContact(
            source="callback", channel="ivr", window_id=window_id, contacted_at=CONTACTED), NOW)
        event.listen(database.engine, "before_cursor_execute", seen)
        try:
            answers.write_answers(session, made, [("q1", "满意", "1"), ("q2", "基本满意", "2"), ("q3", "满意", "1")],
                                  NOW)
        finally:
            event.remove(database.engine, "before_cursor_execute", seen)
    inserts = [statement for statement in statements if statement.startswith("INSERT INTO answers")]
    assert len(inserts) == 1, inserts
    if database.engine.dialect.name == "postgresql":  # the three rows in one INSERT, not a statement a row
        assert inserts[0].count("%(contact_id__") == 3, inserts
    with database.session() as session:
        assert len(session.scalars(select(Answer).where(Answer.contact_id == made.id)).all()) == 3
