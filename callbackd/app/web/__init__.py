"""The web application: the console (`callbackd.app.web.console`), webhooks mounted from plugins under
/hooks/<plugin>/, `/metrics` and `/healthz` (`metrics`).

`callbackd serve` runs it with uvicorn. Each plugin's `register_routes(router, services)` gets its own router and
the core services its handlers may call (`services.CoreServices`, of the API's `WebhookServices` shape).

Every request under /hooks/ is read whole before any handler sees it, at most `BODY_LIMIT` bytes (413 beyond, as
soon as the declared length or the bytes received pass it), and kept as received for the inbox
(`callbackd.store.inbox`): on SQLite, deliveries that arrive while a long write holds the database wait there, and
a task of the app applies them, oldest first, once the writer is free (and at start-up).
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from callbackd import __version__
from callbackd.api.manager import Plugins, load_plugins
from callbackd.api.webhooks import WebhookServices
from callbackd.app.web.console import install as install_console
from callbackd.app.web.metrics import install as install_metrics
from callbackd.app.web.services import CoreServices
from callbackd.core.settings import Settings, load_settings
from callbackd.store.db import Database
from callbackd.store.inbox import RECEIVED, Inbox, Received, wait_for_writer

BODY_LIMIT = 1 << 20  # 1 MB: a provider's webhook is a few hundred bytes
INBOX_POLL = 0.2  # seconds between looks at the inbox
logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, plugins: Plugins | None = None) -> FastAPI:
    """Build the app: the schema upgraded, every plugin's routes mounted under /hooks/<plugin>/."""
    settings = settings or load_settings()
    plugins = plugins or load_plugins()
    database = Database(settings.database_url, background_checkpoints=True)
    database.ensure_schema()

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # SQLite's log is checkpointed here, every second, rather than inside whichever webhook crosses its
        # threshold: a provider's request never waits for the disk
        async def checkpoints() -> None:
            while True:
                await asyncio.sleep(1.0)
                await run_in_threadpool(database.checkpoint)

        task = asyncio.create_task(checkpoints()) if database.engine.dialect.name == "sqlite" else None
        applying = asyncio.create_task(apply_kept(app, inbox, database)) if inbox is not None else None
        # What start-up built (modules, mappers, the plugins) lives as long as the app: moved out of the garbage
        # collector's reach, or each of its full passes would walk those ~130,000 objects again (tens of ms) and
        # stall whichever request set it off.
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        for running in (task, applying):
            if running is not None:
                running.cancel()
        database.checkpoint()
        database.dispose()
        if inbox is not None:
            inbox.close()

    inbox = Inbox.beside(settings.database_url)
    app = FastAPI(title="callbackd", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(WebhookBodies)
    services: WebhookServices = CoreServices(settings, database, plugins, inbox)
    app.state.callbackd = services
    for name in plugins.implementers("register_routes"):
        router = APIRouter()  # one each: a plugin's routes go under its own /hooks/<plugin>/
        plugins.call_as(name, "register_routes", router=router, services=services)
        app.include_router(router, prefix=f"/hooks/{name}")

    install_console(app, settings, database, plugins)
    install_metrics(app, database, plugins.implementers("register_routes"))  # /metrics, /healthz, webhook timing
    return app


class WebhookBodies:
    """Requests under /hooks/ reach the app with their body read whole (at most `BODY_LIMIT` bytes; 413 beyond)
    and kept as received (`RECEIVED`) for the inbox."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/hooks/"):
            await self.app(scope, receive, send)
            return
        headers = scope["headers"]
        declared = [value.strip() for name, value in headers if name.lower() == b"content-length"]
        if declared and not all(value.isdigit() for value in declared):
            await PlainTextResponse("bad request: Content-Length", status_code=400)(scope, receive, send)
            return
        if any(len(value) > 9 or int(value) > BODY_LIMIT for value in declared):
            await too_large(scope, receive, send)
            return
        parts: list[bytes] = []
        size, more = 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            part = message.get("body", b"")
            parts.append(part)
            size += len(part)
            if size > BODY_LIMIT:
                await too_large(scope, receive, send)
                return
            more = message.get("more_body", False)
        received = Received(scope["method"], scope["path"], scope.get("query_string", b""), headers,
                            parts[0] if len(parts) == 1 else b"".join(parts), key=scope.get("callbackd.inbox"))
        delivered = False

        async def whole() -> Message:
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": received.body, "more_body": False}

        token = RECEIVED.set(received)
        try:
            await self.app(scope, whole, send)
        finally:
            RECEIVED.reset(token)


async def too_large(scope: Scope, receive: Receive, send: Send) -> None:
    response = PlainTextResponse(f"request body over {BODY_LIMIT} bytes", status_code=413,
                                 headers={"Connection": "close"})
    await response(scope, receive, send)


async def apply_kept(app: ASGIApp, inbox: Inbox, database: Database) -> None:
    """Apply what the inbox holds, oldest first, whenever it holds something; for as long as the app runs (while
    anything waits there, every new delivery is kept behind it: this must never stop)."""
    while True:
        try:
            applied = await apply_oldest(app, inbox, database)
        except Exception:
            logger.exception("inbox: cannot apply what it holds; trying again")
            applied = False
        if not applied:
            await asyncio.sleep(INBOX_POLL)


async def apply_oldest(app: ASGIApp, inbox: Inbox, database: Database) -> bool:
    """Apply the delivery kept longest, once the writer is free; False when there is none, or it failed (and is
    kept, or set aside)."""
    kept = await run_in_threadpool(inbox.oldest)
    if kept is None or kept.key is None:
        return False
    await run_in_threadpool(wait_for_writer, database)
    try:
        status = await replay(app, kept)
    except Exception as exc:  # logged below, kept, tried again
        status, error = 500, type(exc).__name__
    else:
        error = f"status {status}"
    if status < 500:  # applied, or refused for good (a 4xx would be refused again)
        await run_in_threadpool(inbox.applied, kept.key)
        return True
    if await run_in_threadpool(inbox.failed, kept.key, error):
        logger.error("inbox: delivery %s to %s set aside after repeated failures (%s)", kept.key, kept.path, error)
    else:
        logger.warning("inbox: delivery %s to %s failed (%s); tried again", kept.key, kept.path, error)
    return False


async def replay(app: ASGIApp, kept: Received) -> int:
    """Send a kept delivery through the app as it arrived; the status it got."""
    scope: dict[str, Any] = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": kept.method,
        "scheme": "http", "path": kept.path, "raw_path": kept.path.encode(), "root_path": "",
        "query_string": kept.query, "headers": kept.headers,
        "client": ("127.0.0.1", 0), "server": ("127.0.0.1", 0), "callbackd.inbox": kept.key,
    }
    messages: list[Message] = [{"type": "http.request", "body": kept.body, "more_body": False}]
    status = 500

    async def receive() -> Message:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])

    await app(scope, receive, send)
    return status
