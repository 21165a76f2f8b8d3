"""One attempt's conversation with an applicant: the core service a channel plugin talks to.

A channel never touches tables. It gets a `Conversation` when its attempt starts (or loads one from a webhook
with `open_conversation`) and tells it what happened: the applicant picked up, pressed a digit, replied by
SMS, hung up, never answered, asked not to be contacted again. The conversation records answers on the
callback's contact, keeps partial answers, and moves the attempt and the callback along (`dispatch.py` decides
retries and fallbacks).

Opening a conversation is one SQL query (every webhook and every placing opens one): it reads the attempt, its
callback, case and window, and the contact's answers as values. A webhook's conversation loads the ORM rows of
the attempt and the callback only when something changes them (picking up, finishing, an opt-out); placing, which
nearly always changes them, loads them with that query. What changes is written as it changes, in the session's
transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Join, Table, bindparam, select
from sqlalchemy.orm import Session

from callbackd.api.channels import form_of
from callbackd.contact import answers, attempts, transitions
from callbackd.contact.answers import ContactRow, KnownAnswers, NewContact
from callbackd.contact.context import Context
from callbackd.core.errors import NotFoundError
from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT, PLAN_CASE_TYPE, PLAN_SOURCE
from callbackd.rounds.surveys import Choice, Question, SmsReading, Survey, round_survey
from callbackd.store.db import write_row, write_through
from callbackd.store.models import Answer, Attempt, Callback, Case, Contact, OptOut, Round, Window

if TYPE_CHECKING:
    from callbackd.api.manager import Plugins
    from callbackd.core.settings import Settings


@dataclass(frozen=True)
class Facts:
    """An attempt and what it belongs to, as the database held them when the conversation opened."""

    attempt_id: int
    attempt_number: int
    channel: str
    attempt_status: str
    callback_id: int
    callback_status: str
    round_id: int
    window_id: int
    phone: str
    case_id: int
    case_no: str
    matter: str
    case_type: str
    phone_sms: bool
    window: str
    follow_up: int = 0  # n for the n-th follow-up callback (整改回访): its answers verify a rectification
    resolved_at: datetime | None = None  # the case's 办结时间
    # read when the conversation opens for placing; None otherwise
    in_force: bool | None = None  # the callback's round is the one in force for its week (not replaced)
    number_opted_out: bool | None = None  # the applicant's number has opted out (退订)
    others_open: bool | None = None  # another attempt of the callback is still due or under way


@dataclass
class Conversation:
    """What a channel may know and do for one attempt. Phone numbers appear here only for placing the contact."""

    session: Session
    settings: Settings
    plugins: Plugins
    now: datetime
    facts: Facts
    survey: Survey
    simulated: bool
    # the callback's contact and its answers (question -> (level, raw)), read when the conversation opened: this
    # conversation is their only writer within its transaction
    _contact_row: ContactRow | None = field(default=None, repr=False)
    _answers: dict[str, tuple[str | None, str]] = field(default_factory=dict, repr=False)
    _contact_made: bool = field(default=False, init=False, repr=False)  # by this conversation, just now
    _answered_before: frozenset[str] = field(default=frozenset(), init=False, repr=False)
    # the ORM rows, once something needs them
    _attempt: Attempt | None = field(default=None, init=False, repr=False)
    _callback: Callback | None = field(default=None, init=False, repr=False)

    # ---- what the channel may read -------------------------------------------------------------------

    @property
    def attempt(self) -> Attempt:
        """The attempt's ORM row (loaded on first use, with the callback's)."""
        if self._attempt is None:
            self._load_rows()
        assert self._attempt is not None
        return self._attempt

    @property
    def callback(self) -> Callback:
        """The callback's ORM row (loaded on first use, with the attempt's)."""
        if self._callback is None:
            self._load_rows()
        assert self._callback is not None
        return self._callback

    @property
    def case(self) -> Case:
        case = self.session.get(Case, self.facts.case_id)
        assert case is not None
        return case

    def _load_rows(self) -> None:
        """The ORM rows of the attempt and the callback, with one query (rows this session holds already are kept
        as they are)."""
        row = self.session.execute(_ROWS, {"attempt_id": self.facts.attempt_id}).one_or_none()
        if row is None:
            raise NotFoundError(f"no attempt {self.facts.attempt_id}")
        self._attempt, self._callback = row

    @property
    def context(self) -> Context:
        """The session, settings, plugins and time this conversation acts with."""
        return Context(self.session, self.settings, self.plugins, self.now)

    @property
    def attempt_status(self) -> str:
        """The attempt's status as it stands now (as read when the conversation opened, until something changed
        it)."""
        return self.facts.attempt_status if self._attempt is None else self._attempt.status

    @property
    def attempt_id(self) -> int:
        return self.facts.attempt_id

    @property
    def attempt_number(self) -> int:
        return self.facts.attempt_number

    @property
    def callback_id(self) -> int:
        return self.facts.callback_id

    @property
    def phone(self) -> str:
        return self.facts.phone

    @property
    def sms_capable(self) -> bool:
        return self.facts.phone_sms

    @property
    def case_no(self) -> str:
        return self.facts.case_no

    @property
    def matter(self) -> str:
        return self.facts.matter

    @property
    def window(self) -> str:
        return self.facts.window

    @property
    def organisation(self) -> str:
        return self.settings.organisation

    @property
    def resolved_on(self) -> date | None:
        """The local day the case was resolved (办结), in the organisation's zone."""
        resolved = self.facts.resolved_at
        if resolved is None:
            return None
        zone = ZoneInfo(self.settings.timezone)
        return (resolved if resolved.tzinfo else resolved.replace(tzinfo=UTC)).astimezone(zone).date()

    @property
    def finished(self) -> bool:
        """The attempt has ended or its callback is closed: nothing more is recorded through it."""
        if self._attempt is not None and self._callback is not None:
            attempt_status, callback_status = self._attempt.status, self._callback.status
        else:
            attempt_status, callback_status = self.facts.attempt_status, self.facts.callback_status
        return attempt_status not in OPEN_ATTEMPT or callback_status in FINAL_CALLBACK

    def answered_keys(self) -> set[str]:
        return set(self._answers)

    def known_answers(self) -> KnownAnswers:
        """The callback's contact and its rated answers in the survey's order, as this conversation knows them:
        closing the callback needs no query to learn whether it opens a rectification."""
        rated = []
        for question in self.survey.questions:
            level, raw = self._answers.get(question.key, (None, ""))
            if level is not None:
                rated.append((question.key, level, raw))
        return KnownAnswers(self._contact_row, rated, contact_is_new=self._contact_made,
                            case_type=self.facts.case_type)

    def current_question(self) -> Question | None:
        """The next question still to ask, or None when every question is answered."""
        return self.survey.next_question(self._answers.keys())

    def pending_ratings(self) -> list[Question]:
        return [q for q in self.survey.rating_questions() if q.key not in self._answers]

    # ---- what the channel reports --------------------------------------------------------------------

    def pick_up(self) -> None:
        """The applicant answered the call (or the message was delivered and the survey is open)."""
        if not self.finished:
            self.set_attempt(status="answered")

    def press(self, digit: str, question_key: str | None = None) -> Choice | None:
        """A keypad digit for the current question (or `question_key`): the choice, or None when invalid.

        A repeated delivery for a question already answered changes nothing and returns the stored choice.
        """
        return self.press_all([(question_key or "", digit)])[0]

    def press_all(self, presses: Sequence[tuple[str, str]]) -> list[Choice | None]:
        """Several keypad digits, each (question key, or "" for the current question; digit), as `press` would
        take them one after the other, recorded with one statement (a channel that learns a whole survey at
        once: a simulated applicant, a call's log)."""
        choices: list[Choice | None] = []
        pressed: dict[str, tuple[str, str | None, str]] = {}
        for key, digit in presses:
            question = self.survey.question(key) if key else self.survey.next_question(self._answers.keys() | pressed)
            if question is None or question.kind != "rating" or self.finished:
                choices.append(None)
                continue
            choice = self.survey.read_digit(question, digit)
            stored = self._answers.get(question.key) or pressed.get(question.key)
            if stored is not None:  # answered already: the same digit reads as the stored choice, another as none
                choices.append(choice if choice is not None and choice.label == stored[-1] else None)
                continue
            if choice is not None:
                pressed[question.key] = (question.key, choice.level, choice.label)
            choices.append(choice)
        self._record_all(list(pressed.values()))
        return choices

    def reply(self, text: str) -> SmsReading:
        """An SMS reply: answers for the pending questions, an opt-out, or unreadable (nothing recorded)."""
        reading = self.survey.read_sms(text, self.pending_ratings())
        if reading.kind == "opt_out":
            self.opt_out("sms", note=text[:200])  # honoured even after the survey closed
        elif reading.kind == "answers" and not self.finished:
            self._record_all([(key, choice.level, choice.label) for key, choice in reading.answers])
        return reading

    def suggest(self, text: str) -> None:
        """The applicant's free suggestion (意见建议); marks the survey's text question answered."""
        text = text.strip()
        if not text or self.finished:
            return
        contact = self._ensure_contact()
        write_row(self.session, Contact, contact.id, suggestion=text[:2000])  # without loading the contact
        # the survey's text question, asked or not: a one-key contact's words after its key are its suggestion too
        self._record_all([(q.key, None, q.dimension) for q in self._full_survey().questions if q.kind == "text"])

    def opt_out(self, source: str, note: str = "") -> None:
        """The applicant asked never to be contacted again (退订): every open callback of the number closes."""
        attempts.record_opt_out(self.session, self.plugins, self.phone, source, self.now, note=note,
                                settings=self.settings)
        self._load_rows()  # the attempt and the callback as the opt-out left them

    def finish(self, outcome: str, detail: str = "") -> None:
        """The attempt ended: `completed`, `hung_up`, `no_answer`, `busy`, `failed`, `machine`,
        `invalid_number`, `refused`. What follows (a retry, a fallback, a final state) is the state machine's to
        decide (`transitions.end`); a second report for an ended attempt changes nothing.

        A short form answered completes the callback, unless `[surveys] rest_by` names a channel that asks the rest
        of the survey (by SMS, to a mobile): that attempt follows, and however it ends the callback is complete."""
        ended = transitions.end(
            outcome, attempt_status=self.attempt.status, callback_status=self.callback.status,
            ratings=[q.key for q in self.survey.rating_questions()], answered=self._answers.keys(),
            short_form_answered=self._asks_the_rest(),
        )
        if ended is None:
            return
        rest_by = self._rest_by() if ended.then == transitions.FINAL_FOR["completed"] else None
        if rest_by is not None:
            ended = replace(ended, then=transitions.NextChannel(rest_by))
        self.set_attempt(status=ended.outcome, ended_at=self.now, detail=detail[:500])
        attempts.follow(self.context, self.attempt, ended, sms_capable=self.sms_capable,
                        answers=self.known_answers(), others_open=self.facts.others_open is not False)

    def _full_survey(self) -> Survey:
        return round_survey(self.session, self.facts.round_id)

    def _asks_the_rest(self) -> bool:
        """This attempt asks the rest of a survey whose short form was answered before it (`[surveys] rest_by`)."""
        full = self._full_survey()
        return (self.survey is full and self.facts.channel == self.settings.surveys.rest_by
                and set(full.short_form_keys()) <= self._answered_before)

    def _rest_by(self) -> str | None:
        """The channel that asks the rest of the survey after this attempt answered its short form, if any."""
        rest_by, full = self.settings.surveys.rest_by, self._full_survey()
        if not rest_by or self.survey is full or not self.sms_capable or rest_by not in self.plugins.channels:
            return None
        pending = [q for q in full.rating_questions() if q.key not in self._answers]
        return rest_by if pending else None

    @property
    def picked_up(self) -> bool:
        """The applicant answered (the attempt's status is `answered`)."""
        return self.attempt_status == "answered"

    @property
    def detail(self) -> str:
        """The attempt's provider-facing detail, as last set by `note` or `finish`."""
        return self.attempt.detail or ""

    def note(self, detail: str) -> None:
        """Set the attempt's provider-facing detail without ending it (a channel's own mark, e.g. a re-ask)."""
        self.set_attempt(detail=detail)

    # ---- the attempt's own columns --------------------------------------------------------------------

    def set_attempt(self, **values: Any) -> None:
        """Set columns of the attempt, written now."""
        write_through(self.session, self.attempt, **values)

    # ---- recording -----------------------------------------------------------------------------------

    def _ensure_contact(self) -> ContactRow:
        return self._contact_row or self._make_contact(())

    def _source(self) -> str:
        """The contact's source: a follow-up (整改回访) and a plan's callback (回访计划) are no score source."""
        if self.facts.follow_up:
            return "follow_up"
        return PLAN_SOURCE if self.facts.case_type == PLAN_CASE_TYPE else "callback"

    def _make_contact(self, given: Sequence[tuple[str, str | None, str]]) -> ContactRow:
        """Make the callback's contact, with its first answers `given` (written, not announced)."""
        made = NewContact(
            source=self._source(), channel=self.facts.channel,
            window_id=self.facts.window_id, contacted_at=self.now, callback_id=self.facts.callback_id,
            simulated=self.simulated, survey_version=self.survey.version,
        )
        self._contact_row = answers.insert_contact(self.session, made, self.now, given)
        self._contact_made = True
        return self._contact_row

    def _record_all(self, given: Sequence[tuple[str, str | None, str]]) -> int:
        """Record the answers (question, level, raw) not recorded yet, with one statement (the first ones with
        the contact they make, on PostgreSQL); how many were new."""
        new: dict[str, tuple[str, str | None, str]] = {}
        for key, level, raw in given:
            if key not in self._answers and key not in new:  # the first one of a question wins
                new[key] = (key, level, raw)
        if not new:
            return 0
        recorded = list(new.values())
        if self._contact_row is None:
            contact = self._make_contact(recorded)
        else:
            contact = self._contact_row
            answers.write_answers(self.session, contact, recorded, self.now,
                                  answered={key: level for key, (level, _) in self._answers.items()})
        answers.announce_all(self.session, self.plugins, contact, recorded, self.now, window=self.facts.window)
        for key, level, raw in recorded:
            self._answers[key] = (level, raw[:20])
        return len(new)

    def record(self, question_key: str, level: str | None, raw: str) -> bool:
        """Record an answer given by the applicant (a channel that reads answers itself, such as an operator's
        result sheet, calls this); False when the question was answered already."""
        if self.finished:
            return False
        return self._record_all([(question_key, level, raw)]) == 1


