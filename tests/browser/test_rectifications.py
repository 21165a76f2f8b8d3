"""A window head answers a rectification on a phone (390x844): the list, the rectification, the response form,
and what is stored (as `console:win`)."""

from __future__ import annotations

import re

from playwright.sync_api import expect
from sqlalchemy import select

from callbackd.store.db import Database
from callbackd.store.models import Rectification
from tests.browser.conftest import PHONE

RESPONSE = "已约谈窗口当班人员，调整叫号流程并加强业务培训。"


def rectification_of(database_url: str, window_id: int, status: str) -> int:
    database = Database(database_url)
    try:
        with database.session() as session:
            found = session.scalar(select(Rectification.id).where(Rectification.window_id == window_id,
                                                                  Rectification.status == status)
                                   .order_by(Rectification.id).limit(1))
    finally:
        database.dispose()
    assert found is not None, f"the demo left window {window_id} no {status} rectification"
    return found


def stored(database_url: str, rectification_id: int) -> tuple[str, str | None, str]:
    database = Database(database_url)
    try:
        with database.session() as session:
            found = session.get(Rectification, rectification_id)
            assert found is not None
            return found.status, found.responded_by, found.response
    finally:
        database.dispose()


def test_a_window_head_responds_to_a_rectification_on_a_phone(console_server, signed_in, artefacts):
    page = signed_in("win", viewport=PHONE)
    page.goto(f"{console_server.url}/rectifications?status=open")
    expect(page.locator("h1")).to_have_text("整改")
    first = page.locator("table.rectifications tbody a").first
    expect(first).to_be_visible()
    assert console_server.other_window not in page.inner_text("main")  # only the head's own windows
    with page.expect_navigation():
        first.click()
    rectification_id = int(re.search(r"/rectifications/(\d+)$", page.url).group(1))
    assert stored(console_server.database_url, rectification_id)[0] == "open"

    text = page.locator("#response-text")
    button = page.locator("form[data-rectification-response] button[type=submit]")
    expect(text).to_be_visible()
    # usable at this width: the field and the button within the screen, nothing wider than it to scroll sideways
    for element in (text, button):
        box = element.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    assert button.bounding_box()["height"] >= 40  # a finger's target
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    page.screenshot(path=artefacts / "rectification-respond-phone.png", full_page=True)

    text.fill(RESPONSE)
    with page.expect_navigation():
        button.click()
    assert page.url.endswith(f"/rectifications/{rectification_id}")
    expect(page.locator("main")).to_contain_text(RESPONSE)
    expect(page.locator("main")).to_contain_text("待验证")
    expect(page.locator("#response-text")).to_have_count(0)
    assert stored(console_server.database_url, rectification_id) == ("responded", "console:win", RESPONSE)
    page.screenshot(path=artefacts / "rectification-responded-phone.png", full_page=True)


def test_a_window_head_cannot_open_another_windows_rectification(console_server, signed_in):
    other = rectification_of(console_server.database_url, console_server.other_window_id, "open")
    page = signed_in("win", viewport=PHONE)
    response = page.goto(f"{console_server.url}/rectifications/{other}")
    assert response is not None and response.status == 404
    expect(page.locator("main h1")).to_have_text("未找到")
    assert stored(console_server.database_url, other)[0] == "open"
