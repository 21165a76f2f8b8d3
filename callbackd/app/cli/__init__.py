"""The `callbackd` command line: thin adapters over the services, a module of commands each.

Every command that reports data accepts `--json` and then prints one JSON document on stdout. Exit 0 on success,
1 on a user error with one line on stderr, never a traceback for bad input.
"""

from __future__ import annotations

import warnings
from typing import Any

import typer

from callbackd.app.cli import accounts, commands, notify, plans, status, supervision  # noqa: F401  (register commands)
from callbackd.app.cli.common import app, err
from callbackd.core.errors import CallbackdError

__all__ = ["app", "main"]


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
        err.print(f"error: {message}{hint}")
        return 1
    except CallbackdError as exc:
        err.print(f"error: {exc}")
        return 1
    return result if isinstance(result, int) else 0
