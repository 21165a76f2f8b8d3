"""Console fixtures: the web app on this test's database, an account for every role, and a client that signs in as
one of them and sends each POST with its session's CSRF token."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from callbackd.core.settings import Settings
from callbackd.store.accounts import NewUser, add_user
from callbackd.store.db import Database
from callbackd.store.models import Window

PASSWORD = "zhimakaimen2026"
# name -> (role, windows)
PEOPLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "sup": ("supervisor", ()),
    "op": ("operator", ()),
    "win": ("window", ("社保窗口",)),
    "lead": ("leader", ()),
    "adm": ("admin", ()),
}
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


class ConsoleClient:
    """A browser-like client of the console: keeps the session cookie and the last CSRF token it was shown."""

    def __init__(self, app: Any) -> None:
        self.http = TestClient(app, follow_redirects=False)
        self.token = ""

    def get(self, path: str, **kwargs: Any) -> Response:
        response = self.http.get(path, **kwargs)
        html = response.headers.get("content-type", "").startswith("text/html")
        found = TOKEN.search(response.text) if html else None
        if found:
            self.token = found.group(1)
        return response

    def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: bool = True, **kwargs: Any) -> Response:
        fields = dict(data or {})
        if csrf:
            fields.setdefault("csrf_token", self.token)
        return self.http.post(path, data=fields, **kwargs)

    def sign_in(self, name: str, password: str = PASSWORD) -> Response:
        self.get("/login")
        return self.post("/login", {"username": name, "password": password})


@pytest.fixture
def people(database: Database) -> dict[str, tuple[str, tuple[str, ...]]]:
    """An account for every role (window head `win` answers for 社保窗口), all with `PASSWORD`."""
    now = datetime(2026, 11, 2, tzinfo=UTC)
    with database.session() as session:
        for window in ("社保窗口", "医保窗口"):
            if session.query(Window).filter_by(name=window).first() is None:
                session.add(Window(name=window, created_at=now))
        session.flush()
        for name, (role, windows) in PEOPLE.items():
            add_user(session, NewUser(name, role, windows, PASSWORD), now)
    return PEOPLE


@pytest.fixture
def console(settings: Settings, database: Database, people: Any,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str | None], ConsoleClient]]:
    """`console("sup")`: a client signed in as that account; `console(None)`: one signed in as nobody."""
    from callbackd.app.web import create_app

    monkeypatch.setenv("CALLBACKD_SECRET_KEY", "a test key that is long enough to sign sessions")
    app = create_app(settings)

    def client(name: str | None) -> ConsoleClient:
        made = ConsoleClient(app)
        if name is not None:
            response = made.sign_in(name)
            assert response.status_code == 303, response.text
            made.get("/")
        return made

    yield client
