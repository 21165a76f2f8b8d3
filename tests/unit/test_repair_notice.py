"""Repair follow-through within 24 hours: a case type due in clock hours (报修 = 24, across a weekend) beside working
days for others, and the printable rectification notice (整改通知单) with its own number, sequential per year."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from callbackd.app.synthetic import FORM_HEADER
from callbackd.contact.rectify import due_after
from callbackd.core.settings import Settings
from callbackd.rounds.calling import calendar_for
from callbackd.store.models import AuditEvent
from tests.conftest import write_csv

SHANGHAI = ZoneInfo("Asia/Shanghai")
FRIDAY_5PM = datetime(2026, 11, 27, 17, 0, tzinfo=SHANGHAI)


def test_a_repair_is_due_24_clock_hours_after_opening_even_across_a_weekend():
    settings = Settings()
    calendar = calendar_for(settings)
    # Friday 17:00 + 24 h = Saturday 17:00, a rest day
    assert due_after(settings, calendar, "报修", FRIDAY_5PM) == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    # others: 3 working days after Friday is Wednesday 2 December, to its end
    assert due_after(settings, calendar, "投诉", FRIDAY_5PM) == datetime(2026, 12, 2, 23, 59, 59,
                                                                       tzinfo=SHANGHAI).astimezone(UTC)
    hours = Settings(rectification={"due_hours_by_case_type": {"报修": 48}})
    assert due_after(hours, calendar_for(hours), "报修", FRIDAY_5PM) == datetime(2026, 11, 29, 17, 0, tzinfo=SHANGHAI)


def unhappy(cli, workdir, monkeypatch) -> dict[str, int]:
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    rows = [["社保窗口", "2026-11-23", "满意", "满意", "满意", "满意", "满意", "不满意", "请回电13800138000"],
            ["医保窗口", "2026-11-23", "不满意", "满意", "满意", "满意", "满意", "满意", "态度差"]]
    assert cli("results", "import", write_csv(workdir / "forms.csv", rows, header=FORM_HEADER), "--source",
               "onsite").code == 0
    return {r["window"]: r["id"] for r in cli("rectifications", "list", "--json").json()}


def test_the_notice_is_numbered_once_per_rectification_in_sequence(console, cli, workdir, monkeypatch, database):
    ids = unhappy(cli, workdir, monkeypatch)
    own, other = ids["社保窗口"], ids["医保窗口"]
    sup, win = console("sup"), console("win")
    before = sup.get(f"/rectifications/{own}/notice")
    assert before.status_code == 200 and "尚未出具" in before.text
    assert f'href="/rectifications/{own}/notice"' in sup.get(f"/rectifications/{own}").text
    assert sup.post(f"/rectifications/{own}/notice").status_code == 303
    assert sup.post(f"/rectifications/{other}/notice").status_code == 303
    assert sup.post(f"/rectifications/{own}/notice").status_code == 303  # issued once: keeps its number
    page = sup.get(f"/rectifications/{own}/notice")
    assert 'data-notice-number>ZG-2026-000001<' in page.text
    assert 'data-notice-number>ZG-2026-000002<' in sup.get(f"/rectifications/{other}/notice").text
    # the content: window, problem, deadline, issuer; the number in the suggestion starred, no name
    for text in ("社保窗口", "总体评价", "2026-11-26 23:59", "政务服务中心", "请回电"):
        assert text in page.text
    assert "13800138000" not in page.text and "张三" not in page.text
    assert '/static/notice.css' in page.text and "style=" not in page.text
    # the window head sees their own notice, not another window's; others have no part
    assert win.get(f"/rectifications/{own}/notice").status_code == 200
    assert win.get(f"/rectifications/{other}/notice").status_code == 404
    assert win.post(f"/rectifications/{own}/notice").status_code == 403
    assert console("op").get(f"/rectifications/{own}/notice").status_code == 403
    assert sup.get("/rectifications/99999/notice").status_code == 404
    with database.session() as session:
        issued = list(session.scalars(select(AuditEvent.subject).where(AuditEvent.action == "rectification.notice")
                                      .order_by(AuditEvent.id)))
    assert issued == ["ZG-2026-000001", "ZG-2026-000002"]


def test_the_sequence_starts_again_each_year(console, cli, workdir, monkeypatch, database):
    from callbackd.contact import notices

    ids = unhappy(cli, workdir, monkeypatch)
    settings = Settings()
    with database.session() as session:
        first = notices.issue(session, settings, ids["社保窗口"], datetime(2026, 12, 31, 15, 59, tzinfo=UTC))
        # 16:00 UTC on 31 December is already 2027 in Shanghai
        second = notices.issue(session, settings, ids["医保窗口"], datetime(2026, 12, 31, 16, 0, tzinfo=UTC))
        assert (first.number, second.number) == ("ZG-2026-000001", "ZG-2027-000001")
