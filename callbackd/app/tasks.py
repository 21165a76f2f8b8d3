"""Celery tasks: thin shells over the same core functions the embedded runner calls, for deployments that run
on PostgreSQL with Celery workers and beat on Redis.

- `tick` (beat, every `[workers] tick_seconds`): one scheduler pass (`dispatch.tick`) in one transaction, then
  the claimed attempts handed to the workers, sent only once that transaction has committed: one `place_each`
  message per `[workers] chunk` attempts (or one `place` message each with chunk = 1).
- `place`: places one claimed attempt (`dispatch.place_queued`); a repeated delivery finds it taken and does
  nothing. `place_each` places several, one after the other.
- `open_rounds` (beat, Monday 09:00 by default), `close_rounds`, `scores`.
- `notify`: delivers the outbox (`callbackd.notify.delivery.run_once`), sent by each tick after its own work; a
  scheduled task that fails is reported to the supervisors through it (`job.failed`, once an hour per task).

Scheduling lives in the database (due times on attempts), never in ETA or countdown messages, which Redis
would deliver again after its visibility timeout. Messages are acknowledged after the task ran, so a task
whose worker died is delivered again; a worker killed while placing leaves its attempt claimed until the
claim's lease runs out, and the next tick claims it again.
"""

from __future__ import annotations

import logging
import secrets
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import Celery, signals
from celery.schedules import crontab, schedstate, schedule
from sqlalchemy.exc import IntegrityError

from callbackd.api.manager import Plugins, load_plugins
from callbackd.contact import dispatch
from callbackd.core import clock
from callbackd.core.errors import RoundError
from callbackd.core.settings import Settings, load_settings
from callbackd.report import reports
from callbackd.rounds import sampling
from callbackd.store.db import Database, chunks

log = logging.getLogger("callbackd.app.tasks")

app = Celery("callbackd")
app.conf.update(
    task_acks_late=True,  # acknowledged once the task ran: a task whose worker died is delivered again
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=4,
    task_ignore_result=True,
    task_serializer="json",
    accept_content=["json"],
    broker_connection_retry_on_startup=True,
    broker_transport_options={"visibility_timeout": 3600},
    worker_hijack_root_logger=False,
    enable_utc=True,
    result_expires=None,  # no result backend to clean up
)


@dataclass
class Runtime:
    """What a worker process needs, made once per process (after the pool forks it) and shared by its threads
    (a threads pool): the engine's pool gives each task its own connection."""

    settings: Settings
    database: Database
    plugins: Plugins


_runtime: Runtime | None = None
_settings: Settings | None = None


def configure(settings: Settings) -> Celery:
    """Point the app at the settings' broker and give beat its schedule; called by `callbackd worker|beat`."""
    global _settings
    _settings = settings
    workers = settings.workers
    app.conf.update(
        broker_url=workers.broker_url,
        result_backend=workers.result_backend or None,
        timezone=settings.timezone,
        beat_schedule=beat_schedule(settings),
    )
    return app


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Beat's entries: the tick, and the crontab jobs in the settings' time zone on callbackd's clock."""
    workers = settings.workers

    def cron(spec: str) -> crontab:
        minute, hour, day_of_month, month_of_year, day_of_week = spec.split()
        return crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month_of_year,
                       day_of_week=day_of_week, nowfun=local_now, app=app)

    return {
        # every entry on the same clock: beat orders its entries by their clocks' times
        "tick": {"task": "callbackd.tick",
                 "schedule": Ticking(timedelta(seconds=workers.tick_seconds), nowfun=local_now, app=app)},
        "open-rounds": {"task": "callbackd.open_rounds", "schedule": cron(workers.open_rounds)},
        "close-rounds": {"task": "callbackd.close_rounds", "schedule": cron(workers.close_rounds)},
        "scores": {"task": "callbackd.scores", "schedule": cron(workers.scores)},
    }


class Ticking(schedule):
    """The tick's schedule: every `run_every`, and at once when beat starts. A beat started, or restarted after a
    deployment, claims what is due straight away instead of a whole tick later (a minute by default)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started = False

    def is_due(self, last_run_at: datetime) -> schedstate:
        if not self.started:
            self.started = True
            return schedstate(is_due=True, next=self.seconds)
        return super().is_due(last_run_at)


def local_now() -> datetime:
    """callbackd's clock in the settings' zone: crontab entries follow it (beat keeps them, so not a closure)."""
    return clock.now().astimezone((_settings or load_settings()).zone)


_making = threading.Lock()


def runtime() -> Runtime:
    """This process's runtime, made by its first task (one of several at once in a threads pool)."""
    global _runtime
    if _runtime is not None:
        return _runtime
    with _making:
        if _runtime is None:
            settings = _settings or load_settings()
            database = Database(settings.database_url)
            database.ensure_schema()
            _runtime = Runtime(settings, database, load_plugins())
        return _runtime


@signals.worker_process_init.connect
def _fresh_process(**_: Any) -> None:
    """A forked pool process must not share its parent's database connections."""
    global _runtime
    _runtime = None


