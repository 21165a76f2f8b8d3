"""Notifications to staff: written to the outbox in the transaction that caused them, delivered afterwards by
`callbackd notify --once` through a notifier plugin (the test recorder, `tests/unit/notify_recorder.py`), once per
route; retried and then reported; gathered into a daily digest; never an applicant's name or number."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from callbackd.core import clock
from callbackd.core.settings import load_settings
from callbackd.store import accounts, outbox
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, Notification, NotificationDelivery, User
from tests.conftest import case_row, phone_for, write_csv
from tests.unit.notify_recorder import received
from tests.unit.test_rectify import MONDAY, at, configure, dispatch, listed, one_round, respond

PASSWORD = "correct horse battery"


@pytest.fixture
def recorder(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(workdir / "received.jsonl")
    monkeypatch.setenv("CALLBACKD_LOAD_PLUGINS", "tests.unit.notify_recorder")
    monkeypatch.setenv("NOTIFY_RECORDER_FILE", path)
    return path


def staff(windows: tuple[str, ...] = ("社保窗口",)) -> None:
    """A window head on route recorder:head, a supervisor on recorder:duchake, a leader on recorder:leader, an
    admin on recorder:admin, and a disabled supervisor who must hear nothing."""
    settings = load_settings()
    database = Database(settings.database_url)
    database.ensure_schema()
    now = clock.now()
    with database.session() as session:
        for name, role, route, of in (("wang", "window", "recorder:head", windows),
                                      ("zhao", "supervisor", "recorder:duchake", ()),
                                      ("qian", "leader", "recorder:leader", ()), ("sun", "admin", "recorder:admin", ()),
                                      ("old", "supervisor", "recorder:gone", ())):
            user = accounts.add_user(session, accounts.NewUser(name, role, of, PASSWORD), now)
            outbox.set_routes(session, user, [route])
        session.flush()
        accounts.disable_user(session, "old")
    database.dispose()


def notify(cli, monkeypatch, when: str | None = None) -> dict:
    if when is not None:
        at(monkeypatch, when)
    run = cli("notify", "--once", "--json")
    assert run.code == 0, run.err
    return run.json()


def by_address(path: str) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for message in received(path):
        found.setdefault(message["address"], []).append(message)
    return found


def test_an_unsatisfied_answer_reaches_its_window_head_once(cli, workdir, monkeypatch, recorder):
    configure(workdir, (0, 0, 1), extra='[web]\npublic_url = "https://hui.example.gov.cn/"\n')
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", applicant="李四", phone=phone_for(1))])
    staff()
    assert dispatch(cli, monkeypatch, MONDAY)["outcomes"] == {"completed": 1}
    (opened,) = listed(cli)
    # written with the answer, delivered only now: the dispatch committed and ended before anyone was told
    assert received(recorder) == []

    report = notify(cli, monkeypatch)
    assert report["sent"] == 1 and report["failed"] == 0
    (message,) = received(recorder)
    assert message["address"] == "head"  # the window head's route alone: a new one is the window's to answer
    assert message["title"] == "【整改】社保窗口：新增整改一件"
    assert "办件：即办件 A1" in message["lines"]
    assert any(line.startswith("反馈期限：11月26日") for line in message["lines"])
    assert message["link"] == f"https://hui.example.gov.cn/rectifications/{opened['id']}"
    assert "李四" not in message["text"] and phone_for(1)[-4:] not in message["text"]

    assert notify(cli, monkeypatch)["sent"] == 0  # once
    assert len(received(recorder)) == 1
    (heard,) = received(recorder + ".hook")  # the notify hook heard of it once, with its routes
    assert heard["event"] == "rectification.opened" and heard["recipients"] == ["recorder:head"]
    assert heard["window"] == "社保窗口"


def test_a_report_names_no_case_and_no_informant(cli, workdir, monkeypatch, recorder):
    configure(workdir, (0, 0, 1))
    one_round(cli, workdir, monkeypatch, [case_row("J9", "社保窗口", case_type="举报", applicant="周五",
                                                   phone=phone_for(2))])
    staff()
    dispatch(cli, monkeypatch, MONDAY)
    notify(cli, monkeypatch)
    (message,) = received(recorder)
    assert "J9" not in message["text"] and "周五" not in message["text"] and phone_for(2)[-4:] not in message["text"]
    assert "办件：举报（保密）" in message["lines"]


def test_due_tomorrow_and_overdue_are_told_once_each(cli, workdir, monkeypatch, recorder):
    configure(workdir, (0, 0, 1))
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", phone=phone_for(1))])
    staff()
    dispatch(cli, monkeypatch, MONDAY)  # due Thursday 26 November, end of day
    notify(cli, monkeypatch)
    assert [m["title"] for m in received(recorder)] == ["【整改】社保窗口：新增整改一件"]

    notify(cli, monkeypatch, "2026-11-24T10:00:00+08:00")  # Tuesday: not due by tomorrow's end
    assert len(received(recorder)) == 1
    notify(cli, monkeypatch, "2026-11-25T10:00:00+08:00")  # Wednesday: due by the end of the next working day
    notify(cli, monkeypatch, "2026-11-25T11:00:00+08:00")
    soon = by_address(recorder)
    assert [m["title"] for m in soon["head"]][1:] == ["【整改即将到期】社保窗口：请于11月26日 23:59前反馈"]
    assert [m["title"] for m in soon["duchake"]] == ["【整改即将到期】社保窗口：请于11月26日 23:59前反馈"]

    notify(cli, monkeypatch, "2026-11-27T09:00:00+08:00")  # Friday: overdue
    notify(cli, monkeypatch, "2026-11-30T09:00:00+08:00")
    late = by_address(recorder)
    assert [m["title"] for m in late["head"]][2:] == ["【整改逾期】社保窗口：反馈期限11月26日 23:59已过"]
    assert [m["title"] for m in late["duchake"]][1:] == ["【整改逾期】社保窗口：反馈期限11月26日 23:59已过"]
    assert "gone" not in late  # a disabled account hears nothing
    (row,) = listed(cli, "--overdue")
    assert row["overdue"] is True


def test_a_failing_endpoint_is_retried_with_backoff_then_reported(cli, workdir, monkeypatch, recorder):
    configure(workdir, (0, 0, 1), extra="[notify]\nretry_minutes = 1\nmax_tries = 3\n")
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", phone=phone_for(1))])
    staff()
    dispatch(cli, monkeypatch, MONDAY)
    monkeypatch.setenv("NOTIFY_RECORDER_FAIL", "retry")
    first = notify(cli, monkeypatch, "2026-11-23T10:05:00+08:00")
    assert (first["sent"], first["retried"], first["failed"]) == (0, 1, 0)
    assert first["errors"] == ["recorder:head: the recorder is busy (HTTP 503)"]
    assert notify(cli, monkeypatch, "2026-11-23T10:05:30+08:00")["retried"] == 0  # not due again for a minute
    assert notify(cli, monkeypatch, "2026-11-23T10:06:10+08:00")["retried"] == 1  # try 2; the next in 2 minutes
    assert notify(cli, monkeypatch, "2026-11-23T10:07:30+08:00")["retried"] == 0
    last = notify(cli, monkeypatch, "2026-11-23T10:08:30+08:00")
    assert (last["retried"], last["failed"]) == (0, 1)
    settings = load_settings()
    database = Database(settings.database_url)
    with database.session() as session:
        delivery = session.scalar(select(NotificationDelivery))
        assert (delivery.status, delivery.tries) == ("failed", 3)
        assert delivery.error == "the recorder is busy (HTTP 503)"
        failed = session.scalars(select(AuditEvent).where(AuditEvent.action == "notify.failed")).all()
        assert [event.detail["route"] for event in failed] == ["recorder:head"]
    database.dispose()
    monkeypatch.delenv("NOTIFY_RECORDER_FAIL")
    assert notify(cli, monkeypatch, "2026-11-23T11:00:00+08:00")["sent"] == 0  # failed for good stays failed
    assert received(recorder) == []


def test_a_permanent_failure_is_not_tried_again(cli, workdir, monkeypatch, recorder):
    configure(workdir, (0, 0, 1))
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", phone=phone_for(1))])
    staff()
    dispatch(cli, monkeypatch, MONDAY)
    monkeypatch.setenv("NOTIFY_RECORDER_FAIL", "permanent")
    report = notify(cli, monkeypatch)
    assert (report["retried"], report["failed"]) == (0, 1)


def test_an_unknown_notifier_fails_its_delivery_and_names_it(cli, workdir, monkeypatch, recorder):
    configure(workdir, (0, 0, 1), extra='[notify]\nroles = { window = ["pager:7"] }\n')
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", phone=phone_for(1))])
    staff()
    dispatch(cli, monkeypatch, MONDAY)
    report = notify(cli, monkeypatch)
    assert report["sent"] == 1 and report["failed"] == 1  # the head's own route still got it
    assert any(error.startswith("pager:7: no notifier named 'pager'") for error in report["errors"])


def test_a_digest_gathers_a_working_day_into_one_message_per_route(cli, workdir, monkeypatch, recorder):
    configure(workdir, (0, 0, 1), extra='[notify]\ndelivery = "digest"\ndigest_at = "09:00"\n')
    one_round(cli, workdir, monkeypatch, [case_row(f"A{n}", "社保窗口", phone=phone_for(n)) for n in range(1, 4)])
    staff()
    dispatch(cli, monkeypatch, MONDAY)
    assert len(listed(cli)) == 3
    assert notify(cli, monkeypatch, "2026-11-23T15:00:00+08:00")["sent"] == 0  # held for Tuesday's digest
    report = notify(cli, monkeypatch, "2026-11-24T09:01:00+08:00")
    assert report["sent"] == 3  # three deliveries, one message
    (message,) = received(recorder)
    assert message["address"] == "head"
    assert message["title"] == "【回访督办】11月24日待办汇总（3 条）"
    assert message["lines"] == ["· 【整改】社保窗口：新增整改一件"] * 3
    assert notify(cli, monkeypatch, "2026-11-24T12:00:00+08:00")["sent"] == 0


def test_an_escalation_reaches_supervisors_and_leaders_at_once_even_in_digest_mode(cli, workdir, monkeypatch,
                                                                                recorder):
    extra = '[notify]\ndelivery = "digest"\n[rectification]\nmax_loops = 1\n'
    configure(workdir, (0, 0, 1), extra=extra)
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", phone=phone_for(1))])
    staff()
    dispatch(cli, monkeypatch, MONDAY)
    (opened,) = listed(cli)
    respond(cli, monkeypatch, "2026-11-24T09:00:00+08:00", opened["id"])
    configure(workdir, (0, 0, 1), extra=extra)
    dispatch(cli, monkeypatch, "2026-11-24T10:00:00+08:00")  # the follow-up still 不满意: escalated
    (escalated,) = listed(cli)
    assert escalated["status"] == "escalated"
    notify(cli, monkeypatch, "2026-11-24T10:30:00+08:00")
    got = by_address(recorder)
    assert got["leader"][0]["title"] == "【整改上报】社保窗口：整改经1次回访仍不满意"
    assert got["duchake"][0]["title"] == "【整改上报】社保窗口：整改经1次回访仍不满意"
    # Monday's opening went out in Tuesday's 09:00 digest, which this first run after it sent
    assert [m["title"] for m in got["head"]] == ["【回访督办】11月24日待办汇总（1 条）"]
    events = [heard["event"] for heard in received(recorder + ".hook")]
    assert events == ["rectification.opened", "rectification.escalated"]


def test_a_follow_up_that_could_not_be_made_is_overdue_and_told(cli, workdir, monkeypatch, recorder):
    configure(workdir, (0, 0, 1))
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", phone=phone_for(1))])
    staff()
    dispatch(cli, monkeypatch, MONDAY)
    (opened,) = listed(cli)
    respond(cli, monkeypatch, "2026-11-24T09:00:00+08:00", opened["id"])
    configure(workdir, (0, 0, 1), no_answer_rate=1.0)  # nobody answers the follow-up, however often it is tried
    for day in ("24", "25"):
        for hour in ("10", "13", "15", "17", "19"):
            dispatch(cli, monkeypatch, f"2026-11-{day}T{hour}:00:00+08:00")
    (row,) = listed(cli)
    assert row["status"] == "responded" and row["follow_up"] == "unreachable"
    assert row["overdue"] is True  # awaiting a verification by hand: late, not merely "responded"
    assert [r["id"] for r in listed(cli, "--overdue")] == [opened["id"]]
    notify(cli, monkeypatch)
    titles = [m["title"] for m in by_address(recorder)["duchake"]]
    assert "【整改逾期】社保窗口：整改回访未能联系，待人工验证" in titles


def test_a_round_closed_below_its_completion_target_is_told(cli, workdir, monkeypatch, recorder):
    configure(workdir, (1, 0, 0), no_answer_rate=1.0)
    one_round(cli, workdir, monkeypatch, [case_row(f"A{n}", "社保窗口", phone=phone_for(n)) for n in range(1, 3)])
    staff()
    closed: list[int] = []
    for day in ("23", "24"):
        for hour in ("10", "13", "15", "17", "19"):
            closed += dispatch(cli, monkeypatch, f"2026-11-{day}T{hour}:00:00+08:00")["rounds_closed"]
    assert closed == [1]  # by the dispatch that made its last callback final
    monkeypatch.delenv("CALLBACKD_NOW")
    notify(cli, monkeypatch)
    (message,) = by_address(recorder)["duchake"]
    assert message["title"] == "【回访完成率未达标】2026-W48 回访批次已结束"
    assert message["lines"] == ["完成 0/2（0%），目标 80%"]


def test_a_refused_ledger_is_reported_to_supervisors_and_admins(cli, workdir, monkeypatch, recorder):
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", phone=phone_for(1))])
    staff()
    bad = workdir / "bad.csv"
    bad.write_text("这不是台帐\n1,2,3\n", encoding="utf-8")
    assert cli("ledger", "import", str(bad)).code == 1
    notify(cli, monkeypatch)
    got = by_address(recorder)
    assert set(got) == {"duchake", "admin"}
    assert got["admin"][0]["title"] == "【任务失败】台帐导入 bad.csv"
    assert got["admin"][0]["lines"][0].startswith("错误：")


def test_a_deliverer_killed_while_sending_leaves_it_to_the_next_run(cli, workdir, monkeypatch, recorder):
    """A crash after the delivery was taken and before it was sent: the next run after the hold sends it, once."""
    configure(workdir, (0, 0, 1))
    one_round(cli, workdir, monkeypatch, [case_row("A1", "社保窗口", phone=phone_for(1))])
    staff()
    dispatch(cli, monkeypatch, MONDAY)
    env = {**os.environ, "NOTIFY_RECORDER_SLEEP": "30", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    deliverer = subprocess.Popen([sys.executable, "-m", "callbackd", "notify", "--once"], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = Database(load_settings().database_url)
    try:
        for _ in range(300):  # until the deliverer has taken the delivery
            with database.session() as session:
                if session.scalar(select(NotificationDelivery.status)) == "sending":
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the deliverer never took the delivery")
    finally:
        deliverer.send_signal(signal.SIGKILL)
        deliverer.wait()
    assert received(recorder) == []
    assert notify(cli, monkeypatch, "2026-11-23T10:02:00+08:00")["sent"] == 0  # still held by the dead deliverer
    assert notify(cli, monkeypatch, "2026-11-23T10:10:00+08:00")["sent"] == 1
    assert notify(cli, monkeypatch, "2026-11-23T10:20:00+08:00")["sent"] == 0
    assert len(received(recorder)) == 1
    with database.session() as session:
        assert session.scalar(select(NotificationDelivery.status)) == "sent"
        assert session.scalar(select(Notification.event)) == "rectification.opened"
    database.dispose()


def test_users_notify_sets_checked_routes(cli, workdir, recorder):
    assert cli("ledger", "import", write_csv(workdir / "l.csv", [case_row("A1", "社保窗口")])).code == 0
    staff()
    assert cli("users", "notify", "wang", "--route", "email:wang@example.gov.cn", "--route", "wecom:窗口一组").code == 0
    listed_users = {u["name"]: u for u in cli("users", "list", "--json").json()}
    assert listed_users["wang"]["notify_routes"] == ["email:wang@example.gov.cn", "wecom:窗口一组"]
    bad = cli("users", "notify", "wang", "--route", "Email wang")
    assert bad.code == 1 and "is not a route such as" in bad.err
    assert cli("users", "notify", "nobody", "--route", "wecom").code == 1
    assert cli("users", "notify", "wang", "--clear").code == 0
    database = Database(load_settings().database_url)
    with database.session() as session:
        assert session.scalar(select(User.notify_routes).where(User.name == "wang")) == []
    database.dispose()


def test_a_test_message_says_whether_it_got_through(cli, recorder, monkeypatch):
    sent = cli("notify", "--test", "recorder:ops", "--json")
    assert sent.code == 0 and json.loads(sent.out) == {"route": "recorder:ops", "sent": True}
    assert received(recorder)[0]["title"] == "【测试】回访系统通知测试"
    monkeypatch.setenv("NOTIFY_RECORDER_FAIL", "permanent")
    refused = cli("notify", "--test", "recorder:ops")
    assert refused.code == 1 and refused.err.strip() == "error: recorder:ops: the recorder refuses this address"
    unknown = cli("notify", "--test", "pager")
    assert unknown.code == 1 and "no notifier named 'pager'" in unknown.err


@pytest.fixture
def robot_keys(workdir: Path) -> tuple[str, str]:
    """Settings naming a 企业微信 robot's key and a 钉钉 robot's secret in the file."""
    key, secret = "5f3e0c1a-key-of-the-supervisors-robot", "SEC0123456789abcdef-secret"
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(
        f'[notify]\nround_completion_target = 0.9\n[notify.wecom]\n'
        f'webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={key}"\n'
        f'[notify.dingtalk]\nsecret = "{secret}"\n', encoding="utf-8")
    return key, secret


def test_the_admin_page_names_the_notifiers_but_never_their_keys(robot_keys, console):
    page = console("adm").get("/")
    assert page.status_code == 200
    assert "notify.wecom" in page.text and "notify.dingtalk" in page.text
    assert "round_completion_target" in page.text
    for secret in robot_keys:
        assert secret not in page.text


def test_indicator_alerts_of_the_finished_month_are_told_once(cli, workdir, monkeypatch, recorder):
    configure(workdir, (1, 0, 0))
    rows = [case_row("T1", "社保窗口", case_type="投诉", phone=phone_for(1)),
            case_row("A2", "社保窗口", phone=phone_for(2))]
    one_round(cli, workdir, monkeypatch, rows)  # a month whose complaints are half its cases: over the 1% target
    staff()
    notify(cli, monkeypatch, "2026-12-01T09:30:00+08:00")
    alerts = [m for m in received(recorder) if m["title"].startswith("【指标预警】")]
    assert {m["address"] for m in alerts} == {"head", "duchake"}
    (told,) = [m for m in alerts if m["address"] == "head"]
    assert told["title"] == "【指标预警】社保窗口（2026年11月）"
    assert any("投诉率" in line for line in told["lines"])
    notify(cli, monkeypatch, "2026-12-01T10:30:00+08:00")
    notify(cli, monkeypatch, "2026-12-02T10:30:00+08:00")
    assert len([m for m in received(recorder) if m["title"].startswith("【指标预警】社保窗口（2026年11月）")]) == 2


@pytest.fixture
def supervisors_on_the_recorder(workdir: Path, recorder: str) -> str:
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text('[notify]\nroles = { supervisor = ["recorder:duchake"] }\n',
                                                       encoding="utf-8")
    return recorder


def test_a_file_the_console_cannot_read_is_reported_to_the_supervisors(supervisors_on_the_recorder, console, cli,
                                                                       workdir, monkeypatch):
    bad = workdir / "坏台帐.csv"
    bad.write_text("这不是台帐\n1,2,3\n", encoding="utf-8")
    page = console("sup").post("/imports", {"kind": "ledger"},
                               files={"file": ("坏台帐.csv", bad.read_bytes(), "text/csv")})
    assert page.status_code == 400
    notify(cli, monkeypatch)
    # (the real date's finished week and month also bring the windows' on-site form alerts)
    (told,) = [m for m in received(supervisors_on_the_recorder) if m["title"].startswith("【任务失败】")]
    assert told["title"] == "【任务失败】台帐导入 坏台帐.csv"
    assert told["address"] == "duchake"
    assert "/tmp" not in told["text"]  # the upload's private copy is never named
