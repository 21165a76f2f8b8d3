"""Signing in and out: `/login` (fields `username`, `password`), `POST /logout`."""

from __future__ import annotations

import threading
import zlib

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.responses import Response

from callbackd.app.web.console.access import (
    Viewer,
    check_csrf,
    locked_until,
    new_session,
    record_sign_in,
    safe_next,
    wall_clock,
)
from callbackd.app.web.console.pages import console_of, form_text, posted, render, see_other, signed_in
from callbackd.store.accounts import check_password

router = APIRouter()
_TURNS = tuple(threading.Lock() for _ in range(64))  # sign-in attempts for one name take turns on one of these


@router.get("/login")
def login_form(request: Request, next: str = "/") -> Response:  # noqa: A002 - the query parameter's name
    console = console_of(request)
    data = console.sessions.read(request)
    if data is None:  # a session before signing in: it carries the form's CSRF token
        data = new_session(None)
        console.sessions.attach(request, data)
    return render(request, None, "login.html", csrf=data["c"], next=safe_next(next), error="", username="")


@router.post("/login")
async def login(request: Request) -> Response:
    console = console_of(request)
    form = await request.form(max_files=0, max_fields=20)
    data = console.sessions.read(request)
    csrf = data["c"] if data is not None else ""
    check_csrf(form, csrf)
    name, target = form_text(form, "username")[:64], safe_next(form_text(form, "next"))
    password = form_text(form, "password", strip=False)
    if not name or not password:
        status, error = 400, "请输入用户名和密码"
    else:
        status, error = await run_in_threadpool(_sign_in, request, name, password)
    if status == 303:
        return see_other(target)
    return render(request, None, "login.html", status=status, csrf=csrf, next=target, error=error, username=name)


def _sign_in(request: Request, name: str, password: str) -> tuple[int, str]:
    """303 and a new session, or the status and message of a refusal (wrong password 401, locked 429)."""
    console = console_of(request)
    # one attempt at a time per name, counted before the next is checked: twenty guesses sent at once are twenty
    # tries in turn, and the sixth is refused (across processes, each counts what the others wrote)
    with _TURNS[zlib.crc32(name.encode()) % len(_TURNS)], console.session() as session:
        now = wall_clock()
        until = locked_until(session, name, now)
        if until is not None:
            record_sign_in(session, name, "login.refused", reason="locked")
            minutes = max(1, int((until - now).total_seconds() // 60) + 1)
            return 429, f"密码错误次数过多，此账号已被锁定，请 {minutes} 分钟后再试"
        user = check_password(session, name, password)
        if user is None:
            record_sign_in(session, name, "login.failed")
            return 401, "用户名或密码错误"
        record_sign_in(session, name, "login", role=user.role)
        console.sessions.attach(request, new_session(user))
    return 303, ""


@router.post("/logout")
def logout(request: Request, form: FormData = Depends(posted), viewer: Viewer = Depends(signed_in)) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        record_sign_in(session, viewer.name, "logout")
    console.sessions.clear(request)
    return see_other("/login")


