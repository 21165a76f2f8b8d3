"""Plain values handed to event hooks: what happened, never a database row and never a phone number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import event
from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from callbackd.api.manager import Plugins


@dataclass(frozen=True)
class AnswerEvent:
    contact_id: int
    callback_id: int | None
    source: str
    channel: str
    window: str
    question: str
    level: str | None
    raw: str
    recorded_at: datetime


@dataclass(frozen=True)
class CallbackEvent:
    callback_id: int
    round_id: int
    window: str
    case_no: str
    case_type: str
    status: str
    reason: str | None
    closed_at: datetime


# ---- delivery after commit -------------------------------------------------------------------------------
# Plugins hear about answers and closed callbacks only once the transaction that made them has committed: a
# rolled-back import (--strict, a crash) never tells a plugin about rows that do not exist.

_PENDING = "callbackd_events"


def defer(session: Session, plugins: Plugins, hook: str, **kwargs: Any) -> None:
    """Queue an event hook call until `session` commits; dropped if it rolls back."""
    if plugins.listens(hook):
        session.info.setdefault(_PENDING, []).append((plugins, hook, kwargs))


@event.listens_for(Session, "after_commit")
def _deliver(session: Session) -> None:
    pending = session.info.pop(_PENDING, [])
    for plugins, hook, kwargs in pending:
        plugins.notify(hook, **kwargs)


@event.listens_for(Session, "after_rollback")
def _drop(session: Session) -> None:
    session.info.pop(_PENDING, None)
