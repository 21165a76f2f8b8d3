"""What every console page shares: the `Console` (settings, database, sessions, templates), the dependencies that
say who is asking and what they may do, rendering, and the responses to a refusal.

Routes are thin: a dependency names the roles a page serves (`allow(SUPERVISOR, LEADER)`), `posted` reads a POST
whose CSRF token matches, `console.session(viewer)` opens one transaction whose audit entries name the account,
and `render` fills the page's template.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Depends, Request
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from callbackd import __version__
from callbackd.api.manager import Plugins
from callbackd.app.web.console.access import (
    ADMIN,
    LEADER,
    OPERATOR,
    REFRESH,
    SUPERVISOR,
    WINDOW,
    Forbidden,
    Missing,
    Sessions,
    SignInNeeded,
    Viewer,
    check_csrf,
    viewer_for,
)
from callbackd.app.web.console.figures import Figures
from callbackd.core.phones import mask
from callbackd.core.settings import Settings
from callbackd.store import audit
from callbackd.store.db import Database

HERE = Path(__file__).resolve().parent.parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"

# The menu: (path, label, roles that see it). A role's menu never links to a page the server would refuse it.
MENU: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/", "概览", (SUPERVISOR, OPERATOR, WINDOW, LEADER, ADMIN)),
    ("/rankings", "排名", (SUPERVISOR, LEADER, WINDOW)),
    ("/rounds", "回访批次", (SUPERVISOR,)),
    ("/operator", "回访队列", (OPERATOR, SUPERVISOR)),
    ("/reviews", "审核", (SUPERVISOR, OPERATOR)),
    ("/rectifications", "整改", (SUPERVISOR, WINDOW)),
    ("/imports", "导入", (SUPERVISOR,)),
    ("/plans", "回访计划", (SUPERVISOR, ADMIN)),
    ("/publications", "公示", (SUPERVISOR, LEADER)),
    ("/audit", "审计", (SUPERVISOR, ADMIN)),
)


@dataclass
class Console:
    """Everything the console's routes share, kept on `app.state.console`."""

    settings: Settings
    database: Database
    plugins: Plugins
    sessions: Sessions
    templates: Environment
    figures: Figures = field(default_factory=Figures)

    @contextmanager
    def session(self, viewer: Viewer | None = None) -> Iterator[Session]:
        """One transaction; what it audits names the viewer's account."""
        if viewer is None:
            with self.database.session() as session:
                yield session
            return
        with audit.acting_as(viewer.name), self.database.session() as session:
            yield session

    def local(self, moment: datetime | None, pattern: str = "%Y-%m-%d %H:%M") -> str:
        return moment.astimezone(self.settings.zone).strftime(pattern) if moment is not None else ""


def templates() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    environment.filters["mask"] = lambda phone: mask(phone) if phone else ""
    environment.filters["percent"] = lambda value, digits=1: "—" if value is None else f"{value * 100:.{digits}f}%"
    environment.filters["score"] = lambda value: "—" if value is None else f"{value:.2f}"
    environment.filters["urlpart"] = lambda value: quote(str(value), safe="")
    environment.filters["pretty"] = lambda value: json.dumps(value, ensure_ascii=False, indent=1)
    environment.globals["version"] = __version__
    return environment


def console_of(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def signed_in(request: Request) -> Viewer:
    """The account this request acts for; the browser goes to /login when there is none."""
    console = console_of(request)
    data = console.sessions.read(request)
    if data is None or "u" not in data:
        raise SignInNeeded()
    with console.session() as session:
        viewer = viewer_for(session, data)
    if viewer is None:
        console.sessions.clear(request)
        raise SignInNeeded()
    if time.time() - data["_signed"] > REFRESH:  # keep an active session alive
        console.sessions.attach(request, data)
    return viewer


def allow(*roles: str) -> Callable[..., Viewer]:
    """A dependency: the viewer, when their role may use the page; else 403."""

    def allowed(viewer: Viewer = Depends(signed_in)) -> Viewer:
        if viewer.role not in roles:
            raise Forbidden()
        return viewer

    return allowed


async def posted(request: Request, viewer: Viewer = Depends(signed_in)) -> FormData:
    """A POST's fields, once its CSRF token matches the session's; 403 and nothing done otherwise."""
    form = await request.form(max_files=0, max_fields=200)
    check_csrf(form, viewer.csrf)
    return form


def render(request: Request, viewer: Viewer | None, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page: its template inside the shared layout, with the viewer's menu."""
    console = console_of(request)
    menu = [(path, label) for path, label, roles in MENU if viewer is not None and viewer.role in roles]
    html = console.templates.get_template(template).render(
        request_path=request.url.path, viewer=viewer, menu=menu, organisation=console.settings.organisation,
        csrf=viewer.csrf if viewer is not None else context.pop("csrf", ""), local=console.local, **context,
    )
    return HTMLResponse(html, status_code=status)


def fragment(console: Console, template: str, **context: Any) -> Markup:
    """A part of a page that is the same for every viewer of a role (a ranking's tables, the dashboard's panels),
    rendered once and kept with the figures it shows."""
    return Markup(console.templates.get_template(template).render(local=console.local, **context))


def see_other(path: str) -> RedirectResponse:
    """After a POST: the page to show, fetched with GET (so a reload never posts twice)."""
    return RedirectResponse(path, status_code=303)


def refusal(request: Request, exc: Exception) -> Response:
    """The response to `SignInNeeded`, `Forbidden` and `Missing` raised by any console route."""
    if isinstance(exc, SignInNeeded):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return see_other(f"/login?next={quote(target, safe='')}")
    if isinstance(exc, Forbidden):
        return error_page(request, 403, exc.message)
    return error_page(request, 404, getattr(exc, "message", "未找到"))


def error_page(request: Request, status: int, message: str) -> Response:
    """A refusal or an error as a page of the layout (with the menu, when someone is signed in)."""
    console = console_of(request)
    data = console.sessions.read(request)
    viewer = None
    if data is not None and "u" in data:
        with console.session() as session:
            viewer = viewer_for(session, data)
    return render(request, viewer, "error.html", status=status, message=message, status_code=status)


def form_text(form: FormData, name: str, *, strip: bool = True) -> str:
    """A text field of a posted form ("" when it is missing or a file), stripped unless `strip` is False."""
    value = form.get(name)
    if not isinstance(value, str):
        return ""
    return value.strip() if strip else value


def whole_number(text: str | None, limit: int = 2**31) -> int | None:
    """A positive whole number written in ASCII digits below `limit` (an id, a page), or None."""
    if not text or not text.isascii() or not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value < limit else None


def page_number(text: str | None) -> int:
    """A `?page=` value: 1 for anything that is not a positive number."""
    return whole_number(text, 100_000) or 1


def require(found: Any, allowed: bool = True) -> Any:
    """The object, when it exists and the viewer may see it; else 404 (the same for both)."""
    if found is None or not allowed:
        raise Missing()
    return found
