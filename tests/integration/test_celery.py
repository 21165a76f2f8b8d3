"""callbackd on Celery: real redis-server, real `callbackd worker` and `callbackd beat` processes, the database of
the pass (SQLite, or PostgreSQL in the suite's PostgreSQL pass), the simulator channel playing the provider.

Every test ends with the same checks: each callback reached a final state, no attempt is left open, the
simulated provider was asked for every attempt that has an outcome, and nothing was asked twice except what a
fault interrupted mid-call.
"""

from __future__ import annotations

import re
import time as time_module
from collections.abc import Iterator
from datetime import time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from callbackd.contact import dispatch
from callbackd.core.clock import now
from callbackd.core.settings import load_settings
from callbackd.store import accounts, outbox
from callbackd.store.db import Database
from callbackd.store.models import Answer, Attempt, AuditEvent, Callback, Contact, NotificationDelivery, Round
from tests.conftest import POSTGRES, case_row, phone_for, write_csv
from tests.integration.celery_cluster import Cluster, RedisServer, offset_to

pytestmark = pytest.mark.integration

MONDAY_MORNING = "2026-11-23T10:00:00+08:00"  # a working day, inside calling hours
WEEK = "2026-W48"


def write_settings(workdir: Path, redis_url: str, journal: Path, *, simulator: dict[str, Any] | None = None,
                   workers: dict[str, Any] | None = None) -> None:
    def table(values: dict[str, Any]) -> str:
        return "\n".join(f"{key} = {value!r}".replace("'", '"') for key, value in values.items())

    folder = workdir / "config"
    folder.mkdir(exist_ok=True)
    (folder / "callbackd.toml").write_text(f"""
[workers]
broker_url = "{redis_url}/0"
{table({"tick_seconds": 0.5, "chunk": 5, **(workers or {})})}

[dispatch]
rate_storage = "{redis_url}/1"
lease_seconds = 4
batch = 200
retry_minutes = 0
per_number_gap_seconds = 0

[channels.simulator]
{table({"journal": str(journal), **(simulator or {})})}
""", encoding="utf-8")