# Built once, on the tables rather than the ORM entities: every webhook opens a conversation, and building the
# statement, or loading rows into the ORM, would cost more than running it.
_attempts, _callbacks, _rounds, _cases, _windows, _contacts, _answers_table, _opt_outs = (
    cast(Table, model.__table__) for model in (Attempt, Callback, Round, Case, Window, Contact, Answer, OptOut)
)
# What every conversation reads: the attempt, its callback, case and window; then the contact and its answers,
# one row each (the answer columns last). Placing reads more in the same query: the ORM rows of the attempt and the
# callback, whether the round is in force, whether the number opted out, whether another attempt is open.
_FACT_COLUMNS = (
    _attempts.c.number, _attempts.c.channel, _attempts.c.status, _callbacks.c.id, _callbacks.c.status,
    _callbacks.c.round_id, _callbacks.c.window_id, _callbacks.c.phone, _cases.c.id, _cases.c.case_no,
    _cases.c.matter, _cases.c.case_type, _cases.c.phone_sms, _windows.c.name, _callbacks.c.follow_up,
    _cases.c.resolved_at,
)
_ANSWER_COLUMNS = (
    _contacts.c.id, _contacts.c.source, _contacts.c.channel, _contacts.c.contacted_at, _contacts.c.simulated,
    _answers_table.c.question, _answers_table.c.level, _answers_table.c.raw,
)
_others = _attempts.alias("others")
_PLACING_FACTS = (
    _rounds.c.active_week.is_not(None) | (_rounds.c.kind == "plan"),  # a plan's period has no week
    select(_opt_outs.c.id).where(_opt_outs.c.phone == _callbacks.c.phone).exists(),
    select(_others.c.id).where(
        _others.c.callback_id == _callbacks.c.id, _others.c.id != _attempts.c.id, _others.c.status.in_(OPEN_ATTEMPT),
    ).exists(),
)
_JOINED = (
    _attempts.join(_callbacks, _callbacks.c.id == _attempts.c.callback_id)
    .join(_cases, _cases.c.id == _callbacks.c.case_id)
    .join(_windows, _windows.c.id == _callbacks.c.window_id)
)


