"""What every command module shares: the `callbackd` Typer application, its consoles, the `--json` flag and a
session in one transaction.

The command modules import at their top only what declaring the commands needs (Typer, rich, the errors): the
settings, the database, the services and the plugins are imported inside the commands that use them, so that
`callbackd --help` answers at once and a listing loads no Alembic, exporter or dispatcher
(tests/unit/test_startup.py holds this; scripts/bench/startup.py measures it)."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from callbackd.core.errors import CallbackdError

if TYPE_CHECKING:
    from sqlalchemy.exc import IntegrityError
    from sqlalchemy.orm import Session

    from callbackd.core.settings import Settings

app = typer.Typer(
    name="callbackd",
    help="Callback (回访) and satisfaction survey automation for service windows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Control characters (an ANSI escape among them) in text from a ledger or a result file, shown as visible escapes:
# such text must never move the cursor, recolour the terminal or retitle its window.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown(text: str) -> str:
    """`text` as a terminal may show it: each control character as its escape (\\x1b)."""
    return _CONTROL.sub(lambda found: f"\\x{ord(found[0]):02x}", text)


class Terminal(Console):
    """A console that prints text as it is: no markup, so text such as `窗口[/]` is shown rather than read as a
    closing tag, and control characters made visible."""

    def __init__(self, **options: Any) -> None:
        super().__init__(markup=False, highlight=False, emoji=False, soft_wrap=True, **options)

    def print(self, *objects: Any, **options: Any) -> None:
        super().print(*(shown(o) if isinstance(o, str) else o for o in objects), **options)


# piped or captured output is not a terminal: give tables room for Chinese window names rather than 80 columns
out = Terminal(width=None if sys.stdout.isatty() else 140)
err = Terminal(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]
OverwriteFlag = Annotated[bool, typer.Option("--overwrite", help="Replace the --out file if it exists.")]
RevealFlag = Annotated[bool, typer.Option("--reveal", help="Show full phone numbers (recorded in the audit trail).")]


@contextmanager
def session_scope() -> Iterator[tuple[Settings, Session]]:
    """Settings and a session in one transaction, the schema upgraded first when the code is ahead of it."""
    from sqlalchemy.exc import IntegrityError

    from callbackd.core.settings import load_settings
    from callbackd.store.db import Database

    settings = load_settings()
    database = Database(settings.database_url)
    try:
        database.ensure_schema()
        with database.session() as session:
            yield settings, session
    except IntegrityError as exc:  # two commands wrote the same rows at once: this one's transaction rolled back
        raise CallbackdError(
            f"another command wrote the same records at the same moment ({_constraint(exc)}); nothing of this "
            f"command was saved: run it again"
        ) from None
    finally:
        database.dispose()


def _constraint(exc: IntegrityError) -> str:
    """The constraint a concurrent write broke, from the driver's message (parameters are hidden)."""
    return str(exc.orig).splitlines()[0] if exc.orig is not None else "a unique constraint"


def checked_output(path: Path, settings: Settings, *, overwrite: bool, reading: tuple[Path, ...] = ()) -> Path:
    """`path` once it is safe to write: never the database or its journals, nor a file being read; an existing file
    only with --overwrite."""
    from callbackd.store.files import check_output, database_files

    protected = {database: "the database (or one of its journals)" for database in database_files(
        settings.database_url)}
    protected.update((read, "a file this command reads") for read in reading)
    check_output(path, overwrite=overwrite, protected=protected)
    return path


def emit_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.table import Table
    from rich.text import Text

    grid = Table(title=title, show_lines=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*(Text("" if value is None else shown(str(value))) for value in row))
    out.print(grid)