@pytest.fixture
def cluster(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    server = RedisServer(workdir)
    server.start()
    journal = workdir / "provider-calls.log"
    write_settings(workdir, server.url, journal)
    monkeypatch.setenv("CALLBACKD_CLOCK_OFFSET", str(offset_to(MONDAY_MORNING)))
    database = Database(load_settings().database_url)
    database.ensure_schema()
    running = Cluster(workdir, server, database, journal)
    try:
        yield running
    finally:
        running.stop()
        database.dispose()


def ledger(cli: Any, workdir: Path, windows: int, per_window: int = 20) -> None:
    rows = [
        case_row(f"C{w:03d}{i:03d}", f"第{w + 1:02d}号窗口", phone=phone_for(w * 1000 + i),
                 accepted=f"2026-11-{2 + i % 18:02d} 09:00:00", resolved=f"2026-11-{2 + i % 18:02d} 11:00:00")
        for w in range(windows) for i in range(per_window)
    ]
    run = cli("ledger", "import", write_csv(workdir / "ledger.csv", rows), "--json")
    assert run.code == 0 and not run.json()["errors"], run.out + run.err


def open_round(cli: Any) -> int:
    run = cli("round", "open", "--week", WEEK, "--seed", "celery", "--json")
    assert run.code == 0, run.err
    return int(run.json()["round"])


def check_outcome(cluster: Cluster, *, repeated_at_most: int = 0) -> None:
    """Everything final and nothing lost; at most `repeated_at_most` attempts asked of the provider twice."""
    assert cluster.finished(), cluster.counts()
    assert cluster.open_attempts() == 0
    placed = cluster.placed()
    ended = cluster.ended_attempts()
    assert ended and ended <= set(placed), "an attempt has an outcome the provider never placed"
    repeated = {attempt: n for attempt, n in placed.items() if n > 1}
    assert len(repeated) <= repeated_at_most, repeated
    assert all(n == 2 for n in repeated.values()), repeated
    with cluster.database.session() as session:
        # one contact per callback and one answer per question: nothing recorded twice
        assert session.scalar(
            select(func.count()).select_from(Contact).where(Contact.callback_id.is_not(None))
        ) == session.scalar(select(func.count(func.distinct(Contact.callback_id))))
        completed = session.scalar(select(func.count()).select_from(Callback).where(Callback.status == "completed"))
        rated = session.scalar(
            select(func.count()).select_from(Answer).join(Contact, Contact.id == Answer.contact_id)
            .join(Callback, Callback.id == Contact.callback_id)
            .where(Callback.status == "completed", Answer.level.is_not(None))
        )
        assert completed and rated == 6 * completed


def test_a_round_of_fifty_windows_through_two_workers_places_every_attempt_once(cli, workdir, cluster):
    ledger(cli, workdir, windows=50)
    round_id = open_round(cli)
    # one worker of processes and one of threads, which place several attempts at once in one process
    workers = [cluster.worker("w1"), cluster.worker("w2", concurrency=4, pool="threads")]
    cluster.beat()
    cluster.wait_until_finished()
    check_outcome(cluster)
    with cluster.database.session() as session:
        assert session.scalar(select(func.count()).select_from(Callback).where(Callback.round_id == round_id)) == 1000
        statuses = set(session.scalars(select(Callback.status)))
    assert statuses <= {"completed", "partial", "unreachable", "refused"}
    for worker in workers:  # both took their share
        assert worker.text().count("Task callbackd.place_each[") > 10, worker.text()[-2000:]
    # once every callback is final, beat's close_rounds (run here) closes the round
    with cluster.database.session() as session:
        assert dispatch.close_finished_rounds(session, load_settings(), now()) == [round_id]
        assert session.scalar(select(Round.status).where(Round.id == round_id)) == "closed"


def test_a_worker_killed_mid_dispatch_leaves_its_attempts_to_the_other(cli, workdir, cluster):
    write_settings(workdir, cluster.redis.url, cluster.journal, simulator={"call_seconds": 0.02, "no_answer_rate": 0.0})
    ledger(cli, workdir, windows=15)
    open_round(cli)
    doomed = cluster.worker("doomed", concurrency=2)
    survivor = cluster.worker("survivor")
    cluster.beat()
    cluster.wait_until_share_final(0.3)
    doomed.kill()  # SIGKILL to the worker and its pool, mid-call
    cluster.wait_until_finished()
    # what the killed processes were placing is placed again once its lease runs out, and nothing else
    check_outcome(cluster, repeated_at_most=2)
    assert survivor.popen.poll() is None
    assert re.search(r"'reclaimed': [1-9]", survivor.text()), "nothing was left to reclaim: the kill came too late"


def two_workers_under_way(cli: Any, workdir: Path, cluster: Cluster) -> None:
    """A round of 300 callbacks, two workers and beat, and 30% of it done."""
    write_settings(workdir, cluster.redis.url, cluster.journal, simulator={"call_seconds": 0.01})
    ledger(cli, workdir, windows=15)
    open_round(cli)
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.beat()
    cluster.wait_until_share_final(0.3)


def test_redis_restarted_mid_round_loses_no_attempt(cli, workdir, cluster):
    two_workers_under_way(cli, workdir, cluster)
    cluster.redis.restart()  # no persistence: every queued message is gone
    cluster.wait_until_finished()
    check_outcome(cluster)  # lost messages are claimed again after their lease, never placed twice
    assert any(re.search(r"'reclaimed': [1-9]", worker.text()) for worker in cluster.processes[:2])


@pytest.mark.skipif(not POSTGRES, reason="drops PostgreSQL connections: runs in the PostgreSQL pass of scripts/test")
def test_postgresql_connections_dropped_mid_round_are_recovered(cli, workdir, cluster):
    two_workers_under_way(cli, workdir, cluster)
    name = make_url(load_settings().database_url).database
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        dropped = connection.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :name"
        ), {"name": name}).scalar()
    admin.dispose()
    assert dropped and dropped >= 2  # the workers' connections, at least
    cluster.wait_until_finished()
    # a call interrupted by the drop may be placed once more; nothing is recorded twice
    check_outcome(cluster, repeated_at_most=4)


