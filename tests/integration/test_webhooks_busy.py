"""The webhook server while SQLite's writer is busy (a long ledger import): webhooks and /healthz answer at once,
each delivery is kept in the inbox and applied, exactly once, in the order it came, when the writer is free.

The busy writer is another process holding a write transaction open on the database as `callbackd ledger import`
does (its turn on the writers' lock file, then SQLite's lock; on PostgreSQL, the locks of every case it updates),
for as long as the test says. PostgreSQL locks rows, not the database: there, webhooks apply at once.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy.engine import make_url
from twilio.request_validator import RequestValidator

from callbackd.store.db import Database
from callbackd.store.receipts import first_delivery
from tests.conftest import POSTGRES
from tests.integration.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    PUBLIC_BASE_URL,
    Deployment,
    deployed,
)
from tests.integration.test_twilio import HOOKS, THANKS_SMS, THANKS_VOICE, A, B, C, levels, round_on
from tests.integration.twilio_emulator import Person

# a process that holds the database's writer until told to let go (or HOLD_LIMIT seconds pass)
HOLD_LIMIT = 60
HOLDER = f"""
import select, sys
from callbackd.store.db import Database
database = Database(sys.argv[1])
with database.engine.connect() as connection:
    connection.exec_driver_sql("INSERT INTO windows (name, created_at) VALUES ('held', '2026-11-23 00:00:00')")
    connection.exec_driver_sql("UPDATE cases SET matter = matter")
    print("holding", flush=True)
    select.select([sys.stdin], [], [], {HOLD_LIMIT})
    connection.rollback()
"""
PROMPT = 1.0  # seconds: what a webhook or /healthz may take while the writer is busy


@contextmanager
def busy_writer(deployment: Deployment) -> Iterator[None]:
    """Another process holds the database's writer for the block."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, deployment.database.url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        yield
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=10)


def eventually(check: Callable[[], Any], seconds: float = 15.0) -> Any:
    """`check()` once it returns something true, polling; its last result when `seconds` pass."""
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


def waiting(deployment: Deployment) -> int:
    """How many deliveries the inbox beside the database holds."""
    path = Path(f"{make_url(deployment.database.url).database}-inbox")
    if not path.exists():
        return 0
    with closing(sqlite3.connect(path)) as inbox:
        return int(inbox.execute("SELECT count(*) FROM deliveries").fetchone()[0])


def timed(send: Callable[[], Any]) -> tuple[float, Any]:
    began = time.monotonic()
    result = send()
    return time.monotonic() - began, result


def test_a_call_while_an_import_writes_is_answered_at_once_and_applied_once_it_ends(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys="123112"))
    deployment.dispatch()
    before = deployment.state()

    with busy_writer(deployment):
        took, calls = timed(deployment.emulator.play)
        deliveries = deployment.emulator.deliveries
        # the whole call went on (the answers from what could be read), each delivery at once, nothing written yet
        answers = [d for d in deliveries if "/answer?" in d.url]
        assert len(calls) == 1 and len(answers) == 6
        assert took < PROMPT * len(deliveries)
        assert all(d.status in (200, 204) for d in deliveries)
        assert THANKS_VOICE in answers[-1].body
        assert deployment.state() == before
        assert waiting(deployment) == len(deliveries)

    # the writer free, every delivery is applied, in order, once
    assert eventually(lambda: waiting(deployment) == 0)
    assert eventually(lambda: deployment.status("K1") == "completed")
    assert deployment.answers("K1") == levels("123112")
    assert deployment.attempts("K1") == [("twilio-voice", "completed")]
    receipts = deployment.state()["receipts"]
    assert len([key for (key,) in receipts if key.startswith("inbox:")]) == len(deliveries)


def test_an_sms_reply_and_opt_outs_while_an_import_writes_are_all_applied(deployment):
    round_on(deployment, "twilio-sms")
    deployment.dispatch()
    with busy_writer(deployment):
        (reply,) = deployment.emulator.text(A, "1 1 2 1 1 3")
        assert THANKS_SMS in reply
        # opt-outs from two numbers with no survey: each its own message, each kept
        deployment.emulator.text(B, "退订")
        deployment.emulator.text(C, "TD")
        assert deployment.opted_out() == set()

    assert eventually(lambda: deployment.opted_out() == {B, C})
    assert eventually(lambda: deployment.status("K1") == "completed")
    assert deployment.answers("K1") == levels("112113")


