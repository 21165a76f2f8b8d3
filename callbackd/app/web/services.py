"""The core services plugins' webhooks call (`callbackd.api.webhooks`), built from the core's own.

The web app hands one `CoreServices` to every plugin's `register_routes`; each delivery opens a `Delivery`, one
session and one commit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from callbackd.api.conversation import Conversation, Survey
from callbackd.api.manager import Plugins
from callbackd.contact import attempts
from callbackd.contact.conversation import open_attempt_for, open_conversation
from callbackd.core import clock
from callbackd.core.errors import NotFoundError
from callbackd.core.settings import Settings
from callbackd.rounds.sampling import survey_in_force
from callbackd.rounds.surveys import is_opt_out
from callbackd.store import receipts
from callbackd.store.db import Database


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery's unit of work (`callbackd.api.webhooks.WebhookScope`)."""

    session: Session
    settings: Settings
    plugins: Plugins
    now: datetime

    def first_time(self, key: str) -> bool:
        return receipts.first_delivery(self.session, key, self.now)

    def conversation(self, attempt_id: int) -> Conversation | None:
        try:
            return open_conversation(self.session, self.settings, self.plugins, attempt_id, self.now)
        except NotFoundError:
            return None

    def open_attempt_for(self, phone: str, channels: Sequence[str]) -> int | None:
        return open_attempt_for(self.session, phone, channels)

    def record_opt_out(self, phone: str, source: str, note: str = "") -> None:
        attempts.record_opt_out(self.session, self.plugins, phone, source, self.now, note=note,
                                settings=self.settings)


@dataclass(frozen=True)
class CoreServices:
    """What plugins' webhooks may call (`callbackd.api.webhooks.WebhookServices`)."""

    settings: Settings
    database: Database
    plugins: Plugins

    @contextmanager
    def delivery(self) -> Iterator[Delivery]:
        with self.database.session() as session:
            yield Delivery(session, self.settings, self.plugins, clock.now())

    def is_opt_out(self, text: str) -> bool:
        return is_opt_out(text)

    def survey_in_force(self) -> Survey:
        return survey_in_force(self.settings)
