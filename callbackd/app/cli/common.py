"""What every command module shares: the `callbackd` Typer application, its consoles, the `--json` flag and a
session in one transaction."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from callbackd.core.settings import Settings, load_settings
from callbackd.store.db import Database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(
    name="callbackd",
    help="Callback (回访) and satisfaction survey automation for service windows.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# piped or captured output is not a terminal: give tables room for Chinese window names rather than 80 columns
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 140)
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
    from rich.table import Table

    grid = Table(title=title, show_lines=False)
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if value is None else str(value) for value in row))
    out.print(grid)
