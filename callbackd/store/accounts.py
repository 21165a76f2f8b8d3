"""Console accounts, managed on the command line: who may sign in, with which role, for which windows.

Roles: `admin` (accounts and the settings in force, nothing personal), `supervisor` (督查科: everything but
accounts), `operator` (回访员: the call queue), `window` (窗口负责人: their own windows only) and `leader` (领导:
rankings and publications, no personal data). Passwords are kept only as argon2 hashes. Accounts are disabled,
never deleted, so the names in the audit trail keep their meaning; every change is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.core.errors import CallbackdError
from callbackd.store import audit
from callbackd.store.models import User, UserWindow, Window

if TYPE_CHECKING:
    from argon2 import PasswordHasher

ROLES = {
    "admin": "系统管理员",
    "supervisor": "督查科",
    "operator": "回访员",
    "window": "窗口负责人",
    "leader": "领导",
}
MIN_PASSWORD = 10


@cache
def _hasher() -> PasswordHasher:
    """The argon2 hasher, built (and argon2 imported) when a password is first hashed or checked: commands that list
    or disable accounts never need it."""
    from argon2 import PasswordHasher

    return PasswordHasher()


class AccountError(CallbackdError):
    """An account that cannot be created or changed as asked."""


@dataclass(frozen=True)
class NewUser:
    """An account to create: its name, role, the windows a window head answers for, and its password."""

    name: str
    role: str
    windows: tuple[str, ...]
    password: str


def add_user(session: Session, new: NewUser, now: datetime) -> User:
    """Create an account; raises `AccountError` naming what to fix (a taken name, an unknown role or window, a
    window head without windows, a weak password)."""
    name = new.name.strip()
    if not name or len(name) > 64 or not name.isprintable():
        raise AccountError("an account name is 1 to 64 printable characters")
    if new.role not in ROLES:
        raise AccountError(f"unknown role {new.role!r}: use one of {', '.join(ROLES)}")
    if (new.role == "window") != bool(new.windows):
        raise AccountError("a window head (--role window) needs --window, and only a window head takes it")
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise AccountError(f"an account named {name!r} exists; change its password with `users password`")
    window_ids = _window_ids(session, new.windows)
    user = User(name=name, role=new.role, password_hash=_hash(new.password, name), disabled=False,
                created_at=now, password_changed_at=now)
    session.add(user)
    session.flush()
    session.add_all(UserWindow(user_id=user.id, window_id=window_id) for window_id in window_ids)
    audit.record(session, "user.add", name, role=new.role, windows=list(new.windows))
    return user


def list_users(session: Session) -> list[dict[str, Any]]:
    """Every account, by name: role, windows, whether disabled. Never a hash."""
    windows: dict[int, list[str]] = {}
    for user_id, window in session.execute(
        select(UserWindow.user_id, Window.name).join(Window, Window.id == UserWindow.window_id).order_by(Window.name)
    ):
        windows.setdefault(user_id, []).append(window)
    return [
        {"name": user.name, "role": user.role, "role_label": ROLES.get(user.role, user.role),
         "windows": windows.get(user.id, []), "disabled": user.disabled,
         "notify_routes": list(user.notify_routes or []),
         "created_at": user.created_at.isoformat(), "password_changed_at": user.password_changed_at.isoformat()}
        for user in session.scalars(select(User).order_by(User.name))
    ]


def disable_user(session: Session, name: str) -> User:
    """Refuse the account every sign-in from now on; disabling a disabled account changes nothing."""
    user = _user(session, name)
    if not user.disabled:
        user.disabled = True
        audit.record(session, "user.disable", user.name)
    return user


def set_password(session: Session, name: str, password: str, now: datetime) -> User:
    """Give the account a new password (and enable it again, as a reset by its administrator)."""
    user = _user(session, name)
    user.password_hash = _hash(password, user.name)
    user.password_changed_at = now
    user.disabled = False
    audit.record(session, "user.password", user.name)
    return user


def check_password(session: Session, name: str, password: str) -> User | None:
    """The enabled account with this name and password, or None; the same work whether or not the name exists, so
    the time taken does not tell which names do."""
    from argon2.exceptions import InvalidHashError, VerificationError

    user = session.scalar(select(User).where(User.name == name))
    try:
        _hasher().verify(user.password_hash if user is not None else _decoy(), password)
    except (VerificationError, InvalidHashError):
        return None
    return user if user is not None and not user.disabled else None


def _hash(password: str, name: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
    if name.casefold() in password.casefold():
        raise AccountError("a password may not contain the account's name")
    return _hasher().hash(password)


def find_user(session: Session, name: str) -> User:
    """The account called `name`; an `AccountError` naming `users list` when there is none."""
    return _user(session, name)


def _user(session: Session, name: str) -> User:
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        raise AccountError(f"no account named {name!r} (see `callbackd users list`)")
    return user


def _window_ids(session: Session, names: tuple[str, ...]) -> list[int]:
    if not names:
        return []
    found = {name: window_id for name, window_id in session.execute(
        select(Window.name, Window.id).where(Window.name.in_(names)))}
    missing = [name for name in names if name not in found]
    if missing:
        raise AccountError(f"no window named {'、'.join(missing)} (see `callbackd windows list`)")
    return [found[name] for name in dict.fromkeys(names)]


@cache
def _decoy() -> str:
    """A hash to verify against for a name without an account, so a wrong name costs what a wrong password does."""
    return _hasher().hash("no such account")
