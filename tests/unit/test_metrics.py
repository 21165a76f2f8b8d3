"""/metrics and /healthz: who may read the metrics (the token, an admin's or a supervisor's session, nobody else),
the figures read from the database as the dispatcher, imports and the outbox move them, webhook latency by plugin,
no personal data anywhere in the output, and /healthz when the database answers and when it does not."""

from __future__ import annotations

import asyncio
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from callbackd.api.manager import load_plugins
from callbackd.app.web import create_app, metrics
from callbackd.contact import dispatch
from callbackd.core.settings import Settings, load_settings
from callbackd.store import heartbeats
from callbackd.store.db import Database
from callbackd.store.models import Notification, NotificationDelivery
from tests.conftest import case_row, phone_for, write_csv
from tests.unit.conftest import ConsoleClient

KEY = "a test key that is long enough to sign sessions"
TOKEN = "scrape-token-3f9a7c1e5b"
NOW = "2026-11-23T10:00:00+08:00"
APPLICANT = "欧阳娜娜"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def app(settings: Settings, database: Database, people, monkeypatch: pytest.MonkeyPatch):
    """The web app with a metrics token, on this test's database (accounts for every role in it)."""
    monkeypatch.setenv("CALLBACKD_SECRET_KEY", KEY)
    monkeypatch.setenv("CALLBACKD_METRICS_TOKEN", TOKEN)
    monkeypatch.setattr(metrics, "CACHE_SECONDS", 0.0)  # each scrape reads the database afresh, unless a test says
    return create_app(settings)


