"""Rectifications (整改): opened by 不满意 answers and unreachable complaints, due in working days, answered by the
window, verified by follow-up callbacks through the real dispatcher and simulator, closed or escalated."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from callbackd.api.manager import load_plugins
from callbackd.app.synthetic import FORM_HEADER
from callbackd.contact import rectify
from callbackd.contact.conversation import Conversation, open_conversation
from callbackd.core.settings import load_settings
from callbackd.core.workdays import Calendar, ProvisionalCalendarWarning
from callbackd.store.db import Database
from callbackd.store.models import Attempt, AuditEvent, Callback, Contact, Rectification
from tests.conftest import case_row, phone_for, write_csv

MONDAY = "2026-11-23T10:00:00+08:00"
DIMENSIONS = ["服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价"]


def configure(workdir: Path, profile: tuple[float, float, float], extra: str = "", **simulator: float) -> None:
    """The simulator answers every question of 社保窗口 by `profile` (满意, 基本满意, 不满意 shares)."""
    rates = {"no_answer_rate": 0.0, "refuse_rate": 0.0, "hang_up_rate": 0.0, "suggestion_rate": 1.0, **simulator}
    lines = [f"{key} = {value}" for key, value in rates.items()]
    shares = ", ".join(str(v) for v in profile)
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(
        extra + "[channels.simulator]\n" + "\n".join(lines) + f'\nprofiles = {{ "社保窗口" = [{shares}] }}\n',
        encoding="utf-8",
    )


def at(monkeypatch, when: str) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", when)


def one_round(cli, workdir: Path, monkeypatch, rows: list[list[str]]) -> None:
    at(monkeypatch, MONDAY)
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    opened = cli("round", "open", "--week", "2026-W48", "--seed", "r")
    assert opened.code == 0, opened.err


def dispatch(cli, monkeypatch, when: str) -> dict:
    at(monkeypatch, when)
    run = cli("dispatch", "--once", "--json")
    assert run.code == 0, run.err
    return run.json()


def listed(cli, *args: str) -> list[dict]:
    run = cli("rectifications", "list", "--json", *args)
    assert run.code == 0, run.err
    return run.json()


def respond(cli, monkeypatch, when: str, rectification: int, text: str = "已约谈当事人，加强培训") -> dict:
    at(monkeypatch, when)
    run = cli("rectifications", "respond", str(rectification), "--text", text, "--json")
    assert run.code == 0, run.err
    return run.json()


def audit_actions() -> list[str]:
    database = Database(load_settings().database_url)
    with database.session() as s:
        actions = list(s.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    database.dispose()
    return actions


def test_a_follow_up_loop_ending_satisfied(cli, workdir, monkeypatch):
    configure(workdir, (0, 0, 1))
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", applicant="李四", phone=phone_for(1))])
    first = dispatch(cli, monkeypatch, MONDAY)
    assert first["outcomes"] == {"completed": 1}
    assert first["rounds_closed"] == [1]  # every callback final: the dispatcher closes the round

    (opened,) = listed(cli)
    assert (opened["status"], opened["state"], opened["trigger"]) == ("open", "待整改", "回访不满意")
    assert opened["reason"] == "服务态度、办事效率、按章办事、体外循环、廉洁自律、总体评价不满意"
    assert opened["answers"]["总体评价"] == "不满意" and opened["case_id"] == "A1"
    # three working days after Monday 23 November: the end of Thursday 26 November
    assert opened["due_at"] == "2026-11-26T15:59:59+00:00" and opened["overdue"] is False
    text = json.dumps(opened, ensure_ascii=False)
    assert "李四" not in text and phone_for(1)[-4:] not in text

    responded = respond(cli, monkeypatch, "2026-11-24T09:00:00+08:00", opened["id"])
    assert responded["status"] == "responded" and responded["on_time"] is True
    follow_up = responded["follow_up_callback"]
    assert follow_up is not None
    assert [r["status"] for r in cli("round", "list", "--json").json()] == ["open"]  # a follow-up under way

    configure(workdir, (1, 0, 0))  # after the measures the applicant is satisfied
    again = dispatch(cli, monkeypatch, "2026-11-24T10:00:00+08:00")
    assert again["outcomes"] == {"completed": 1} and again["rounds_closed"] == [1]  # closed again
    (closed,) = listed(cli)
    assert (closed["status"], closed["follow_up"], closed["loops"]) == ("closed", "completed", 0)

    # the follow-up's answers verify the rectification; they are not a second contact in the score
    scored = cli("score", "--period", "2026-W48", "--json").json()
    social = next(w for w in scored["windows"] if w["window"] == "社保窗口")
    assert social["contacts"] == 1 and social["levels"]["不满意"] == 6
    database = Database(load_settings().database_url)
    with database.session() as s:
        assert s.scalar(select(Contact.source).where(Contact.callback_id == follow_up)) == "follow_up"
        assert s.get(Callback, follow_up).follow_up == 1
    database.dispose()
    assert [a for a in audit_actions() if a.startswith("rectification.")] == [
        "rectification.open", "rectification.respond", "rectification.close"]
    # the follow-up belongs to the round but was not drawn: the round still verifies and shows its one case
    verified = cli("round", "verify", "1", "--json")
    assert verified.code == 0 and verified.json()["ok"] is True
    assert cli("round", "show", "1", "--json").json()["windows"][0]["selected"] == ["A1"]
    listed_callbacks = cli("callbacks", "list", "--json").json()
    assert [(c["case_id"], c["follow_up"]) for c in listed_callbacks] == [("A1", 0), ("A1", 1)]


def test_a_follow_up_loop_ending_in_escalation(cli, workdir, monkeypatch):
    configure(workdir, (0, 0, 1))
    one_round(cli, workdir, monkeypatch, [case_row("B1", "社保窗口", phone=phone_for(2))])
    dispatch(cli, monkeypatch, MONDAY)
    (first,) = listed(cli)
    respond(cli, monkeypatch, "2026-11-23T11:00:00+08:00", first["id"])
    dispatch(cli, monkeypatch, "2026-11-24T10:00:00+08:00")
    (reopened,) = listed(cli)
    # still 不满意: open again, due three working days after the follow-up (Tuesday -> Friday)
    assert (reopened["status"], reopened["loops"], reopened["response"]) == ("open", 1, "")
    assert reopened["due_at"] == "2026-11-27T15:59:59+00:00"

    again = respond(cli, monkeypatch, "2026-11-24T11:00:00+08:00", first["id"], "更换经办人员")
    # the second follow-up calls the same applicant about the same case, and is the one the rectification awaits
    database = Database(load_settings().database_url)
    with database.session() as s:
        rectification = s.get(Rectification, first["id"])
        follow_up = s.get(Callback, again["follow_up_callback"])
        assert rectification is not None and follow_up is not None
        original = s.get(Callback, rectification.callback_id)
        assert (follow_up.case_id, follow_up.window_id) == (rectification.case_id, rectification.window_id)
        assert (follow_up.round_id, follow_up.phone, follow_up.follow_up) == (original.round_id, original.phone, 2)
        assert rectify.open_follow_up(s, rectification) is follow_up
        assert {k: v for k, v in rectification.history[-1].items() if k != "at"} == {
            "step": "follow_up", "callback": follow_up.id, "number": 2}
    database.dispose()
    dispatch(cli, monkeypatch, "2026-11-25T10:00:00+08:00")
    (escalated,) = listed(cli)
    assert (escalated["status"], escalated["state"], escalated["loops"]) == ("escalated", "已上报督查", 2)
    assert [step["step"] for step in escalated["history"]] == [
        "opened", "responded", "follow_up", "reopened", "responded", "follow_up", "escalated"]
    assert escalated["escalated_at"].startswith("2026-11-25")
    assert "rectification.escalate" in audit_actions()
    # nothing more to respond to
    late = cli("rectifications", "respond", str(first["id"]), "--text", "x")
    assert late.code == 1 and "escalated" in late.err and late.err.count("\n") == 1


def test_overdue_rectifications_are_flagged(cli, workdir, monkeypatch):
    configure(workdir, (0, 0, 1))
    one_round(cli, workdir, monkeypatch, [case_row("C1", "社保窗口", phone=phone_for(3))])
    dispatch(cli, monkeypatch, MONDAY)
    at(monkeypatch, "2026-11-26T23:00:00+08:00")
    assert listed(cli, "--overdue") == []
    at(monkeypatch, "2026-11-27T09:00:00+08:00")
    (overdue,) = listed(cli, "--overdue")
    assert overdue["overdue"] is True
    shown = cli("rectifications", "list")
    assert shown.code == 0 and "逾期" in shown.out
    late = respond(cli, monkeypatch, "2026-11-27T09:30:00+08:00", overdue["id"])
    assert late["on_time"] is False
    assert listed(cli, "--overdue") == []


def test_an_unreachable_complaint_opens_a_rectification_with_the_reason(cli, workdir, monkeypatch):
    configure(workdir, (1, 0, 0), no_answer_rate=1.0)
    rows = [case_row("D1", "社保窗口", case_type="投诉", matter="服务态度投诉", phone=phone_for(4)),
            case_row("D2", "社保窗口", phone=phone_for(5))]
    one_round(cli, workdir, monkeypatch, rows)
    for hour in ("10:00", "14:00", "16:00"):
        dispatch(cli, monkeypatch, f"2026-11-23T{hour}:00+08:00")
    (opened,) = listed(cli)  # only the complaint: an unreachable ordinary case opens nothing
    assert (opened["case_id"], opened["trigger"]) == ("D1", "投诉回访无法联系")
    assert opened["reason"] == "投诉回访无法联系：无人接听"
    # the callback itself carries its deadline (3 working days after resolution) and why it could not be made
    complaint = next(c for c in cli("callbacks", "list", "--json").json() if c["case_id"] == "D1")
    assert (complaint["rule"], complaint["reason"], complaint["reason_label"]) == ("投诉", "no_answer", "无人接听")
    assert complaint["due_at"] == "2026-11-06T02:00:00+00:00"  # resolved Tuesday 3 November 10:00
    shown = cli("callbacks", "list")
    assert "无人接听" in shown.out and "2026-11-06 10:00" in shown.out


def operator_round(cli, workdir: Path, monkeypatch, rows: list[list[str]], channel: str = "operator") -> None:
    """A round of `rows` through `channel`, dispatched on Monday: each callback's first attempt under way."""
    at(monkeypatch, MONDAY)
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    opened = cli("round", "open", "--week", "2026-W48", "--seed", "o", "--channel", channel)
    assert opened.code == 0, opened.err
    dispatch(cli, monkeypatch, MONDAY)


