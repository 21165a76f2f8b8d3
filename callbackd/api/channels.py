"""The channel contract: what a channel plugin offers, what placing an attempt returns, and what looking up an
attempt whose placing outcome is unknown returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from callbackd.api.conversation import Conversation
    from callbackd.core.settings import Settings

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


# The questions a channel asks: "full", the survey's questions; "short", its short form (a one-key call).
FORMS = ("full", "short")


@dataclass(frozen=True)
class NumberLimit:
    """A provider's flow control for one number (频率限制): at most `count` attempts to a number on the channel
    within any `seconds`. A channel declares its own in `number_limits`; the calling policy holds each attempt until
    every limit that applies to it allows it, the core's own per-number rules included."""

    count: int
    seconds: int

    def __post_init__(self) -> None:
        if self.count < 1 or self.seconds < 1:
            raise ValueError(f"a number limit needs a count and seconds of at least 1 ({self.count}/{self.seconds})")

    def __str__(self) -> str:
        for unit, name in ((86400, "day"), (3600, "hour"), (60, "minute")):
            if self.seconds % unit == 0:
                amount = self.seconds // unit
                return f"{self.count} per {name}" if amount == 1 else f"{self.count} per {amount} {name}s"
        return f"{self.count} per {self.seconds} s"


# How a contact a provider placed has ended, as `LookupResult.found` may report it.
ENDINGS = ("completed", "hung_up", *FAILURES)


@dataclass(frozen=True)
class InDoubt:
    """An attempt whose placing outcome is unknown, as `Channel.lookup` receives it: a dispatcher took it for
    placing at `since` and stopped (it was killed) before it recorded what the provider said. `phone` is the
    number it was to reach (E.164), for the provider's query only: never log or keep it."""

    attempt_id: int
    phone: str
    since: datetime
    settings: Settings


@dataclass(frozen=True)
class LookupResult:
    """What `Channel.lookup` found at the provider. `placed`: True, the provider placed the contact (`provider_id`,
    and `outcome`, one of `ENDINGS`, once it has ended; None while it is under way); False, the provider never
    placed it (the only answer on which callbackd places the attempt again); None, the provider cannot tell."""

    placed: bool | None
    provider_id: str | None = None
    outcome: str | None = None
    detail: str = ""

    @classmethod
    def found(cls, provider_id: str, outcome: str | None = None, detail: str = "") -> LookupResult:
        if outcome is not None and outcome not in ENDINGS:
            raise ValueError(f"unknown contact ending {outcome!r} (known: {', '.join(ENDINGS)})")
        return cls(True, provider_id, outcome, detail)

    @classmethod
    def not_placed(cls, detail: str = "") -> LookupResult:
        return cls(False, detail=detail)

    @classmethod
    def unknown(cls, detail: str) -> LookupResult:
        return cls(None, detail=detail)


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

    A channel may declare `number_limits`, a sequence of `NumberLimit`: its provider's flow control per number,
    which the calling policy enforces beside its own (the strictest applies). It may declare `form = "short"`: its
    attempts ask only the survey's short form (a one-key call), and their conversations show only those questions.
    It may offer `configuration(settings) -> list[(what, configured)]`: what `callbackd plugins list` shows of its
    set-up (credentials present, a callback token set), never a secret's value.

    A channel should also offer `lookup(attempt: InDoubt) -> LookupResult`: whether its provider placed an attempt
    whose dispatcher stopped while placing it, and how that contact stands. It only reads the provider's records.
    Without it, such an attempt is never placed again blindly: it ends `failed`, its placing outcome unknown.
    """

    name: str
    kind: str

    def start(self, conversation: Conversation) -> StartResult: ...


def number_limits(channel: Channel) -> Sequence[NumberLimit]:
    """The channel's own per-number limits (none when it declares none)."""
    return tuple(getattr(channel, "number_limits", ()))


def form_of(channel: Channel) -> str:
    """The questions the channel asks: "full" or "short"."""
    form = getattr(channel, "form", "full")
    if form not in FORMS:
        raise ValueError(f"channel {channel.name!r} declares unknown form {form!r} (known: {', '.join(FORMS)})")
    return str(form)
