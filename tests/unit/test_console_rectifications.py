"""The console's rectification pages: the list with its working-day countdown and filters, one rectification, the
window head's response, the supervisor's verification and the escalation list; who may see and do what."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from callbackd.app.synthetic import FORM_HEADER
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, Rectification, Window
from tests.conftest import case_row, phone_for, write_csv
from tests.unit.test_rectify import configure, dispatch, one_round

MONDAY = "2026-11-23T10:00:00+08:00"  # rectifications opened now are due at the end of Thursday 26 November
ROLES = ("sup", "op", "win", "lead", "adm")


def unhappy_forms(cli, workdir: Path, monkeypatch) -> dict[str, int]:
    """On-site forms with a 不满意 for 社保窗口 (the window head `win`'s) and 医保窗口: one rectification each,
    with nobody to call back (verified by hand). Their ids by window."""
    monkeypatch.setenv("CALLBACKD_NOW", MONDAY)
    forms = [["社保窗口", "2026-11-23", "满意", "满意", "满意", "满意", "满意", "不满意", "等太久"],
             ["医保窗口", "2026-11-23", "不满意", "满意", "满意", "满意", "满意", "满意", "态度差"]]
    run = cli("results", "import", write_csv(workdir / "forms.csv", forms, header=FORM_HEADER), "--source", "onsite")
    assert run.code == 0, run.err
    listed = cli("rectifications", "list", "--json").json()
    return {r["window"]: r["id"] for r in listed}


def stored(database: Database, rectification_id: int) -> Rectification:
    with database.session() as session:
        found = session.get(Rectification, rectification_id)
        assert found is not None
        session.expunge(found)
        return found


def events(database: Database, action: str) -> list[tuple[str, str]]:
    with database.session() as session:
        return [(e.actor, e.subject) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))]


def rows_of(html: str) -> list[str]:
    """The ids the list's table links to, in order."""
    return re.findall(r'<a href="/rectifications/(\d+)">', html)


# ---- who may use the pages ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/rectifications", "/rectifications/escalated"])
def test_only_the_supervisor_and_window_heads_see_the_lists(console, cli, workdir, monkeypatch, path):
    unhappy_forms(cli, workdir, monkeypatch)
    expected = {"sup": 200, "win": 200, "op": 403, "lead": 403, "adm": 403}
    assert {name: console(name).get(path).status_code for name in ROLES} == expected
    anonymous = console(None).get(path)
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_one_rectification_is_the_supervisors_or_its_own_window_heads(console, cli, workdir, monkeypatch):
    ids = unhappy_forms(cli, workdir, monkeypatch)
    own, other = ids["社保窗口"], ids["医保窗口"]
    expected = {"sup": 200, "win": 200, "op": 403, "lead": 403, "adm": 403}
    assert {name: console(name).get(f"/rectifications/{own}").status_code for name in ROLES} == expected
    win, sup = console("win"), console("sup")
    assert sup.get(f"/rectifications/{other}").status_code == 200
    # another window's rectification is as missing as one that does not exist
    refused, missing = win.get(f"/rectifications/{other}"), win.get("/rectifications/99999")
    assert refused.status_code == missing.status_code == 404
    assert "态度差" not in refused.text and "医保窗口" not in refused.text


def test_a_window_head_lists_only_their_windows(console, cli, workdir, monkeypatch, database):
    ids = unhappy_forms(cli, workdir, monkeypatch)
    with_other = console("sup").get("/rectifications")
    assert sorted(rows_of(with_other.text)) == sorted(str(i) for i in ids.values())
    win = console("win")
    page = win.get("/rectifications")
    assert rows_of(page.text) == [str(ids["社保窗口"])] and "医保窗口" not in page.text
    other_window = window_id(database, "医保窗口")
    assert win.get(f"/rectifications?window={other_window}").status_code == 404  # another window's filter
    assert win.get("/rectifications?window=99999").status_code == 404
    narrowed = console("sup").get(f"/rectifications?window={other_window}")
    assert rows_of(narrowed.text) == [str(ids["医保窗口"])]


def window_id(database: Database, name: str) -> int:
    with database.session() as session:
        found = session.scalar(select(Window.id).where(Window.name == name))
        assert found is not None
        return found


def test_bad_filters_and_ids_are_4xx_never_500(console, cli, workdir, monkeypatch):
    unhappy_forms(cli, workdir, monkeypatch)
    sup = console("sup")
    for path in ("/rectifications?status=done", "/rectifications?window=abc", "/rectifications/abc",
                 "/rectifications/0", "/rectifications/-1", "/rectifications/99999999999999999999999"):
        assert sup.get(path).status_code == 400, path
    assert sup.get("/rectifications/2147483647").status_code == 404
    assert sup.get("/rectifications?page=abc").status_code == 200
    assert sup.get("/rectifications?page=99").status_code == 200  # past the end: an empty page
    assert sup.post("/rectifications/99999999999999999999/verify", {"level": "满意"}).status_code == 400
    assert console("win").post("/rectifications/abc/respond", {"text": "x"}).status_code == 400


# ---- the list: due dates, working days left, filters ----------------------------------------------------


def test_the_list_counts_working_days_and_filters_by_status_and_overdue(console, cli, workdir, monkeypatch):
    ids = unhappy_forms(cli, workdir, monkeypatch)
    sup = console("sup")
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T09:00:00+08:00")  # Tuesday: Wednesday and Thursday left
    page = sup.get("/rectifications")
    assert "2026-11-26 23:59" in page.text and page.text.count("剩 2 个工作日") == 2
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-26T09:00:00+08:00")
    assert sup.get("/rectifications").text.count("今天到期") == 2
    assert rows_of(sup.get("/rectifications?overdue=1").text) == []
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-30T09:00:00+08:00")  # Monday after: Friday and Monday passed
    overdue = sup.get("/rectifications?overdue=1")
    assert len(rows_of(overdue.text)) == 2 and overdue.text.count("逾期 2 个工作日") == 2
    win = console("win")
    assert win.post(f"/rectifications/{ids['社保窗口']}/respond", {"text": "已整改"}).status_code == 303
    assert rows_of(sup.get("/rectifications?status=open").text) == [str(ids["医保窗口"])]
    assert rows_of(sup.get("/rectifications?status=responded").text) == [str(ids["社保窗口"])]
    assert rows_of(sup.get("/rectifications?status=closed").text) == []


def test_the_list_is_paginated(console, cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", MONDAY)
    forms = [["医保窗口", f"2026-11-{day:02d}", "不满意", "满意", "满意", "满意", "满意", "满意", f"第{n}份"]
             for n, day in enumerate([2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 16, 17, 18, 19, 20, 23, 16, 17, 18, 19, 20,
                                      2, 3, 4, 5], start=1)]
    assert cli("results", "import", write_csv(workdir / "f.csv", forms, header=FORM_HEADER),
               "--source", "onsite").code == 0
    sup = console("sup")
    first, second = sup.get("/rectifications"), sup.get("/rectifications?page=2")
    assert len(rows_of(first.text)) == 20 and len(rows_of(second.text)) == 5
    assert not set(rows_of(first.text)) & set(rows_of(second.text))
    assert "第 1 / 2 页" in first.text and 'href="/rectifications?page=2"' in first.text
    filtered = sup.get("/rectifications?status=open")
    assert 'href="/rectifications?status=open&amp;page=2"' in filtered.text


# ---- the window head's response -------------------------------------------------------------------------


def test_a_window_heads_response_is_stored_as_theirs(console, cli, workdir, monkeypatch, database):
    ids = unhappy_forms(cli, workdir, monkeypatch)
    own = ids["社保窗口"]
    win = console("win")
    form = win.get(f"/rectifications/{own}")
    assert f'action="/rectifications/{own}/respond"' in form.text and 'for="response-text"' in form.text
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T09:00:00+08:00")
    answered = win.post(f"/rectifications/{own}/respond", {"text": "  已约谈当事人，加强培训  "})
    assert answered.status_code == 303 and answered.headers["location"] == f"/rectifications/{own}"
    rectification = stored(database, own)
    assert (rectification.status, rectification.response) == ("responded", "已约谈当事人，加强培训")
    assert rectification.responded_by == "console:win" and rectification.on_time is True
    assert events(database, "rectification.respond") == [("console:win", f"rectification {own}")]
    shown = win.get(f"/rectifications/{own}")
    assert "已约谈当事人，加强培训" in shown.text and "待验证" in shown.text and "按时" in shown.text
    assert f'action="/rectifications/{own}/respond"' not in shown.text  # answered: no second form
    again = win.post(f"/rectifications/{own}/respond", {"text": "再次反馈"})
    assert again.status_code == 409 and "不能再提交反馈" in again.text
    assert stored(database, own).response == "已约谈当事人，加强培训"


def test_a_response_without_csrf_or_text_changes_nothing(console, cli, workdir, monkeypatch, database):
    own = unhappy_forms(cli, workdir, monkeypatch)["社保窗口"]
    win = console("win")
    assert win.post(f"/rectifications/{own}/respond", {"text": "已整改"}, csrf=False).status_code == 403
    assert win.post(f"/rectifications/{own}/respond", {"text": "已整改", "csrf_token": "forged"},
                    csrf=False).status_code == 403
    empty = win.post(f"/rectifications/{own}/respond", {"text": "   "})
    assert empty.status_code == 400 and "请填写整改情况" in empty.text
    assert stored(database, own).status == "open" and events(database, "rectification.respond") == []


def test_only_the_window_head_responds_and_only_for_their_windows(console, cli, workdir, monkeypatch, database):
    ids = unhappy_forms(cli, workdir, monkeypatch)
    for name in ("sup", "op", "lead", "adm"):
        assert console(name).post(f"/rectifications/{ids['社保窗口']}/respond", {"text": "x"}).status_code == 403
    assert console("win").post(f"/rectifications/{ids['医保窗口']}/respond", {"text": "x"}).status_code == 404
    assert console("win").post("/rectifications/99999/respond", {"text": "x"}).status_code == 404
    assert {stored(database, i).status for i in ids.values()} == {"open"}
    assert events(database, "rectification.respond") == []


# ---- the supervisor's verification and the escalation list ----------------------------------------------


def test_the_supervisor_verifies_by_hand_and_escalates(console, cli, workdir, monkeypatch, database):
    own = unhappy_forms(cli, workdir, monkeypatch)["社保窗口"]
    sup, win = console("sup"), console("win")
    early = sup.post(f"/rectifications/{own}/verify", {"level": "满意"})
    assert early.status_code == 409 and stored(database, own).status == "open"
    assert win.post(f"/rectifications/{own}/respond", {"text": "第一次整改"}).status_code == 303
    page = sup.get(f"/rectifications/{own}")
    assert f'action="/rectifications/{own}/verify"' in page.text
    for name in ("win", "op", "lead", "adm"):
        assert console(name).post(f"/rectifications/{own}/verify", {"level": "满意"}).status_code == 403
    assert sup.post(f"/rectifications/{own}/verify", {"level": "不满意"}, csrf=False).status_code == 403
    assert sup.post(f"/rectifications/{own}/verify", {"level": "很好"}).status_code == 400
    assert stored(database, own).status == "responded"
    # 不满意 twice: open again, then escalated to the supervisory unit ([rectification] max_loops = 2)
    assert sup.post(f"/rectifications/{own}/verify", {"level": "不满意", "note": "电话核实"}).status_code == 303
    assert (stored(database, own).status, stored(database, own).loops) == ("open", 1)
    assert win.post(f"/rectifications/{own}/respond", {"text": "第二次整改"}).status_code == 303
    assert sup.post(f"/rectifications/{own}/verify", {"level": "不满意"}).status_code == 303
    assert stored(database, own).status == "escalated"
    assert [actor for actor, _ in events(database, "rectification.escalate")] == ["console:sup"]
    escalated = sup.get("/rectifications/escalated")
    assert rows_of(escalated.text) == [str(own)] and "已上报督查" in escalated.text
    assert rows_of(win.get("/rectifications/escalated").text) == [str(own)]
    history = sup.get(f"/rectifications/{own}").text
    assert "上报督查" in history and "电话核实" in history and "第二次整改" in history


def test_a_verified_rectification_is_closed(console, cli, workdir, monkeypatch, database):
    own = unhappy_forms(cli, workdir, monkeypatch)["社保窗口"]
    assert console("win").post(f"/rectifications/{own}/respond", {"text": "已整改"}).status_code == 303
    assert console("sup").post(f"/rectifications/{own}/verify", {"level": "基本满意"}).status_code == 303
    assert stored(database, own).status == "closed"
    assert events(database, "rectification.close") == [("console:sup", f"rectification {own}")]
    assert rows_of(console("sup").get("/rectifications?status=closed").text) == [str(own)]


# ---- confidentiality ----------------------------------------------------------------------------------


def test_a_window_head_never_sees_an_informant_nor_a_reports_case(console, cli, workdir, monkeypatch):
    configure(workdir, (0, 0, 1))
    rows = [case_row("F1", "社保窗口", case_type="举报", matter="举报窗口人员吃拿卡要", applicant="王举报",
                     phone=phone_for(6)),
            case_row("G1", "社保窗口", matter="社保卡补办", applicant="李申请", phone=phone_for(7))]
    one_round(cli, workdir, monkeypatch, rows)
    dispatch(cli, monkeypatch, MONDAY)
    listed = {r["case_type"]: r["id"] for r in cli("rectifications", "list", "--json").json()}
    report, ordinary = listed["举报"], listed["即办件"]
    win = console("win")
    pages = [win.get("/rectifications").text, win.get(f"/rectifications/{report}").text]
    for text in pages:
        for secret in ("王举报", "F1", "吃拿卡要", phone_for(6), phone_for(6)[-4:]):
            assert secret not in text, secret
        assert "（保密）" in text
    ordinary_page = win.get(f"/rectifications/{ordinary}").text
    assert "G1" in ordinary_page and "李申请" not in ordinary_page and phone_for(7)[-4:] not in ordinary_page
    # the supervisory unit sees the case, never the applicant's name or number either
    supervised = console("sup").get(f"/rectifications/{report}").text
    assert "F1" in supervised and "王举报" not in supervised and phone_for(6)[-4:] not in supervised


def test_two_responses_at_once_record_one(cli, workdir, monkeypatch, database, people):
    """A double submit (two tabs, a retried request): the second finds the rectification answered."""
    import threading

    from callbackd.contact import rectify
    from callbackd.core.errors import CallbackdError
    from callbackd.core.settings import load_settings

    own = unhappy_forms(cli, workdir, monkeypatch)["社保窗口"]
    settings, now = load_settings(), datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
    outcomes: list[str] = []
    start = threading.Barrier(4)

    def respond(text: str) -> None:
        start.wait()
        try:
            with database.session() as session:
                rectify.respond(session, settings, own, text, now)
            outcomes.append("recorded")
        except CallbackdError:
            outcomes.append("refused")

    threads = [threading.Thread(target=respond, args=(f"整改措施 {i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["recorded", "refused", "refused", "refused"]
    rectification = stored(database, own)
    assert [step["step"] for step in rectification.history].count("responded") == 1
    assert len(events(database, "rectification.respond")) == 1