def converse(step: Callable[[Conversation], None]) -> None:
    """What the operator's call (or the applicant's SMS) came to, through the conversation of the one attempt."""
    settings, plugins = load_settings(), load_plugins()
    database = Database(settings.database_url)
    with database.session() as s:
        attempt_id = s.scalar(select(Attempt.id).order_by(Attempt.id.desc()).limit(1))
        step(open_conversation(s, settings, plugins, attempt_id, datetime(2026, 11, 23, 3, tzinfo=UTC)))
    database.dispose()


def statuses(cli) -> dict[str, tuple[str, str | None]]:
    return {c["case_id"]: (c["status"], c["reason"]) for c in cli("callbacks", "list", "--json").json()}


def test_a_complaint_with_an_invalid_number_opens_a_rectification_with_the_reason(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch, [case_row("H1", "社保窗口", case_type="投诉", phone=phone_for(9))])
    converse(lambda conversation: conversation.finish("invalid_number", "空号"))
    assert statuses(cli)["H1"] == ("invalid", "invalid_number")
    (opened,) = listed(cli)
    assert (opened["case_id"], opened["trigger"], opened["status"]) == ("H1", "投诉回访无法联系", "open")
    assert opened["reason"] == "投诉回访无法联系：空号或号码错误" and opened["answers"] == {}
    assert opened["due_at"] == "2026-11-26T15:59:59+00:00"
    assert [a for a in audit_actions() if a.startswith("rectification.")] == ["rectification.open"]