def forget() -> None:
    """Drop this process's settings and runtime: the next task reads the settings in force again."""
    global _runtime, _settings
    if _runtime is not None:
        _runtime.database.dispose()
    _runtime = _settings = None


@app.task(name="callbackd.tick")
def tick() -> dict[str, int]:
    """Claim what is due and hand each claimed attempt to the workers, after the claim committed."""
    run = runtime()
    report = dispatch.tick(run.database, run.settings, run.plugins)
    from callbackd.store import heartbeats

    with run.database.session() as session:  # beat is alive: what `callbackd status` and /metrics read
        heartbeats.beat(session, "beat.tick", clock.now(), claimed=len(report.claimed), reclaimed=report.reclaimed)
    size = run.settings.workers.chunk
    if size == 1:
        for attempt_id in report.claimed:
            place.delay(attempt_id)
    else:
        for chunk in chunks(report.claimed, size):
            place_each.delay(list(chunk))
    notify.delay()
    summary = {"reclaimed": report.reclaimed, "ended": report.ended, "scheduled": report.scheduled,
               "held": report.held, "claimed": len(report.claimed)}
    if any(summary.values()):
        log.info("tick: %s", summary)
    return summary


@app.task(name="callbackd.notify")
def notify() -> dict[str, int]:
    """Deliver what the outbox holds (after scanning for deadlines and alerts); two at once never send one
    delivery twice."""
    from callbackd.notify import delivery

    run = runtime()
    report = delivery.run_once(run.database, run.settings, run.plugins, clock.now())
    summary = {k: v for k, v in report.as_dict().items() if k != "errors"}
    if report.sent or report.failed or report.retried:
        log.info("notify: %s", summary)
    return summary


SCHEDULED = {"callbackd.open_rounds": "定时任务：开启本周回访批次", "callbackd.close_rounds": "定时任务：结束回访批次",
             "callbackd.scores": "定时任务：生成排名报表", "callbackd.tick": "定时任务：调度"}


@signals.task_failure.connect
def _report_failure(sender: Any = None, exception: BaseException | None = None, **_: Any) -> None:
    """A scheduled task that raised is reported to the supervisors (once an hour per task)."""
    from callbackd.notify.jobs import job_failed

    job = SCHEDULED.get(getattr(sender, "name", ""))
    if job is None or _runtime is None:
        return
    now = clock.now()
    try:
        job_failed(_runtime.database, _runtime.settings, job, f"{type(exception).__name__}: {exception}", now,
                   once_per=now.strftime("%Y-%m-%dT%H"))
    except Exception:  # the database itself may be what failed: the worker's log keeps the task's error
        log.exception("could not record the failure of %s", job)


@app.task(name="callbackd.place")
def place(attempt_id: int) -> str | None:
    """Place one claimed attempt; a repeated delivery does nothing."""
    run = runtime()
    placement = dispatch.place_queued(run.database, run.settings, run.plugins, attempt_id)
    if placement is None:
        return None
    if placement.error is not None:
        log.error("placing failed: %s", placement.error)
    return placement.state


@app.task(name="callbackd.place_each")
def place_each(attempt_ids: list[int]) -> list[str | None]:
    """Place claimed attempts one after the other, each as `place` would, taking them all with one statement
    (one message for several saves the broker's and the database's work per attempt); a repeated delivery
    places none of them twice."""
    run = runtime()
    placements = dispatch.place_many(run.database, run.settings, run.plugins, attempt_ids)
    for placement in placements:
        if placement is not None and placement.error is not None:
            log.error("placing failed: %s", placement.error)
    return [None if placement is None else placement.state for placement in placements]


@app.task(name="callbackd.open_rounds")
def open_rounds(week: str | None = None) -> int | None:
    """Open the round of `week` (default: the current week in the settings' zone) with a random seed. A week
    that already has a round is left as it is, so two beats opening the same week open it once."""
    run = runtime()
    now = clock.now()
    if week is None:
        iso = now.astimezone(run.settings.zone).isocalendar()
        week = f"{iso.year}-W{iso.week:02d}"
    try:
        with run.database.session() as session:
            round_, _ = sampling.open_round(session, run.settings, week, seed=secrets.token_hex(16), now=now)
            opened = round_.id
    except RoundError as exc:
        log.info("open_rounds: %s", exc)
        return None
    except IntegrityError:  # another scheduler opened the week at the same moment: one round in force per week
        log.info("open_rounds: week %s was opened by another scheduler", week)
        return None
    log.info("open_rounds: week %s opened as round %s", week, opened)
    return opened


@app.task(name="callbackd.close_rounds")
def close_rounds() -> list[int]:
    """Close the rounds whose callbacks have all reached a final state."""
    run = runtime()
    with run.database.session() as session:
        return dispatch.close_finished_rounds(session, run.settings, clock.now())


@app.task(name="callbackd.scores")
def scores() -> list[str]:
    """Write last week's and last month's ranking reports (JSON and HTML) to `[workers] reports_folder`."""
    run = runtime()
    with run.database.session() as session:
        written = reports.write_recent(session, run.settings, run.plugins, clock.now())
    return [str(path) for path in written]