def scrape(app, token: str = TOKEN) -> str:
    response = TestClient(app).get("/metrics", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


def samples(text: str) -> Samples:
    """Every sample of the exposition: (name, sorted labels) -> value."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(found: Samples, name: str, **labels: str) -> float | None:
    return found.get((name, tuple(sorted(labels.items()))))


def one_round(cli, workdir: Path, monkeypatch, cases: int = 4) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row(f"M{i}", "社保窗口", applicant=APPLICANT, phone=phone_for(i)) for i in range(cases)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    opened = cli("round", "open", "--week", "2026-W48", "--seed", "m")
    assert opened.code == 0, opened.err


# ---- access -----------------------------------------------------------------------------------------------


def test_the_token_opens_the_metrics_and_nothing_else_does_without_a_session(app):
    http = TestClient(app, follow_redirects=False)
    assert "callbackd_database_up 1.0" in scrape(app)
    for headers in ({}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": "Bearer "}):
        refused = http.get("/metrics", headers=headers)
        # a scraper is never sent to the sign-in page, and learns nothing from the body
        assert refused.status_code == 401 and refused.content == b"" and "location" not in refused.headers
        assert refused.headers["www-authenticate"].startswith("Bearer")


def test_without_a_configured_token_no_token_opens_them(settings, database, people, monkeypatch):
    monkeypatch.setenv("CALLBACKD_SECRET_KEY", KEY)
    app = create_app(settings)  # CALLBACKD_METRICS_TOKEN unset
    http = TestClient(app)
    assert http.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 401
    assert http.get("/metrics", headers={"Authorization": "Bearer x"}).status_code == 401


@pytest.mark.parametrize(("name", "status"), [("sup", 200), ("adm", 200), ("op", 403), ("win", 403),
                                              ("lead", 403)])
def test_a_console_session_opens_them_for_admins_and_supervisors_only(app, name, status):
    client = ConsoleClient(app)
    assert client.sign_in(name).status_code == 303
    response = client.get("/metrics")
    assert response.status_code == status
    if status == 200:
        assert "callbackd_attempts" in response.text
    else:
        assert "callbackd_" not in response.text


# ---- the figures ------------------------------------------------------------------------------------------


def test_placing_attempts_moves_the_attempt_families_and_no_personal_data_shows(app, cli, workdir, monkeypatch):
    one_round(cli, workdir, monkeypatch)
    before = samples(scrape(app))
    assert value(before, "callbackd_rounds_open", kind="sample") == 1
    assert value(before, "callbackd_attempts_placed_total", channel="simulator") is None
    assert value(before, "callbackd_imports_total", kind="ledger", outcome="clean") == 1
    assert value(before, "callbackd_import_rows_total", kind="ledger", rows="imported") == 4
    assert ("callbackd_last_tick_seconds", ()) not in before  # beat never ticked

    run = cli("dispatch", "--once", "--json")
    assert run.code == 0, run.err
    text = scrape(app)
    after = samples(text)
    assert value(after, "callbackd_attempts_placed_total", channel="simulator") == 4
    assert sum(v for (name, labels), v in after.items()
               if name == "callbackd_attempts" and ("channel", "simulator") in labels) == 4
    assert value(after, "callbackd_attempts_due_waiting", channel="simulator") is None
    assert value(after, "callbackd_attempts_due_oldest_seconds") == 0
    # the embedded runner's pass left its heartbeat, on callbackd's clock
    assert value(after, "callbackd_heartbeat_age_seconds", job="dispatch.run") == 0
    for personal in [APPLICANT, "社保窗口", *(phone_for(i) for i in range(4)), phone_for(0)[-4:]]:
        assert personal not in text


def test_due_attempts_waiting_and_reclaimed_ones_are_counted_by_channel(app, cli, workdir, monkeypatch, settings):
    one_round(cli, workdir, monkeypatch, cases=3)
    database, plugins = Database(settings.database_url), load_plugins()
    now = datetime.fromisoformat(NOW)
    try:
        with database.session() as session:
            dispatch.schedule_new(session, settings, plugins, now - timedelta(hours=1))
        waiting = samples(scrape(app))
        assert value(waiting, "callbackd_attempts_due_waiting", channel="simulator") == 3
        assert value(waiting, "callbackd_attempts", channel="simulator", status="due") == 3
        # claimed by a tick whose worker never took them: once the lease runs out, the next tick takes them back
        ticked = dispatch.tick(database, settings, plugins, now)
        assert len(ticked.claimed) == 3
        assert value(samples(scrape(app)), "callbackd_attempts", channel="simulator", status="queued") == 3
        later = now + timedelta(seconds=settings.dispatch.lease_seconds + 1)
        assert dispatch.tick(database, settings, plugins, later).reclaimed == 3
    finally:
        database.dispose()
    found = samples(scrape(app))
    assert value(found, "callbackd_attempts_reclaimed_total", channel="simulator", how="lease") == 3


def test_notifications_waiting_and_failed_follow_the_outbox(app, database):
    now = datetime.now(UTC)
    with database.session() as session:
        notification = Notification(event="rectification.overdue", key="t1", title="整改超期", lines=[], path="/",
                                    created_at=now)
        session.add(notification)
        session.flush()
        session.add_all([
            NotificationDelivery(notification_id=notification.id, route="email:a@example.gov.cn", status="pending",
                                 due_at=now - timedelta(minutes=1)),
            NotificationDelivery(notification_id=notification.id, route="email:b@example.gov.cn", status="pending",
                                 due_at=now + timedelta(hours=5), digest=True),  # tomorrow's digest: not waiting
            NotificationDelivery(notification_id=notification.id, route="wecom:督查科", status="failed",
                                 due_at=now - timedelta(hours=1), tries=5),
        ])
    text = scrape(app)
    found = samples(text)
    assert value(found, "callbackd_notifications_waiting") == 1
    assert value(found, "callbackd_notifications_failed") == 1
    assert value(found, "callbackd_notification_deliveries", status="pending") == 2
    assert "example.gov.cn" not in text and "督查科" not in text  # routes are not labels


def test_a_beat_tick_shows_as_its_age(app, database):
    from callbackd.core import clock

    with database.session() as session:
        heartbeats.beat(session, "beat.tick", clock.now() - timedelta(seconds=90), claimed=0)
    found = samples(scrape(app))
    assert 90 <= value(found, "callbackd_last_tick_seconds") < 100
    assert 90 <= value(found, "callbackd_heartbeat_age_seconds", job="beat.tick") < 100


def test_a_bad_import_counts_with_errors(app, cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row("B1", phone=phone_for(1)), case_row("B2", phone="12345")]
    assert cli("ledger", "import", write_csv(workdir / "bad.csv", rows)).code == 0
    found = samples(scrape(app))
    assert value(found, "callbackd_imports_total", kind="ledger", outcome="with_errors") == 1
    assert value(found, "callbackd_import_rows_total", kind="ledger", rows="bad") == 1
    assert value(found, "callbackd_import_rows_total", kind="ledger", rows="imported") == 1


def test_a_scrape_storm_reads_the_database_once_per_cache_period(app, cli, workdir, monkeypatch):
    monkeypatch.setattr(metrics, "CACHE_SECONDS", 60.0)
    first = samples(scrape(app))
    assert value(first, "callbackd_rounds_open", kind="sample") is None
    one_round(cli, workdir, monkeypatch)
    assert value(samples(scrape(app)), "callbackd_rounds_open", kind="sample") is None  # the reading kept
    monkeypatch.setattr(metrics, "CACHE_SECONDS", 0.0)
    assert value(samples(scrape(app)), "callbackd_rounds_open", kind="sample") == 1


# ---- webhook latency -------------------------------------------------------------------------------------


def test_webhook_latency_is_by_plugin_and_status_class_never_by_path(app):
    http = TestClient(app)
    secret = "tok-8d1e2f"
    http.post(f"/hooks/twilio/voice/12345/{secret}", data={"Digits": "1"})
    http.post(f"/hooks/nosuchplugin/{secret}", data={})
    text = scrape(app)
    found = samples(text)
    counts = {dict(labels)["plugin"]: v for (name, labels), v in found.items()
              if name == "callbackd_webhook_seconds_count"}
    assert counts == {"twilio": 1, "other": 1}
    statuses = {dict(labels)["status"] for (name, labels), v in found.items()
                if name == "callbackd_webhook_seconds_count"}
    assert statuses <= {"2xx", "3xx", "4xx", "5xx"}
    assert secret not in text and "12345" not in text and "nosuchplugin" not in text


# ---- /healthz -----------------------------------------------------------------------------------------------


def test_healthz_answers_ok_without_signing_in(app):
    response = TestClient(app).get("/healthz")
    assert response.status_code == 200 and response.json()["status"] == "ok"


def test_healthz_is_503_when_the_database_cannot_be_opened(workdir, monkeypatch):
    folder = workdir / "gone"
    monkeypatch.setenv("CALLBACKD_DATABASE_URL", f"sqlite:///{folder / 'callbackd.db'}")
    monkeypatch.setenv("CALLBACKD_METRICS_TOKEN", TOKEN)
    app = create_app(load_settings())
    app.state.console.database.dispose()  # no connection left open on the file
    shutil.rmtree(folder)
    response = TestClient(app).get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unreachable"}
    # the metrics still answer, saying the database does not
    found = samples(scrape(app))
    assert value(found, "callbackd_database_up") == 0
    assert not [name for name, _ in found if name.startswith("callbackd_attempts")]


def test_healthz_says_unreachable_for_a_closed_port_within_its_timeout():
    pytest.importorskip("psycopg")
    database = Database("postgresql+psycopg://callbackd:s3cret-pass@127.0.0.1:9/callbackd")
    try:
        began = time.monotonic()
        problem = asyncio.run(metrics.Health(database).check())
        assert problem == "unreachable"
        assert time.monotonic() - began < metrics.HEALTH_TIMEOUT + 1
    finally:
        database.dispose()


def test_healthz_is_503_when_the_schema_is_not_this_versions(app, database):
    with database.engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    response = TestClient(app).get("/healthz")
    assert response.status_code == 503 and response.json()["database"].startswith("schema 0001")
