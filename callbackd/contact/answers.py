"""Recording contacts and answers: the one place answers enter the database, whatever their source."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import CTE, JSON, Table, Text, bindparam, func, insert, literal_column, select, true
from sqlalchemy import cast as cast_
from sqlalchemy.orm import Session

from callbackd.api import events
from callbackd.api.events import AnswerEvent
from callbackd.store.db import Held
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


@dataclass(frozen=True)
class ContactRow:
    """A contact's fixed facts as plain values, for callers that never change the contact itself."""

    id: int
    callback_id: int | None
    window_id: int
    source: str
    channel: str
    contacted_at: datetime


@dataclass(frozen=True)
class KnownAnswers:
    """A callback's contact and its rated answers (question, level, raw), as the caller that recorded them knows
    them: closing the callback reads them from here instead of the database."""

    contact: ContactFacts | None
    rated: Sequence[tuple[str, str | None, str]]
    fresh: bool = False  # the contact was made in this transaction: no rectification names it yet
    case_type: str | None = None  # the callback's case type, when the caller read it
    # a caller that still holds the contact's row for a write of its own (a conversation placing its attempt):
    # `write_held` writes it at once, called before anything reads the contact or its answers; `hold` takes
    # inserts that name the contact (a rectification) to write with it
    write_held: Callable[[], None] | None = None
    hold: Callable[[Held], None] | None = None

    def written(self) -> None:
        """The contact and its answers are in the database from now on."""
        if self.write_held is not None:
            self.write_held()


def new_contact(
    session: Session,
    *,
    source: str,
    channel: str,
    window_id: int,
    contacted_at: datetime,
    now: datetime,
    callback_id: int | None = None,
    simulated: bool = False,
    survey_version: str = "",
    external_key: str | None = None,
) -> Contact:
    """Add a contact (the unit of scoring) and give it an id."""
    contact = Contact(
        source=source, channel=channel, window_id=window_id, callback_id=callback_id, contacted_at=contacted_at,
        simulated=simulated, survey_version=survey_version, suggestion="", external_key=external_key,
        created_at=now,
    )
    session.add(contact)
    session.flush()
    return contact


_contacts, _answers = cast(Table, Contact.__table__), cast(Table, Answer.__table__)
_INSERT_CONTACT = insert(_contacts)


def _contact_with_answers(*, prefix: str = "", with_id: bool = False) -> tuple[CTE, CTE]:
    """PostgreSQL: a contact and its first answers as two CTEs of one statement, the contact's id returned by the
    first (the answers arrive as one JSON array of [question, level, raw], so one statement serves any number of
    them, and one text parameter costs the driver less than an array a column). Its parameters are named with
    `prefix` (`_contact_parameters`); `with_id`: the contact's id is one, taken from its sequence beforehand."""
    def p(name: str, **kwargs: Any) -> Any:
        return bindparam(prefix + name, **kwargs)

    contact = (
        insert(_contacts).values(
            source=p("source"), channel=p("channel"), window_id=p("window_id"), callback_id=p("callback_id"),
            contacted_at=p("contacted_at"), simulated=p("simulated"), survey_version=p("survey_version"),
            suggestion=p("suggestion"), external_key=None, created_at=p("now"), **({"id": p("id")} if with_id else {}),
        ).returning(_contacts.c.id).cte("contact")
    )
    answer = func.json_array_elements(cast_(p("given", type_=Text), JSON)).table_valued("value") \
        .render_derived(name="answer")
    given = select(*(answer.c.value.op("->>")(literal_column(str(i))).label(name)
                     for i, name in enumerate(("question", "level", "raw")))).subquery("given")
    answered = insert(_answers).from_select(
        ["contact_id", "question", "level", "raw", "window_id", "source", "contacted_at", "recorded_at"],
        select(contact.c.id, given.c.question, given.c.level, given.c.raw,
               *(p(name, type_=_answers.c[column].type) for name, column in (
                   ("window_id", "window_id"), ("source", "source"), ("contacted_at", "contacted_at"),
                   ("now", "recorded_at"))))
        .select_from(contact.join(given, true())),  # every answer with the one contact
    ).cte("answered")
    return contact, answered


