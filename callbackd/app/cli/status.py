"""`callbackd status`: whether the recurring jobs run (beat's tick, the embedded runner), whether the Celery workers
answer, and what is overdue. A thin adapter over `report.operations` and Celery's ping."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from callbackd.app.cli.common import JsonFlag, app, emit_json, err, out
from callbackd.core.errors import CallbackdError

if TYPE_CHECKING:
    from callbackd.core.settings import Settings

STALE_TICKS = 3  # beat is late once this many ticks passed without one
PING_SECONDS = 1.0


@app.command("status")
def status(
    no_workers: Annotated[bool, typer.Option("--no-workers", help="Do not ping the Celery workers.")] = False,
    embedded: Annotated[
        bool, typer.Option("--embedded", help="A deployment without Celery: judge the embedded runner "
                                              "(`callbackd dispatch`) instead of beat, and ping no worker.")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Beat's last tick, the embedded runner's last run, the workers that answer a ping, and what is overdue
    (rectifications, callbacks past their category deadline, attempts due and waiting, notifications).

    Exit 0 when healthy; 1, with the reasons, when beat has not ticked within 3 × [workers] tick_seconds (with
    --embedded: the embedded runner has not run within that time), when no worker answered the ping (unless
    --no-workers or --embedded), or when the database's schema is not this version's.
    """
    from callbackd.core import clock
    from callbackd.core.settings import load_settings
    from callbackd.report import operations
    from callbackd.store.db import SCHEMA_HEAD, Database, current_revision

    settings = load_settings()
    now = clock.now()
    database = Database(settings.database_url)
    try:
        revision = current_revision(database.engine)
        if revision != SCHEMA_HEAD:
            raise CallbackdError(f"the database's schema is {revision or 'missing'}, this version's is {SCHEMA_HEAD}:"
                                 f" run `callbackd init`")
        with database.session() as session:
            beats = operations.beats(session, now)
            backlog = operations.backlog(session, now)
    finally:
        database.dispose()

    within = STALE_TICKS * settings.workers.tick_seconds
    judged = "dispatch.run" if embedded else "beat.tick"
    report: dict[str, Any] = {
        "now": now.isoformat(),
        "beat": job(beats.get("beat.tick"), within, judged == "beat.tick"),
        "embedded_runner": job(beats.get("dispatch.run"), within, judged == "dispatch.run"),
        "heartbeats": {name: {"at": beat.at.isoformat(), "age_seconds": round(beat.age_seconds, 1),
                              "detail": beat.detail} for name, beat in sorted(beats.items())},
        "workers": ping(settings) if not (no_workers or embedded) else {
            "checked": False, "answered": 0, "names": [], "error": None,
            "note": f"not checked ({'--embedded' if embedded else '--no-workers'})"},
        "overdue": backlog.as_dict(now),
    }
    problems = []
    judged_job = report["beat" if judged == "beat.tick" else "embedded_runner"]
    if not judged_job["recent"]:
        who, never, not_since = ("beat", "never ticked", "not ticked") if judged == "beat.tick" else (
            "the embedded runner", "never run", "not run")
        late = never if judged_job["at"] is None else f"{not_since} for {judged_job['age_seconds']:.0f} s"
        problems.append(f"{who} has {late} (expected within {within:g} s: 3 × [workers] tick_seconds)")
    workers = report["workers"]
    if workers["checked"] and not workers["answered"]:
        problems.append(workers["error"] or f"no Celery worker answered a ping within {PING_SECONDS:g} s")
    report["ok"], report["problems"] = not problems, problems
    if as_json:
        emit_json(report)
    else:
        show(report, settings)
    for problem in problems:
        err.print(f"problem: {problem}")
    if problems:
        raise typer.Exit(1)


def job(beat: Any, within: float, judged: bool) -> dict[str, Any]:
    """A job's last run as reported: when, how long ago, and whether that is recent (when it is the one judged)."""
    if beat is None:
        return {"at": None, "age_seconds": None, "recent": False, "judged": judged}
    return {"at": beat.at.isoformat(), "age_seconds": round(beat.age_seconds, 1),
            "recent": beat.age_seconds <= within, "judged": judged}


def ping(settings: Settings) -> dict[str, Any]:
    """The Celery workers that answer a ping on the settings' broker: one try at connecting, one line when the
    broker cannot be reached (its address without a password)."""
    from kombu.exceptions import OperationalError

    from callbackd.app import tasks

    celery = tasks.configure(settings)
    try:
        with celery.connection_for_write() as connection:
            where = connection.as_uri()  # without the password
            try:
                connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=PING_SECONDS)
            except (OperationalError, OSError) as exc:
                return {"checked": True, "answered": 0, "names": [],
                        "error": f"the broker at {where} cannot be reached ({type(exc).__name__})"}
            replies = celery.control.ping(timeout=PING_SECONDS, connection=connection) or []
    finally:
        tasks.forget()  # the settings `configure` kept are this command's, not those of a later caller's tasks
    names = sorted(name for reply in replies for name in reply)
    return {"checked": True, "answered": len(names), "names": names, "error": None}


def show(report: dict[str, Any], settings: Settings) -> None:
    """The report for a terminal."""

    def when(moment: str | None) -> str:
        if moment is None:
            return "never"
        return f"{datetime.fromisoformat(moment).astimezone(settings.zone):%Y-%m-%d %H:%M:%S}"

    for label, key in (("beat's tick", "beat"), ("embedded runner", "embedded_runner")):
        found = report[key]
        age = "" if found["age_seconds"] is None else f" ({found['age_seconds']:.0f} s ago)"
        verdict = (" ok" if found["recent"] else " LATE") if found["judged"] else ""
        out.print(f"{label}: {when(found['at'])}{age}{verdict}")
    workers = report["workers"]
    if not workers["checked"]:
        out.print(f"workers: {workers['note']}")
    elif workers["error"]:
        out.print(f"workers: {workers['error']}")
    else:
        out.print(f"workers: {workers['answered']} answered" + (f" ({', '.join(workers['names'])})"
                                                                 if workers["names"] else ""))
    overdue = report["overdue"]
    oldest = overdue["attempts_due_oldest_seconds"]
    out.print(f"attempts due and waiting: {overdue['attempts_due']}"
              + (f" (the oldest for {oldest:.0f} s)" if oldest is not None else ""))
    out.print(f"rectifications overdue: {overdue['rectifications_overdue']}; follow-ups failed, to verify by hand: "
              f"{overdue['rectification_follow_ups_failed']}")
    out.print(f"callbacks past their category deadline: {overdue['callbacks_past_deadline']}")
    out.print(f"notifications waiting: {overdue['notifications_waiting']}; failed: {overdue['notifications_failed']}")
