"""Notifications end to end: a 不满意 answer recorded by the real dispatcher (the simulator's applicant), written to
the outbox in its transaction, delivered by `callbackd notify --once` through the three notifier plugins to the
企业微信 and 钉钉 robots (a loopback emulator that checks 钉钉's signature as 钉钉 does) and to a real SMTP server on
loopback (aiosmtpd). Once per route, after a crash between the commit and the delivery too; retried, then reported;
gathered into a digest; never an applicant's name or number."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callbackd.core import clock
from callbackd.core.settings import load_settings
from callbackd.store import accounts, outbox
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, NotificationDelivery, Rectification
from tests.conftest import case_row, phone_for, write_csv
from tests.integration.notify_emulators import RobotEmulator, SmtpServer

pytestmark = pytest.mark.integration

MONDAY = "2026-11-23T10:00:00+08:00"
APPLICANTS = ["李四", "王五", "赵六"]
ROOT = Path(__file__).resolve().parents[2]


def configure(workdir: Path, robots: RobotEmulator, smtp: SmtpServer, notify: str = "") -> None:
    wecom = robots.add_wecom("窗口一组")
    dingtalk, secret = robots.add_dingtalk("窗口一组")
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(f"""
[channels.simulator]
no_answer_rate = 0.0
refuse_rate = 0.0
hang_up_rate = 0.0
suggestion_rate = 1.0
profiles = {{ "社保窗口" = [0, 0, 1] }}

[web]
public_url = "https://hui.example.gov.cn"

[notify]
{notify}

[notify.wecom.groups]
"窗口一组" = "{wecom}"

[notify.dingtalk.groups]
"窗口一组" = {{ webhook = "{dingtalk}", secret = "{secret}" }}

