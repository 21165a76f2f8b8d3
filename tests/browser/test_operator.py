"""The operator's queue in Chromium: a callback taken and completed with the keyboard alone (1/2/3 per question,
Enter saves), after which the page shows the next callback."""

from __future__ import annotations

from sqlalchemy import select

from callbackd.store.db import Database
from callbackd.store.models import Answer, Callback, Case, Contact
from tests.conftest import case_row, write_csv

CASES = [f"BR-OP-{i}" for i in range(3)]
PHONES = {case_no: f"1370013{i:04d}" for i, case_no in enumerate(CASES)}


def operator_callbacks(server) -> None:
    """Three October cases of a demo window, drawn by a round on the operator channel and placed by the dispatcher
    (the server's clock is a Friday at 10:00, inside calling hours): they wait on the operator queue."""
    rows = [case_row(case_no, server.other_window, phone=PHONES[case_no], accepted="2026-10-12 09:00:00",
                     resolved="2026-10-12 10:00:00") for case_no in CASES]
    ledger = write_csv(server.workdir / "operator-ledger.csv", rows)
    server.cli("ledger", "import", str(ledger))
    server.cli("round", "open", "--week", "2026-W42", "--seed", "browser-operator", "--channel", "operator")
    server.cli("dispatch", "--once")


def stored(server, case_no: str) -> tuple[str, list[tuple[str, str]]]:
    """A case's callback state and its answers (question, raw)."""
    database = Database(server.database_url)
    try:
        with database.session() as session:
            callback = session.scalar(select(Callback).join(Case, Case.id == Callback.case_id)
                                      .where(Case.case_no == case_no))
            assert callback is not None
            answers = session.execute(
                select(Answer.question, Answer.raw).join(Contact, Contact.id == Answer.contact_id)
                .where(Contact.callback_id == callback.id).order_by(Answer.question)).all()
            return callback.status, [(question, raw) for question, raw in answers]
    finally:
        database.dispose()


def test_an_operator_completes_a_callback_from_the_queue_with_the_keyboard_only(console_server, signed_in,
                                                                               artefacts):
    operator_callbacks(console_server)
    page = signed_in("op")
    page.goto(f"{console_server.url}/operator")
    take = page.locator("form[action='/operator/take'] button")
    assert "取下一个回访" in take.inner_text()
    take.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    first = page.locator(".case-no").inner_text().strip()
    assert first in CASES
    assert PHONES[first] not in page.locator("main").inner_text()  # masked until 显示号码

    page.locator("fieldset.question input[type=radio]").first.focus()  # the first question
    for key in "112131":
        page.keyboard.press(key)
    assert page.evaluate("document.activeElement.hasAttribute('data-after-questions')")
    page.screenshot(path=str(artefacts / "operator-answered.png"), full_page=True)
    with page.expect_navigation():
        page.keyboard.press("Enter")

    assert "回访结果已保存" in page.locator("main").inner_text()
    second = page.locator(".case-no").inner_text().strip()
    assert second in CASES and second != first  # the next callback, taken for the operator
    status, answers = stored(console_server, first)
    assert status == "completed"
    assert dict(answers) == {"attitude": "满意", "efficiency": "满意", "rules": "基本满意", "off_book": "满意",
                             "integrity": "不满意", "overall": "满意"}
    assert stored(console_server, second)[0] == "in_progress"
