"""One attempt's conversation with an applicant: the core service a channel plugin talks to.

A channel never touches tables. It gets a `Conversation` when its attempt starts (or loads one from a webhook
with `open_conversation`) and tells it what happened: the applicant picked up, pressed a digit, replied by
SMS, hung up, never answered, asked not to be contacted again. The conversation records answers on the
callback's contact, keeps partial answers, and moves the attempt and the callback along (`dispatch.py` decides
retries and fallbacks).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from callbackd import answers
from callbackd.errors import NotFoundError
from callbackd.models import Answer, Attempt, Callback, Case, Contact, OptOut, Round, Window
from callbackd.surveys import Choice, Question, SmsReading, Survey

if TYPE_CHECKING:
    from callbackd.config import Settings
    from callbackd.plugins import Plugins

OPEN_ATTEMPT = ("due", "queued", "placing", "in_progress", "answered")
FINAL_CALLBACK = ("completed", "partial", "unreachable", "refused", "opted_out", "invalid")


@dataclass
class Conversation:
    """What a channel may know and do for one attempt. Phone numbers appear here only for placing the contact."""

    session: Session
    settings: Settings
    plugins: Plugins
    now: datetime
    attempt: Attempt
    callback: Callback
    case: Case
    window_name: str
    survey: Survey
    simulated: bool
    # the callback's contact and its answered questions, loaded once: this conversation is their only writer
    # within its transaction
    _contact_row: Contact | None = field(default=None, init=False, repr=False)
    _answered: set[str] | None = field(default=None, init=False, repr=False)

    # ---- what the channel may read -------------------------------------------------------------------

    @property
    def attempt_id(self) -> int:
        return self.attempt.id

    @property
    def attempt_number(self) -> int:
        return self.attempt.number

    @property
    def callback_id(self) -> int:
        return self.callback.id

    @property
    def phone(self) -> str:
        return self.callback.phone

    @property
    def sms_capable(self) -> bool:
        return self.case.phone_sms

    @property
    def case_no(self) -> str:
        return self.case.case_no

    @property
    def matter(self) -> str:
        return self.case.matter

    @property
    def window(self) -> str:
        return self.window_name

    @property
    def organisation(self) -> str:
        return self.settings.organisation

    @property
    def finished(self) -> bool:
        """The attempt has ended or its callback is closed: nothing more is recorded through it."""
        return self.attempt.status not in OPEN_ATTEMPT or self.callback.status in FINAL_CALLBACK

    def answered_keys(self) -> set[str]:
        return set(self._answered_set())

    def _answered_set(self) -> set[str]:
        if self._answered is None:
            self._load_contact()
        assert self._answered is not None
        return self._answered

    def _load_contact(self) -> None:
        """The callback's contact and its answered questions, in one query."""
        rows = self.session.execute(_CONTACT, {"callback_id": self.callback.id}).all()
        self._contact_row = rows[0][0] if rows else None
        self._answered = {question for _, question in rows if question is not None}

    def current_question(self) -> Question | None:
        """The next question still to ask, or None when every question is answered."""
        return self.survey.next_question(self.answered_keys())

    def pending_ratings(self) -> list[Question]:
        answered = self.answered_keys()
        return [q for q in self.survey.rating_questions() if q.key not in answered]

    # ---- what the channel reports --------------------------------------------------------------------

    def pick_up(self) -> None:
        """The applicant answered the call (or the message was delivered and the survey is open)."""
        if not self.finished:
            self.attempt.status = "answered"

    def press(self, digit: str, question_key: str | None = None) -> Choice | None:
        """A keypad digit for the current question (or `question_key`): the choice, or None when invalid.

        A repeated delivery for a question already answered changes nothing and returns the stored choice.
        """
        question = self.survey.question(question_key) if question_key else self.current_question()
        if question is None or question.kind != "rating" or self.finished:
            return None
        choice = self.survey.read_digit(question, digit)
        if question.key in self._answered_set():
            existing = self._answer(question.key)
            return choice if choice is not None and existing is not None and choice.label == existing.raw else None
        if choice is not None:
            self.record(question.key, choice.level, choice.label)
        return choice

    def reply(self, text: str) -> SmsReading:
        """An SMS reply: answers for the pending questions, an opt-out, or unreadable (nothing recorded)."""
        reading = self.survey.read_sms(text, self.pending_ratings())
        if reading.kind == "opt_out":
            self.opt_out("sms", note=text[:200])  # honoured even after the survey closed
        elif reading.kind == "answers" and not self.finished:
            for key, choice in reading.answers:
                self.record(key, choice.level, choice.label)
        return reading

    def suggest(self, text: str) -> None:
        """The applicant's free suggestion (意见建议); marks the survey's text question answered."""
        text = text.strip()
        if not text or self.finished:
            return
        contact = self._ensure_contact()
        contact.suggestion = text[:2000]
        for question in self.survey.questions:
            if question.kind == "text":
                answers.add_answer(self.session, self.plugins, contact, question.key, None, question.dimension,
                                   self.now, window=self.window_name, answered=self._answered_set())

    def opt_out(self, source: str, note: str = "") -> None:
        """The applicant asked never to be contacted again (退订): every open callback of the number closes."""
        from callbackd import dispatch

        dispatch.record_opt_out(self.session, self.plugins, self.phone, source, self.now, note=note)

    def finish(self, outcome: str, detail: str = "") -> None:
        """The attempt ended: `completed`, `hung_up`, `no_answer`, `busy`, `failed`, `machine`,
        `invalid_number`, `refused`. The dispatcher decides what follows (a retry, a fallback, a final state)."""
        from callbackd import dispatch

        dispatch.end_attempt(self, outcome, detail)

    # ---- recording -----------------------------------------------------------------------------------

    def _contact(self) -> Contact | None:
        if self._answered is None:
            self._load_contact()
        return self._contact_row

    def _ensure_contact(self) -> Contact:
        contact = self._contact()
        if contact is None:
            contact = answers.new_contact(
                self.session, source="callback", channel=self.attempt.channel, window_id=self.callback.window_id,
                contacted_at=self.now, now=self.now, callback_id=self.callback.id, simulated=self.simulated,
                survey_version=self.survey.version,
            )
            self._contact_row = contact
            self._answered = set()
        return contact

    def _answer(self, key: str) -> Answer | None:
        contact = self._contact()
        if contact is None:
            return None
        return self.session.scalar(select(Answer).where(Answer.contact_id == contact.id, Answer.question == key))

    def record(self, question_key: str, level: str | None, raw: str) -> bool:
        """Record an answer given by the applicant (a channel that reads answers itself, such as an operator's
        result sheet, calls this); False when the question was answered already."""
        if self.finished:
            return False
        contact = self._ensure_contact()
        return answers.add_answer(self.session, self.plugins, contact, question_key, level, raw, self.now,
                                  window=self.window_name, answered=self._answered_set())