[notify.email]
host = "{smtp.host}"
port = {smtp.port}
starttls = false
from = "回访督办 <notice@example.gov.cn>"
""", encoding="utf-8")


def prepare(cli, workdir: Path, monkeypatch, count: int = 1) -> None:
    """A round of `count` cases of 社保窗口, and its head (on the group's two robots and by email) and a supervisor
    (by email)."""
    monkeypatch.setenv("CALLBACKD_NOW", MONDAY)
    rows = [case_row(f"A{n}", "社保窗口", applicant=APPLICANTS[n - 1], phone=phone_for(n)) for n in range(1, count + 1)]
    assert cli("ledger", "import", write_csv(workdir / "ledger.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "n").code == 0
    database = Database(load_settings().database_url)
    with database.session() as session:
        head = accounts.add_user(session, accounts.NewUser("wang", "window", ("社保窗口",), "correct horse 1"),
                                 clock.now())
        outbox.set_routes(session, head, ["wecom:窗口一组", "dingtalk:窗口一组", "email:wang@example.gov.cn"])
        boss = accounts.add_user(session, accounts.NewUser("zhao", "supervisor", (), "correct horse 2"), clock.now())
        outbox.set_routes(session, boss, ["email:duchake@example.gov.cn"])
    database.dispose()


def notify(cli, monkeypatch, when: str) -> dict:
    monkeypatch.setenv("CALLBACKD_NOW", when)
    run = cli("notify", "--once", "--json")
    assert run.code == 0, run.err
    return run.json()


def texts(robots: RobotEmulator, smtp: SmtpServer) -> list[str]:
    """Everything delivered, as text: robots' bodies and the mails' subjects and bodies."""
    found = [str(body) for body in robots.received()]
    found += [f"{mail.message['Subject']}\n{mail.message.get_content()}" for mail in smtp.messages]
    return found


def assert_no_applicant(robots: RobotEmulator, smtp: SmtpServer) -> None:
    for text in texts(robots, smtp):
        for n, name in enumerate(APPLICANTS, start=1):
            assert name not in text and phone_for(n)[-8:] not in text, text


def test_an_unsatisfied_answer_reaches_the_window_heads_group_once_after_a_crash(cli, workdir, monkeypatch, robots,
                                                                                smtp_server):
    configure(workdir, robots, smtp_server)
    prepare(cli, workdir, monkeypatch)
    # the embedded dispatcher records the 不满意 answers and the rectification they open, commits, and is killed
    # before anything tells anyone
    env = {**os.environ, "CALLBACKD_NOW": MONDAY, "PYTHONPATH": str(ROOT)}
    dispatcher = subprocess.Popen([sys.executable, "-m", "callbackd", "dispatch"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    database = Database(load_settings().database_url)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with database.session() as session:
                if session.scalar(select(func.count()).select_from(Rectification)):
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the dispatcher opened no rectification")
    finally:
        dispatcher.send_signal(signal.SIGKILL)
        dispatcher.wait()
    assert robots.received() == [] and smtp_server.messages == []

    report = notify(cli, monkeypatch, "2026-11-23T10:05:00+08:00")
    assert report["sent"] == 3 and report["failed"] == 0
    (wecom,) = robots.received("窗口一组", "wecom")
    (dingtalk,) = robots.received("窗口一组", "dingtalk")  # its signature checked by the emulator as 钉钉 does
    assert "【整改】社保窗口：新增整改一件" in wecom["markdown"]["content"]
    assert dingtalk["markdown"]["title"] == "【整改】社保窗口：新增整改一件"
    assert "https://hui.example.gov.cn/rectifications/1" in dingtalk["markdown"]["text"]
    (mail,) = smtp_server.messages
    assert mail.rcpt_tos == ["wang@example.gov.cn"] and mail.message["Subject"] == "【整改】社保窗口：新增整改一件"
    assert "办件：即办件 A1" in mail.message.get_content()

    assert notify(cli, monkeypatch, "2026-11-23T10:10:00+08:00")["sent"] == 0
    assert len(robots.received()) == 2 and len(smtp_server.messages) == 1  # once per route
    assert_no_applicant(robots, smtp_server)
    database.dispose()


def test_a_digest_sends_one_message_per_route_for_the_day(cli, workdir, monkeypatch, robots, smtp_server):
    configure(workdir, robots, smtp_server, notify='delivery = "digest"\ndigest_at = "09:00"')
    prepare(cli, workdir, monkeypatch, count=3)
    assert cli("dispatch", "--once").code == 0
    assert notify(cli, monkeypatch, "2026-11-23T16:00:00+08:00")["sent"] == 0  # waits for the next digest
    assert notify(cli, monkeypatch, "2026-11-24T09:00:30+08:00")["sent"] == 9  # 3 routes × 3 rectifications
    (wecom,) = robots.received("窗口一组", "wecom")
    content = wecom["markdown"]["content"]
    assert "11月24日待办汇总（3 条）" in content and content.count("新增整改一件") == 3
    assert [mail.message["Subject"] for mail in smtp_server.messages] == ["【回访督办】11月24日待办汇总（3 条）"]
    assert len(robots.received("窗口一组", "dingtalk")) == 1
    assert_no_applicant(robots, smtp_server)


def test_a_failing_robot_is_retried_then_gets_it(cli, workdir, monkeypatch, robots, smtp_server):
    configure(workdir, robots, smtp_server)
    prepare(cli, workdir, monkeypatch)
    assert cli("dispatch", "--once").code == 0
    robots.fail_next(2, robot="wecom", status=502)
    first = notify(cli, monkeypatch, "2026-11-23T10:05:00+08:00")
    assert (first["sent"], first["retried"]) == (2, 1)  # 钉钉 and email went; 企业微信 answered 502
    assert notify(cli, monkeypatch, "2026-11-23T10:06:05+08:00")["retried"] == 1  # a minute later: 502 again
    assert notify(cli, monkeypatch, "2026-11-23T10:07:00+08:00")["sent"] == 0  # the next try is 2 minutes on
    assert notify(cli, monkeypatch, "2026-11-23T10:08:10+08:00")["sent"] == 1
    assert len(robots.received("窗口一组", "wecom")) == 1


def test_a_robot_that_keeps_failing_is_reported(cli, workdir, monkeypatch, robots, smtp_server, caplog):
    configure(workdir, robots, smtp_server, notify="max_tries = 2")
    prepare(cli, workdir, monkeypatch)
    assert cli("dispatch", "--once").code == 0
    robots.fail_next(5, robot="dingtalk", errcode=130101, errmsg="send too fast, exceed 20 times per minute")
    notify(cli, monkeypatch, "2026-11-23T10:05:00+08:00")
    last = notify(cli, monkeypatch, "2026-11-23T10:06:05+08:00")
    assert last["failed"] == 1 and any(e.startswith("dingtalk:窗口一组: ") for e in last["errors"])
    database = Database(load_settings().database_url)
    with database.session() as session:
        failed = session.scalar(select(NotificationDelivery).where(NotificationDelivery.status == "failed"))
        assert (failed.route, failed.tries) == ("dingtalk:窗口一组", 2)
        assert "130101" in failed.error and "access_token=***" in failed.error  # the robot's key masked
        assert all(token not in failed.error for token in robots.dingtalk_tokens)
        (audited,) = session.scalars(select(AuditEvent).where(AuditEvent.action == "notify.failed"))
        assert audited.detail["route"] == "dingtalk:窗口一组"
    database.dispose()
    assert any("failed for good" in record.getMessage() for record in caplog.records)
    for record in caplog.records:  # the robot's key never in a log line
        assert all(token not in record.getMessage() for token in robots.dingtalk_tokens)
