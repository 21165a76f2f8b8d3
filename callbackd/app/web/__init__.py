"""The web application: webhooks mounted from plugins under /hooks/<plugin>/, and a health check.

`callbackd serve` runs it with uvicorn. Each plugin's `register_routes(router, services)` gets its own router and
the core services its handlers may call (`services.CoreServices`, of the API's `WebhookServices` shape).
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

from callbackd import __version__
from callbackd.api.manager import Plugins, load_plugins
from callbackd.api.webhooks import WebhookServices
from callbackd.app.web.services import CoreServices
from callbackd.core.settings import Settings, load_settings
from callbackd.store.db import Database


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
        # What start-up built (modules, mappers, the plugins) lives as long as the app: moved out of the garbage
        # collector's reach, or each of its full passes would walk those ~130,000 objects again (tens of ms) and
        # stall whichever request set it off.
        gc.collect()
        gc.freeze()
        yield
        gc.unfreeze()
        if task is not None:
            task.cancel()
        database.checkpoint()
        database.dispose()

    app = FastAPI(title="callbackd", version=__version__, docs_url=None, redoc_url=None, lifespan=lifespan)
    services: WebhookServices = CoreServices(settings, database, plugins)
    app.state.callbackd = services
    for name in plugins.implementers("register_routes"):
        router = APIRouter()  # one each: a plugin's routes go under its own /hooks/<plugin>/
        plugins.call_as(name, "register_routes", router=router, services=services)
        app.include_router(router, prefix=f"/hooks/{name}")

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
