"""No applicant is called twice for one attempt: a dispatcher SIGKILLed while a provider request is in flight leaves
its attempt in doubt, and once the lease has run out the next tick asks the provider before anything is placed
again. With real processes: Celery workers on a real redis-server, `callbackd dispatch`, and the twilio library
against the Twilio emulator. The simulator's journal is the provider's call log: a repeated line is a repeated call.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from callbackd.api.manager import load_plugins
from callbackd.contact import dispatch
from callbackd.core.settings import load_settings
from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT
from callbackd.store.db import Database
from callbackd.store.models import Attempt, Callback
from tests.conftest import case_row
from tests.integration import test_celery
from tests.integration.celery_cluster import CALLBACKD, Cluster, offset_to
from tests.integration.conftest import MONDAY, Deployment
from tests.integration.test_celery import MONDAY_MORNING, check_outcome, ledger, open_round, write_settings
from tests.integration.test_twilio import MOBILE, A, levels
from tests.integration.twilio_emulator import Call, Person

pytestmark = pytest.mark.integration

CUT_OFF = "simulated call cut off"
cluster = test_celery.cluster  # the fixture: a redis-server, the database of the pass, the simulator's journal


def repeated(journal: Path) -> dict[int, int]:
    """Attempts the simulated provider was asked to place more than once: attempt id -> times."""
    lines = journal.read_text(encoding="utf-8").splitlines() if journal.exists() else []
    return {attempt: n for attempt, n in Counter(int(line.split()[0]) for line in lines).items() if n > 1}


def cut_off(database: Database) -> list[int]:
    """Attempts a provider lookup found placed by a process that was killed mid-call."""
    with database.session() as session:
        return list(session.scalars(select(Attempt.id).where(Attempt.detail.contains(CUT_OFF))))


# ---- Celery ------------------------------------------------------------------------------------------------


def test_a_worker_killed_mid_call_has_its_calls_looked_up_and_none_placed_twice(cli, workdir, cluster: Cluster):
    # calls long enough that a worker spends most of its time in one: the kill comes mid-call
    write_settings(workdir, cluster.redis.url, cluster.journal, simulator={"call_seconds": 0.3})
    ledger(cli, workdir, windows=5)  # 100 callbacks
    open_round(cli)
    doomed = cluster.worker("doomed", concurrency=2)
    survivor = cluster.worker("survivor", concurrency=2)
    cluster.beat()
    cluster.wait_until_share_final(0.3)
    doomed.kill()  # SIGKILL to the worker and its pool, mid-call
    cluster.wait_until_finished()
    found = cut_off(cluster.database)
    print(f"\ncelery: {len(found)} attempt(s) cut off mid-call, repeated placements: {repeated(cluster.journal)}")
    assert found, "no call was cut off: the kill came between calls"
    assert repeated(cluster.journal) == {}
    check_outcome(cluster)  # every callback final, no attempt open, nothing recorded twice
    assert survivor.popen.poll() is None
    assert any(f"'reclaimed': {n}" in survivor.text() for n in range(1, 50)), "no tick settled a lapsed lease"


# ---- callbackd dispatch ------------------------------------------------------------------------------------


def test_callbackd_dispatch_killed_mid_call_places_nothing_twice(cli, workdir, monkeypatch):
    journal = workdir / "provider-calls.log"
    settings_file = workdir / "config" / "callbackd.toml"
    settings_file.parent.mkdir()

    def configure(call_seconds: float) -> None:
        settings_file.write_text(f"""
[dispatch]
lease_seconds = 2
retry_minutes = 0
per_number_gap_seconds = 0