def test_two_beats_open_the_week_once_at_nine_on_monday_and_place_nothing_twice(cli, workdir, monkeypatch, cluster):
    ledger(cli, workdir, windows=10)
    # Monday 08:59:45: the weekly round is opened by beat at 09:00, the first calling hour
    monkeypatch.setenv("CALLBACKD_CLOCK_OFFSET", str(offset_to("2026-11-23T08:59:45+08:00")))
    cluster.beat("beat-a")
    cluster.beat("beat-b")
    assert now().astimezone(ZoneInfo("Asia/Shanghai")).time() < time(9), "the beats took too long to start"
    cluster.worker("w1", concurrency=2)
    cluster.wait_until_finished(seconds=120)
    check_outcome(cluster)
    with cluster.database.session() as session:
        rounds = session.execute(select(Round.week, Round.opened_by)).all()
        assert [week for week, _ in rounds] == [WEEK]
        assert session.scalar(select(func.count()).select_from(Callback)) == 200
        opened = session.scalars(select(AuditEvent.action).where(AuditEvent.action == "round.open")).all()
        assert opened == ["round.open"]
    ticks = sum(cluster.processes[i].text().count("Sending due task tick") for i in (0, 1))
    assert ticks > 4  # both beats ticked all along


def test_the_provider_rate_holds_across_two_workers(cli, workdir, cluster):
    rate = 10  # well under what two workers place on a busy machine: the limiter, not the workers, sets the pace
    write_settings(workdir, cluster.redis.url, cluster.journal, workers={"chunk": 1},  # one message per attempt
                   simulator={"per_second": rate, "no_answer_rate": 0.0, "refuse_rate": 0.0, "hang_up_rate": 0.0})
    ledger(cli, workdir, windows=6)  # 120 callbacks, one attempt each: 12 s at the rate
    open_round(cli)
    cluster.worker("w1", concurrency=2)
    cluster.worker("w2", concurrency=2)
    cluster.beat()
    cluster.wait_until_finished()
    check_outcome(cluster)
    assert "Task callbackd.place[" in cluster.processes[0].text()
    with cluster.database.session() as session:
        ended = sorted(session.scalars(select(Attempt.ended_at).where(Attempt.status == "completed")))
    assert len(ended) == 120
    window = 8.0  # seconds from the first placed attempt: long enough to average the limiter's window out
    start = ended[0]
    within = sum(1 for t in ended if (t - start).total_seconds() < window)
    achieved = within / window
    assert abs(achieved - rate) <= 0.05 * rate, f"{achieved:.2f}/s against {rate}/s"


def test_the_workers_tick_delivers_an_unsatisfied_answer_to_the_window_heads_group(cli, workdir, cluster, robots):
    """Beat's tick hands the outbox to a worker (`callbackd.notify`): the 不满意 answers the simulator gives open
    rectifications, and each window's robot hears of its own once."""
    settings_file = workdir / "config" / "callbackd.toml"
    groups = "\n".join(f'"第{w:02d}号窗口" = "{robots.add_wecom(f"第{w:02d}号窗口")}"' for w in (1, 2))
    settings_file.write_text(
        settings_file.read_text(encoding="utf-8").replace(
            "[channels.simulator]\n", '[channels.simulator]\nprofiles = { "第01号窗口" = [0, 0, 1], "第02号窗口" = '
            '[0, 0, 1] }\nno_answer_rate = 0.0\nhang_up_rate = 0.0\nrefuse_rate = 0.0\n')
        + f"\n[notify.wecom.groups]\n{groups}\n", encoding="utf-8")
    ledger(cli, workdir, windows=2, per_window=3)
    open_round(cli)
    with cluster.database.session() as session:
        for w in (1, 2):
            head = accounts.add_user(session, accounts.NewUser(f"head{w}", "window", (f"第{w:02d}号窗口",),
                                                               "correct horse battery"), now())
            outbox.set_routes(session, head, [f"wecom:第{w:02d}号窗口"])
    cluster.worker("w1")
    cluster.beat()
    cluster.wait_until_finished()
    deadline = time_module.monotonic() + 60
    while time_module.monotonic() < deadline and len(robots.received()) < 6:
        time_module.sleep(0.2)
    for w in (1, 2):
        got = robots.received(f"第{w:02d}号窗口", "wecom")
        assert len(got) == 3, got  # three rectifications of its own, each told once
        assert all(f"第{w:02d}号窗口" in body["markdown"]["content"] for body in got)
    time_module.sleep(2)  # more ticks deliver nothing more
    assert len(robots.received()) == 6
    with cluster.database.session() as session:
        statuses = set(session.scalars(select(NotificationDelivery.status)))
    assert statuses == {"sent"}
