"""The web application: webhooks mounted from plugins under /hooks/<plugin>/, and a health check.

`callbackd serve` runs it with uvicorn. Handlers are thin: they check the request, open a session and call
core services.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass

from fastapi import APIRouter, FastAPI, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from callbackd import __version__
from callbackd.api.manager import PluginError, Plugins, load_plugins
from callbackd.core.settings import Settings, load_settings
from callbackd.store.db import Database


@dataclass
class WebContext:
    """What every request handler may use: the settings, the database and the loaded plugins."""

    settings: Settings
    database: Database
    plugins: Plugins

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.database.session() as session:
            yield session


def context(request: Request) -> WebContext:
    """The application's context, for a plugin's route handler."""
    return request.app.state.callbackd


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
    app.state.callbackd = WebContext(settings, database, plugins)

    for impl in reversed(plugins.manager.hook.register_routes.get_hookimpls()):
        router = APIRouter()
        try:
            impl.function(router=router)
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in register_routes: {type(exc).__name__}: "
                              f"{exc}") from exc
        app.include_router(router, prefix=f"/hooks/{impl.plugin_name}")

    @app.get("/healthz")
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
