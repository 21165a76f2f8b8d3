"""The rounds pages in Chromium: a supervisor opens a week's round from /rounds, lands on the round with its seed
and callbacks, and verifies it."""

from __future__ import annotations

import re

from tests.conftest import case_row, write_csv

CASES = [f"BR-RD-{i}" for i in range(5)]


def test_a_supervisor_opens_a_round_from_the_rounds_page(console_server, signed_in, artefacts):
    # September cases of a demo window: the demo's own rounds are November's, so 2026-W37 draws only these
    rows = [case_row(case_no, console_server.other_window, phone=f"1370037{i:04d}", accepted="2026-09-07 09:00:00",
                     resolved="2026-09-08 10:00:00") for i, case_no in enumerate(CASES)]
    console_server.cli("ledger", "import", str(write_csv(console_server.workdir / "rounds-ledger.csv", rows)))

    page = signed_in("sup")
    page.goto(f"{console_server.url}/rounds")
    page.fill("#week", "2026-W37")
    page.fill("#seed", "browser-seed-37")
    page.select_option("#channel-1", "simulator")
    page.once("dialog", lambda dialog: dialog.accept())  # 确定开启该周的回访批次吗？
    with page.expect_navigation():
        page.click("form.open-round button[type=submit]")
    assert re.search(r"/rounds/\d+$", page.url), page.url
    main = page.locator("main").inner_text()
    assert "2026-W37" in main and "browser-seed-37" in main and "simulator" in main
    assert "共 5 条" in main and all(case_no in main for case_no in CASES)
    page.screenshot(path=str(artefacts / "round-opened.png"), full_page=True)

    with page.expect_navigation():
        page.click("form[action$='/verify'] button")
    assert "复核通过" in page.locator("main").inner_text()

    page.goto(f"{console_server.url}/rounds")
    assert "browser-seed-37" in page.locator("main").inner_text()
