"""Plain values handed to event hooks: what happened, never a database row and never a phone number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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
