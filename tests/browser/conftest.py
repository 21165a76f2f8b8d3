"""Browser tests: the console as people use it, in Chromium driven by Playwright.

`console_server` is `callbackd serve` on 127.0.0.1 (a free port) over the demo's month of data, with an account for
every role; `signed_in("sup")` is a new Chromium page signed in through the real /login form. Chromium comes from
the system's packages (/usr/bin/chromium, or CALLBACKD_CHROMIUM): nothing is downloaded when the tests run, and a
missing Chromium FAILS the tests (never a skip), saying how to install it. Every page the fixtures make records its
requests; a test whose pages asked anything of another origin than the console fails: the console loads nothing from
elsewhere. Screenshots go to `artefacts` (tests/browser/artefacts, or CALLBACKD_BROWSER_ARTEFACTS).

The fixtures are package-scoped: one server and one browser for the whole folder, stopped as soon as its last test
has run, so that no Playwright thread or server outlives it into the tests that follow (some must run in a process
with one thread). The whole folder is marked `integration`. On PostgreSQL (CALLBACKD_TEST_POSTGRES set, as in
`scripts/test`'s second pass) the server gets a database of its own on that server, dropped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, Playwright, Request, sync_playwright
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import make_url

from callbackd.core.settings import load_settings
from callbackd.store.accounts import NewUser, add_user
from callbackd.store.db import Database
from callbackd.store.models import Rectification, Window
from tests.conftest import POSTGRES

HERE = Path(__file__).resolve().parent
PASSWORD = "zhimakaimen-2026"  # every account's: 10 characters or more, containing no account's name
# name -> role; `win` answers for one demo window (`ConsoleServer.window`)
ACCOUNTS = {"sup": "supervisor", "op": "operator", "win": "window", "lead": "leader", "adm": "admin"}
CHROMIUM = os.environ.get("CALLBACKD_CHROMIUM", "/usr/bin/chromium")
# the demo scores the month before its clock's: fixing the clock makes that month 2026-11 whatever the date
NOW = "2026-12-04T10:00:00+08:00"
MONTH = "2026-11"
SECRET_KEY = "browser tests' key, long enough to sign sessions"
STARTUP_SECONDS = 30.0
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# schemes that name no origin: nothing is fetched from elsewhere
LOCAL_SCHEMES = ("data", "blob", "about")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test of this folder is an integration test (a real server and a real browser)."""
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)


@dataclass
class ConsoleServer:
    """`callbackd serve` on the demo's data: where it listens, its database, and how to run the CLI against it."""

    url: str  # http://127.0.0.1:PORT, no trailing slash
    database_url: str
    env: dict[str, str]  # the environment of `callbackd ...` on this database (subprocess.run(..., env=env))
    window: str  # the window `win` answers for (it owes open rectifications)
    window_id: int
    other_window: str  # a window `win` does not answer for
    other_window_id: int
    month: str  # the demo's scored month, "2026-11"
    workdir: Path  # the server's working folder (the demo's files are in workdir / "demo")
    log: Path  # the server's standard output and error
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def cli(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:  # noqa: A002
        """Run `callbackd ARGS...` on this server's database, e.g. `cli("users", "add", ..., input=password)`."""
        run = subprocess.run([callbackd_command(), *args], env=self.env, cwd=self.workdir, input=input, text=True,
                             capture_output=True, timeout=300)
        if check and run.returncode != 0:
            raise AssertionError(f"callbackd {' '.join(args)} exited {run.returncode}:\n{run.stdout}\n{run.stderr}")
        return run

    def add_account(self, name: str, role: str, *windows: str, password: str = PASSWORD) -> None:
        """An extra account for one test (e.g. one it locks out), through `callbackd users add`."""
        args = [arg for window in windows for arg in ("--window", window)]
        self.cli("users", "add", name, "--role", role, *args, "--password-stdin", input=password + "\n")


def callbackd_command() -> str:
    """The `callbackd` script of the interpreter running the tests (the venv's)."""
    beside = Path(sys.executable).with_name("callbackd")
    return str(beside) if beside.exists() else shutil.which("callbackd") or "callbackd"


def clean_environment(**values: str) -> dict[str, str]:
    """This process's environment without any CALLBACKD_* setting of the caller's (the test database's only), and
    without proxies: everything the tests reach is on loopback."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CALLBACKD_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    env.update(values)
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="package")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    """The demo's month (10 to 30 s) plus the accounts sup/op/win/lead/adm (password `PASSWORD`), served by
    `callbackd serve` on a free loopback port until the session ends."""
    workdir = tmp_path_factory.mktemp("console")
    postgres_name = f"b_{uuid.uuid4().hex[:16]}" if POSTGRES else ""
    if POSTGRES:
        admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{postgres_name}"')
        admin.dispose()
        database_url = make_url(POSTGRES).set(database=postgres_name).render_as_string(False)
    else:
        database_url = f"sqlite:///{workdir / 'demo' / 'callbackd.db'}"
    env = clean_environment(CALLBACKD_DATABASE_URL=database_url, CALLBACKD_SECRET_KEY=SECRET_KEY,
                            CALLBACKD_NOW=NOW)
    server: ConsoleServer | None = None
    try:
        window, other = build_database(workdir, database_url)
        port = free_port()
        server = ConsoleServer(f"http://127.0.0.1:{port}", database_url, env, window[0], window[1], other[0],
                               other[1], MONTH, workdir, workdir / "serve.log")
        with server.log.open("wb") as log:
            server.process = subprocess.Popen(
                [callbackd_command(), "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
        wait_until_serving(server)
        yield server
    finally:
        if server is not None and server.process is not None:
            server.process.terminate()
            try:
                server.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.process.kill()
                server.process.wait()
        if POSTGRES:
            admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{postgres_name}" WITH (FORCE)')
            admin.dispose()


def build_database(workdir: Path, database_url: str) -> tuple[tuple[str, int], tuple[str, int]]:
    """Run the demo into `database_url` and add the tests' accounts; returns (name, id) of `win`'s window and of
    another window."""
    from callbackd.app.demo import run_demo

    with pytest.MonkeyPatch.context() as patch:
        # the demo on embedded defaults, whatever the caller's environment or working folder holds
        for name in [name for name in os.environ if name.startswith("CALLBACKD_")]:
            patch.delenv(name)
        patch.setenv("CALLBACKD_NOW", NOW)
        patch.chdir(workdir)
        settings = load_settings()
        result = run_demo(settings, workdir / "demo", database_url=database_url)
    assert f"{result.month:%Y-%m}" == MONTH, result.month
    database = Database(database_url)
    try:
        with database.session() as session:
            # the window owing the most open rectifications: the window head's pages have something to show
            owing = session.execute(
                select(Window.name, Window.id).join(Rectification, Rectification.window_id == Window.id)
                .where(Rectification.status == "open").group_by(Window.name, Window.id)
                .order_by(func.count().desc(), Window.name).limit(1)
            ).one()
            other = session.execute(
                select(Window.name, Window.id).where(Window.id != owing.id).order_by(Window.name).limit(1)
            ).one()
            now = datetime.fromisoformat(NOW)
            for name, role in ACCOUNTS.items():
                windows = (owing.name,) if role == "window" else ()
                add_user(session, NewUser(name, role, windows, PASSWORD), now)
    finally:
        database.dispose()
    return (owing.name, owing.id), (other.name, other.id)


def wait_until_serving(server: ConsoleServer) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    assert server.process is not None
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"callbackd serve exited {server.process.returncode}:\n{server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"callbackd serve did not answer /healthz in {STARTUP_SECONDS:.0f} s:\n"
                               f"{server.log.read_text()}")
        time.sleep(0.1)


@pytest.fixture(scope="package")
def playwright_driver() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="package")
def browser(playwright_driver: Playwright) -> Iterator[Browser]:
    """Headless Chromium from the system's packages; a missing one fails (CI must never skip these tests)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is missing ({CHROMIUM}): install it from the system's packages "
                    "(sudo apt-get install chromium; scripts/test does it when run as root), or set "
                    "CALLBACKD_CHROMIUM to its path. The browser tests never download a browser.", pytrace=False)
    launched = playwright_driver.chromium.launch(
        executable_path=CHROMIUM,
        # nothing but the console on loopback: no proxy, no background calls home
        args=["--no-proxy-server", "--disable-background-networking", "--disable-component-update",
              "--no-first-run", "--disable-sync"],
    )
    yield launched
    launched.close()


