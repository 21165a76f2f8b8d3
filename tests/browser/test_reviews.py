"""A supervisor issues a rectification's notice (整改通知单) from its page and prints it: the number it keeps, the
tools hidden on paper; the review queue is one click away in the menu."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from tests.browser.test_rectifications import rectification_of


def test_a_supervisor_issues_and_prints_a_rectification_notice(console_server, signed_in):
    rectification_id = rectification_of(console_server.database_url, console_server.window_id, "open")
    page = signed_in("sup")
    page.goto(f"{console_server.url}/rectifications/{rectification_id}")
    with page.expect_navigation():
        page.locator("a[data-notice-link]").click()
    with page.expect_navigation():
        page.get_by_role("button", name="出具整改通知单").click()
    number = page.locator("[data-notice-number]")
    expect(number).to_have_text(re.compile(r"^ZG-\d{4}-\d{6}$"))
    assert "致：" in page.inner_text("[data-notice]")
    page.emulate_media(media="print")
    expect(page.locator(".notice-tools")).to_be_hidden()
    expect(page.locator("[data-notice]")).to_be_visible()
    page.emulate_media(media="screen")
    page.goto(f"{console_server.url}/")
    with page.expect_navigation():
        page.get_by_role("link", name="审核").click()
    expect(page.locator("h1")).to_have_text("记录审核与签名确认")