def test_a_complaint_no_channel_can_reach_opens_a_rectification(cli, workdir, monkeypatch):
    # a landline under an SMS-only plan: the callback cannot be placed at all, and closes when scheduled
    rows = [case_row("L1", "社保窗口", case_type="投诉", phone="010-65521234"),
            case_row("L2", "社保窗口", phone="010-65521235")]
    operator_round(cli, workdir, monkeypatch, rows, channel="twilio-sms")
    assert statuses(cli) == {"L1": ("invalid", "no_channel"), "L2": ("invalid", "no_channel")}
    (opened,) = listed(cli)  # only the complaint: an ordinary case that could not be made opens nothing
    assert (opened["case_id"], opened["trigger"]) == ("L1", "投诉回访无法联系")
    assert opened["reason"] == "投诉回访无法联系：无可用回访渠道"


def test_a_dissatisfied_answer_then_an_opt_out_opens_a_rectification(cli, workdir, monkeypatch):
    operator_round(cli, workdir, monkeypatch, [case_row("O1", "社保窗口", phone=phone_for(10))])

    def unhappy_then_opt_out(conversation: Conversation) -> None:
        conversation.pick_up()
        first = conversation.pending_ratings()[0]
        assert conversation.record(first.key, "不满意", "不满意")
        conversation.reply("退订")

    converse(unhappy_then_opt_out)
    assert statuses(cli)["O1"] == ("opted_out", "opted_out")
    (opened,) = listed(cli)
    assert (opened["case_id"], opened["trigger"], opened["reason"]) == ("O1", "回访不满意", "服务态度不满意")
    assert opened["answers"] == {"服务态度": "不满意"}
    # the answer counts in the score as well
    scored = cli("score", "--period", "2026-W48", "--json").json()
    assert scored["windows"][0]["levels"]["不满意"] == 1


