"""Provider deliveries already handled: providers deliver webhooks at least once, so each is recorded by key
(a message id, a call id with its status) and a repeat is recognised."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callbackd.store.models import WebhookReceipt

_KEY_LENGTH = 120  # the column's


def first_delivery(session: Session, key: str, now: datetime) -> bool:
    """Record `key`; False when it was recorded before (the delivery is a repeat)."""
    try:
        with session.begin_nested():
            session.execute(insert(WebhookReceipt).values(key=stored_key(key), received_at=now))
    except IntegrityError:
        return False
    return True


def recorded(session: Session, key: str) -> bool:
    """Whether `key` was recorded, without recording it."""
    return session.scalar(select(WebhookReceipt.id).where(WebhookReceipt.key == stored_key(key))) is not None


def stored_key(key: str) -> str:
    """`key` as the column holds it: a key too long for it ends in its digest instead, so two keys that differ only
    beyond the column's length stay two."""
    if len(key) <= _KEY_LENGTH:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{key[:_KEY_LENGTH - len(digest) - 1]}#{digest}"