def test_healthz_and_webhooks_answer_at_once_while_the_writer_is_busy(deployment):
    round_on(deployment, "twilio-voice")
    deployment.dispatch()
    sid = deployment.emulator.calls[0].sid
    url = f"{HOOKS}/status/1"
    with busy_writer(deployment), ThreadPoolExecutor(8) as pool:
        statuses = [pool.submit(timed, lambda: deployment.emulator.post(url, {"AccountSid": ACCOUNT_SID,
                                                                              "CallSid": sid, "CallStatus": "busy"}))
                    for _ in range(8)]
        health, response = timed(lambda: httpx.get(f"{deployment.app_url}/healthz", timeout=PROMPT * 5))
        assert response.status_code == 200 and health < PROMPT
        for future in statuses:
            took, delivery = future.result()
            assert delivery.status == 204 and took < PROMPT

    # eight copies of one status: it counts once
    assert eventually(lambda: waiting(deployment) == 0)
    assert eventually(lambda: deployment.attempts("K1") == [("twilio-voice", "busy"), ("twilio-voice", "due")])


def test_a_kept_delivery_is_applied_once_even_when_its_receipt_was_committed_before_a_crash(deployment):
    from callbackd.store.inbox import Inbox, Received, inbox_path

    path = inbox_path(deployment.database.url)
    assert path is not None
    inbox = Inbox(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # phone numbers in the bodies

    def kept_opt_out(phone: str, sid: str) -> str:
        params = {"AccountSid": ACCOUNT_SID, "MessageSid": sid, "From": phone, "To": FROM_NUMBER, "Body": "退订"}
        signature = RequestValidator(AUTH_TOKEN).compute_signature(f"{PUBLIC_BASE_URL}/hooks/twilio/sms", params)
        return inbox.keep(Received("POST", "/hooks/twilio/sms", b"", [
            (b"content-type", b"application/x-www-form-urlencoded"), (b"x-twilio-signature", signature.encode())],
            urlencode(params).encode()))

    database = Database(deployment.database.url)
    try:
        # as if the server stopped between applying B's opt-out and forgetting it: its receipt is in the database
        with database.session() as session:
            # hold the writer first (any receipt written takes it), so the server cannot apply B's delivery before
            # its receipt is in: it finds the receipt once this commits
            assert first_delivery(session, "test:holding the writer", datetime.now(UTC))
            applied = kept_opt_out(B, "SM" + "b" * 32)
            assert first_delivery(session, f"inbox:{applied}", datetime.now(UTC))
        kept_opt_out(C, "SM" + "c" * 32)
    finally:
        database.dispose()
    assert eventually(lambda: inbox.count() == 0)
    inbox.close()
    assert deployment.opted_out() == {C}


@pytest.fixture
def postgres_deployment(workdir, monkeypatch, cli, log_records) -> Iterator[Deployment]:
    """The integration deployment (see conftest's `deployment`) on the test's PostgreSQL database."""
    if not POSTGRES:
        pytest.skip("needs PostgreSQL: runs in the PostgreSQL pass of scripts/test (CALLBACKD_TEST_POSTGRES)")
    url = os.environ["CALLBACKD_DATABASE_URL"]  # the test's own database, made by `workdir`
    schema = Database(url)
    schema.ensure_schema()
    schema.dispose()
    with deployed(workdir, monkeypatch, cli, log_records, url) as deployment:
        yield deployment


def test_on_postgresql_a_call_goes_through_while_an_import_holds_the_cases(postgres_deployment):
    deployment = postgres_deployment
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys="123112"))
    deployment.dispatch()
    with busy_writer(deployment):
        took, _ = timed(deployment.emulator.play)
        assert took < PROMPT * len(deployment.emulator.deliveries)
        # applied at once: nothing waits for the import
        assert deployment.answers("K1") == levels("123112")
        assert deployment.status("K1") == "completed"