def test_a_refused_complaint_without_a_dissatisfied_answer_opens_nothing(cli, workdir, monkeypatch):
    configure(workdir, (1, 0, 0), refuse_rate=1.0)
    one_round(cli, workdir, monkeypatch, [case_row("R1", "社保窗口", case_type="投诉", phone=phone_for(11))])
    assert dispatch(cli, monkeypatch, MONDAY)["outcomes"] == {"refused": 1}
    assert statuses(cli)["R1"] == ("refused", "refused")
    assert listed(cli) == []  # reached, and declined: nothing the window owes
    assert not [a for a in audit_actions() if a.startswith("rectification.")]


def test_an_operator_result_entered_later_counts_its_deadline_from_the_entry(cli, workdir, monkeypatch):
    at(monkeypatch, MONDAY)
    rows = [case_row("G1", "社保窗口", phone=phone_for(8))]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s", "--channel", "operator").code == 0
    dispatch(cli, monkeypatch, MONDAY)
    header = ["办件编号", "回访时间", *DIMENSIONS, "意见建议"]
    sheet = write_csv(workdir / "r.csv", [["G1", "2026-11-23 11:00", *(["满意"] * 5), "不满意", "办事拖拉"]],
                      header=header)
    at(monkeypatch, "2026-11-25T16:00:00+08:00")  # typed in on Wednesday
    assert cli("results", "import", sheet, "--source", "operator").code == 0
    (opened,) = listed(cli)
    assert opened["reason"] == "总体评价不满意" and opened["suggestion"] == "办事拖拉"
    # three working days from Wednesday's entry: Monday 30 November, not Thursday 26 from Monday's call
    assert opened["opened_at"].startswith("2026-11-25") and opened["due_at"] == "2026-11-30T15:59:59+00:00"
    # the answers still count in the week of the call
    scored = cli("score", "--period", "2026-W48", "--json").json()
    assert scored["windows"][0]["levels"]["不满意"] == 1


