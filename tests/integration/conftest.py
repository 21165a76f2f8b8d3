"""The project deployed against the Twilio emulator: the real web app on uvicorn (127.0.0.1, a free port), the
real dispatcher and CLI in the test process, one SQLite file shared by both, and everything logged captured."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from sqlalchemy import select

from callbackd.store.db import Database
from callbackd.store.models import Answer, Attempt, Callback, Case, Contact, OptOut, WebhookReceipt
from tests.conftest import write_csv
from tests.integration.notify_emulators import robots, smtp_server  # noqa: F401 (fixtures: the robots, SMTP)
from tests.integration.twilio_emulator import TwilioEmulator

ACCOUNT_SID = "AC" + "5e1f" * 8  # shaped like Twilio's: AC and 32 hex digits
AUTH_TOKEN = "0123456789abcdef" * 2
FROM_NUMBER = "+8657112345678"
PUBLIC_BASE_URL = "https://callbacks.example.gov.cn"
ORGANISATION = "滨江区政务服务中心"
MONDAY = "2026-11-23T10:00:00+08:00"  # a working day, inside calling hours
STARTUP_SECONDS = 10.0
# the rates Twilio grants this account: high enough that no test waits on the limiter
SETTINGS = f"""
organisation = "{ORGANISATION}"

[channels.twilio]
calls_per_second = 50
messages_per_second = 50
"""


class LogRecords(logging.Handler):
    """Every record logged while the deployment runs, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass
class Deployment:
    """The system under test, with the few verbs the tests speak: time, ledger, rounds, dispatch, results."""

    emulator: TwilioEmulator
    database: Database
    app_url: str
    workdir: Path
    cli: Any
    monkeypatch: pytest.MonkeyPatch
    logs: LogRecords
    phones: set[str] = field(default_factory=set)  # every number written to the ledger, as written

    def at(self, when: str) -> None:
        """Set the clock of the dispatcher and of the web app (one process) to `when`."""
        self.monkeypatch.setenv("CALLBACKD_NOW", when)

    def ledger(self, *rows: list[str]) -> None:
        self.phones.update(row[5] for row in rows)
        path = write_csv(self.workdir / f"ledger-{len(list(self.workdir.glob('ledger-*')))}.csv", list(rows))
        run = self.cli("ledger", "import", path, "--json")
        assert run.code == 0, run.err
        assert not run.json()["errors"], run.out

    def open_round(self, week: str = "2026-W48", *channels: str) -> None:
        args = [arg for channel in channels for arg in ("--channel", channel)]
        run = self.cli("round", "open", "--week", week, "--seed", "e2e", *args)
        assert run.code == 0, run.err

    def dispatch(self, when: str | None = None) -> dict[str, Any]:
        """`callbackd dispatch --once --json` at `when` (default: the clock as it is)."""
        if when is not None:
            self.at(when)
        run = self.cli("dispatch", "--once", "--json")
        assert run.code == 0, run.err
        report = run.json()
        assert report["errors"] == [], report
        return report

    def callbacks(self, round_id: int | None = None) -> dict[str, dict[str, Any]]:
        """`callbackd callbacks list --json`, by case number."""
        args = ["--round", str(round_id)] if round_id is not None else []
        run = self.cli("callbacks", "list", *args, "--json")
        assert run.code == 0, run.err
        return {row["case_id"]: row for row in run.json()}

    def status(self, case_no: str) -> str:
        return self.callbacks()[case_no]["status"]

    def reason(self, case_no: str) -> str | None:
        """Why a case's callback could not be completed (无法联系原因), from the database."""
        with self.database.session() as session:
            return session.scalar(
                select(Callback.reason).join(Case, Case.id == Callback.case_id).where(Case.case_no == case_no)
            )

    def answers(self, case_no: str) -> dict[str, tuple[str | None, str]]:
        """The answers recorded for a case's callback: question -> (level, raw)."""
        with self.database.session() as session:
            rows = session.execute(
                select(Answer.question, Answer.level, Answer.raw)
                .join(Contact, Contact.id == Answer.contact_id)
                .join(Callback, Callback.id == Contact.callback_id)
                .join(Case, Case.id == Callback.case_id)
                .where(Case.case_no == case_no)
            ).all()
        return {question: (level, raw) for question, level, raw in rows}

    def attempts(self, case_no: str) -> list[tuple[str, str]]:
        """(channel, status) of a case's attempts, in order."""
        with self.database.session() as session:
            rows = session.execute(
                select(Attempt.channel, Attempt.status)
                .join(Callback, Callback.id == Attempt.callback_id)
                .join(Case, Case.id == Callback.case_id)
                .where(Case.case_no == case_no)
                .order_by(Attempt.number)
            ).all()
        return [(channel, status) for channel, status in rows]

    def opted_out(self) -> set[str]:
        with self.database.session() as session:
            return set(session.scalars(select(OptOut.phone)))

    def state(self) -> dict[str, list[tuple[Any, ...]]]:
        """Everything a webhook may change, for before/after comparisons."""
        tables = {
            "callbacks": select(Callback.id, Callback.status, Callback.reason, Callback.closed_at),
            "attempts": select(Attempt.id, Attempt.status, Attempt.due_at, Attempt.started_at, Attempt.ended_at,
                               Attempt.detail, Attempt.provider_id),
            "contacts": select(Contact.id, Contact.callback_id, Contact.suggestion),
            "answers": select(Answer.contact_id, Answer.question, Answer.level, Answer.raw),
            "opt_outs": select(OptOut.phone, OptOut.source),
            "receipts": select(WebhookReceipt.key),
        }
        with self.database.session() as session:
            return {name: sorted(tuple(row) for row in session.execute(query)) for name, query in tables.items()}


