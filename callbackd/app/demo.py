"""The demo: a month of weekly rounds on synthetic data with the embedded defaults, in a folder of its own.

Last month's ledger is generated and imported; each week's round opens on its Monday at 09:00 and the real
dispatcher places its callbacks through the simulator channel, retrying the unanswered ones; on-site forms and
counter evaluator ratings are imported; the month is scored and written to ranking.xlsx and ranking.html. Last, a
console account for every role is created in the demo's database, each with a random password shown once.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from callbackd.api.manager import load_plugins
from callbackd.app import synthetic
from callbackd.contact import dispatch, results
from callbackd.core import clock
from callbackd.core.errors import CallbackdError
from callbackd.core.settings import Settings
from callbackd.intake import ledger
from callbackd.measure import scoring
from callbackd.report.exports import ExportContext
from callbackd.rounds import sampling
from callbackd.store.accounts import NewUser, add_user
from callbackd.store.db import Database
from callbackd.store.models import Callback, Window

Progress = Callable[[str, int, int], None]
# the embedded dispatcher's passes through each day of a round's week (attempts held by the calling policy
# outside calling hours or on holidays go out at a later pass)
DISPATCH_TIMES = (time(9, 0), time(11, 5), time(14, 30), time(16, 40), time(19, 0))
# the demo's console sign-ins, one per role: account name -> role (the window head answers for the first window)
DEMO_ACCOUNTS = {"supervisor": "supervisor", "operator": "operator", "window": "window", "leader": "leader",
                 "admin": "admin"}


@dataclass(frozen=True)
class DemoAccount:
    """A console sign-in on the demo's database; its password is random and shown only once."""

    name: str
    role: str
    password: str
    windows: tuple[str, ...] = ()


@dataclass
class DemoResult:
    out: Path
    month: date
    ledger_file: Path
    imported: int
    bad_rows: int
    rounds: list[dict[str, Any]] = field(default_factory=list)
    callbacks: dict[str, int] = field(default_factory=dict)
    forms: int = 0
    ratings: int = 0
    ranking: scoring.Ranking | None = None
    files: list[Path] = field(default_factory=list)
    database_url: str = ""
    accounts: list[DemoAccount] = field(default_factory=list)


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


MARKER = ".callbackd-demo"


def prepare_folder(out: Path, settings: Settings) -> None:
    """Make `out` the demo's own folder. A folder holding anything but an earlier demo is refused, and so is
    the configured database's folder: the demo never deletes what it did not make."""
    if out.exists() and not out.is_dir():
        raise CallbackdError(f"--out {out} is a file; give the demo a folder of its own")
    database = make_url(settings.database_url).database if settings.database_url.startswith("sqlite") else None
    if database and Path(database).resolve().parent == out.resolve():
        raise CallbackdError(f"--out {out} holds the working database ({settings.database_url}); choose another folder")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists():
        raise CallbackdError(f"--out {out} already holds other files; the demo writes only into a folder of its own")
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("written by callbackd demo\n", encoding="utf-8")
    except OSError as exc:
        raise CallbackdError(f"cannot write the demo into {out}: {exc.strerror}") from None
    for stale in out.glob("callbackd.db*"):
        stale.unlink()


def run_demo(
    settings: Settings, out: Path, *, cases: int = 6000, windows: int = 12, seed: int = 2026,
    progress: Progress | None = None, database_url: str | None = None,
) -> DemoResult:
    """Run the month and return what it did; everything lands in `out`, the data in `out`/callbackd.db unless
    `database_url` names another empty database (the browser tests run the demo on PostgreSQL too)."""
    report = progress or (lambda _step, _done, _total: None)
    prepare_folder(out, settings)
    own = f"sqlite:///{out.resolve() / 'callbackd.db'}"
    settings = settings.model_copy(update={"database_url": database_url or own})
    plugins = load_plugins()
    plan = ["simulator"]
    month = previous_month(clock.now().astimezone(settings.zone).date())
    ledger_file = synthetic.write_ledger_csv(
        out / f"受理台帐-{month:%Y%m}.csv", synthetic.ledger_rows(month, cases, windows, seed), encoding="gbk"
    )
    database = Database(settings.database_url)
    try:
        database.ensure_schema()
        with database.session() as session:
            imported = ledger.import_ledger(session, settings, ledger_file)
        report("台帐导入", 1, 1)
        result = DemoResult(out, month, ledger_file, imported.imported, len(imported.errors),
                            database_url=settings.database_url)

        mondays = weeks_of(month)
        for done, monday in enumerate(mondays):
            week = f"{monday.isocalendar().year}-W{monday.isocalendar().week:02d}"
            opened = datetime.combine(monday, time(9, 0), settings.zone)
            with database.session() as session:
                round_, _ = sampling.open_round(session, settings, week, seed=f"demo-{week}", now=opened,
                                                channels=plan)
                result.rounds.append(sampling.round_summary(session, round_))
            for day in range(7):
                for moment in DISPATCH_TIMES:
                    when = datetime.combine(monday + timedelta(days=day), moment, settings.zone)
                    dispatch.run_once(database, settings, plugins, when)
            report("每周回访", done + 1, len(mondays))

        survey = sampling.survey_in_force(settings)
        names = synthetic.window_names(windows)
        forms = synthetic.write_table_csv(out / f"现场征求意见表-{month:%Y%m}.csv", synthetic.FORM_HEADER,
                                          synthetic.onsite_rows(month, names, seed=seed))
        ratings = synthetic.write_table_csv(out / f"电子评价器-{month:%Y%m}.csv", synthetic.EVALUATOR_HEADER,
                                            synthetic.evaluator_rows(month, names, seed=seed))
        with database.session() as session:
            result.forms = results.import_results(session, settings, plugins, survey,
                                                  results.ResultFile(forms, "onsite")).imported
            result.ratings = results.import_results(session, settings, plugins, survey,
                                                    results.ResultFile(ratings, "evaluator")).imported
        report("现场评价导入", 1, 1)

        with database.session() as session:
            result.callbacks = _states(session)
            ranking = scoring.score_period(session, settings, f"{month:%Y-%m}", with_questions=True)
        result.ranking = ranking
        context = ExportContext(
            organisation=settings.organisation,
            question_labels={q.key: q.dimension for q in survey.rating_questions()},
            generated_at=clock.now(),
        )
        for name in ("xlsx", "html"):
            path = out / f"ranking.{name}"
            plugins.exporter(name).write(ranking, path, context)
            result.files.append(path)
        report("计分与导出", 1, 1)
        with database.session() as session:
            result.accounts = add_demo_accounts(session)
        return result
    finally:
        database.dispose()


def add_demo_accounts(session: Session) -> list[DemoAccount]:
    """A console account for every role (`DEMO_ACCOUNTS`), each with a fresh random password: they exist only in
    the demo's own database, and the passwords are not kept anywhere but in their hashes."""
    first_window = session.scalar(select(Window.name).order_by(Window.name).limit(1))
    made = []
    now = clock.now()
    for name, role in DEMO_ACCOUNTS.items():
        windows = (first_window,) if role == "window" and first_window else ()
        password = _password(name)
        add_user(session, NewUser(name, role, windows, password), now)
        made.append(DemoAccount(name, role, password, windows))
    return made


def _password(name: str) -> str:
    """16 random URL-safe characters, never containing the account's name (which `add_user` refuses)."""
    while True:
        password = secrets.token_urlsafe(12)
        if name.casefold() not in password.casefold():
            return password


def _states(session: Session) -> dict[str, int]:
    return {status: count for status, count in session.execute(
        select(Callback.status, func.count()).group_by(Callback.status)
    )}
