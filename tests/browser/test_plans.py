"""A supervisor creates a callback plan (回访计划) in the browser, uploads its population and sees the import's counts;
the plan is listed with its members."""

from __future__ import annotations

import csv
from pathlib import Path

from playwright.sync_api import expect


def population(folder: Path) -> Path:
    """Two good members and one bad row (line 3: no name)."""
    path = folder / "业主名单.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([["姓名", "联系电话", "区域/楼栋", "负责人"], ["业主甲", "13900000031", "1栋", "王"],
                          ["", "13900000032", "1栋", "王"], ["业主丙", "13900000033", "2栋", "李"]])
    return path


def test_a_supervisor_creates_a_plan_and_uploads_its_population(console_server, signed_in, tmp_path, artefacts):
    page = signed_in("sup")
    page.goto(f"{console_server.url}/plans")
    page.fill("#plan-name", "浏览器月度回访")
    page.select_option("#plan-window", console_server.window)
    page.select_option("#plan-frequency", "monthly")
    page.fill("#plan-channels", "operator")
    with page.expect_navigation():
        page.click("form[action='/plans'] button[type=submit]")
    row = page.locator("table.plans tbody tr", has_text="浏览器月度回访")
    expect(row).to_contain_text("每月")
    row.locator("input[type=file]").set_input_files(str(population(tmp_path)))
    with page.expect_navigation():
        row.locator("button[type=submit]").click()
    report = page.locator("section.import-report")
    expect(report.locator("[data-count=imported]")).to_have_text("2")
    expect(report.locator("table.bad-rows tbody tr")).to_have_count(1)
    expect(report.locator("table.bad-rows tbody tr td").first).to_have_text("3")
    expect(page.locator("table.plans tbody tr", has_text="浏览器月度回访")).to_contain_text("2")
    page.screenshot(path=artefacts / "plans.png", full_page=True)