def test_an_operator_sheet_corrected_to_no_dissatisfied_answer_withdraws_its_rectification(cli, workdir, monkeypatch):
    at(monkeypatch, MONDAY)
    rows = [case_row("K1", "社保窗口", phone=phone_for(11)), case_row("K2", "社保窗口", phone=phone_for(12))]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s", "--channel", "operator").code == 0
    dispatch(cli, monkeypatch, MONDAY)
    header = ["办件编号", "回访时间", *DIMENSIONS, "意见建议"]

    def sheet(k1: str, k2: str):
        return write_csv(workdir / "r.csv", [["K1", "2026-11-23 11:00", *(["满意"] * 5), k1, ""],
                                             ["K2", "2026-11-23 11:10", *(["满意"] * 5), k2, ""]], header=header)

    assert cli("results", "import", sheet("不满意", "不满意"), "--source", "operator").code == 0
    k1, k2 = listed(cli)
    respond(cli, monkeypatch, "2026-11-24T09:00:00+08:00", k2["id"])  # the window answered K2's already

    # the operator keyed 不满意 for 满意 on both sheets' rows, and types the sheet in again corrected
    at(monkeypatch, "2026-11-24T10:00:00+08:00")
    corrected = cli("results", "import", sheet("满意", "满意"), "--source", "operator", "--json")
    assert corrected.code == 0 and corrected.json()["updated"] == 2
    now = {r["id"]: r for r in listed(cli)}
    assert (now[k1["id"]]["status"], now[k1["id"]]["state"]) == ("withdrawn", "已撤销")
    assert now[k1["id"]]["history"][-1]["step"] == "withdrawn" and not now[k1["id"]]["overdue"]
    assert now[k2["id"]]["status"] == "responded"  # goes on to its verification, the correction noted
    assert now[k2["id"]]["history"][-1] == {"step": "answers_corrected", "at": "2026-11-24T02:00:00+00:00",
                                            "dissatisfied": False}
    assert "rectification.withdraw" in audit_actions()
    late = cli("rectifications", "respond", str(k1["id"]), "--text", "x")
    assert late.code == 1 and "已撤销" in late.err
    assert [r["id"] for r in listed(cli, "--status", "withdrawn")] == [k1["id"]]
    # a withdrawn rectification owed no response: 整改按时率 counts K2's only, even once K1's due time has passed
    at(monkeypatch, "2026-12-10T10:00:00+08:00")
    indicators = cli("indicators", "--period", "2026-11", "--json")
    assert indicators.code == 0, indicators.err
    (window,) = indicators.json()["windows"]
    assert (window["rectifications_due"], window["rectifications_on_time"]) == (1, 1)

    # corrected back to 不满意: open again, due from the correction
    at(monkeypatch, "2026-12-10T10:00:00+08:00")
    assert cli("results", "import", sheet("不满意", "满意"), "--source", "operator").code == 0
    again = {r["id"]: r for r in listed(cli)}[k1["id"]]
    assert again["status"] == "open" and again["due_at"] == "2026-12-15T15:59:59+00:00"
    assert again["reason"] == "总体评价不满意" and len(listed(cli)) == 2


def test_a_form_without_an_applicant_to_call_is_verified_by_hand(cli, workdir, monkeypatch):
    at(monkeypatch, MONDAY)
    assert cli("ledger", "import", write_csv(workdir / "l.csv", [case_row("E1", "社保窗口")])).code == 0
    forms = [["社保窗口", "2026-11-23", "满意", "满意", "满意", "满意", "满意", "不满意", "等太久"]]
    path = write_csv(workdir / "forms.csv", forms, header=FORM_HEADER)
    assert cli("results", "import", path, "--source", "onsite").code == 0
    assert cli("results", "import", path, "--source", "onsite").code == 0  # re-import opens nothing twice
    (opened,) = listed(cli)
    assert opened["reason"] == "总体评价不满意" and opened["suggestion"] == "等太久" and opened["case_id"] is None
    early = cli("rectifications", "verify", str(opened["id"]), "--level", "满意")
    assert early.code == 1 and "only a responded one" in early.err
    responded = respond(cli, monkeypatch, "2026-11-24T09:00:00+08:00", opened["id"])
    assert responded["follow_up_callback"] is None
    bad = cli("rectifications", "verify", str(opened["id"]), "--level", "很好")
    assert bad.code == 1 and "满意, 基本满意 or 不满意" in bad.err
    verified = cli("rectifications", "verify", str(opened["id"]), "--level", "基本满意", "--json")
    assert verified.code == 0 and verified.json()["status"] == "closed"
    assert [r["id"] for r in listed(cli, "--status", "closed", "--window", "社保窗口")] == [opened["id"]]
    assert listed(cli, "--status", "open") == []
    wrong = cli("rectifications", "list", "--status", "done")
    assert wrong.code == 1 and "open, responded, closed, escalated" in wrong.err
    nowhere = cli("rectifications", "list", "--window", "无此窗口")
    assert nowhere.code == 1 and "无此窗口" in nowhere.err
    missing = cli("rectifications", "respond", "99", "--text", "x")
    assert missing.code == 1 and "no rectification 99" in missing.err


