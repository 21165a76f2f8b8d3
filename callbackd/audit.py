"""The audit trail: who did what, kept in the database."""

from __future__ import annotations

import getpass
import os
from typing import Any

from sqlalchemy.orm import Session

from callbackd import clock
from callbackd.models import AuditEvent


def actor() -> str:
    """Who is acting: `CALLBACKD_ACTOR` when a front end names its user, else the operating-system user."""
    try:
        name = os.environ.get("CALLBACKD_ACTOR") or getpass.getuser()
    except OSError:
        return "unknown"
    return name[:100]


def record(session: Session, action: str, subject: str, **detail: Any) -> AuditEvent:
    """Add one audit event to the session's transaction."""
    # the column holds 200 characters; a longer subject (a deep file path) keeps its end, the informative part
    subject = subject if len(subject) <= 200 else "…" + subject[-199:]
    event = AuditEvent(at=clock.now(), actor=actor(), action=action, subject=subject, detail=detail)
    session.add(event)
    return event
