"""`callbackd users`: the console's accounts. Thin adapters over `store.accounts`; passwords come only on standard
input (`--password-stdin`), never as an argument a process list or shell history would show."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from callbackd.app.cli.common import JsonFlag, app, emit_json, out, session_scope, table
from callbackd.core.errors import CallbackdError

users_app = typer.Typer(help="Console accounts: who may sign in, with which role.", no_args_is_help=True)
app.add_typer(users_app, name="users")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input (its first line).")
]


def _password(from_stdin: bool) -> str:
    if not from_stdin:
        raise CallbackdError("give the password on standard input with --password-stdin")
    return sys.stdin.readline().rstrip("\r\n")


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    role: Annotated[str, typer.Option("--role", help="admin, supervisor, operator, window or leader.")],
    window: Annotated[
        list[str] | None, typer.Option("--window", help="A window a window head answers for (repeat for more).")
    ] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Create an account."""
    from callbackd.core import clock
    from callbackd.store import accounts

    new = accounts.NewUser(name, role, tuple(window or ()), _password(password_stdin))
    with session_scope() as (_, session):
        user = accounts.add_user(session, new, clock.now())
        label = accounts.ROLES[user.role]
    out.print(f"account {name}: {label} created")


@users_app.command("list")
def users_list(as_json: JsonFlag = False) -> None:
    """Every account with its role and windows; never a password or its hash."""
    from callbackd.store import accounts

    with session_scope() as (_, session):
        rows = accounts.list_users(session)
    if as_json:
        emit_json(rows)
        return
    table(None, ["账号", "角色", "窗口", "状态"],
          [[r["name"], r["role_label"], "、".join(r["windows"]), "停用" if r["disabled"] else "启用"]
           for r in rows])


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(metavar="NAME")]) -> None:
    """Refuse the account every sign-in from now on (accounts are never deleted)."""
    from callbackd.store import accounts

    with session_scope() as (_, session):
        accounts.disable_user(session, name)
    out.print(f"account {name}: disabled")


@users_app.command("password")
def users_password(
    name: Annotated[str, typer.Argument(metavar="NAME")], password_stdin: PasswordStdin = False
) -> None:
    """Set a new password for the account (a disabled account is enabled again)."""
    from callbackd.core import clock
    from callbackd.store import accounts

    password = _password(password_stdin)
    with session_scope() as (_, session):
        accounts.set_password(session, name, password, clock.now())
    out.print(f"account {name}: password changed")
