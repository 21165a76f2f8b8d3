"""The channel contract: what a channel plugin offers and what placing an attempt returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from callbackd.api.conversation import Conversation

KINDS = ("voice", "sms", "operator", "onsite", "simulated")

# Typed failures a channel may report when it cannot place an attempt at all.
FAILURES = ("invalid_number", "no_answer", "busy", "failed", "machine", "refused", "not_configured", "rate_limited")


@dataclass(frozen=True)
class StartResult:
    """What `Channel.start` returns: the provider's id for the contact, or a typed failure."""

    provider_id: str | None = None
    failure: str | None = None
    detail: str = ""

    @classmethod
    def placed(cls, provider_id: str) -> StartResult:
        return cls(provider_id=provider_id)

    @classmethod
    def failed(cls, failure: str, detail: str = "") -> StartResult:
        if failure not in FAILURES:
            raise ValueError(f"unknown channel failure {failure!r} (known: {', '.join(FAILURES)})")
        return cls(failure=failure, detail=detail)

    @property
    def ok(self) -> bool:
        return self.failure is None


@runtime_checkable
class Channel(Protocol):
    """A way to reach an applicant. `name` is unique across plugins; `kind` is one of `KINDS`.

    `start` places one attempt. It receives the attempt's `callbackd.api.Conversation`, through which everything the
    applicant says comes back into the core (answers, hang-ups, opt-outs); it never touches tables. A channel
    whose provider answers later (a phone call, an SMS reply) returns the provider's id and feeds the
    conversation from its webhooks; a channel that knows the outcome at once (the simulator) may finish the
    conversation before returning.

    A channel may also offer `rate_limit(settings) -> (account key, requests a second) | None`: the dispatcher
    then keeps every attempt on it under that rate, across all dispatchers sharing the limiter's storage.
    """

    name: str
    kind: str

    def start(self, conversation: Conversation) -> StartResult: ...