def test_an_informant_is_never_identified_to_the_window(cli, workdir, monkeypatch):
    configure(workdir, (0, 0, 1))
    rows = [case_row("F1", "社保窗口", case_type="举报", matter="举报窗口人员吃拿卡要", applicant="王举报",
                     phone=phone_for(6))]
    one_round(cli, workdir, monkeypatch, rows)
    dispatch(cli, monkeypatch, MONDAY)
    (opened,) = listed(cli)
    assert opened["case_type"] == "举报" and opened["case_id"] == "（保密）" and opened["suggestion"] == ""
    for output in (json.dumps(listed(cli), ensure_ascii=False), cli("rectifications", "list").out):
        assert "王举报" not in output and "F1" not in output and phone_for(6)[-4:] not in output
        assert "吃拿卡要" not in output
    # the supervisory unit's own listing hides the informant's name too, unless revealed (and audited)
    cases = cli("cases", "list", "--json").json()
    assert cases[0]["applicant"] == "（保密）"


def test_deadlines_over_holidays_make_up_days_and_the_year_end(workdir):
    settings = load_settings()
    calendar = Calendar.from_settings(settings)
    zone = settings.zone
    # opened on 30 September 2026: 1-7 October are off, Saturday 10 October is a make-up working day
    due = rectify.due_after(settings, calendar, "", datetime(2026, 9, 30, 15, tzinfo=zone))
    assert due.astimezone(zone) == datetime(2026, 10, 10, 23, 59, 59, tzinfo=zone)
    # the Spring Festival 2026: 15-23 February off, Saturday 14 February and 28 February are working days
    due = rectify.due_after(settings, calendar, "", datetime(2026, 2, 13, 15, tzinfo=zone))
    assert due.astimezone(zone).date() == calendar.add_workdays(datetime(2026, 2, 13).date(), 3)
    assert due.astimezone(zone).date() == datetime(2026, 2, 25).date()
    # across the year end into a year chinese-calendar does not know: an answer, with a visible warning
    with pytest.warns(ProvisionalCalendarWarning):
        due = rectify.due_after(settings, Calendar.from_settings(settings), "", datetime(2026, 12, 30, 9, tzinfo=zone))
    assert due.astimezone(zone) == datetime(2027, 1, 5, 23, 59, 59, tzinfo=zone)


def test_the_official_schedule_and_per_case_type_days_decide_the_deadline(workdir):
    (workdir / "config").mkdir()
    (workdir / "config" / "holidays.toml").write_text(
        '[years.2027]\nholidays = ["2027-01-01", "2027-01-04"]\nworkdays = ["2027-01-09"]\n', encoding="utf-8")
    (workdir / "config" / "callbackd.toml").write_text(
        '[rectification]\ndue_workdays_by_case_type = { "投诉" = 6 }\n', encoding="utf-8")
    settings = load_settings()
    calendar = Calendar.from_settings(settings)
    zone = settings.zone
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the official schedule answers: no provisional warning
        ordinary = rectify.due_after(settings, calendar, "即办件", datetime(2026, 12, 30, 9, tzinfo=zone))
        complaint = rectify.due_after(settings, calendar, "投诉", datetime(2026, 12, 30, 9, tzinfo=zone))
    # 31 Dec, (1 Jan off), (4 Jan off), 5 Jan, 6 Jan -> 6 January; six days: 7, 8 and the make-up Saturday 9 January
    assert ordinary.astimezone(zone).date() == datetime(2027, 1, 6).date()
    assert complaint.astimezone(zone).date() == datetime(2027, 1, 9).date()
