"""What a contact service acts with: the session's transaction, the settings, the plugins and the time it acts at.
These four travel together through conversations, placing and the state machine's I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

if TYPE_CHECKING:
    from callbackd.api.manager import Plugins
    from callbackd.core.settings import Settings


@dataclass(frozen=True)
class Context:
    """A session (one transaction), the settings and plugins it runs with, and `now`, the time it acts at."""

    session: Session
    settings: Settings
    plugins: Plugins
    now: datetime
