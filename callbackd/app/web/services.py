"""The core services plugins' webhooks call (`callbackd.api.webhooks`), built from the core's own.

The web app hands one `CoreServices` to every plugin's `register_routes`; each delivery opens a `Delivery`, one
session and one commit. On SQLite a delivery that cannot become the writer at once (a ledger import holds it) is
kept in the inbox (`callbackd.store.inbox`) and answered from a `Preview`: what it would do, worked out from what
can be read, with nothing written. The inbox applies it later, through this same code, exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime

from sqlalchemy.orm import Session

from callbackd.api.conversation import Conversation, Survey
from callbackd.api.manager import Plugins
from callbackd.contact import attempts
from callbackd.contact import conversation as conversations
from callbackd.contact.conversation import attempt_for_provider_id, open_attempt_for, open_conversation
from callbackd.core import clock
from callbackd.core.errors import NotFoundError
from callbackd.core.settings import Settings
from callbackd.rounds.sampling import survey_in_force
from callbackd.rounds.surveys import Choice, Question, SmsReading, is_opt_out
from callbackd.store import receipts
from callbackd.store.db import Database
from callbackd.store.inbox import RECEIVED, Inbox, reading_only


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery's unit of work (`callbackd.api.webhooks.WebhookScope`). A `preview` changes nothing:
    the delivery waits in the inbox, and its reply is worked out from what can be read."""

    session: Session
    settings: Settings
    plugins: Plugins
    now: datetime
    preview: bool = False

    def first_time(self, key: str) -> bool:
        if self.preview:
            return not receipts.recorded(self.session, key)
        return receipts.first_delivery(self.session, key, self.now)

    def conversation(self, attempt_id: int) -> Conversation | None:
        try:
            conversation = open_conversation(self.session, self.settings, self.plugins, attempt_id, self.now)
        except NotFoundError:
            return None
        return Preview(conversation) if self.preview else conversation

    def open_attempt_for(self, phone: str, channels: Sequence[str]) -> int | None:
        return open_attempt_for(self.session, phone, channels)

    def attempt_for(self, channel: str, provider_id: str) -> int | None:
        return attempt_for_provider_id(self.session, channel, provider_id)

    def record_opt_out(self, phone: str, source: str, note: str = "") -> None:
        if not self.preview:
            attempts.record_opt_out(self.session, self.plugins, phone, source, self.now, note=note,
                                    settings=self.settings)


@dataclass(frozen=True)
class CoreServices:
    """What plugins' webhooks may call (`callbackd.api.webhooks.WebhookServices`)."""

    settings: Settings
    database: Database
    plugins: Plugins
    inbox: Inbox | None = None  # SQLite's (see `callbackd.store.inbox`)

    @contextmanager
    def delivery(self) -> Iterator[Delivery]:
        received = RECEIVED.get()
        with self.database.session() as session:
            now = clock.now()
            if self.inbox is None or received is None:  # PostgreSQL, or not a web request: as it comes
                yield Delivery(session, self.settings, self.plugins, now)
            elif received.key is not None:  # kept in the inbox, applied now: once
                first = receipts.first_delivery(session, f"inbox:{received.key}", now)
                yield Delivery(session, self.settings, self.plugins, now, preview=not first)
            elif self.inbox.admits(session):
                yield Delivery(session, self.settings, self.plugins, now)
            else:
                self.inbox.keep(received)
                with reading_only(session):
                    yield Delivery(session, self.settings, self.plugins, now, preview=True)

    def is_opt_out(self, text: str) -> bool:
        return is_opt_out(text)

    def survey_in_force(self) -> Survey:
        return survey_in_force(self.settings)


@dataclass
class Preview:
    """A conversation as a delivery would leave it, worked out from the conversation as it can be read, writing
    nothing: what the channel reports changes only this object (the inbox applies the delivery later, through the
    real conversation)."""

    read: conversations.Conversation
    answered: set[str] = field(default_factory=set)
    ended: bool = False
    answering: bool = False
    noted: str | None = None

    # ---- what the channel may read -------------------------------------------------------------------

    @property
    def attempt_id(self) -> int:
        return self.read.attempt_id

    @property
    def attempt_number(self) -> int:
        return self.read.attempt_number

    @property
    def callback_id(self) -> int:
        return self.read.callback_id

    @property
    def phone(self) -> str:
        return self.read.phone

    @property
    def resolved_on(self) -> date | None:
        return self.read.resolved_on

    @property
    def sms_capable(self) -> bool:
        return self.read.sms_capable

    @property
    def case_no(self) -> str:
        return self.read.case_no

    @property
    def matter(self) -> str:
        return self.read.matter

    @property
    def window(self) -> str:
        return self.read.window

    @property
    def organisation(self) -> str:
        return self.read.organisation

    @property
    def settings(self) -> Settings:
        return self.read.settings

    @property
    def survey(self) -> Survey:
        return self.read.survey

    @property
    def finished(self) -> bool:
        return self.ended or self.read.finished

    @property
    def picked_up(self) -> bool:
        return not self.ended and (self.answering or self.read.picked_up)

    @property
    def detail(self) -> str:
        return self.read.detail if self.noted is None else self.noted

    def answered_keys(self) -> set[str]:
        return self.read.answered_keys() | self.answered

    def current_question(self) -> Question | None:
        return self.read.survey.next_question(self.answered_keys())

    def pending_ratings(self) -> list[Question]:
        answered = self.answered_keys()
        return [q for q in self.read.survey.rating_questions() if q.key not in answered]

    # ---- what the channel reports --------------------------------------------------------------------

    def pick_up(self) -> None:
        self.answering = self.answering or not self.finished

    def press(self, digit: str, question_key: str | None = None) -> Choice | None:
        return self.press_all([(question_key or "", digit)])[0]

    def press_all(self, presses: Sequence[tuple[str, str]]) -> list[Choice | None]:
        survey, choices = self.read.survey, []
        for key, digit in presses:
            question = survey.question(key) if key else survey.next_question(self.answered_keys())
            choice = None
            if question is not None and question.kind == "rating" and not self.finished:
                choice = survey.read_digit(question, digit)
                if choice is not None:
                    self.answered.add(question.key)
            choices.append(choice)
        return choices

    def reply(self, text: str) -> SmsReading:
        reading = self.read.survey.read_sms(text, self.pending_ratings())
        if reading.kind == "opt_out":
            self.ended = True
        elif reading.kind == "answers" and not self.finished:
            self.answered.update(key for key, _ in reading.answers)
        return reading

    def suggest(self, text: str) -> None:
        if text.strip() and not self.finished:
            self.answered.update(q.key for q in self.read.survey.questions if q.kind == "text")

    def opt_out(self, source: str, note: str = "") -> None:
        self.ended = True

    def finish(self, outcome: str, detail: str = "") -> None:
        if not self.finished:
            self.ended, self.noted = True, detail[:500]

    def record(self, question_key: str, level: str | None, raw: str) -> bool:
        if self.finished or question_key in self.answered_keys():
            return False
        self.answered.add(question_key)
        return True

    def note(self, detail: str) -> None:
        self.noted = detail
