"""Recording contacts and answers: the one place answers enter the database, whatever their source."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import JSON, Table, Text, bindparam, func, insert, literal_column, select, true
from sqlalchemy import cast as cast_
from sqlalchemy.orm import Session

from callbackd.api import events
from callbackd.api.events import AnswerEvent
from callbackd.core.vocabulary import SOURCES
from callbackd.store import tallies
from callbackd.store.models import Answer, Contact, Window

if TYPE_CHECKING:
    from callbackd.api.manager import Plugins


class ContactFacts(Protocol):
    """What recording an answer needs to know of its contact: a `Contact` row or a `ContactRow`."""

    @property
    def id(self) -> int: ...

    @property
    def callback_id(self) -> int | None: ...

    @property
    def window_id(self) -> int: ...

    @property
    def source(self) -> str: ...

    @property
    def channel(self) -> str: ...

    @property
    def contacted_at(self) -> datetime: ...

    @property
    def simulated(self) -> bool: ...


@dataclass(frozen=True)
class ContactRow:
    """A contact's fixed facts as plain values, for callers that never change the contact itself."""

    id: int
    callback_id: int | None
    window_id: int
    source: str
    channel: str
    contacted_at: datetime
    simulated: bool = False


@dataclass(frozen=True)
class KnownAnswers:
    """A callback's contact and its rated answers (question, level, raw), as the caller that recorded them knows
    them: closing the callback reads them from here instead of the database."""

    contact: ContactFacts | None
    rated: Sequence[tuple[str, str | None, str]]
    contact_is_new: bool = False  # the contact was made in this transaction: no rectification names it yet
    case_type: str | None = None  # the callback's case type, when the caller read it


@dataclass(frozen=True)
class NewContact:
    """A contact about to be made: where it came from, its window, when the applicant was contacted."""

    source: str
    channel: str
    window_id: int
    contacted_at: datetime
    callback_id: int | None = None
    simulated: bool = False
    survey_version: str = ""
    external_key: str | None = None

    def columns(self, now: datetime) -> dict[str, Any]:
        """The contact's columns, made `now` (its suggestion still empty)."""
        return {"source": self.source, "channel": self.channel, "window_id": self.window_id,
                "callback_id": self.callback_id, "contacted_at": self.contacted_at, "simulated": self.simulated,
                "survey_version": self.survey_version, "suggestion": "", "external_key": self.external_key,
                "created_at": now}


def new_contact(session: Session, made: NewContact, now: datetime) -> Contact:
    """Add a contact (the unit of scoring) and give it an id."""
    contact = Contact(**made.columns(now))
    session.add(contact)
    session.flush()
    return contact


_contacts, _answers = cast(Table, Contact.__table__), cast(Table, Answer.__table__)
_INSERT_CONTACT = insert(_contacts)


def _contact_with_answers() -> Any:
    """PostgreSQL: a contact and its first answers with one statement, the contact's id returned (the answers
    arrive as one JSON array of [question, level, raw], so one statement serves any number of them, and one text
    parameter costs the driver less than an array a column)."""
    contact = (
        insert(_contacts).values(
            source=bindparam("source"), channel=bindparam("channel"), window_id=bindparam("window_id"),
            callback_id=bindparam("callback_id"), contacted_at=bindparam("contacted_at"),
            simulated=bindparam("simulated"), survey_version=bindparam("survey_version"),
            suggestion=bindparam("suggestion"), external_key=bindparam("external_key"),
            created_at=bindparam("created_at"),
        ).returning(_contacts.c.id).cte("contact")
    )
    answer = func.json_array_elements(cast_(bindparam("given", type_=Text), JSON)).table_valued("value") \
        .render_derived(name="answer")
    given = select(*(answer.c.value.op("->>")(literal_column(str(i))).label(name)
                     for i, name in enumerate(("question", "level", "raw")))).subquery("given")
    answered = insert(_answers).from_select(
        ["contact_id", "question", "level", "raw", "window_id", "source", "contacted_at", "recorded_at"],
        select(contact.c.id, given.c.question, given.c.level, given.c.raw,
               *(bindparam(name, type_=_answers.c[column].type) for name, column in (
                   ("window_id", "window_id"), ("source", "source"), ("contacted_at", "contacted_at"),
                   ("created_at", "recorded_at"))))
        .select_from(contact.join(given, true())),  # every answer with the one contact
    ).cte("answered")
    return select(contact.c.id).add_cte(answered)


_CONTACT_WITH_ANSWERS = _contact_with_answers()


def insert_contact(
    session: Session, made: NewContact, now: datetime, given: Sequence[tuple[str, str | None, str]] = (),
) -> ContactRow:
    """Add a contact with one INSERT, without loading it into the session (a webhook's first answer), and the
    answers `given` (question, level, raw) with it: in the same statement on PostgreSQL. The caller tells the
    plugins about the answers (`announce_all`)."""
    values = made.columns(now)
    connection = session.connection()
    if given and connection.dialect.name == "postgresql":
        answered = json.dumps([(question, level, raw[:20]) for question, level, raw in given], ensure_ascii=False)
        contact_id = connection.execute(_CONTACT_WITH_ANSWERS, {**values, "given": answered}).scalar_one()
    else:
        inserted = connection.execute(_INSERT_CONTACT, values).inserted_primary_key
        assert inserted is not None
        contact_id = inserted[0]
    contact = ContactRow(int(contact_id), made.callback_id, made.window_id, made.source, made.channel,
                         made.contacted_at, made.simulated)
    if given and connection.dialect.name != "postgresql":
        _insert_answers(session, contact, given, now)
    _tally(session, contact, {}, given)
    return contact


def answers_of(session: Session, contact_id: int) -> dict[str, Answer]:
    return {a.question: a for a in session.scalars(select(Answer).where(Answer.contact_id == contact_id))}


