"""Signals for whoever runs callbackd: `/metrics` in the Prometheus text format and `/healthz`.

Workers and beat run in other processes, so what they did is read from the database when Prometheus scrapes
(`report.operations`: attempts by channel and state, reclaims, imports, the outbox, what is overdue, the jobs'
heartbeats), at most once every `CACHE_SECONDS` however many scrapes come. Webhook latency is the one figure this
process measures itself: a histogram by plugin and status class, never by path (paths carry tokens and ids).

`/metrics` answers a request carrying `Authorization: Bearer <CALLBACKD_METRICS_TOKEN>` or a console session of an
admin or a supervisor: 401 otherwise (403 for a session of another role), never a redirect to the sign-in page.
It holds counts, channel, state, plugin and job names: never a number, a name or a window.

`/healthz` needs no sign-in: 200 when the database answers and its schema is the code's, 503 otherwise, within
`HEALTH_TIMEOUT` seconds however the database fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callbackd import __version__
from callbackd.api.webhooks import same_token
from callbackd.app.web.console.access import ADMIN, SUPERVISOR, viewer_for
from callbackd.app.web.console.pages import console_of
from callbackd.core import clock
from callbackd.core.errors import CallbackdError
from callbackd.report import operations
from callbackd.store.db import SCHEMA_HEAD, Database, current_revision

TOKEN_ENVIRONMENT = "CALLBACKD_METRICS_TOKEN"
CACHE_SECONDS = 10.0  # a scrape storm reads the database once per this
HEALTH_TIMEOUT = 2.0  # seconds /healthz waits for the database before it says unreachable
ROLES = (ADMIN, SUPERVISOR)
# webhook latency buckets (seconds): a provider waits for the answer, and most give up after 10-15 s
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0)
logger = logging.getLogger(__name__)


def install(app: FastAPI, database: Database, plugins: Collection[str]) -> None:
    """Add `/metrics`, `/healthz` and the webhook timing (outermost, so it counts the whole request) to the app;
    `plugins` are the names mounted under /hooks/ (any other first segment is counted as "other")."""
    registry = CollectorRegistry()  # not auto_describe: registering would read the database
    registry.register(DatabaseCollector(database))
    latency = Histogram("callbackd_webhook_seconds", "Time to answer a provider's webhook request, by plugin and "
                        "status class", ["plugin", "status"], buckets=BUCKETS, registry=registry)
    app.add_middleware(WebhookTiming, latency=latency, plugins=frozenset(plugins))
    token = os.environ.get(TOKEN_ENVIRONMENT, "")
    health = Health(database)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        refused = await run_in_threadpool(refusal, request, token)
        if refused is not None:
            return refused
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> JSONResponse:  # on the event loop: it answers even when every worker thread waits
        problem = await health.check()
        if problem is None:
            return JSONResponse({"status": "ok", "version": __version__})
        return JSONResponse({"status": "error", "database": problem}, status_code=503)


def refusal(request: Request, token: str) -> Response | None:
    """None when the request may read the metrics: the metrics token, or an admin's or a supervisor's session.
    Otherwise an empty 401 (403 for a session of another role; 503 when the database cannot say whose it is)."""
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() == "bearer" and same_token(value.strip(), token):
        return None
    console = console_of(request)
    data = console.sessions.read(request)
    if data is not None and "u" in data:
        try:
            with console.session() as session:
                viewer = viewer_for(session, data)
        except SQLAlchemyError:  # the account cannot be checked: the token still opens the metrics
            return Response(status_code=503)
        if viewer is not None:
            return None if viewer.role in ROLES else Response(status_code=403)
    return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="callbackd metrics"'})


# ---- figures read from the database at scrape time -------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One read of the database: when (callbackd's clock), and what it found (None: the database did not answer)."""

    now: datetime
    activity: operations.Activity | None = None
    backlog: operations.Backlog | None = None
    beats: dict[str, operations.Beat] | None = None


