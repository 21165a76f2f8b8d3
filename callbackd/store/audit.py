"""The audit trail: who did what, kept in the database. Recorded: rounds opened, replaced and verified; ledger
and result imports; answer edits; exports and call sheets; publications and republications; every reveal of a
phone number; every step of a rectification; exports of the trail itself.

Each entry names who acted — the operating-system account of a command, `console:NAME` for a console account, whose
sign-ins, sign-outs and refused sign-ins are kept too — and the real time. An entry made under `CALLBACKD_NOW` or
`CALLBACKD_CLOCK_OFFSET` (a rehearsal) also keeps callbackd's clock and is marked 演练 wherever the trail is shown."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import Select, Table, func, insert, select
from sqlalchemy.orm import Session

from callbackd.core import clock
from callbackd.core.errors import CallbackdError
from callbackd.store.models import AuditEvent

_CONSOLE_ACCOUNT: ContextVar[str | None] = ContextVar("callbackd_console_account", default=None)
CONSOLE = "console:"  # how an entry made by a console account names it, apart from operating-system accounts


@contextmanager
def acting_as(account: str) -> Iterator[None]:
    """Entries recorded inside name this console account (`console:NAME`), not the process's own account: the web
    app acts for whoever signed in."""
    token = _CONSOLE_ACCOUNT.set(account)
    try:
        yield
    finally:
        _CONSOLE_ACCOUNT.reset(token)


def actor() -> str:
    """Who is acting: the console account a web request acts for (`acting_as`), else the operating-system account
    this process runs as (its effective user id). Never an environment variable, which anyone can set to any
    name."""
    account = _CONSOLE_ACCOUNT.get()
    if account is not None:
        return f"{CONSOLE}{account}"[:100]
    uid = os.geteuid()
    try:
        import pwd

        name = pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):  # a user id with no account (a container's): the id itself
        name = f"uid {uid}"
    return name[:100]


# on the table, not the entity: an event is written, never read back in the transaction that records it
_events = cast(Table, AuditEvent.__table__)
_INSERT_EVENT = insert(_events)


def record(session: Session, action: str, subject: str, **detail: Any) -> None:
    """Write one audit event in the session's transaction."""
    # the column holds 200 characters; a longer subject (a deep file path) keeps its end, the informative part
    subject = subject if len(subject) <= 200 else "…" + subject[-199:]
    # the real time always; a rehearsal's clock besides, so a back-dated command can never pass for a real one
    rehearsal = clock.rehearsing()
    session.connection().execute(_INSERT_EVENT, {
        "at": clock.wall_clock(), "actor": actor(), "action": action, "subject": subject, "detail": detail,
        "rehearsal": rehearsal, "clock_at": clock.now() if rehearsal else None,
    })


def list_events(
    session: Session, zone: ZoneInfo, *, action: str | None = None, since: str | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Audit events, oldest first: all, one action's, from a day on (in `zone`), or the newest `limit`."""
    day = None
    if since is not None:
        try:
            day = date.fromisoformat(since.strip())
        except ValueError:
            raise CallbackdError(f"--since {since!r} is not a day such as 2026-11-01") from None
    return find_events(session, zone, EventFilter(action, None, day), limit=limit)[::-1]


REHEARSAL = "演练"  # how a rehearsal's entries are marked in listings and exports


def write(rows: list[dict[str, Any]], path: Path) -> None:
    """The events as CSV (UTF-8 with a byte-order mark, which Excel needs for Chinese) or JSON, by suffix."""
    from callbackd.store.files import ExportError, spreadsheet_text, write_atomically

    suffix = path.suffix.lower()
    if suffix == ".json":
        data = (json.dumps(rows, ensure_ascii=False, indent=2) + "\n").encode("utf-8")
    elif suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(["序号", "时间", "操作人", "操作", "对象", "详情", REHEARSAL, "演练时钟"])
        for row in rows:
            writer.writerow([spreadsheet_text(cell) for cell in (
                row["id"], row["at"], row["actor"], row["action"], row["subject"],
                json.dumps(row["detail"], ensure_ascii=False), REHEARSAL if row["rehearsal"] else "",
                row["clock_at"] or "",
            )])
        data = buffer.getvalue().encode("utf-8-sig")
    else:
        raise ExportError(f"--out {path}: name a .csv or .json file")
    write_atomically(path, lambda temporary: temporary.write_bytes(data))


# ---- the console: filtered, a page at a time ----------------------------------------------------------


@dataclass(frozen=True)
class EventFilter:
    """Which events to show: one action's, those whose actor's name contains `actor`, from `since` (a day in the
    zone) on; None: no such condition."""

    action: str | None = None
    actor: str | None = None
    since: date | None = None


def _selected(query: Select[Any], zone: ZoneInfo, wanted: EventFilter) -> Select[Any]:
    if wanted.action:
        query = query.where(AuditEvent.action == wanted.action)
    if wanted.actor:
        query = query.where(AuditEvent.actor.contains(wanted.actor, autoescape=True))
    if wanted.since is not None:
        query = query.where(AuditEvent.at >= datetime.combine(wanted.since, time(0, 0), zone))
    return query


def find_events(
    session: Session, zone: ZoneInfo, wanted: EventFilter, *, newest_first: bool = True, offset: int = 0,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """The events `wanted` selects, newest first (a page of them, with `offset` and `limit`) or oldest first (as
    `write` exports them), each as `list_events` gives it."""
    order = AuditEvent.id.desc() if newest_first else AuditEvent.id
    query = _selected(select(AuditEvent), zone, wanted).order_by(order).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [
        {"id": e.id, "at": e.at.astimezone(zone).isoformat(), "actor": e.actor, "action": e.action,
         "subject": e.subject, "detail": e.detail, "rehearsal": e.rehearsal,
         "clock_at": e.clock_at.astimezone(zone).isoformat() if e.clock_at is not None else None}
        for e in session.scalars(query)
    ]


def count_events(session: Session, zone: ZoneInfo, wanted: EventFilter) -> int:
    """How many events `wanted` selects."""
    return session.scalar(_selected(select(func.count(AuditEvent.id)), zone, wanted)) or 0


def actions(session: Session) -> list[str]:
    """Every action the trail holds, alphabetically: what a filter can choose from."""
    return list(session.scalars(select(AuditEvent.action).distinct().order_by(AuditEvent.action)))