# Built once: every webhook opens a conversation, and building the statement would cost more than running it.
_CONVERSATION = (
    select(Attempt, Callback, Case, Window.name, Callback.round_id)
    .join(Callback, Callback.id == Attempt.callback_id)
    .join(Case, Case.id == Callback.case_id)
    .join(Window, Window.id == Callback.window_id)
    .where(Attempt.id == bindparam("attempt_id"))
)
_CONTACT = (
    select(Contact, Answer.question)
    .outerjoin(Answer, Answer.contact_id == Contact.id)
    .where(Contact.callback_id == bindparam("callback_id"))
)


def open_conversation(
    session: Session, settings: Settings, plugins: Plugins, attempt_id: int, now: datetime
) -> Conversation:
    """The conversation of an attempt, for a webhook or the dispatcher, in one query. Raises `NotFoundError`."""
    row = session.execute(_CONVERSATION, {"attempt_id": attempt_id}).one_or_none()
    if row is None:
        raise NotFoundError(f"no attempt {attempt_id}")
    attempt, callback, case, window_name, round_id = row
    channel = plugins.channel(attempt.channel)
    return Conversation(
        session, settings, plugins, now, attempt, callback, case, window_name,
        round_survey(session, round_id), simulated=channel.kind == "simulated",
    )


_ROUND_SURVEYS: dict[tuple[str, int], Survey] = {}


def round_survey(session: Session, round_id: int) -> Survey:
    """The survey a round froze. A round's survey never changes, so it is read once per database and round."""
    bind = session.get_bind()
    key = (str(bind.engine.url), round_id)
    survey = _ROUND_SURVEYS.get(key)
    if survey is None:
        snapshot = session.scalar(select(Round.survey).where(Round.id == round_id)) or {}
        survey = _ROUND_SURVEYS[key] = frozen_survey(snapshot)
    return survey


_SURVEYS: dict[str, Survey] = {}


def frozen_survey(snapshot: dict[str, Any]) -> Survey:
    """The survey a round froze. Parsed once per version: `from_snapshot` checks the content against it."""
    version = snapshot.get("version", "")
    survey = _SURVEYS.get(version)
    if survey is None:
        survey = Survey.from_snapshot(snapshot)
        if version:
            _SURVEYS[version] = survey
    return survey


def opted_out(session: Session, phone: str) -> bool:
    return session.scalar(select(OptOut.id).where(OptOut.phone == phone)) is not None


def end_open_attempts(session: Session, callback_id: int, now: datetime, status: str = "cancelled") -> None:
    """End every attempt of a callback that is still due or under way (the callback has closed)."""
    session.execute(
        update(Attempt)
        .where(Attempt.callback_id == callback_id, Attempt.status.in_(OPEN_ATTEMPT))
        .values(status=status, ended_at=now)
        .execution_options(synchronize_session="fetch")
    )


def open_attempt_for(session: Session, phone: str, channels: Sequence[str]) -> int | None:
    """The newest attempt on one of `channels` still waiting for `phone` (an SMS survey awaiting its reply)."""
    return session.scalar(
        select(Attempt.id)
        .join(Callback, Callback.id == Attempt.callback_id)
        .where(Callback.phone == phone, Attempt.channel.in_(channels), Attempt.status.in_(("in_progress", "answered")))
        .order_by(Attempt.id.desc())
        .limit(1)
    )
