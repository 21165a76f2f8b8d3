"""A job that failed (an import, a scheduled task) is reported to the supervisors and administrators."""

from __future__ import annotations

import secrets
from datetime import datetime

from callbackd.core.phones import without_numbers
from callbackd.core.settings import Settings
from callbackd.store import outbox
from callbackd.store.db import Database

MAX_ERROR = 300


def job_failed(
    database: Database, settings: Settings, job: str, error: str, now: datetime, *, path: str = "",
    once_per: str | None = None,
) -> None:
    """Write a `job.failed` notification in a transaction of its own (the failed job's rolled back): `job` names
    what failed in Chinese ("台帐导入 ledger.csv", "定时任务 open_rounds"), `error` is its one-line message. With
    `once_per` (an hour, "2026-12-04T09"), the same job failing again within it is not reported again."""
    line = without_numbers(error.splitlines()[0] if error else "")
    if len(line) > MAX_ERROR:
        line = line[: MAX_ERROR - 1] + "…"
    with database.session() as session:
        outbox.post(session, settings, outbox.Post(
            event="job.failed", key=f"job.failed:{job}:{once_per or now.isoformat() + secrets.token_hex(4)}",
            title=f"【任务失败】{job}", lines=(f"错误：{line}",), audience=("supervisor", "admin"), path=path,
        ), now)