def _with_answers(joined: Join) -> Join:
    return (joined.outerjoin(_contacts, _contacts.c.callback_id == _callbacks.c.id)
            .outerjoin(_answers_table, _answers_table.c.contact_id == _contacts.c.id))


_CONVERSATION = (
    select(*_FACT_COLUMNS, *_ANSWER_COLUMNS)
    .select_from(_with_answers(_JOINED))
    .where(_attempts.c.id == bindparam("attempt_id"))
)
_PLACING = (
    select(Attempt, Callback, *_FACT_COLUMNS, *_PLACING_FACTS, *_ANSWER_COLUMNS)
    .select_from(_with_answers(_JOINED.join(_rounds, _rounds.c.id == _callbacks.c.round_id)))
    .where(_attempts.c.id == bindparam("attempt_id"))
)


_ROWS = (
    select(Attempt, Callback).join(Callback, Callback.id == Attempt.callback_id)
    .where(Attempt.id == bindparam("attempt_id"))
)


def open_conversation(
    session: Session, settings: Settings, plugins: Plugins, attempt_id: int, now: datetime, *, placing: bool = False,
) -> Conversation:
    """The conversation of an attempt, for a webhook or the dispatcher (`placing`: it reads what placing needs
    too), with one query. Raises `NotFoundError`."""
    session.flush()  # the query below reads the database: changes this session holds are written first
    rows: Sequence[Sequence[Any]]
    loaded: Sequence[Any] = ()
    if placing:
        rows = session.execute(_PLACING, {"attempt_id": attempt_id}).all()
        if rows:
            loaded, rows = rows[0][:2], [row[2:] for row in rows]
    else:
        rows = session.connection().execute(_CONVERSATION, {"attempt_id": attempt_id}).all()
    if not rows:
        raise NotFoundError(f"no attempt {attempt_id}")
    first = rows[0]
    facts_end = len(_FACT_COLUMNS)
    (number, channel, attempt_status, callback_id, callback_status, round_id, window_id, phone, case_id, case_no,
     matter, case_type, phone_sms, window, follow_up, resolved_at) = first[:facts_end]
    facts = Facts(attempt_id, number, channel, attempt_status, callback_id, callback_status, round_id, window_id,
                  phone, case_id, case_no, matter, case_type, phone_sms, window, follow_up, resolved_at)
    if placing:
        in_force, number_opted_out, others_open = first[facts_end:facts_end + len(_PLACING_FACTS)]
        facts = replace(facts, in_force=bool(in_force), number_opted_out=bool(number_opted_out),
                        others_open=bool(others_open))
    contact_id, source, contact_channel, contacted_at, simulated = first[-len(_ANSWER_COLUMNS):-3]  # then the answer
    contact = None if contact_id is None else ContactRow(contact_id, callback_id, window_id, source,
                                                         contact_channel, contacted_at, bool(simulated))
    given = [(question, level, raw) for *_, question, level, raw in rows if question is not None]
    survey, asks = round_survey(session, round_id), plugins.channel(channel)
    conversation = Conversation(
        session, settings, plugins, now, facts, survey.form(form_of(asks)), simulated=asks.kind == "simulated",
        _contact_row=contact,
        _answers={question: (level, raw) for question, level, raw in given},
    )
    conversation._answered_before = frozenset(conversation._answers)
    if loaded:
        conversation._attempt, conversation._callback = loaded
    return conversation


def open_attempt_for(session: Session, phone: str, channels: Sequence[str]) -> int | None:
    """The newest attempt on one of `channels` still waiting for `phone` (an SMS survey awaiting its reply)."""
    return session.scalar(
        select(Attempt.id)
        .join(Callback, Callback.id == Attempt.callback_id)
        .where(Callback.phone == phone, Attempt.channel.in_(channels), Attempt.status.in_(("in_progress", "answered")))
        .order_by(Attempt.id.desc())
        .limit(1)
    )


def attempt_for_provider_id(session: Session, channel: str, provider_id: str) -> int | None:
    """The attempt on `channel` its provider knows as `provider_id` (for receipts that carry only the provider's
    id); the newest, should a provider ever reuse one."""
    return session.scalar(
        select(Attempt.id).where(Attempt.provider_id == provider_id, Attempt.channel == channel)
        .order_by(Attempt.id.desc()).limit(1)
    )
