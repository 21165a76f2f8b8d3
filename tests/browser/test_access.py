"""Who sees what, in a real browser: each role's menu and pages, 403 for another role's pages, 404 for another
window, no full phone number shown to anyone but an operator, signing out, CSRF refusals, the sign-in lockout, no
request to another origin, and screenshots of the dashboard and the ranking (desktop and phone)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import Page
from sqlalchemy import func, select

from callbackd.app.web.console.pages import MENU
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, Window
from tests.browser.conftest import ACCOUNTS, PASSWORD, PHONE, ConsoleServer, Requests, SignedIn, sign_in

# a full mainland mobile number, not part of a longer run of digits (case numbers, timestamps)
FULL_PHONE = re.compile(r"(?<!\d)1\d{10}(?!\d)")


def menu_of(page: Page) -> list[str]:
    """The paths the main menu links to, in order."""
    return [link.get_attribute("href") or "" for link in page.locator("nav[aria-label='主菜单'] a").all()]


def expected_menu(name: str) -> list[str]:
    return [path for path, _, roles in MENU if ACCOUNTS[name] in roles]


def status_of(page: Page, url: str) -> int:
    response = page.goto(url)
    assert response is not None, url
    return response.status


def window_names(server: ConsoleServer) -> dict[int, str]:
    database = Database(server.database_url)
    try:
        with database.session() as session:
            return {window_id: name for window_id, name in session.execute(select(Window.id, Window.name))}
    finally:
        database.dispose()


def audit_count(server: ConsoleServer, action: str, subject: str) -> int:
    database = Database(server.database_url)
    try:
        with database.session() as session:
            return int(session.scalar(select(func.count()).select_from(AuditEvent)
                                      .where(AuditEvent.action == action, AuditEvent.subject == subject)) or 0)
    finally:
        database.dispose()


@pytest.mark.parametrize("name", list(ACCOUNTS))
def test_each_role_sees_its_menu_and_its_pages_only(name: str, console_server: ConsoleServer,
                                                     signed_in: SignedIn) -> None:
    page = signed_in(name)
    assert status_of(page, f"{console_server.url}/") == 200
    assert page.locator("h1").count() >= 1
    assert name in page.locator("header").inner_text()  # who is signed in, beside 退出
    assert menu_of(page) == expected_menu(name)
    # a role's menu never links to a page the server refuses it; no full phone number on any page but an
    # operator's (who may reveal one)
    paths = ["/", *expected_menu(name)]
    if ACCOUNTS[name] in ("supervisor", "leader", "window"):
        paths += [f"/rankings/{console_server.month}", f"/windows/{console_server.window_id}"]
    for path in dict.fromkeys(paths):
        assert status_of(page, f"{console_server.url}{path}") == 200, path
        if ACCOUNTS[name] != "operator":
            assert FULL_PHONE.findall(page.content()) == [], path
    # every other role's page is refused in the browser, with the error page of the layout
    for path in {path for path, _, _ in MENU} - set(expected_menu(name)):
        assert status_of(page, f"{console_server.url}{path}") == 403, path
        assert page.locator("h1").inner_text() == "无权访问"
        assert menu_of(page) == expected_menu(name)


@pytest.mark.parametrize("name", ["op", "adm"])
def test_roles_without_scores_are_refused_the_ranking_and_window_pages(name: str, console_server: ConsoleServer,
                                                                      signed_in: SignedIn) -> None:
    page = signed_in(name)
    assert status_of(page, f"{console_server.url}/rankings/{console_server.month}") == 403
    assert status_of(page, f"{console_server.url}/windows/{console_server.window_id}") == 403


@pytest.mark.parametrize("name", ["sup", "lead"])
def test_supervisors_and_leaders_see_every_window(name: str, console_server: ConsoleServer,
                                                  signed_in: SignedIn) -> None:
    page = signed_in(name)
    assert status_of(page, f"{console_server.url}/rankings/{console_server.month}") == 200
    text = page.locator("main").inner_text()
    assert all(window in text for window in window_names(console_server).values())
    for window_id in (console_server.window_id, console_server.other_window_id):
        assert status_of(page, f"{console_server.url}/windows/{window_id}") == 200
        assert window_names(console_server)[window_id] in page.locator("h1").inner_text()
        # the month's 限时办结, on-site form quota and complaint rate beside the other indicators
        assert page.get_by_role("heading", name="本月超期件").is_visible()
        assert all(page.get_by_role("cell", name=label, exact=True).count() == 1
                   for label in ("按时办结率", "现场征求完成率", "投诉率"))


def test_a_window_head_sees_their_own_window_only(console_server: ConsoleServer, signed_in: SignedIn) -> None:
    page = signed_in("win")
    others = [name for window_id, name in window_names(console_server).items() if window_id != console_server.window_id]
    for path in ("/", f"/rankings/{console_server.month}", f"/windows/{console_server.window_id}"):
        assert status_of(page, f"{console_server.url}{path}") == 200, path
        html = page.content()
        assert console_server.window in html, path
        assert [name for name in others if name in html] == [], path
    # another window is not there at all for them (404, like an id that does not exist), nor a bad id a 500
    assert status_of(page, f"{console_server.url}/windows/{console_server.other_window_id}") == 404
    assert console_server.other_window not in page.content()
    assert status_of(page, f"{console_server.url}/windows/999999") == 404
    assert status_of(page, f"{console_server.url}/windows/not-a-number") == 400


def test_signing_out_ends_the_session(console_server: ConsoleServer, signed_in: SignedIn) -> None:
    page = signed_in("lead")
    with page.expect_navigation():
        page.get_by_role("button", name="退出").click()
    assert page.url.endswith("/login")
    assert page.locator("nav[aria-label='主菜单']").count() == 0
    # the old session is gone: every page sends the browser back to sign in
    page.goto(f"{console_server.url}/rankings/{console_server.month}")
    assert "/login" in page.url
    assert page.locator("#username").count() == 1


def test_a_form_with_an_altered_csrf_token_is_refused_and_changes_nothing(console_server: ConsoleServer,
                                                                          signed_in: SignedIn) -> None:
    name = f"csrf{uuid.uuid4().hex[:8]}"
    console_server.add_account(name, "leader")
    page = signed_in(name)
    logouts = audit_count(console_server, "logout", name)
    page.locator("form[action='/logout'] input[name=csrf_token]").evaluate("field => { field.value += 'x'; }")
    with page.expect_navigation() as answer:
        page.get_by_role("button", name="退出").click()
    assert answer.value is not None and answer.value.status == 403
    assert "CSRF" in page.locator("main").inner_text()
    # still signed in, and no sign-out recorded
    assert status_of(page, f"{console_server.url}/") == 200
    assert name in page.locator("header").inner_text()
    assert audit_count(console_server, "logout", name) == logouts


def test_the_sign_in_form_with_an_altered_csrf_token_signs_nobody_in(console_server: ConsoleServer,
                                                                     signed_in: SignedIn) -> None:
    page = signed_in(None)
    before = audit_count(console_server, "login", "sup")
    page.locator("form[action='/login'] input[name=csrf_token]").evaluate("field => { field.value = 'forged'; }")
    page.fill("#username", "sup")
    page.fill("#password", PASSWORD)
    with page.expect_navigation() as answer:
        page.click("form[action='/login'] button[type=submit]")
    assert answer.value is not None and answer.value.status == 403
    assert audit_count(console_server, "login", "sup") == before
    page.goto(f"{console_server.url}/")
    assert "/login" in page.url


def test_five_wrong_passwords_lock_the_name_even_for_the_right_one(console_server: ConsoleServer,
                                                                   signed_in: SignedIn) -> None:
    # an account of this test's own: the shared accounts are never locked
    name = f"lock{uuid.uuid4().hex[:8]}"
    console_server.add_account(name, "supervisor")
    page = signed_in(None)
    for attempt in range(5):
        page.fill("#username", name)
        page.fill("#password", f"wrong-password-{attempt}")
        with page.expect_navigation() as answer:
            page.click("form[action='/login'] button[type=submit]")
        assert answer.value is not None and answer.value.status == 401, attempt
        assert "用户名或密码错误" in page.locator("[role=alert]").inner_text()
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    with page.expect_navigation() as answer:
        page.click("form[action='/login'] button[type=submit]")
    assert answer.value is not None and answer.value.status == 429
    assert "锁定" in page.locator("[role=alert]").inner_text()
    page.goto(f"{console_server.url}/")
    assert "/login" in page.url  # not signed in
    # another account is not affected by this name's lockout
    sign_in(page, "sup")
    assert "/login" not in page.url


def test_the_console_loads_nothing_from_another_origin(console_server: ConsoleServer, signed_in: SignedIn) -> None:
    page = signed_in("sup")
    seen = Requests(console_server.url)
    page.on("request", seen.record)
    for path in ("/", f"/rankings/{console_server.month}", f"/windows/{console_server.window_id}"):
        response = page.goto(f"{console_server.url}{path}")
        assert response is not None and response.status == 200, path
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert any(url.startswith(f"{console_server.url}/static/") for url in seen.urls)  # its assets are its own
    assert seen.foreign() == []
    # and the check itself tells another origin from the console's own
    assert Requests(console_server.url, [f"{console_server.url}/static/x.css", "data:image/png;base64,AA",
                                         "https://cdn.example.com/x.js"]).foreign() == ["https://cdn.example.com/x.js"]


def test_screenshots_of_the_dashboard_and_the_ranking(console_server: ConsoleServer, signed_in: SignedIn,
                                                      artefacts: Path) -> None:
    desktop = signed_in("sup")
    shots = {
        "dashboard-1280.png": (desktop, "/"),
        "ranking-1280.png": (desktop, f"/rankings/{console_server.month}"),
        "dashboard-390.png": (signed_in("sup", viewport=PHONE), "/"),
    }
    for filename, (page, path) in shots.items():
        assert status_of(page, f"{console_server.url}{path}") == 200, path
        page.screenshot(path=str(artefacts / filename), full_page=True)
        assert (artefacts / filename).stat().st_size > 10_000, filename
    phone = shots["dashboard-390.png"][0]
    # the phone's page scrolls down, not sideways (wide tables scroll inside their own .table-wrap)
    assert phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
