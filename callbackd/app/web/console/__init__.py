"""The console: the pages supervisors, operators, window heads, leaders and admins use, served beside the webhooks.

One router per resource (`auth`, `dashboard`, `rankings`, ...), each a few lines over the services the CLI uses;
templates in `callbackd/app/web/templates`, one per page on a shared layout; every asset from
`callbackd/app/web/static`, served by callbackd itself: no page loads anything from another origin (the Content
Security Policy below says so to the browser too).
"""

from __future__ import annotations

import logging
from importlib import import_module

from fastapi import FastAPI
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callbackd.api.manager import Plugins
from callbackd.app.web.console.access import Forbidden, Missing, Sessions, SignInNeeded
from callbackd.app.web.console.pages import STATIC, Console, error_page, refusal, templates
from callbackd.core.errors import CallbackdError
from callbackd.core.settings import Settings
from callbackd.store.db import Database

logger = logging.getLogger(__name__)
ROUTERS = ("auth", "dashboard", "rankings", "windows", "rounds", "callbacks", "operator", "rectifications",
           "imports", "publications", "audit", "plans", "reviews", "notices")
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                 b"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
]


def install(app: FastAPI, settings: Settings, database: Database, plugins: Plugins) -> None:
    """Mount the console on the web app: its pages, its static assets and the responses to refusals."""
    secure = settings.web.public_url.lower().startswith("https://")
    if not secure:
        logger.warning("[web] public_url is not an https address: console cookies are not marked Secure; serve the "
                       "console behind HTTPS and set public_url to its https address")
    app.state.console = Console(settings, database, plugins, Sessions(secure=secure), templates())
    app.add_middleware(ConsoleResponses)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for name in ROUTERS:
        app.include_router(import_module(f"callbackd.app.web.console.{name}").router)
    for refused in (SignInNeeded, Forbidden, Missing):
        app.add_exception_handler(refused, refusal)
    app.add_exception_handler(CallbackdError, user_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, bad_request)


def user_error(request: Request, exc: Exception) -> Response:
    """A service's refusal of what was asked (a bad period, a round that cannot open): 400 with its message."""
    return error_page(request, 400, str(exc))


async def bad_request(request: Request, exc: Exception) -> Response:
    """A malformed console request (an id that is not a number, ...) is a 400 page; webhooks keep FastAPI's own."""
    if request.url.path.startswith("/hooks/"):
        assert isinstance(exc, RequestValidationError)
        return await request_validation_exception_handler(request, exc)
    return error_page(request, 400, "请求的地址或参数不正确")


async def http_error(request: Request, exc: Exception) -> Response:
    """An unknown console page is a 404 page of the layout; webhooks keep FastAPI's own responses."""
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/hooks/") or exc.status_code not in (404, 405):
        return await http_exception_handler(request, exc)
    return error_page(request, exc.status_code, "未找到此页面" if exc.status_code == 404 else "不支持此请求方式")


class ConsoleResponses:
    """On every response outside /hooks/: the security headers, `Cache-Control: no-store` for pages (they hold
    personal data), and the session cookie a route asked for (`Sessions.attach`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/hooks/"):
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        if scope["method"] == "POST" and not scope["path"].startswith(UPLOADS):
            limited = await _limited(scope, receive, send)
            if limited is None:
                return
            receive = limited

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.extend(SECURITY_HEADERS)
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                cookie = scope.get("state", {}).get("callbackd.cookie")
                if cookie:
                    headers.append((b"set-cookie", cookie.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


FORM_LIMIT = 64 * 1024  # a console form (a response, a note) is a few kilobytes; uploads go to /imports
UPLOADS = ("/imports", "/signatures/")  # which limit their own uploads (50 MB; a scanned signature's max_bytes)


async def _limited(scope: Scope, receive: Receive, send: Send) -> Receive | None:
    """A form's body, read whole when it is at most `FORM_LIMIT` bytes; None (413 sent) when it is more."""
    declared = [value for name, value in scope["headers"] if name.lower() == b"content-length"]
    too_large = any(not value.isdigit() or int(value) > FORM_LIMIT for value in declared)
    parts: list[bytes] = []
    size, more = 0, not too_large
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        size += len(parts[-1])
        more = message.get("more_body", False)
        too_large = size > FORM_LIMIT
        more = more and not too_large
    if too_large:
        response = Response("请求内容过大", status_code=413, media_type="text/plain; charset=utf-8",
                            headers={"Connection": "close"})
        await response(scope, receive, send)
        return None
    body, delivered = b"".join(parts), False

    async def whole() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return whole
