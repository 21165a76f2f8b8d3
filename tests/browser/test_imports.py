"""A supervisor uploads a ledger with bad rows and sees each one reported by its line, as the CLI reports it; the
good rows are kept."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from playwright.sync_api import expect
from sqlalchemy import select

from callbackd.app.synthetic import HEADER
from callbackd.store.db import Database
from callbackd.store.models import Case
from tests.conftest import case_row


def ledger(folder: Path, window: str) -> Path:
    """Two good rows and two bad ones (line 3: a premium number; line 5: an unknown case type)."""
    when = {"accepted": "2026-11-03 09:05:00", "resolved": "2026-11-03 10:00:00"}
    rows = [
        case_row("BR-1", window, applicant="赵一", phone="13900000011", **when),
        case_row("BR-2", window, applicant="钱二", phone="16900000000", **when),
        case_row("BR-3", window, applicant="孙三", phone="13900000013", **when),
        case_row("BR-4", window, case_type="加急件", applicant="李四", phone="13900000014", **when),
    ]
    path = folder / "浏览器台帐.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


def test_a_supervisor_uploads_a_ledger_and_sees_its_bad_rows_by_line(console_server, signed_in, tmp_path, artefacts):
    path = ledger(tmp_path, console_server.window)
    # what the CLI reports for this file (--strict imports nothing and still prints its report)
    reported = console_server.cli("ledger", "import", str(path), "--strict", "--json", check=False)
    assert reported.returncode == 1
    expected = [(str(e["line"]), e["case_id"], e["reason"]) for e in json.loads(reported.stdout)["errors"]]
    assert [line for line, _, _ in expected] == ["3", "5"]

    page = signed_in("sup")
    page.goto(f"{console_server.url}/imports")
    page.select_option("#import-kind", "ledger")
    page.set_input_files("#import-file", str(path))
    with page.expect_navigation():
        page.click("form[action='/imports'] button[type=submit]")
    report = page.locator("section.import-report")
    expect(report).to_contain_text("浏览器台帐.csv")
    expect(report.locator("[data-count=imported]")).to_have_text("2")
    expect(report.locator("[data-count=errors]")).to_have_text("2")
    shown = [tuple(cell.strip() for cell in row.locator("td").all_inner_texts())
             for row in report.locator("table.bad-rows tbody tr").all()]
    assert shown == expected
    page.screenshot(path=artefacts / "imports-bad-rows.png", full_page=True)

    database = Database(console_server.database_url)
    try:
        with database.session() as session:
            kept = sorted(session.scalars(select(Case.case_no).where(Case.case_no.like("BR-%"))))
    finally:
        database.dispose()
    assert kept == ["BR-1", "BR-3"]
