"""Finding a window (窗口) by the name staff type."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.core.errors import NotFoundError
from callbackd.store.models import Window


def window_id(session: Session, name: str) -> int:
    """The id of the window called `name`; an unknown name is a `NotFoundError` saying where to look."""
    found = session.scalar(select(Window.id).where(Window.name == name.strip()))
    if found is None:
        raise NotFoundError(f"no window named {name!r} (see `callbackd windows list`)")
    return found