_contact, _answered = _contact_with_answers()
_CONTACT_WITH_ANSWERS = select(_contact.c.id).add_cte(_answered)
# PostgreSQL: a contact whose id was taken beforehand and its first answers, held for another statement; the prefix
# is no column's name, as the CTEs may go before an UPDATE of a table with such columns (`held_contact`)
_HELD_PREFIX = "contact_"
_HELD_CONTACT = _contact_with_answers(prefix=_HELD_PREFIX, with_id=True)


def insert_contact(
    session: Session,
    *,
    source: str,
    channel: str,
    window_id: int,
    contacted_at: datetime,
    now: datetime,
    callback_id: int | None = None,
    simulated: bool = False,
    survey_version: str = "",
    given: Sequence[tuple[str, str | None, str]] = (),
) -> ContactRow:
    """Add a contact with one INSERT, without loading it into the session (a webhook's first answer), and the
    answers `given` (question, level, raw) with it: in the same statement on PostgreSQL. The caller tells the
    plugins about the answers (`announce_all`)."""
    values = {
        "source": source, "channel": channel, "window_id": window_id, "callback_id": callback_id,
        "contacted_at": contacted_at, "simulated": simulated, "survey_version": survey_version,
    }
    connection = session.connection()
    if given and connection.dialect.name == "postgresql":
        contact_id = connection.execute(_CONTACT_WITH_ANSWERS,
                                        _contact_parameters({**values, "suggestion": ""}, now, given)).scalar_one()
        return ContactRow(int(contact_id), callback_id, window_id, source, channel, contacted_at)
    result = connection.execute(_INSERT_CONTACT, {**values, "suggestion": "", "external_key": None,
                                                  "created_at": now})
    inserted = result.inserted_primary_key[0] if result.inserted_primary_key else None
    assert inserted is not None
    contact = ContactRow(int(inserted), callback_id, window_id, source, channel, contacted_at)
    if given:
        write_answers(session, contact, given, now)
    return contact


def _contact_parameters(
    values: dict[str, Any], now: datetime, given: Sequence[tuple[str, str | None, str]], *, prefix: str = "",
) -> dict[str, Any]:
    """The parameters of the PostgreSQL statements that insert a contact (`values`, with its suggestion) and its
    first answers `given` (question, level, raw), named with `prefix`."""
    parameters = {**values, "now": now,
                  "given": json.dumps([(question, level, raw[:20]) for question, level, raw in given],
                                      ensure_ascii=False)}
    return {prefix + name: value for name, value in parameters.items()}


def held_contact(values: dict[str, Any], now: datetime, given: Sequence[tuple[str, str | None, str]]) -> Held:
    """PostgreSQL: the insert of a contact whose id was taken beforehand (`values`, with its id and suggestion) and
    of its first answers `given`, held for another statement (`db.write_rows`, `db.write_held`)."""
    return _HELD_CONTACT, _contact_parameters(values, now, given, prefix=_HELD_PREFIX)


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
    session: Session, contact: ContactFacts, given: Sequence[tuple[str, str | None, str]], now: datetime
) -> None:
    """Write answers (question, level, raw) the caller knows are new, with one statement, without telling the
    plugins (`announce_all`)."""
    # a plain INSERT: answers arrive one a webhook, and the ORM's unit of work would cost more than the write
    session.connection().execute(_INSERT_ANSWER, [{
        "contact_id": contact.id, "question": question, "level": level, "raw": raw[:20],
        "window_id": contact.window_id, "source": contact.source, "contacted_at": contact.contacted_at,
        "recorded_at": now,
    } for question, level, raw in given])


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
        announce(session, plugins, contact, question, level, raw[:20], now, window)


def announce(
    session: Session, plugins: Plugins, contact: ContactFacts, question: str, level: str | None, raw: str,
    recorded_at: datetime, window: str | None = None,
) -> None:
    """Tell the plugins about a recorded (or corrected) answer once the transaction commits."""
    if window is None:
        window = session.scalar(select(Window.name).where(Window.id == contact.window_id)) or ""
    events.defer(session, plugins, "answer_recorded", answer=AnswerEvent(
        contact_id=contact.id, callback_id=contact.callback_id, source=contact.source, channel=contact.channel,
        window=window, question=question, level=level, raw=raw, recorded_at=recorded_at,
    ))
