"""The conversation protocol: everything a channel may read and do for one attempt, and the survey it asks.

A channel never sees a session or a database row. The core hands it an object of this shape (the concrete class is
`callbackd.contact.conversation.Conversation`) when its attempt starts, and its webhooks get one from
`WebhookScope.conversation`. Anything not listed here is not part of the plugin API and may change.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from callbackd.core.settings import Settings


class Choice(Protocol):
    """One answer on a question's scale: the keypad digit `key`, its `label` (非常满意) and `level` (满意)."""

    @property
    def key(self) -> str: ...

    @property
    def label(self) -> str: ...

    @property
    def level(self) -> str: ...


class Scale(Protocol):
    """A rating scale: its choices in keypad order."""

    @property
    def choices(self) -> Sequence[Choice]: ...


class Question(Protocol):
    """One question of a survey: a `rating` question (with a `scale`) or a free `text` question."""

    @property
    def key(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def scale(self) -> Scale | None: ...

    def text(self, medium: str, language: str = "zh-CN") -> str:
        """The question as said on `medium` ("voice" or "sms") in `language`."""
        ...


class SmsReading(Protocol):
    """What an SMS reply said: `kind` is "answers", "opt_out", "unreadable" or "empty"; `remainder` holds the words
    after the answers, as written (a suggestion, perhaps)."""

    @property
    def kind(self) -> str: ...

    @property
    def remainder(self) -> str: ...


class Survey(Protocol):
    """The survey a round asks (回访表): its questions and its texts. Surveys are hashable (a plugin may cache what
    it builds from one). `questions` arguments take questions of this same survey."""

    def __hash__(self) -> int: ...

    @property
    def questions(self) -> Sequence[Question]: ...

    def question(self, key: str) -> Question:
        """The question called `key`; KeyError or ValueError when there is none."""
        ...

    def render(self, key: str, language: str = "zh-CN", questions: Sequence[Any] | None = None,
               **context: str) -> str:
        """One of the survey's own lines (greeting_voice, greeting_sms, sms_reply_hint, reask_voice,
        no_input_voice, reask_sms, thanks_voice, thanks_sms, opted_out_sms) with organisation, window and matter
        from `context` filled in."""
        ...

    def sms_body(self, language: str = "zh-CN", questions: Sequence[Any] | None = None, intro: str = "greeting_sms",
                 **context: str) -> str:
        """One SMS asking `questions` (default: the whole survey), numbered, opened by the line `intro`."""
        ...


class Conversation(Protocol):
    """What a channel may read and do for one attempt. The phone number is here only for placing the contact."""

    # ---- what the channel may read ---------------------------------------------------------------------

    @property
    def attempt_id(self) -> int: ...

    @property
    def attempt_number(self) -> int:
        """1 for the callback's first attempt on any channel, then 2, 3, ..."""
        ...

    @property
    def callback_id(self) -> int: ...

    @property
    def phone(self) -> str:
        """The applicant's number (E.164): for placing the contact only, never to be logged or kept."""
        ...

    @property
    def sms_capable(self) -> bool:
        """The number takes SMS (a mobile)."""
        ...

    @property
    def case_no(self) -> str: ...

    @property
    def matter(self) -> str: ...

    @property
    def window(self) -> str: ...

    @property
    def organisation(self) -> str: ...

    @property
    def resolved_on(self) -> date | None:
        """The local day the case was resolved (办结), for a message that names it."""
        ...

    @property
    def settings(self) -> Settings:
        """The settings in force; a channel reads its own table, `settings.channels["<name>"]`."""
        ...

    @property
    def survey(self) -> Survey: ...

    @property
    def finished(self) -> bool:
        """The attempt has ended or its callback is closed: nothing more is recorded through it."""
        ...

    @property
    def picked_up(self) -> bool:
        """The applicant answered (`pick_up` was called for this attempt)."""
        ...

    @property
    def detail(self) -> str:
        """The attempt's provider-facing detail, as last set by `note` or `finish`."""
        ...

    def answered_keys(self) -> set[str]:
        """The keys of the questions answered so far."""
        ...

    def current_question(self) -> Question | None:
        """The next question still to ask, or None when every question is answered."""
        ...

    def pending_ratings(self) -> Sequence[Question]:
        """The rating questions not answered yet, in the survey's order."""
        ...

    # ---- what the channel reports ----------------------------------------------------------------------

    def pick_up(self) -> None:
        """The applicant answered the call (or the message was delivered and the survey is open)."""
        ...

    def press(self, digit: str, question_key: str | None = None) -> Choice | None:
        """A keypad digit for the current question (or `question_key`): the choice, or None when invalid."""
        ...

    def press_all(self, presses: Sequence[tuple[str, str]]) -> Sequence[Choice | None]:
        """Several (question key or "", digit) presses, recorded together."""
        ...

    def reply(self, text: str) -> SmsReading:
        """An SMS reply: answers for the pending questions, an opt-out, or unreadable (nothing recorded)."""
        ...

    def suggest(self, text: str) -> None:
        """The applicant's free suggestion (意见建议)."""
        ...

    def opt_out(self, source: str, note: str = "") -> None:
        """The applicant asked never to be contacted again (退订): every open callback of the number closes."""
        ...

    def finish(self, outcome: str, detail: str = "") -> None:
        """The attempt ended: `completed`, `hung_up`, `no_answer`, `busy`, `failed`, `machine`,
        `invalid_number`, `refused`. The core decides what follows."""
        ...

    def record(self, question_key: str, level: str | None, raw: str) -> bool:
        """An answer the channel read itself; False when the question was answered already."""
        ...

    def note(self, detail: str) -> None:
        """Set the attempt's provider-facing detail (e.g. "sms re-asked") without ending it."""
        ...