[channels.simulator]
journal = "{journal}"
call_seconds = {call_seconds}
no_answer_rate = 0.0
refuse_rate = 0.0
hang_up_rate = 0.0
""", encoding="utf-8")

    configure(call_seconds=1.0)  # each call lasts a second once its journal line is written
    monkeypatch.setenv("CALLBACKD_CLOCK_OFFSET", str(offset_to(MONDAY_MORNING)))  # a clock that runs: leases lapse
    ledger(cli, workdir, windows=1, per_window=10)
    open_round(cli)
    database = Database(load_settings().database_url)
    try:
        with (workdir / "dispatch.log").open("wb") as out:
            dispatcher = subprocess.Popen([str(CALLBACKD), "dispatch"], cwd=workdir, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ))
        deadline = time.monotonic() + 60
        while not journal.exists() or len(journal.read_text(encoding="utf-8").splitlines()) < 3:
            assert dispatcher.poll() is None and time.monotonic() < deadline, (workdir / "dispatch.log").read_text()
            time.sleep(0.01)
        os.killpg(dispatcher.pid, signal.SIGKILL)  # within the third call's second
        dispatcher.wait(10)
        calling = int(journal.read_text(encoding="utf-8").splitlines()[-1].split()[0])
        with database.session() as session:
            assert session.scalar(select(Attempt.status).where(Attempt.id == calling)) == "placing"
        time.sleep(2.5)  # the lease runs out
        configure(call_seconds=0.0)
        run = cli("dispatch", "--once", "--json")  # a new dispatcher
        assert run.code == 0, run.err
        print(f"\ndispatch: attempt {calling} cut off mid-call, repeated placements: {repeated(journal)}")
        assert repeated(journal) == {}
        assert cut_off(database) == [calling]
        with database.session() as session:
            assert session.scalar(select(func.count()).select_from(Callback)
                                  .where(Callback.status.not_in(FINAL_CALLBACK))) == 0
            assert session.scalar(select(func.count()).select_from(Attempt)
                                  .where(Attempt.status.in_(OPEN_ATTEMPT))) == 0
            # every attempt was placed, once: the ten first ones, and the retry of the one cut off
            placed = {int(line.split()[0]) for line in journal.read_text(encoding="utf-8").splitlines()}
            assert set(session.scalars(select(Attempt.id))) == placed and len(placed) == 11
            callback_id = session.scalar(select(Attempt.callback_id).where(Attempt.id == calling))
            assert list(session.scalars(select(Attempt.status).where(Attempt.callback_id == callback_id)
                                        .order_by(Attempt.number))) == ["failed", "completed"]
    finally:
        database.dispose()


# ---- Twilio ------------------------------------------------------------------------------------------------


def killed_while_asking_twilio(deployment: Deployment) -> Call:
    """`callbackd dispatch --once` in a process of its own, SIGKILLed while its request to create the call to A is
    open at Twilio (which creates the call all the same): the emulator's call."""
    deployment.ledger(case_row("K1", "不动产窗口", matter="不动产登记", phone=MOBILE))
    deployment.open_round("2026-W48", "twilio-voice")
    emulator = deployment.emulator
    emulator.api_delay = 3.0
    with (deployment.workdir / "dispatch.log").open("wb") as out:
        dispatcher = subprocess.Popen([str(CALLBACKD), "dispatch", "--once"], cwd=deployment.workdir, stdout=out,
                                      stderr=subprocess.STDOUT, start_new_session=True, env=dict(os.environ))
    deadline = time.monotonic() + 60
    while emulator.arrived == 0:
        assert dispatcher.poll() is None and time.monotonic() < deadline, (deployment.workdir / "dispatch.log"
                                                                         ).read_text()
        time.sleep(0.01)
    os.killpg(dispatcher.pid, signal.SIGKILL)
    dispatcher.wait(10)
    while not emulator.calls:
        assert time.monotonic() < deadline, "the emulator never created the call"
        time.sleep(0.05)
    emulator.api_delay = 0.0
    assert deployment.attempts("K1") == [("twilio-voice", "placing")]
    return emulator.calls[0]


def after_the_lease() -> str:
    lease = timedelta(seconds=load_settings().dispatch.lease_seconds + 1)
    return (datetime.fromisoformat(MONDAY) + lease).isoformat()


def provider_id(deployment: Deployment) -> str | None:
    with deployment.database.session() as session:
        return session.scalar(select(Attempt.provider_id).where(Attempt.number == 1))


def test_a_call_twilio_placed_for_a_killed_dispatcher_is_taken_not_placed_again(deployment: Deployment):
    call = killed_while_asking_twilio(deployment)  # still queued at Twilio: no start time yet
    report = deployment.dispatch(after_the_lease())
    assert report["placed"] == 0
    assert deployment.emulator.calls_to(A) == [call]  # no second call
    assert deployment.attempts("K1") == [("twilio-voice", "in_progress")] and provider_id(deployment) == call.sid
    listed = [form for resource, form in deployment.emulator.api_requests if resource == "Calls.list"]
    assert listed and all(form["To"] == [A] for form in listed)
    assert any("StartTime>" in form for form in listed)
    # Twilio dials it now, and the survey runs through the webhooks as for any call
    deployment.emulator.script(A, Person(keys="123112"))
    assert deployment.emulator.play() == [call]
    assert deployment.status("K1") == "completed" and deployment.answers("K1") == levels("123112")
    assert deployment.dispatch()["placed"] == 0 and len(deployment.emulator.calls) == 1


def test_a_call_that_ended_while_no_webhook_reached_us_takes_twilios_outcome(deployment: Deployment):
    call = killed_while_asking_twilio(deployment)
    deployment.emulator.end_unheard(call, "busy")  # dialed and ended: only the Calls list knows
    deployment.dispatch(after_the_lease())
    assert len(deployment.emulator.calls) == 1
    assert deployment.attempts("K1") == [("twilio-voice", "busy"), ("twilio-voice", "due")]  # the usual retry
    assert provider_id(deployment) == call.sid


def test_an_attempt_twilio_never_placed_is_placed_once(deployment: Deployment):
    deployment.ledger(case_row("K1", "不动产窗口", matter="不动产登记", phone=MOBILE))
    deployment.open_round("2026-W48", "twilio-voice")
    (attempt_id,) = dispatch.tick(deployment.database, load_settings(), load_plugins(),
                                  datetime.fromisoformat(MONDAY)).claimed
    with deployment.database.session() as session:  # a worker took it and was killed before asking Twilio
        session.execute(update(Attempt).where(Attempt.id == attempt_id).values(status="placing"))
    report = deployment.dispatch(after_the_lease())
    assert report["outcomes"] == {"in_progress": 1}
    assert len(deployment.emulator.calls_to(A)) == 1
    assert deployment.attempts("K1") == [("twilio-voice", "in_progress")]