class DatabaseCollector(Collector):
    """The database's figures as metric families, read at most once every `CACHE_SECONDS` (one scrape reads while
    the others wait for its reading)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._lock = threading.Lock()
        self._reading: Reading | None = None
        self._read_at = 0.0

    def reading(self) -> Reading:
        with self._lock:
            if self._reading is None or time.monotonic() - self._read_at >= CACHE_SECONDS:
                self._reading = self.read()
                self._read_at = time.monotonic()
            return self._reading

    def read(self) -> Reading:
        now = clock.now()
        try:
            with self.database.session() as session:
                return Reading(now, operations.activity(session), operations.backlog(session, now),
                               operations.beats(session, now))
        except (SQLAlchemyError, CallbackdError) as exc:  # the scrape still answers: callbackd_database_up 0
            logger.warning("metrics: cannot read the database (%s)", type(exc).__name__)
            return Reading(now)

    def collect(self) -> Iterator[Metric]:
        reading = self.reading()
        up = GaugeMetricFamily("callbackd_database_up", "1 when the last read of the database for these metrics "
                                                        "succeeded")
        up.add_metric([], 0 if reading.activity is None else 1)
        yield up
        if reading.activity is not None:
            yield from activity_families(reading.activity)
        if reading.backlog is not None:
            yield from backlog_families(reading.backlog, reading.now)
        if reading.beats is not None:
            yield from beat_families(reading.beats)


def activity_families(found: operations.Activity) -> Iterator[Metric]:
    yield _labelled(GaugeMetricFamily, "callbackd_attempts", "Attempts by channel and state", ["channel", "status"],
                    found.attempts)
    yield _labelled(CounterMetricFamily, "callbackd_attempts_placed",
                    "Attempts that reached their provider, by channel", ["channel"], found.placed)
    yield _labelled(CounterMetricFamily, "callbackd_attempts_failed", "Attempts that ended failed (placing raised, "
                    "or the provider refused), by channel", ["channel"], found.failed)
    yield _labelled(CounterMetricFamily, "callbackd_attempts_reclaimed", "Attempts taken back from a lost worker: "
                    "its lease ran out while queued (lease), or settled by the provider's word (lookup)",
                    ["channel", "how"], found.reclaimed)
    yield _labelled(CounterMetricFamily, "callbackd_imports", "Imported files (ledger, results, plan) that changed "
                    "something, by whether some rows were bad", ["kind", "outcome"], found.imports)
    yield _labelled(CounterMetricFamily, "callbackd_import_rows", "Rows of those files: imported, updated, bad",
                    ["kind", "rows"], found.import_rows)
    yield _labelled(GaugeMetricFamily, "callbackd_notification_deliveries", "Notification deliveries by state",
                    ["status"], found.notifications)
    yield _labelled(GaugeMetricFamily, "callbackd_rectifications", "Rectifications by state", ["status"],
                    found.rectifications)
    yield _labelled(GaugeMetricFamily, "callbackd_rounds_open", "Rounds open, by kind (sample, plan)", ["kind"],
                    found.rounds_open)


def _labelled(kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, help_text: str,
              labels: list[str], counts: Mapping[Any, int]) -> Metric:
    """A family of one sample per key of `counts` (a label's value, or a tuple of `labels`' values), in order."""
    family = kind(name, help_text, labels=labels)
    for key, count in sorted(counts.items()):
        family.add_metric(list(key) if isinstance(key, tuple) else [key], count)
    return family


def backlog_families(found: operations.Backlog, now: datetime) -> Iterator[Metric]:
    yield _labelled(GaugeMetricFamily, "callbackd_attempts_due_waiting", "Attempts due whose due time has passed, "
                    "waiting to be claimed, by channel", ["channel"], found.attempts_due)
    oldest = GaugeMetricFamily("callbackd_attempts_due_oldest_seconds", "How long the attempt waiting longest "
                               "has been due (0 when none waits)")
    oldest.add_metric([], 0 if found.oldest_due is None else max((now - found.oldest_due).total_seconds(), 0.0))
    yield oldest
    for name, help_text, value in (
        ("callbackd_notifications_waiting", "Notification deliveries due and not yet sent",
         found.notifications_waiting),
        ("callbackd_notifications_failed", "Notification deliveries that failed after their last try",
         found.notifications_failed),
        ("callbackd_rectifications_overdue", "Rectifications open past their feedback deadline",
         found.rectifications_overdue),
        ("callbackd_rectification_follow_ups_failed", "Rectifications whose follow-up callback failed, awaiting "
                                                      "verification by hand", found.follow_ups_failed),
        ("callbackd_callbacks_past_deadline", "Callbacks not done past their category rule's deadline",
         found.callbacks_past_deadline),
    ):
        gauge = GaugeMetricFamily(name, help_text)
        gauge.add_metric([], value)
        yield gauge


def beat_families(found: dict[str, operations.Beat]) -> Iterator[Metric]:
    ages = GaugeMetricFamily("callbackd_heartbeat_age_seconds", "Seconds since each recurring job last ran "
                             "(beat.tick, dispatch.run, ...)", labels=["job"])
    for name, beat in sorted(found.items()):
        ages.add_metric([name], beat.age_seconds)
    yield ages
    tick = found.get("beat.tick")
    if tick is not None:  # absent until beat first ticks: alert on `absent(callbackd_last_tick_seconds)` too
        last = GaugeMetricFamily("callbackd_last_tick_seconds", "Seconds since Celery beat's tick last ran")
        last.add_metric([], tick.age_seconds)
        yield last


# ---- webhook latency, measured in this process -------------------------------------------------------------


class WebhookTiming:
    """Times every request under /hooks/ as the provider sees it, by plugin (the first path segment, when a plugin
    by that name is mounted) and status class. A delivery the inbox applies later is not timed again."""

    def __init__(self, app: ASGIApp, latency: Histogram, plugins: frozenset[str]) -> None:
        self.app = app
        self.latency = latency
        self.plugins = plugins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not path.startswith("/hooks/") or "callbackd.inbox" in scope:
            await self.app(scope, receive, send)
            return
        segment = path[len("/hooks/"):].split("/", 1)[0]
        plugin = segment if segment in self.plugins else "other"
        status = 500  # what an app that raised before answering amounts to
        began = time.perf_counter()

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.latency.labels(plugin, f"{status // 100}xx").observe(time.perf_counter() - began)


# ---- /healthz -------------------------------------------------------------------------------------------------


class Health:
    """Whether the database answers, with the code's schema: one probe at a time, on a thread of its own (a
    database that hangs holds that thread, not the app's), and every check meanwhile shares its answer."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._running: asyncio.Future[str | None] | None = None

    async def check(self) -> str | None:
        """None when healthy; else what is wrong: "unreachable", or "schema <found>, expected <head>"."""
        loop = asyncio.get_running_loop()
        if self._running is None or self._running.done() or self._running.get_loop() is not loop:
            running: asyncio.Future[str | None] = loop.create_future()

            def probe() -> None:
                answer = self.probe()
                with suppress(RuntimeError):  # the loop that asked has closed: nobody waits for this answer
                    loop.call_soon_threadsafe(settle, answer)

            def settle(answer: str | None) -> None:
                if not running.done():
                    running.set_result(answer)

            threading.Thread(target=probe, name="callbackd-healthz", daemon=True).start()
            self._running = running
        try:
            return await asyncio.wait_for(asyncio.shield(self._running), HEALTH_TIMEOUT)
        except TimeoutError:
            return "unreachable"

    def probe(self) -> str | None:
        try:
            revision = current_revision(self.database.engine)  # reads the schema's revision: the database answers
        except Exception as exc:  # whatever the driver raises, the answer is "unreachable"; never the URL
            logger.warning("healthz: the database does not answer (%s)", type(exc).__name__)
            return "unreachable"
        if revision != SCHEMA_HEAD:
            return f"schema {revision or 'missing'}, expected {SCHEMA_HEAD}"
        return None
