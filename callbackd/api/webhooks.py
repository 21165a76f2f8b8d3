"""What a plugin's webhooks may call: the core services the web app hands to `register_routes`.

The web app builds a `WebhookServices` from the core's own services (`callbackd.app.web`) and passes it to every
plugin's `register_routes(router, services)`: a plugin reaches the core only through it, never through a session
or a table. Each delivery opens one `WebhookScope`; what is done through it commits together when its block ends
(and nothing does when the block raises).

    with services.delivery() as delivery:
        if not delivery.first_time(f"call:{sid}:{status}"):
            return  # a repeated delivery changes nothing
        conversation = delivery.conversation(attempt_id)

Open deliveries in a thread (a plain `def` route, or starlette's `run_in_threadpool`), never on the web server's
event loop: a delivery may wait for the database, and the loop serves every other request. A handler does its
work through the scope and answers from what it reads there: when the database cannot take a write at once (a
long import on SQLite), the web app keeps the request and runs the handler on a preview scope, which reads the
database as it is and shows what the handler reports as if it had been written, but writes nothing; the same
request is handled again, for real, once the database is free (its answer then discarded). The handler sees no
difference.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from callbackd.core.errors import ConfigError

if TYPE_CHECKING:
    from callbackd.api.conversation import Conversation, Survey
    from callbackd.core.settings import Settings

# A callback token is URL-safe text of at least 22 characters (128 bits when each carries 6, as token_urlsafe's do)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22,256}")
MAKE_TOKEN = "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"


def path_token(value: str, where: str) -> str:
    """A provider's callback token (the secret in its webhook paths, for providers that sign nothing), checked:
    at least 128 random bits as URL-safe text. A missing or short one is a `ConfigError` naming `where`."""
    value = value.strip()
    if not value:
        raise ConfigError(f"{where} is not set: make one with {MAKE_TOKEN}")
    if not _TOKEN.fullmatch(value):
        raise ConfigError(f"{where} must be at least 22 URL-safe characters (128 random bits): make one with "
                          f"{MAKE_TOKEN}")
    return value


def same_token(given: str, expected: str) -> bool:
    """Whether a path's token is the configured one, compared in constant time (an empty expected token matches
    nothing)."""
    return bool(expected) and hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                                                  expected.encode("utf-8"))


class WebhookScope(Protocol):
    """One webhook delivery's unit of work."""

    @property
    def now(self) -> datetime:
        """The time the delivery is handled at (callbackd's clock, which tests and the demo may set)."""
        ...

    def first_time(self, key: str) -> bool:
        """Record the delivery `key` (a message id, a call id with its status); False when it was recorded before,
        i.e. the provider delivered it again and it must change nothing."""
        ...

    def conversation(self, attempt_id: int) -> Conversation | None:
        """The conversation of attempt `attempt_id`, or None when there is no such attempt."""
        ...

    def open_attempt_for(self, phone: str, channels: Sequence[str]) -> int | None:
        """The newest attempt on one of `channels` still waiting for `phone` (an SMS survey awaiting its reply)."""
        ...

    def attempt_for(self, channel: str, provider_id: str) -> int | None:
        """The attempt on `channel` that its provider knows as `provider_id` (what `StartResult.placed` returned),
        for receipts that carry only the provider's id; None when there is none."""
        ...

    def record_opt_out(self, phone: str, source: str, note: str = "") -> None:
        """`phone` asked never to be contacted again (退订) outside any open attempt: every later survey honours it."""
        ...


class WebhookServices(Protocol):
    """The core services a plugin's webhooks call, handed to `register_routes`."""

    @property
    def settings(self) -> Settings:
        """The settings in force; a channel reads its own table, `settings.channels["<name>"]`."""
        ...

    def delivery(self) -> AbstractContextManager[WebhookScope]:
        """Open one delivery's unit of work; it commits when the `with` block ends without an exception. A handler
        opens one per request (a request kept for later is applied as one unit)."""
        ...

    def is_opt_out(self, text: str) -> bool:
        """Whether `text` asks not to be contacted (退订, TD, STOP, ...)."""
        ...

    def survey_in_force(self) -> Survey:
        """The survey new rounds ask (for a reply outside any survey, such as confirming an opt-out)."""
        ...
