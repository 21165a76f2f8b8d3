"""The console's publications (publish, republish with its reason, the history) and audit trail (filters, pages,
rehearsals marked 演练, the CSV export through the CLI's writer, itself audited)."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select

from callbackd.store import audit
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, Publication

ROLES = ("sup", "op", "win", "lead", "adm")


def publications(database: Database) -> list[tuple[str, str | None, str, str]]:
    with database.session() as session:
        return [(p.period, p.active_period, p.published_by, p.reason)
                for p in session.scalars(select(Publication).order_by(Publication.id))]


def actions(database: Database, *names: str) -> list[tuple[str, str, str]]:
    with database.session() as session:
        return [(e.actor, e.action, e.subject) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(names)).order_by(AuditEvent.id))]


# ---- publications ---------------------------------------------------------------------------------------


def test_the_supervisor_and_leaders_read_publications(console):
    assert {name: console(name).get("/publications").status_code for name in ROLES} == {
        "sup": 200, "lead": 200, "op": 403, "win": 403, "adm": 403}
    assert 'method="post" action="/publications"' in console("sup").get("/publications").text
    read_only = console("lead").get("/publications").text
    assert 'method="post"' not in read_only.split("<main", 1)[1] and "/publications/republish" not in read_only


def test_the_supervisor_publishes_a_period(console, database):
    sup = console("sup")
    published = sup.post("/publications", {"period": " 2026-11 "})
    assert published.status_code == 303 and published.headers["location"] == "/publications?period=2026-11"
    assert publications(database) == [("2026-11", "2026-11", "console:sup", "")]
    assert actions(database, "publish") == [("console:sup", "publish", "period 2026-11")]
    history = sup.get("/publications?period=2026-11")
    assert "2026年11月" in history.text and "console:sup" in history.text and "现行" in history.text
    lead = console("lead").get("/publications?period=2026-11")
    assert lead.status_code == 200 and "现行" in lead.text
    again = sup.post("/publications", {"period": "2026-11"})
    assert again.status_code == 409 and "已经公示" in again.text
    assert len(publications(database)) == 1


def test_only_the_supervisor_publishes_and_only_with_csrf(console, database):
    for name in ("op", "win", "lead", "adm"):
        assert console(name).post("/publications", {"period": "2026-11"}).status_code == 403
        assert console(name).post("/publications/republish", {"period": "2026-11", "reason": "x"}).status_code == 403
    sup = console("sup")
    assert sup.post("/publications", {"period": "2026-11"}, csrf=False).status_code == 403
    assert sup.post("/publications", {"period": "2026-11", "csrf_token": "forged"}, csrf=False).status_code == 403
    assert publications(database) == [] and actions(database, "publish", "republish") == []


@pytest.mark.parametrize("period", ["2026-13", "November", "2026-W60", "", "2026-Q5", "9999-12-31"])
def test_a_bad_period_is_400_naming_the_expected_forms(console, database, period):
    sup = console("sup")
    for response in (sup.post("/publications", {"period": period}),
                     sup.post("/publications/republish", {"period": period, "reason": "更正"})):
        assert response.status_code == 400
        assert all(form in response.text for form in ("2026-W48", "2026-11", "2026-Q4", "2026（年）"))
    if period:
        assert sup.get(f"/publications?period={period}").status_code == 400
    assert publications(database) == []


def test_a_republish_needs_a_reason_and_keeps_the_earlier_publication(console, database):
    sup = console("sup")
    unpublished = sup.post("/publications/republish", {"period": "2026-W48", "reason": "更正"})
    assert unpublished.status_code == 409 and "尚未公示" in unpublished.text
    assert sup.post("/publications", {"period": "2026-w48"}).status_code == 303
    for reason in ("", "   "):
        refused = sup.post("/publications/republish", {"period": "2026-W48", "reason": reason})
        assert refused.status_code == 400 and "重新公示必须填写原因" in refused.text
    assert sup.post("/publications/republish", {"period": "2026-W48"}).status_code == 400
    assert publications(database) == [("2026-W48", "2026-W48", "console:sup", "")]
    assert actions(database, "republish") == []
    done = sup.post("/publications/republish", {"period": "2026-W48", "reason": "补录回访员结果"})
    assert done.status_code == 303
    assert publications(database) == [("2026-W48", None, "console:sup", ""),
                                      ("2026-W48", "2026-W48", "console:sup", "补录回访员结果")]
    assert [actor for actor, _, _ in actions(database, "republish")] == ["console:sup"]
    history = console("lead").get("/publications?period=2026-W48").text
    assert "补录回访员结果" in history and "已被更正" in history and "现行" in history


def test_every_publication_is_listed_newest_first_a_page_at_a_time(console, database):
    sup = console("sup")
    periods = [f"2026-{month:02d}" for month in range(1, 13)] + [f"2025-{month:02d}" for month in range(1, 12)]
    for period in periods:
        assert sup.post("/publications", {"period": period}).status_code == 303
    first, second = sup.get("/publications"), sup.get("/publications?page=2")
    listed = re.findall(r'<a href="/publications\?period=(\d{4}-\d{2})">', first.text)
    assert listed == list(reversed(periods))[:20]
    assert re.findall(r'<a href="/publications\?period=(\d{4}-\d{2})">', second.text) == list(reversed(periods))[20:]
    assert sup.get("/publications?page=x").status_code == 200


# ---- the audit trail ------------------------------------------------------------------------------------


def test_the_supervisor_and_the_admin_read_the_audit_trail(console):
    expected = {"sup": 200, "adm": 200, "op": 403, "win": 403, "lead": 403}
    assert {name: console(name).get("/audit").status_code for name in ROLES} == expected
    for name in ("op", "win", "lead"):
        assert console(name).post("/audit/export", {}).status_code == 403


def test_the_trail_filters_by_action_actor_and_day(console, database, monkeypatch):
    record(database, "round.open", "round 1", actor="console:sup")
    record(database, "export", "out.xlsx", actor="console:sup")
    record(database, "export", "other.xlsx", actor="console:adm")
    sup = console("sup")
    page = sup.get("/audit")
    assert "round 1" in page.text and "out.xlsx" in page.text and "other.xlsx" in page.text
    by_action = sup.get("/audit?action=export").text
    assert "round 1" not in by_action and "out.xlsx" in by_action and "other.xlsx" in by_action
    by_actor = sup.get("/audit?action=export&actor=adm").text
    assert "other.xlsx" in by_actor and "out.xlsx" not in by_actor
    assert "out.xlsx" not in sup.get("/audit?since=2999-01-01").text
    assert "out.xlsx" in sup.get("/audit?since=2000-01-01").text
    for bad in ("/audit?since=yesterday", "/audit?since=2026-13-01", f"/audit?actor={'x' * 101}"):
        assert sup.get(bad).status_code == 400, bad
    assert sup.get("/audit?actor=%25").status_code == 200  # a LIKE wildcard is a character like any other
    assert "out.xlsx" not in sup.get("/audit?actor=%25").text


def test_the_trail_is_paginated_newest_first(console, database):
    for n in range(60):
        record(database, "export", f"file-{n:02d}.xlsx", actor="console:sup")
    sup = console("sup")
    first, second = sup.get("/audit?action=export"), sup.get("/audit?action=export&page=2")
    shown = re.findall(r"file-(\d\d)\.xlsx", first.text)
    assert shown[0] == "59" and len(shown) == 50
    assert re.findall(r"file-(\d\d)\.xlsx", second.text) == [f"{n:02d}" for n in range(9, -1, -1)]
    assert 'href="/audit?action=export&amp;page=2"' in first.text


def test_rehearsal_entries_are_marked(console, database, monkeypatch):
    record(database, "export", "real.xlsx", actor="console:sup")
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T10:00:00+08:00")
    record(database, "export", "rehearsed.xlsx", actor="console:sup")
    monkeypatch.delenv("CALLBACKD_NOW")
    page = console("sup").get("/audit?action=export").text
    rows = {name: row for row in page.split("<tr")[1:] for name in ("real.xlsx", "rehearsed.xlsx") if name in row}
    assert "演练" in rows["rehearsed.xlsx"] and "2026-11-24 10:00:00" in rows["rehearsed.xlsx"]
    assert "演练" not in rows["real.xlsx"]


def test_the_export_is_the_clis_csv_neutralised_and_audited(console, database):
    console(None).sign_in("=HYPERLINK(\"http://evil.example\")", "wrong password")  # a failed sign-in, recorded
    record(database, "export", "+cmd|' /C calc'!A0", actor="console:sup")
    adm = console("adm")
    adm.get("/audit")
    exported = adm.post("/audit/export", {"action": "", "actor": "", "since": ""})
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    assert re.fullmatch(r'attachment; filename="callbackd-audit-\d{8}-\d{6}\.csv"',
                        exported.headers["content-disposition"])
    assert exported.content.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM, for Excel
    rows = list(csv.reader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert rows[0] == ["序号", "时间", "操作人", "操作", "对象", "详情", "演练", "演练时钟"]
    subjects = [row[4] for row in rows[1:]]
    assert "'=HYPERLINK(\"http://evil.example\")" in subjects and "'+cmd|' /C calc'!A0" in subjects
    assert not any(cell[:1] in ("=", "+", "-", "@") for row in rows[1:] for cell in row)
    ((actor, action, subject),) = actions(database, "audit.export")
    assert (actor, action) == ("console:adm", "audit.export")
    assert subject.startswith("console download callbackd-audit-")
    # the export takes the page's filter
    only = adm.post("/audit/export", {"action": "login.failed"})
    assert [row[3] for row in csv.reader(io.StringIO(only.content.decode("utf-8-sig")))][1:] == ["login.failed"]


def test_an_export_without_csrf_is_refused_and_not_recorded(console, database):
    sup = console("sup")
    assert sup.post("/audit/export", {}, csrf=False).status_code == 403
    assert sup.post("/audit/export", {"since": "not a day"}).status_code == 400
    assert actions(database, "audit.export") == []


def record(database: Database, action: str, subject: str, *, actor: str) -> None:
    with audit.acting_as(actor.removeprefix("console:")), database.session() as session:
        audit.record(session, action, subject)


def test_a_period_that_has_not_begun_cannot_be_published(console, monkeypatch, database):
    from sqlalchemy import func, select

    from callbackd.store.models import Publication

    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    client = console("sup")
    client.get("/publications")
    refused = client.post("/publications", {"period": "2099-01"})
    assert refused.status_code in (400, 409) and "2099-01" in refused.text
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Publication)) == 0


def test_a_published_week_is_frozen_while_its_month_and_year_say_they_stay_live(console, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-30T10:00:00+08:00")
    sup = console("sup")
    sup.get("/publications")
    assert "包含它的月、季度、年仍随回访结果实时更新" in sup.get("/publications").text
    done = sup.post("/publications", {"period": "2026-W48"})
    assert done.status_code == 303
    page = sup.get(done.headers["location"]).text  # what the supervisor sees once it is published
    items = re.findall(r'<li><span class="badge[^"]*">([^<]+)</span> ([^<]+) <a href="/rankings/([^"]+)"', page)
    assert [(badge, period) for badge, _, period in items] == [
        ("已冻结", "2026-W48"), ("实时", "2026-11"), ("实时", "2026-Q4"), ("实时", "2026")]
    assert items[0][1].startswith("2026年第48周排名已于2026-11-30 10:00由console:sup公示并冻结")
    assert items[1][1] == ("2026年11月排名随回访结果实时更新，尚未公示；"
                           "其中2026年第48周已于2026-11-30 10:00由console:sup公示并冻结。")

    lead = console("lead")
    month = lead.get("/rankings/2026-11").text
    assert "2026年11月排名随回访结果实时更新，尚未公示；其中2026年第48周已于2026-11-30 10:00" in month
    week = lead.get("/rankings/2026-W48").text
    assert "2026年第48周排名已于2026-11-30 10:00由console:sup公示并冻结" in week and "下表为公示版本" in week
    assert "尚未公示" not in week
    assert "2026年12月排名随回访结果实时更新，尚未公示。" in lead.get("/rankings/2026-12").text
