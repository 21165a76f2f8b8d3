"""Provider deliveries already handled: providers deliver webhooks at least once, so each is recorded by key
(a message id, a call id with its status) and a repeat is recognised."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callbackd.store.models import WebhookReceipt


def first_delivery(session: Session, key: str, now: datetime) -> bool:
    """Record `key`; False when it was recorded before (the delivery is a repeat)."""
    try:
        with session.begin_nested():
            session.execute(insert(WebhookReceipt).values(key=key[:120], received_at=now))
    except IntegrityError:
        return False
    return True