def phone_forms(written: str) -> set[str]:
    """The ways a number may show up in a log: as written, national digits, E.164 and URL-encoded E.164."""
    national = "".join(c for c in written if c.isdigit()).removeprefix("0")
    return {written, national, f"+86{national}", f"%2B86{national}"}


def leaked_phones(text: str, phones: set[str]) -> list[str]:
    """The numbers among `phones` that appear in `text` in any form."""
    return sorted(phone for phone in phones if any(form in text for form in phone_forms(phone)))


class WebServer:
    """The project's web app (`callbackd.app.web.create_app`) under uvicorn, in a thread, on a socket bound first."""

    def __init__(self) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        from callbackd.app.web import create_app

        # log_config=None: uvicorn's records propagate to the root logger, where the test captures them
        config = uvicorn.Config(create_app(), log_config=None, log_level="debug", access_log=True, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, name="uvicorn",
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(timeout=STARTUP_SECONDS)
            assert not self.thread.is_alive(), "uvicorn did not stop"
        self.socket.close()


@pytest.fixture
def log_records() -> Iterator[LogRecords]:
    """Capture what is logged: uvicorn's error and access logs, callbackd's and the plugin's, and the twilio
    library's (the dispatcher's API requests)."""
    handler = LogRecords()
    names = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "callbackd", "callbackd_twilio", "twilio")
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    root = logging.getLogger()
    root.addHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for logger, level in zip(loggers, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture
def deployment(workdir: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, log_records: LogRecords
               ) -> Iterator[Deployment]:
    """callbackd on SQLite with its Twilio channels configured against the emulator, web app running, clock at
    MONDAY."""
    with deployed(workdir, monkeypatch, cli, log_records, f"sqlite:///{workdir / 'callbackd.db'}") as deployment:
        yield deployment


@contextmanager
def deployed(workdir: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, log_records: LogRecords, database_url: str
             ) -> Iterator[Deployment]:
    """callbackd on this database with its Twilio channels configured against the emulator, web app running,
    clock at MONDAY; afterwards, no phone number may have reached a log."""
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(SETTINGS, encoding="utf-8")
    for name, value in {
        "CALLBACKD_DATABASE_URL": database_url, "CALLBACKD_NOW": MONDAY,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "CALLBACKD_TWILIO_FROM": FROM_NUMBER, "CALLBACKD_TWILIO_PUBLIC_BASE_URL": PUBLIC_BASE_URL,
    }.items():
        monkeypatch.setenv(name, value)
    web = WebServer()
    emulator = TwilioEmulator(ACCOUNT_SID, AUTH_TOKEN, FROM_NUMBER, PUBLIC_BASE_URL, web.url,
                              sms_url=f"{PUBLIC_BASE_URL}/hooks/twilio/sms").start()
    monkeypatch.setenv("CALLBACKD_TWILIO_API_BASE_URL", emulator.url)
    database = Database(database_url)
    try:
        web.start()
        deployment = Deployment(emulator, database, web.url, workdir, cli, monkeypatch, log_records)
        yield deployment
    finally:
        emulator.stop()  # first: its connections to the web app close, so uvicorn stops at once
        web.stop()
        database.dispose()
    # whatever a test did, no phone number may reach a log
    assert leaked_phones(log_records.text, deployment.phones) == []