# on the table, not the entity: a plain INSERT, without the ORM's bulk machinery
_INSERT_ANSWER = insert(_answers)


def add_answer(
    session: Session,
    plugins: Plugins,
    contact: ContactFacts,
    question: str,
    level: str | None,
    raw: str,
    now: datetime,
) -> bool:
    """Record one answer; an answer already recorded for the question is kept and False returned (a repeated
    delivery changes nothing twice)."""
    if session.scalar(select(Answer.id).where(Answer.contact_id == contact.id, Answer.question == question)):
        return False
    add_answers(session, plugins, contact, [(question, level, raw)], now)
    return True


def add_answers(
    session: Session,
    plugins: Plugins,
    contact: ContactFacts,
    given: Sequence[tuple[str, str | None, str]],
    now: datetime,
    *,
    window: str | None = None,
) -> None:
    """Record answers (question, level, raw) of one contact that the caller knows are new, with one statement,
    and tell the plugins once the transaction commits. `window` (the contact's window name) spares a query."""
    write_answers(session, contact, given, now)
    announce_all(session, plugins, contact, given, now, window=window)


def write_answers(
    session: Session, contact: ContactFacts, given: Sequence[tuple[str, str | None, str]], now: datetime, *,
    answered: Mapping[str, str | None] | None = None,
) -> None:
    """Write answers (question, level, raw) the caller knows are new, with one statement, without telling the
    plugins (`announce_all`); the contact's tallies follow. `answered` (question -> level of the contact's answers
    recorded before), when the caller knows it, spares a query."""
    if not given:
        return
    if answered is None and _scored(contact, given):
        answered = {question: level for question, level in session.execute(
            select(Answer.question, Answer.level).where(Answer.contact_id == contact.id))}
    _insert_answers(session, contact, given, now)
    _tally(session, contact, answered or {}, given)


def _insert_answers(
    session: Session, contact: ContactFacts, given: Sequence[tuple[str, str | None, str]], now: datetime
) -> None:
    # a plain INSERT: answers arrive one a webhook, and the ORM's unit of work would cost more than the write
    session.connection().execute(_INSERT_ANSWER, [{
        "contact_id": contact.id, "question": question, "level": level, "raw": raw[:20],
        "window_id": contact.window_id, "source": contact.source, "contacted_at": contact.contacted_at,
        "recorded_at": now,
    } for question, level, raw in given])


def _scored(contact: ContactFacts, given: Sequence[tuple[str, str | None, str]]) -> bool:
    """Whether answers `given` can change the contact's tallies: a rated answer of a scored source."""
    return contact.source in SOURCES and any(level is not None for _, level, _ in given)


def _tally(
    session: Session, contact: ContactFacts, answered: Mapping[str, str | None],
    given: Sequence[tuple[str, str | None, str]],
) -> None:
    """The contact's tallies after new answers `given` beside those `answered` before."""
    if _scored(contact, given):
        tallies.contact_changed(session, contact, answered,
                                {**answered, **{question: level for question, level, _ in given}})


def correct_answers(
    session: Session, plugins: Plugins, contact: Contact, given: Mapping[str, tuple[str, str]], now: datetime,
) -> dict[str, tuple[str | None, str]]:
    """Make a contact's rated answers read `given` (question -> (level, raw)), as a corrected result says: a rated
    answer it leaves out is withdrawn, a changed one rewritten, a new one added; the contact's tallies follow and
    the plugins are told of each answer written. Returns the rated answers as they were (question -> (level,
    raw))."""
    stored = answers_of(session, contact.id)
    levels = {key: a.level for key, a in stored.items()}
    before: dict[str, tuple[str | None, str]] = {key: (a.level, a.raw) for key, a in stored.items()
                                                 if a.level is not None}
    added = []
    for key, answer in stored.items():
        if answer.level is not None and key not in given:
            session.delete(answer)
    for key, (level, raw) in given.items():
        previous = stored.get(key)
        if previous is None:
            added.append((key, level, raw))
        elif (previous.level, previous.raw) != (level, raw):
            previous.level, previous.raw, previous.recorded_at = level, raw, now
            announce(session, plugins, contact, (key, level, raw), now)
    if added:
        _insert_answers(session, contact, added, now)
        announce_all(session, plugins, contact, added, now)
    tallies.contact_changed(session, contact, levels,
                            {**{k: v for k, v in levels.items() if v is None}, **{k: v for k, (v, _) in given.items()}})
    return before


def announce_all(
    session: Session, plugins: Plugins, contact: ContactFacts, given: Sequence[tuple[str, str | None, str]],
    now: datetime, *, window: str | None = None,
) -> None:
    """Tell the plugins about new answers (question, level, raw) once the transaction commits."""
    if not plugins.listens("answer_recorded"):
        return
    if window is None:
        window = session.scalar(select(Window.name).where(Window.id == contact.window_id)) or ""
    for question, level, raw in given:
        announce(session, plugins, contact, (question, level, raw[:20]), now, window)


def announce(
    session: Session, plugins: Plugins, contact: ContactFacts, answer: tuple[str, str | None, str],
    recorded_at: datetime, window: str | None = None,
) -> None:
    """Tell the plugins about a recorded (or corrected) answer (question, level, raw) once the transaction
    commits."""
    question, level, raw = answer
    if window is None:
        window = session.scalar(select(Window.name).where(Window.id == contact.window_id)) or ""
    events.defer(session, plugins, "answer_recorded", answer=AnswerEvent(
        contact_id=contact.id, callback_id=contact.callback_id, source=contact.source, channel=contact.channel,
        window=window, question=question, level=level, raw=raw, recorded_at=recorded_at,
    ))
