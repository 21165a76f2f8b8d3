"""The `callbackd` command line: thin adapters over the core services.

Every command that reports data accepts `--json` and then prints one JSON document on stdout. Exit 0 on success,
1 on a user error with one line on stderr, never a traceback for bad input.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from callbackd import cases, ledger, sampling
from callbackd.config import Settings, load_settings
from callbackd.db import Database, schema_state, upgrade
from callbackd.errors import CallbackdError, StrictImportError

app = typer.Typer(
    name="callbackd",
    help="Callback (回访) and satisfaction survey automation for service windows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ledger_app = typer.Typer(help="Import window ledgers (受理台帐).", no_args_is_help=True)
round_app = typer.Typer(help="Weekly sampling rounds (回访批次).", no_args_is_help=True)
windows_app = typer.Typer(help="Service windows (窗口).", no_args_is_help=True)
cases_app = typer.Typer(help="Cases (办件) from the ledgers.", no_args_is_help=True)
callbacks_app = typer.Typer(help="Callbacks (回访) selected by rounds.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
app.add_typer(round_app, name="round")
app.add_typer(windows_app, name="windows")
app.add_typer(cases_app, name="cases")
app.add_typer(callbacks_app, name="callbacks")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
RevealFlag = Annotated[bool, typer.Option("--reveal", help="Show full phone numbers (recorded in the audit trail).")]


@contextmanager
def session_scope() -> Iterator[tuple[Settings, Session]]:
    """Settings and a session in one transaction, the schema upgraded first when the code is ahead of it."""
    settings = load_settings()
    database = Database(settings.database_url)
    try:
        database.ensure_schema()
        with database.session() as session:
            yield settings, session
    finally:
        database.dispose()


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    grid = Table(title=title, show_lines=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if value is None else str(value) for value in row))
    out.print(grid)


# ---- init ------------------------------------------------------------------------------------------------


@app.command()
def init() -> None:
    """Create the database, or upgrade it to this version's schema."""
    settings = load_settings()
    database = Database(settings.database_url)
    try:
        before, head = schema_state(database.engine)
        upgrade(database.engine)
    finally:
        database.dispose()
    state = "created" if before is None else ("upgraded" if before != head else "already current")
    out.print(f"database {settings.database_url}: {state} (schema {head})")


# ---- ledger ----------------------------------------------------------------------------------------------


@ledger_app.command("import")
def ledger_import(
    file: Annotated[Path, typer.Argument(help="CSV (UTF-8, GBK, GB18030) or XLSX ledger.")],
    strict: Annotated[bool, typer.Option("--strict", help="Import nothing when any row is bad.")] = False,
    encoding: Annotated[str | None, typer.Option("--encoding", help="Text encoding of a CSV file.")] = None,
    sheet: Annotated[str | None, typer.Option("--sheet", help="Worksheet of an XLSX file (default: first).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import cases; bad rows are reported by line and skipped, good rows kept; re-import is idempotent."""
    try:
        with session_scope() as (settings, session):
            report = ledger.import_ledger(session, settings, file, strict=strict, encoding=encoding, sheet=sheet)
    except StrictImportError as exc:
        if as_json:
            emit_json({**exc.report.as_dict(), "imported": 0, "updated": 0, "unchanged": 0})  # type: ignore[attr-defined]
        raise
    if as_json:
        emit_json(report.as_dict())
        return
    out.print(
        f"imported {report.imported}, updated {report.updated}, unchanged {report.unchanged}, "
        f"bad rows {len(report.errors)}"
    )
    if report.errors:
        shown = report.errors[:50]
        table("bad rows (not imported)", ["line", "办件编号", "reason"], [[e.line, e.case_id, e.reason] for e in shown])
        if len(report.errors) > len(shown):
            out.print(f"... and {len(report.errors) - len(shown)} more (use --json for all)")


# ---- rounds ----------------------------------------------------------------------------------------------


@round_app.command("open")
def round_open(
    week: Annotated[str, typer.Option("--week", help="ISO week, such as 2026-W48.")],
    seed: Annotated[str | None, typer.Option("--seed", help="Seed of the draw (default: random, recorded).")] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Redraw a week that already has a round.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Draw the week's sample: by default 20 resolved cases per window, at random, auditably."""
    with session_scope() as (settings, session):
        round_, _ = sampling.open_round(session, settings, week, seed=seed, replace=replace)
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
    with session_scope() as (_, session):
        summary = sampling.round_summary(session, sampling.get_round(session, round_id))
    if as_json:
        emit_json(summary)
    else:
        show_summary(summary)


@round_app.command("list")
def round_list(as_json: JsonFlag = False) -> None:
    """Every round, newest last."""
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
    with session_scope() as (_, session):
        result = sampling.verify_round(session, round_id)
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
    with session_scope() as (_, session):
        rows = cases.list_cases(session, window=window, reveal=reveal, limit=limit)
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
    """Callbacks selected by rounds; phones masked unless --reveal (audited)."""
    with session_scope() as (_, session):
        rows = cases.list_callbacks(session, round_id=round_id, status=status, reveal=reveal)
    if as_json:
        emit_json(rows)
        return
    table(None, ["回访", "批次", "窗口", "办件编号", "电话", "规则", "状态"],
          [[r["callback"], r["round"], r["window"], r["case_id"], r["phone"], r["rule"], r["status"]] for r in rows])


# ---- demo ----------------------------------------------------------------------------------------------


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the demo's database and files.")] = Path("demo"),
    as_json: JsonFlag = False,
) -> None:
    """A month of weekly rounds on synthetic data, with the embedded defaults, in a folder of its own."""
    from rich.progress import Progress as Bar

    from callbackd.demo import run_demo

    settings = load_settings()
    with Bar(console=err, transient=True, disable=as_json) as bar:
        tasks: dict[str, Any] = {}

        def progress(step: str, done: int, total: int) -> None:
            if step not in tasks:
                tasks[step] = bar.add_task(step, total=total)
            bar.update(tasks[step], completed=done, total=total)

        result = run_demo(settings, out_dir, progress=progress)
    if as_json:
        emit_json({"out": str(result.out), "month": f"{result.month:%Y-%m}", "imported": result.imported,
                   "bad_rows": result.bad_rows, "rounds": result.rounds})
        return
    out.print(f"ledger {result.ledger_file.name}: {result.imported} cases imported, {result.bad_rows} bad rows")
    table(
        f"{result.month:%Y年%m月} weekly rounds",
        ["批次", "周", "窗口", "抽取", "不足窗口"],
        [[r["round"], r["week"], len(r["windows"]), sum(len(w["selected"]) for w in r["windows"]),
          sum(1 for w in r["windows"] if w["shortfall"])] for r in result.rounds],
    )
    out.print(f"database and files in {result.out}/ (CALLBACKD_DATABASE_URL=sqlite:///{result.out}/callbackd.db)")


# ---- entry point -----------------------------------------------------------------------------------------


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    err.print(f"warning: {message}")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors become one line on stderr and exit 1."""
    warnings.showwarning = _show_warning
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="callbackd", standalone_mode=False)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err.print("error: aborted")
        return 1
    except typer.TyperException as exc:  # usage errors: a bad option or argument
        ctx = getattr(exc, "ctx", None)
        hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        if not message:  # no arguments at all: the help was shown
            return 0
        err.print(f"error: {message}{hint}", markup=False)
        return 1
    except CallbackdError as exc:
        err.print(f"error: {exc}", markup=False)
        return 1
    return result if isinstance(result, int) else 0