@dataclass
class Requests:
    """Every URL requested by the pages of one test, and which of them went to another origin."""

    origin: str
    urls: list[str] = field(default_factory=list)

    def record(self, request: Request) -> None:
        self.urls.append(request.url)

    def foreign(self) -> list[str]:
        out = []
        for url in self.urls:
            parts = urlsplit(url)
            if parts.scheme in LOCAL_SCHEMES:
                continue
            if f"{parts.scheme}://{parts.netloc}" != self.origin:
                out.append(url)
        return out


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """After a test of this folder: it fails if any of its pages requested another origin than the console's."""
    result = yield
    requests: Requests | None = getattr(item, "_console_requests", None)
    if requests is not None and requests.foreign():
        raise AssertionError("the console's pages requested other origins than "
                             f"{requests.origin}: {sorted(set(requests.foreign()))}")
    return result


SignedIn = Callable[..., Page]


@pytest.fixture
def signed_in(browser: Browser, console_server: ConsoleServer, request: pytest.FixtureRequest
              ) -> Iterator[SignedIn]:
    """`signed_in("sup")` (or op, win, lead, adm, or an account a test added with `PASSWORD`): a new page in a new
    browser context, signed in through /login and showing the page it lands on. `signed_in(None)`: a page signed
    in as nobody, on /login. `viewport={"width": 390, "height": 844}` for a phone (default 1280x800)."""
    requests = Requests(console_server.url)
    request.node._console_requests = requests
    contexts = []

    def open_page(name: str | None, viewport: dict[str, int] | None = None, password: str = PASSWORD) -> Page:
        context = browser.new_context(viewport=viewport or DESKTOP, locale="zh-CN", timezone_id="Asia/Shanghai")
        contexts.append(context)
        context.set_default_timeout(15_000)
        page = context.new_page()
        page.on("request", requests.record)
        page.goto(f"{console_server.url}/login")
        if name is not None:
            sign_in(page, name, password)
            assert "/login" not in page.url, f"{name} could not sign in: {page.inner_text('main')}"
        return page

    yield open_page
    for context in contexts:
        context.close()


def sign_in(page: Page, name: str, password: str = PASSWORD) -> None:
    """Fill the /login form the page shows and submit it (waits for the page that answers)."""
    page.fill("#username", name)
    page.fill("#password", password)
    with page.expect_navigation():
        page.click("form[action='/login'] button[type=submit]")


@pytest.fixture(scope="package")
def artefacts() -> Path:
    """Where screenshots are kept after the run: CALLBACKD_BROWSER_ARTEFACTS, else tests/browser/artefacts
    (git-ignored); on PostgreSQL in a subfolder `postgresql`, so the second pass does not overwrite the first."""
    base = Path(os.environ.get("CALLBACKD_BROWSER_ARTEFACTS") or HERE / "artefacts")
    folder = base / "postgresql" if POSTGRES else base
    folder.mkdir(parents=True, exist_ok=True)
    return folder
