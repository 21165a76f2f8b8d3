"""Who is asking: console sessions, sign-in with lockout, CSRF, and what each role may see.

A session lives in one signed cookie (`HttpOnly`, `SameSite=Lax`, `Secure` behind https): the account's id, a
random CSRF token, when it signed in and a stamp of its password. It ends after 30 minutes without a request, 12
hours after signing in, when the account is disabled or its password changes, and on signing out. The cookie is
signed again at most once a minute, so an active session stays alive.

After 5 wrong passwords for one name within 15 minutes, that name is refused for 15 minutes (HTTP 429), right or
wrong password; the audit trail is where the failures are counted, so every process and every restart sees them.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from callbackd.core import clock
from callbackd.store import audit
from callbackd.store.models import AuditEvent, User, UserWindow

COOKIE = "callbackd_session"
IDLE = 30 * 60  # seconds without a request before a session ends
ABSOLUTE = 12 * 60 * 60  # seconds after signing in
REFRESH = 60  # a session's cookie is signed again at most this often
FAILURES = 5  # wrong passwords ...
FAILURE_WINDOW = timedelta(minutes=15)  # ... within this long lock the name ...
LOCKOUT = timedelta(minutes=15)  # ... for this long
SECRET_ENVIRONMENT = "CALLBACKD_SECRET_KEY"
logger = logging.getLogger(__name__)

# What each role reads. A route names the roles it serves; an object (a window, a rectification, a callback) is
# checked again against the viewer (`Viewer.sees_window`, ...) and is 404 to anyone who may not see it.
SUPERVISOR, OPERATOR, WINDOW, LEADER, ADMIN = "supervisor", "operator", "window", "leader", "admin"
ROLE_LABELS = {ADMIN: "系统管理员", SUPERVISOR: "督查科", OPERATOR: "回访员", WINDOW: "窗口负责人", LEADER: "领导"}


class SignInNeeded(Exception):
    """No session, or one that ended: the page sends the browser to /login."""


class Forbidden(Exception):
    """A role that may not use this page or action (403), or a POST without its CSRF token."""

    def __init__(self, message: str = "无权访问此页面") -> None:
        super().__init__(message)
        self.message = message


class Missing(Exception):
    """An object that does not exist, or that the viewer may not see: both are 404, so ids tell nothing."""

    def __init__(self, message: str = "未找到") -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Viewer:
    """The signed-in account a request acts for."""

    id: int
    name: str
    role: str
    windows: frozenset[int]  # a window head's windows; empty for every other role
    csrf: str

    @property
    def role_label(self) -> str:
        return ROLE_LABELS.get(self.role, self.role)

    def is_(self, *roles: str) -> bool:
        return self.role in roles

    def sees_window(self, window_id: int) -> bool:
        """Whether the viewer may see this window's scores, indicators and rectifications."""
        if self.role in (SUPERVISOR, LEADER):
            return True
        return self.role == WINDOW and window_id in self.windows


@dataclass
class Sessions:
    """Signs and reads session cookies with the key from `CALLBACKD_SECRET_KEY` (a random key, valid until the
    process ends, when it is not set: fine for one process on a workstation, not for several workers)."""

    secure: bool
    secret: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        if not self.secret:
            self.secret = os.environ.get(SECRET_ENVIRONMENT, "")
        if not self.secret:
            logger.warning("%s is not set: console sessions end when this process stops", SECRET_ENVIRONMENT)
            self.secret = secrets.token_urlsafe(32)
        self._signer = URLSafeTimedSerializer(self.secret, salt="callbackd.console.session")

    def read(self, request: Request) -> dict[str, Any] | None:
        """The session a request carries, or None when it has none, a forged one or one idle too long."""
        value = request.cookies.get(COOKIE)
        if not value:
            return None
        try:
            data, signed_at = self._signer.loads(value, max_age=IDLE, return_timestamp=True)
        except (SignatureExpired, BadSignature):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("c"), str):
            return None
        if time.time() - float(data.get("i", 0)) > ABSOLUTE:
            return None
        data["_signed"] = signed_at.timestamp()
        return data

    def cookie(self, data: dict[str, Any]) -> str:
        return self._signer.dumps({k: v for k, v in data.items() if not k.startswith("_")})

    def attach(self, request: Request, data: dict[str, Any]) -> None:
        """Send the session back with the response (`SessionCookies` writes it)."""
        request.scope.setdefault("state", {})["callbackd.cookie"] = self.header(self.cookie(data))

    def clear(self, request: Request) -> None:
        request.scope.setdefault("state", {})["callbackd.cookie"] = self.header("", expire=True)

    def header(self, value: str, *, expire: bool = False) -> str:
        parts = [f"{COOKIE}={value}", "Path=/", "HttpOnly", "SameSite=Lax"]
        if expire:
            parts.append("Max-Age=0")
        if self.secure:
            parts.append("Secure")
        return "; ".join(parts)


def new_session(user: User | None) -> dict[str, Any]:
    """A fresh session: a new CSRF token at every sign-in, so a token seen before signing in is worth nothing."""
    data: dict[str, Any] = {"c": secrets.token_urlsafe(24), "i": time.time()}
    if user is not None:
        data["u"] = user.id
        data["p"] = user.password_changed_at.timestamp()
    return data


def viewer_for(session: Session, data: dict[str, Any]) -> Viewer | None:
    """The account a session acts for, while it is enabled and its password unchanged since the sign-in."""
    user_id = data.get("u")
    if not isinstance(user_id, int):
        return None
    user = session.get(User, user_id)
    if user is None or user.disabled or abs(user.password_changed_at.timestamp() - float(data.get("p", 0))) > 1e-3:
        return None
    windows = frozenset(session.scalars(select(UserWindow.window_id).where(UserWindow.user_id == user.id)))
    return Viewer(user.id, user.name, user.role, windows, data["c"])


def check_csrf(form: FormData, token: str) -> None:
    """A state-changing request must carry the session's token (`csrf_token`): else 403 and nothing changes."""
    given = form.get("csrf_token")
    if not isinstance(given, str) or not token or not hmac.compare_digest(given.encode(), token.encode()):
        raise Forbidden("请求缺少有效的 CSRF 令牌：请刷新页面后重试")


def locked_until(session: Session, name: str, now: datetime) -> datetime | None:
    """When the sign-in refusal for this name ends, while it is refused: 5 wrong passwords within 15 minutes since
    its last sign-in lock it for 15 minutes from the fifth."""
    subject = name[:200]
    events = session.execute(
        select(AuditEvent.action, AuditEvent.at)
        .where(AuditEvent.subject == subject, AuditEvent.action.in_(("login", "login.failed")),
               AuditEvent.at >= now - FAILURE_WINDOW - LOCKOUT)
        .order_by(AuditEvent.id)
    ).all()
    failures: list[datetime] = []
    until: datetime | None = None
    for action, at in events:
        if action == "login":
            failures, until = [], None
            continue
        failures.append(at)
        if len(failures) >= FAILURES and at - failures[-FAILURES] <= FAILURE_WINDOW:
            until, failures = at + LOCKOUT, []
    return until if until is not None and until > now else None


def record_sign_in(session: Session, name: str, action: str, **detail: Any) -> None:
    """A sign-in, a wrong password or a refusal, in the audit trail (by the name typed: the account may not
    exist)."""
    with audit.acting_as(name[:64]):
        audit.record(session, action, name[:200], **detail)


def wall_clock() -> datetime:
    return clock.wall_clock()  # lockouts run on real time, whatever a rehearsal's clock says


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (never `//other.example` or a full URL)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
