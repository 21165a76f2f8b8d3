"""The week's commands: the database, ledgers, rounds, listings, dispatch, results, scores, exports, the servers and
the demo. Thin adapters over the services, registered on the `callbackd` application of `common`."""

from __future__ import annotations

import shlex
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from callbackd.app.cli.common import (
    JsonFlag,
    OverwriteFlag,
    RevealFlag,
    app,
    checked_output,
    emit_json,
    err,
    out,
    session_scope,
    table,
)
from callbackd.core.errors import CallbackdError, ConfigError, DatabaseError, StrictImportError

# Each command imports the settings, the database, the plugins and the services it uses itself: `--help` then
# loads none of them, and a command none of the dispatcher and exporters it never calls.
if TYPE_CHECKING:
    from callbackd.core.settings import Settings
    from callbackd.intake import ledger
    from callbackd.measure import scoring

ledger_app = typer.Typer(help="Import window ledgers (受理台帐).", no_args_is_help=True)
round_app = typer.Typer(help="Weekly sampling rounds (回访批次).", no_args_is_help=True)
windows_app = typer.Typer(help="Service windows (窗口).", no_args_is_help=True)
cases_app = typer.Typer(help="Cases (办件) from the ledgers.", no_args_is_help=True)
callbacks_app = typer.Typer(help="Callbacks (回访) selected by rounds.", no_args_is_help=True)
results_app = typer.Typer(help="Result files: operator calls, on-site forms, counter evaluators.", no_args_is_help=True)
plugins_app = typer.Typer(help="Plugins and the channels they offer.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(round_app, name="round")
app.add_typer(windows_app, name="windows")
app.add_typer(cases_app, name="cases")
app.add_typer(callbacks_app, name="callbacks")
app.add_typer(results_app, name="results")
app.add_typer(plugins_app, name="plugins")


# ---- init ------------------------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create the database, or upgrade it to this version's schema; rebuild the score tallies when they were built
    under another zone or other [scoring] points and question weights."""
    from sqlalchemy.engine import make_url

    from callbackd.core.settings import load_settings
    from callbackd.store import tallies
    from callbackd.store.db import Database, schema_state, upgrade

    settings = load_settings()
    database = Database(settings.database_url)
    try:
        before, head = schema_state(database.engine)
        upgrade(database.engine)
        with database.session() as session:
            rebuilt = tallies.ensure(session, tallies.TallyRules.of(settings))
    finally:
        database.dispose()
    state = "created" if before is None else ("upgraded" if before != head else "already current")
    shown = make_url(settings.database_url).render_as_string(hide_password=True)  # never the password
    out.print(f"database {shown}: {state} (schema {head})")
    if rebuilt:
        out.print(f"score tallies rebuilt from the answers, in {settings.timezone} under the configured [scoring] "
                  f"points and question weights")


# ---- ledger ----------------------------------------------------------------------------------------------


@ledger_app.command("import")
def ledger_import(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8, GBK, GB18030) or XLSX ledger.")],
    strict: Annotated[bool, typer.Option("--strict", help="Import nothing when any row is bad.")] = False,
    encoding: Annotated[str | None, typer.Option("--encoding", help="Text encoding of a CSV file.")] = None,
    sheet: Annotated[str | None, typer.Option(
        "--sheet", help="Read only this worksheet of an XLSX file (default: every sheet with the header).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import cases; bad rows are reported by line and skipped, good rows kept; re-import is idempotent. The header
    is found in the first 10 rows (title rows above it are skipped and reported)."""
    from callbackd.api.manager import load_plugins
    from callbackd.intake import ledger
    from callbackd.intake.tables import Reading

    with import_report(as_json, f"台帐导入 {file.name}"), session_scope() as (settings, session):
        report = ledger.import_ledger(session, settings, file, strict=strict, reading=Reading(
            encoding=encoding, sheet=sheet, readers=load_plugins().readers_by_suffix()))
    show_import(report, as_json)


@contextmanager
def import_report(as_json: bool, job: str) -> Iterator[None]:
    """With --json, a --strict refusal still prints its report (nothing imported) before the error line. An import
    that imported nothing (a refused file, a --strict refusal) is reported to the supervisors (`job.failed`): such
    imports often run unattended."""
    try:
        yield
    except StrictImportError as exc:
        if as_json:
            emit_json({**exc.report.as_dict(), "imported": 0, "updated": 0, "unchanged": 0})  # type: ignore[attr-defined]
        _report_failure(job, exc)
        raise
    except (DatabaseError, ConfigError):
        raise  # the database or the settings failed, not the file: nothing to record a notification in or by
    except CallbackdError as exc:
        _report_failure(job, exc)
        raise


def _report_failure(job: str, exc: CallbackdError) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from callbackd.core import clock
    from callbackd.core.settings import load_settings
    from callbackd.notify.jobs import job_failed
    from callbackd.store.db import Database

    settings = load_settings()
    database = Database(settings.database_url)
    try:
        job_failed(database, settings, job, str(exc), clock.now(), path="/imports")
    except (CallbackdError, SQLAlchemyError):
        # best effort: the command's own error line (its one line on stderr) and exit status still say what failed
        pass
    finally:
        database.dispose()


def show_import(report: ledger.ImportReport, as_json: bool) -> None:
    """An import's counts and its bad rows, by line."""
    if as_json:
        emit_json(report.as_dict())
        return
    out.print(
        f"imported {report.imported}, updated {report.updated}, unchanged {report.unchanged}, "
        f"bad rows {len(report.errors)}"
    )
    if report.sheets:
        out.print(f"sheets read: {'、'.join(report.sheets)}")
    for title in report.titles:
        where = f"sheet {title.sheet}: " if title.sheet is not None else ""
        lines = "line 1" if title.count == 1 else f"lines 1-{title.count}"
        out.print(f"{where}skipped {title.count} title row(s) above the header ({lines})")
    if report.errors:
        shown = report.errors[:50]
        rows = [[f"{e.sheet} {e.line}" if e.sheet else e.line, e.case_id, e.reason] for e in shown]
        table("bad rows (not imported)", ["line", "办件编号", "reason"], rows)
        if len(report.errors) > len(shown):
            out.print(f"... and {len(report.errors) - len(shown)} more (use --json for all)")


# ---- rounds ----------------------------------------------------------------------------------------------


@round_app.command("open")
def round_open(
    week: Annotated[str, typer.Option("--week", help="ISO week, such as 2026-W48.")],
    seed: Annotated[str | None, typer.Option("--seed", help="Seed of the draw (default: random, recorded).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Redraw a week that already has a round.")] = False,
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="Channel to try, in order (repeatable).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Draw the week's sample: by default 20 resolved cases per window, at random, auditably."""
    from callbackd.api.manager import load_plugins
    from callbackd.rounds import sampling

    plan = list(channel) if channel else None
    with session_scope() as (settings, session):
        load_plugins().check_plan(plan or settings.dispatch.plan, settings.surveys.rest_by)
        round_, _ = sampling.open_round(session, settings, week, seed=seed, replace=replace, channels=plan)
        summary = sampling.round_summary(session, round_)
    if as_json:
        emit_json(summary)
        return
    show_summary(summary)


def show_summary(summary: dict[str, Any]) -> None:
    out.print(f"round {summary['round']} · week {summary['week']} · {summary['status']} · seed {summary['seed']}")
    table(
        None,
        ["窗口", "候选", "抽取", "不足"],
        [[w["window"], w["candidates"], len(w["selected"]), w["shortfall"] or ""] for w in summary["windows"]],
    )
    short = [w for w in summary["windows"] if w["shortfall"]]
    if short:
        out.print(f"{len(short)} window(s) had fewer candidates than the quota; they got every candidate.")


@round_app.command("show")
def round_show(round_id: Annotated[int, typer.Argument(metavar="ROUND")], as_json: JsonFlag = False) -> None:
    """A round's windows, candidates and selection."""
    from callbackd.rounds import sampling

    with session_scope() as (_, session):
        summary = sampling.round_summary(session, sampling.get_round(session, round_id))
    if as_json:
        emit_json(summary)
    else:
        show_summary(summary)


@round_app.command("list")
def round_list(as_json: JsonFlag = False) -> None:
    """Every round, newest last."""
    from callbackd.rounds import sampling

    with session_scope() as (_, session):
        rows = [
            {"round": r.id, "week": r.week, "status": r.status, "seed": r.seed, "opened_at": r.opened_at.isoformat(),
             "replaces": r.replaces_id}
            for r in sampling.list_rounds(session)
        ]
    if as_json:
        emit_json(rows)
        return
    table(None, ["round", "week", "status", "opened", "replaces"],
          [[r["round"], r["week"], r["status"], r["opened_at"], r["replaces"]] for r in rows])


@round_app.command("verify")
def round_verify(round_id: Annotated[int, typer.Argument(metavar="ROUND")], as_json: JsonFlag = False) -> None:
    """Re-draw a round from its recorded seed and candidate set; exit 1 on any difference."""
    from callbackd.core.workdays import Calendar
    from callbackd.rounds import sampling

    with session_scope() as (settings, session):
        result = sampling.verify_round(session, round_id, Calendar.from_settings(settings))
    if as_json:
        emit_json({"round": result.round_id, "ok": result.ok, "problems": result.problems})
    elif result.ok:
        out.print(f"round {result.round_id} verifies: the recorded seed and candidates give the recorded selection")
    else:
        for problem in result.problems:
            out.print(f"- {problem}")
    if not result.ok:
        raise CallbackdError(f"round {result.round_id} does not verify: {result.problems[0]}")


# ---- listings --------------------------------------------------------------------------------------------


@windows_app.command("list")
def windows_list(as_json: JsonFlag = False) -> None:
    """Windows with their case counts."""
    from callbackd.report import listings as cases

    with session_scope() as (_, session):
        rows = cases.list_windows(session)
    if as_json:
        emit_json(rows)
        return
    table(None, ["窗口", "办件", "已办结"], [[r["window"], r["cases"], r["resolved"]] for r in rows])


@cases_app.command("list")
def cases_list(
    window: Annotated[str | None, typer.Option("--window", help="Only this window's cases.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most this many.")] = None,
    reveal: RevealFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Cases, newest resolution first; phones masked unless --reveal (audited)."""
    from callbackd.report import listings as cases

    with session_scope() as (settings, session):
        rows = cases.list_cases(session, window=window, reveal=reveal, limit=limit,
                                confidential=settings.policies.confidential_case_types)
    if as_json:
        emit_json(rows)
        return
    table(None, ["办件编号", "窗口", "事项", "类型", "电话", "办结时间", "状态"],
          [[r["case_id"], r["window"], r["matter"], r["case_type"], r["phone"], r["resolved_at"], r["status"]]
           for r in rows])


@callbacks_app.command("list")
def callbacks_list(
    round_id: Annotated[int | None, typer.Option("--round", help="Only this round's callbacks.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="Only callbacks in this state.")] = None,
    reveal: RevealFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Callbacks selected by rounds (and follow-ups), with due times and why any could not be made; phones masked
    unless --reveal (audited)."""
    from callbackd.report import listings as cases

    with session_scope() as (settings, session):
        rows = cases.list_callbacks(session, round_id=round_id, status=status, reveal=reveal)
    if as_json:
        emit_json(rows)
        return
    table(None, ["回访", "批次", "窗口", "办件编号", "电话", "规则", "期限", "状态", "无法联系原因"],
          [[r["callback"], r["round"], r["window"], r["case_id"], r["phone"],
            (r["rule"] or "") + (f"（整改回访{r['follow_up']}）" if r["follow_up"] else ""),
            r["due_at"] and f"{datetime.fromisoformat(r['due_at']).astimezone(settings.zone):%Y-%m-%d %H:%M}",
            r["status"], r["reason_label"]] for r in rows])


# ---- surveys: dispatch, results, scores ------------------------------------------------------------------


@app.command("dispatch")
def dispatch_command(
    once: Annotated[bool, typer.Option("--once", help="Place what is due now, then stop.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Place due attempts through their channels (the embedded runner)."""
    from callbackd.api.manager import load_plugins
    from callbackd.contact import dispatch
    from callbackd.core.settings import load_settings
    from callbackd.store.db import Database

    settings = load_settings()
    database = Database(settings.database_url)
    try:
        database.ensure_schema()
        loaded = load_plugins()
        if not once:
            err.print("dispatching until interrupted (Ctrl-C)")
            try:
                dispatch.run_forever(database, settings, loaded)
            except KeyboardInterrupt:
                return
        report = dispatch.run_once(database, settings, loaded)
    finally:
        database.dispose()
    if as_json:
        emit_json(report.as_dict())
    else:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "nothing due"
        out.print(f"scheduled {report.scheduled} new callback(s); placed {report.placed} attempt(s): {outcomes}")
        if report.closed:
            out.print(f"closed round(s) {', '.join(map(str, report.closed))}: every callback final")
    for error in report.errors[1:]:
        err.print(f"error: {error}")
    if report.errors:
        raise CallbackdError(report.errors[0])


@results_app.command("import")
def results_import(
    file: Annotated[Path, typer.Argument(help="CSV or XLSX result file.")],
    source: Annotated[str, typer.Option("--source", help="operator, onsite or evaluator.")],
    strict: Annotated[bool, typer.Option("--strict", help="Import nothing when any row is bad.")] = False,
    encoding: Annotated[str | None, typer.Option("--encoding", help="Text encoding of a CSV file.")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Worksheet of an XLSX file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import operator results, on-site forms (征求意见表) or counter evaluator (电子评价器) ratings. A form or rating
    without a 编号 column is known by its content (window, time, answers, suggestion; the n-th identical row of the
    file is the n-th such form): re-importing a file, or a re-saved one with more lines, counts nothing twice."""
    from callbackd.api.manager import load_plugins
    from callbackd.contact import results
    from callbackd.rounds import sampling

    with import_report(as_json, f"结果导入 {file.name}"), session_scope() as (settings, session):
        report = results.import_results(
            session, settings, load_plugins(), sampling.survey_in_force(settings),
            results.ResultFile(file, source, encoding=encoding, sheet=sheet), strict=strict,
        )
    show_import(report, as_json)


@results_app.command("unsigned")
def results_unsigned(as_json: JsonFlag = False) -> None:
    """Visit and on-site records that must carry the applicant's signature (签名确认) and do not: not scored until
    signed (a 签名 column 是 in a re-imported file, or the console's review page)."""
    from callbackd.contact import signatures

    with session_scope() as (settings, session):
        rows = signatures.unsigned_records(session, settings)
    if as_json:
        emit_json(rows)
        return
    if not rows:
        out.print("no unsigned visit or on-site record")
        return
    for row in rows:
        out.print(f"unsigned  #{row['contact']}  {row['kind']}  {row['window']}  {row['case_id'] or '-'}  "
                  f"{row['contacted_at']}")


@app.command()
def score(
    period: Annotated[str, typer.Option("--period", help="2026-W48, 2026-11, 2026-Q4 or 2026.")],
    live: Annotated[bool, typer.Option("--live", help="Score the data as it stands, even for a published period.")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Score, grade and rank every window for a period (a published period as it was published)."""
    from callbackd.measure import rankings, scoring

    with session_scope() as (settings, session):
        if live:
            ranking = scoring.score_period(session, settings, period)
        else:
            ranking = rankings.ranking_for(session, settings, period)
    if as_json:
        emit_json(ranking.as_dict())
        return
    show_ranking(ranking)


def show_ranking(ranking: scoring.Ranking) -> None:
    from callbackd.measure import scoring

    title = f"{ranking.period.label} 窗口回访满意度排名" + ("（含模拟数据）" if ranking.simulated else "")
    if ranking.published is not None:
        title += f"（已发布 {ranking.published['published_at'][:16]}）"
    table(title, ["名次", "窗口", "得分", "等级", "样本", "满意率", "回访", "现场", "评价器", "状态"], [
        [w.rank or "", w.window, "" if w.score is None else f"{w.score:.2f}", w.grade or "", w.contacts,
         "" if w.satisfaction_rate is None else f"{w.satisfaction_rate:.1%}",
         *("" if w.by_source[s] is None else f"{w.by_source[s]:.2f}" for s in ("callback", "onsite", "evaluator")),
         "" if w.status == scoring.RANKED else w.status]
        for w in ranking.windows
    ])


@app.command()
def export(
    period: Annotated[str, typer.Option("--period", help="2026-W48, 2026-11, 2026-Q4 or 2026.")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx, csv, html or json.")] = "xlsx",
    out_path: Annotated[Path | None, typer.Option("--out", help="File to write (default: a name per period).")] = None,
    overwrite: OverwriteFlag = False,
) -> None:
    """Write the period's ranking: xlsx (with a chart), csv, a printable html notice (通报) or json."""
    from callbackd.api.manager import load_plugins
    from callbackd.core import clock
    from callbackd.measure import rankings
    from callbackd.report import reports
    from callbackd.report.exports import default_filename
    from callbackd.store import audit

    loaded = load_plugins()
    exporter = loaded.exporter(fmt)
    if exporter.target != "ranking":
        raise CallbackdError(f"--format {fmt} is not a ranking format (ranking formats: "
                             f"{', '.join(n for n, e in loaded.exporters.items.items() if e.target == 'ranking')})")
    with session_scope() as (settings, session):
        now = clock.now()
        ranking = rankings.ranking_for(session, settings, period, with_questions=True)
        path = checked_output(out_path or Path(default_filename(ranking, exporter)), settings, overwrite=overwrite)
        exporter.write(ranking, path, reports.export_context(session, settings, ranking, now))
        audit.record(session, "export", str(path), period=ranking.period.text, format=fmt,
                     published=ranking.published["publication"] if ranking.published else None)
    out.print(f"{ranking.period.label}: {len(ranking.windows)} window(s) written to {path}")


@app.command()
def callsheet(
    round_id: Annotated[int, typer.Option("--round", help="The round whose operator calls to list.")],
    fmt: Annotated[str, typer.Option("--format", help="xlsx or csv.")] = "xlsx",
    out_path: Annotated[Path | None, typer.Option("--out", help="File to write.")] = None,
    overwrite: OverwriteFlag = False,
) -> None:
    """The operators' call sheet (回访清单) with full numbers; writing it is recorded in the audit trail."""
    from callbackd.api.manager import load_plugins
    from callbackd.report import listings as cases

    loaded = load_plugins()
    exporter = loaded.exporter(f"callsheet-{fmt}")
    with session_scope() as (settings, session):
        path = checked_output(out_path or Path(f"回访清单-第{round_id}批次{exporter.suffix}"), settings,
                              overwrite=overwrite)
        sheet = cases.callsheet(session, settings, round_id, str(path.resolve()), settings.surveys.language)
        exporter.write(sheet, path, None)
    out.print(f"{len(sheet['rows'])} callback(s) written to {path}")


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 1,
) -> None:
    """The web app: plugin webhooks under /hooks/<plugin>/ (run it behind a proxy that terminates TLS)."""
    import uvicorn

    from callbackd.core.settings import load_settings

    load_settings()  # a settings mistake is one line here, not a worker's traceback
    uvicorn.run("callbackd.app.web:create_app", factory=True, host=host, port=port, workers=workers,
                log_level="warning", access_log=False)


def celery_app(settings: Settings) -> Any:
    """The Celery app on the settings' broker, once the schema is current and the plugins load."""
    from callbackd.api.manager import load_plugins
    from callbackd.app import tasks
    from callbackd.store.db import Database

    database = Database(settings.database_url)
    try:
        database.ensure_schema()
    finally:
        database.dispose()
    load_plugins()  # a plugin mistake is one line here, not a traceback in every worker process
    return tasks.configure(settings)


LogLevel = Annotated[str, typer.Option("--loglevel", help="DEBUG, INFO, WARNING or ERROR.")]


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option("--concurrency", "-c", min=1,
                                 help="Processes, or threads with --pool threads (default: [workers] concurrency).")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Node name, unique per worker.")] = None,
    pool: Annotated[
        str, typer.Option("--pool", help="prefork (processes); threads, in one process, for calls that mostly wait on "
                                         "a provider or the database; or solo: the worker itself runs one task at a "
                                         "time.")
    ] = "prefork",
    loglevel: LogLevel = "INFO",
) -> None:
    """A Celery worker: places attempts and runs the scheduled jobs (deployments on PostgreSQL and Redis)."""
    import os

    from callbackd.core.settings import load_settings

    if pool not in ("prefork", "threads", "solo"):
        raise CallbackdError(f"--pool {pool!r} is not prefork, threads or solo")
    settings = load_settings()
    processes = 1 if pool == "solo" else concurrency or settings.workers.concurrency
    node = name or f"callbackd-{os.getpid()}@%h"
    celery_app(settings).worker_main(["worker", f"--loglevel={loglevel}", f"--pool={pool}",
                                      f"--concurrency={processes}", f"--hostname={node}", "--without-mingle",
                                      "--without-gossip"])


@app.command()
def beat(
    schedule: Annotated[
        Path | None, typer.Option("--schedule", help="Beat's state file (default: [workers] beat_schedule_file).")
    ] = None,
    loglevel: LogLevel = "INFO",
) -> None:
    """Celery beat: the tick that hands due attempts to the workers, and the weekly jobs (one per deployment;
    a second one by mistake places nothing twice)."""
    from callbackd.core.settings import load_settings

    settings = load_settings()
    state = schedule or Path(settings.workers.beat_schedule_file)
    state.parent.mkdir(parents=True, exist_ok=True)
    celery_app(settings).start(["beat", f"--loglevel={loglevel}", f"--schedule={state}"])


@plugins_app.command("list")
def plugins_list(as_json: JsonFlag = False) -> None:
    """Each loaded plugin, where it came from, its hooks, channels and notifiers; each channel's per-number limits
    and whether its credentials and callback token are configured; what each notifier has set up."""
    from callbackd.api.manager import load_plugins
    from callbackd.core.settings import load_settings

    loaded = load_plugins()
    described = loaded.describe()
    settings = load_settings()
    channels = loaded.describe_channels(settings)
    notifiers = loaded.describe_notifiers(settings)
    for plugin in described:
        plugin["channel_details"] = [c for c in channels if c["plugin"] == plugin["name"]]
        plugin["notifier_details"] = [n for n in notifiers if n["plugin"] == plugin["name"]]
    if as_json:
        emit_json(described)
        return
    table(None, ["plugin", "source", "hooks", "channels", "exports"],
          [[p["name"], p["source"], ", ".join(p["hooks"]), ", ".join(p["channels"]), ", ".join(p["exporters"])]
           for p in described])
    table(None, ["channel", "kind", "asks", "per-number limits", "configured"],
          [[c["channel"], c["kind"], "short form" if c["form"] == "short" else "survey",
            ", ".join(c["number_limits"]) or "-",
            ", ".join(f"{what}: {'yes' if ok else 'MISSING'}" for what, ok in c["configuration"].items()) or "-"]
           for c in channels])
    if notifiers:
        table(None, ["notifier", "plugin", "configured"],
              [[n["notifier"], n["plugin"], "; ".join(f"{what}: {how}" for what, how in n["configuration"].items())]
               for n in notifiers])


# ---- demo ----------------------------------------------------------------------------------------------


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's database and files.")] = Path("demo"),
    as_json: JsonFlag = False,
) -> None:
    """A month of weekly rounds on synthetic data, with the embedded defaults, in a folder of its own."""
    import secrets

    from rich.progress import Progress as Bar

    from callbackd.app.demo import prepare_folder, run_demo
    from callbackd.core.settings import load_settings
    from callbackd.store.accounts import ROLES

    settings = load_settings()
    prepare_folder(out_dir, settings)  # refuse a wrong folder before the progress bar takes the terminal
    with Bar(console=err, transient=True, disable=as_json) as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        result = run_demo(settings, out_dir, progress=progress)
    ranking = result.ranking
    assert ranking is not None
    # the demo's own database and a fresh signing key: one line that serves the console on the demo's data
    command = (f"CALLBACKD_DATABASE_URL={shlex.quote(result.database_url)} "
               f"CALLBACKD_SECRET_KEY={secrets.token_urlsafe(32)} {_this_callbackd()} serve")
    if as_json:
        emit_json({"out": str(result.out), "month": f"{result.month:%Y-%m}", "imported": result.imported,
                   "bad_rows": result.bad_rows, "rounds": result.rounds, "callbacks": result.callbacks,
                   "forms": result.forms, "ratings": result.ratings, "ranking": ranking.as_dict(),
                   "files": [str(p) for p in result.files],
                   "console": {"command": command, "url": "http://127.0.0.1:8000/",
                               "accounts": [{"name": a.name, "role": a.role, "windows": list(a.windows),
                                             "password": a.password} for a in result.accounts]}})
        return
    out.print(f"ledger {result.ledger_file.name}: {result.imported} cases imported, {result.bad_rows} bad rows")
    drawn = sum(len(w["selected"]) for r in result.rounds for w in r["windows"])
    states = "，".join(f"{k} {v}" for k, v in sorted(result.callbacks.items()))
    out.print(f"{len(result.rounds)} weekly rounds drew {drawn} callbacks: {states}")
    out.print(f"on-site forms {result.forms}, counter evaluator ratings {result.ratings}")
    show_ranking(ranking)
    out.print("files: " + ", ".join(str(p) for p in result.files))
    out.print(f"\nthe console on the demo's data: {command}", soft_wrap=True, markup=False, highlight=False)
    out.print("then open http://127.0.0.1:8000/ and sign in as (these passwords are shown only now):")
    table(None, ["账号", "角色", "窗口", "密码"],
          [[a.name, ROLES[a.role], "、".join(a.windows), a.password] for a in result.accounts])


def _this_callbackd() -> str:
    """How to run this callbackd from anywhere: `callbackd` when that is it on PATH, else its full path (scripts/demo
    runs .venv/bin/callbackd, which is not on PATH)."""
    beside = Path(sys.executable).with_name("callbackd")
    found = shutil.which("callbackd")
    if beside.exists() and (found is None or Path(found).resolve() != beside.resolve()):
        return shlex.quote(str(beside))
    return "callbackd"


# ---- the supervisory unit's follow-through: rectifications, indicators, policies, publication, audit -----


