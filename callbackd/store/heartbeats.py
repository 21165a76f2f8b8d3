"""Heartbeats: when each recurring job last ran ("beat.tick" for Celery beat's tick, "dispatch.run" for the embedded
runner's pass, ...), one row per job, for `callbackd status` and `/metrics`.

A job writes its heartbeat in a transaction of its own once its work committed, so a heartbeat never claims work
that was rolled back. The detail is a few counts (what the pass claimed, placed): never a number or a name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from callbackd.store.models import Heartbeat

_heartbeats = cast(Table, Heartbeat.__table__)


def beat(session: Session, name: str, now: datetime, **detail: Any) -> None:
    """Record that job `name` ran at `now` with `detail` (replacing what its last run recorded): one upsert, so two
    processes beating at once leave one row, the later write's."""
    values = {"name": name, "at": now, "detail": detail}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        upsert: Any = postgresql.insert(_heartbeats).values(values)
    elif dialect == "sqlite":
        upsert = sqlite.insert(_heartbeats).values(values)
    else:  # pragma: no cover - callbackd runs on SQLite and PostgreSQL only
        raise NotImplementedError(f"heartbeats on {dialect}")
    session.execute(upsert.on_conflict_do_update(
        index_elements=[_heartbeats.c.name],
        set_={"at": upsert.excluded.at, "detail": upsert.excluded.detail},
    ))


def read(session: Session) -> dict[str, tuple[datetime, dict[str, Any]]]:
    """Every job's last run: name -> (when, its detail)."""
    return {name: (at, dict(detail or {})) for name, at, detail in
            session.execute(select(Heartbeat.name, Heartbeat.at, Heartbeat.detail))}
