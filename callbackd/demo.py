"""The demo: a month of weekly rounds on synthetic data with the embedded defaults, in a folder of its own."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from callbackd import clock, ledger, sampling, synthetic
from callbackd.config import Settings
from callbackd.db import Database

Progress = Callable[[str, int, int], None]


@dataclass
class DemoResult:
    out: Path
    month: date
    ledger_file: Path
    imported: int
    bad_rows: int
    rounds: list[dict[str, Any]] = field(default_factory=list)


def previous_month(today: date) -> date:
    return (today.replace(day=1) - timedelta(days=1)).replace(day=1)


def weeks_of(month: date) -> list[date]:
    """Mondays of the ISO weeks whose Monday falls in `month`."""
    monday = month + timedelta(days=(7 - month.weekday()) % 7)
    out = []
    while monday.month == month.month:
        out.append(monday)
        monday += timedelta(days=7)
    return out


def run_demo(
    settings: Settings, out: Path, *, cases: int = 6000, windows: int = 12, seed: int = 2026,
    progress: Progress | None = None,
) -> DemoResult:
    """Generate last month's ledger, import it, and open each week's round on the Monday after the week."""
    report = progress or (lambda _step, _done, _total: None)
    out.mkdir(parents=True, exist_ok=True)
    database_file = out / "callbackd.db"
    for stale in out.glob("callbackd.db*"):
        stale.unlink()
    settings = settings.model_copy(update={"database_url": f"sqlite:///{database_file}"})
    now = clock.now()
    month = previous_month(now.astimezone(settings.zone).date())
    ledger_file = synthetic.write_ledger_csv(
        out / f"受理台帐-{month:%Y%m}.csv", synthetic.ledger_rows(month, cases, windows, seed), encoding="gbk"
    )
    database = Database(settings.database_url)
    try:
        database.ensure_schema()
        report("import", 0, 1)
        with database.session() as session:
            imported = ledger.import_ledger(session, settings, ledger_file)
        report("import", 1, 1)
        result = DemoResult(out, month, ledger_file, imported.imported, len(imported.errors))
        mondays = weeks_of(month)
        for done, monday in enumerate(mondays):
            opened = min(datetime.combine(monday + timedelta(days=7), time(9, 0), settings.zone), now)
            week = f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}"
            with database.session() as session:
                round_, _ = sampling.open_round(session, settings, week, seed=f"demo-{week}", now=opened)
                result.rounds.append(sampling.round_summary(session, round_))
            report("rounds", done + 1, len(mondays))
        return result
    finally:
        database.dispose()
