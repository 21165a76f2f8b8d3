"""The notifier plugins end to end: `wecom`, `dingtalk` and `email`, loaded through their entry points, deliver
messages to the robots' emulator (which checks 企业微信's keys and 钉钉's 加签 as they do) and to a real SMTP
server (aiosmtpd) on loopback, with and without STARTTLS and a login; every refusal comes back as a
`DeliveryError`, permanent or not as its cause says, and no key, token, secret or password ever shows in an error
or in `callbackd plugins list`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from callbackd.api import ConfigError, DeliveryError, Message, Notifier, Settings
from callbackd.api.manager import load_plugins
from callbackd.core.settings import load_settings
from tests.integration.notify_emulators import RobotEmulator, SmtpServer, start_smtp

pytestmark = [pytest.mark.integration, pytest.mark.no_database]

MESSAGE = Message(
    title="整改逾期：窗口一组",
    lines=("办件 BJ-2026-0412 的整改已逾期 1 个工作日", "请于今日内提交整改反馈 *注意*"),
    link="https://callbackd.example.gov.cn/rectifications/12",
)
SMTP_USER, SMTP_PASSWORD = "notice@example.gov.cn", "Smtp-Pa55word-Not-Shown"


def configure(workdir: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Settings:
    """The settings in force with `text` as the configuration file."""
    path = workdir / "notify.toml"
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("CALLBACKD_CONFIG", str(path))
    return load_settings()


def notifier(name: str) -> Notifier:
    found = load_plugins().notifier(name)
    assert isinstance(found, Notifier)
    return found


def failure(name: str, address: str, settings: Settings, message: Message = MESSAGE) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        notifier(name).deliver(address, message, settings)
    return caught.value


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the probe is closed


# ---- 企业微信 -------------------------------------------------------------------------------------------------


def test_wecom_delivers_markdown_to_the_default_robot(workdir, monkeypatch, robots: RobotEmulator):
    url = robots.add_wecom("督查科")
    settings = configure(workdir, monkeypatch, f'[notify.wecom]\nwebhook = "{url}"\n')
    notifier("wecom").deliver("", MESSAGE, settings)
    [body] = robots.received("督查科")
    assert body == {"msgtype": "markdown", "markdown": {"content": MESSAGE.markdown()}}
    content = body["markdown"]["content"]
    assert content.startswith("**整改逾期：窗口一组**")
    assert "\\*注意\\*" in content  # a line's own markdown is escaped
    assert content.endswith(f"[在控制台查看]({MESSAGE.link})")


def test_wecom_groups_route_by_name_and_the_environment_wins(workdir, monkeypatch, robots: RobotEmulator):
    file_url, env_url = robots.add_wecom("文件里的群"), robots.add_wecom("督查科")
    one, two = robots.add_wecom("窗口一组"), robots.add_wecom("窗口二组")
    monkeypatch.setenv("CALLBACKD_WECOM_WEBHOOK", env_url)
    monkeypatch.setenv("WINDOW_TWO_ROBOT", two)
    settings = configure(workdir, monkeypatch, f"""
[notify.wecom]
webhook = "{file_url}"
timeout = 5
[notify.wecom.groups]
"窗口一组" = "{one}"
"窗口二组" = {{ webhook_env = "WINDOW_TWO_ROBOT" }}
""")
    wecom = notifier("wecom")
    wecom.deliver("", MESSAGE, settings)
    wecom.deliver("窗口一组", Message("一组的消息"), settings)
    wecom.deliver("窗口二组", Message("二组的消息"), settings)
    assert robots.received("文件里的群") == []
    assert len(robots.received("督查科")) == 1
    assert robots.received("窗口一组")[0]["markdown"]["content"] == "**一组的消息**"
    assert robots.received("窗口二组")[0]["markdown"]["content"] == "**二组的消息**"

    unknown = failure("wecom", "窗口三组", settings)
    assert unknown.permanent and "窗口三组" in unknown.reason and "[notify.wecom] groups" in unknown.reason
    monkeypatch.delenv("WINDOW_TWO_ROBOT")
    unset = failure("wecom", "窗口二组", settings)
    assert unset.permanent and "WINDOW_TWO_ROBOT" in unset.reason


def test_wecom_without_a_robot_is_a_permanent_failure_saying_what_to_set(workdir, monkeypatch):
    settings = configure(workdir, monkeypatch, "")
    error = failure("wecom", "", settings)
    assert error.permanent
    assert "set [notify.wecom] webhook or CALLBACKD_WECOM_WEBHOOK" in error.reason


def test_wecom_cuts_a_long_message_to_4096_bytes_keeping_title_and_link(workdir, monkeypatch, robots):
    url = robots.add_wecom("督查科")
    settings = configure(workdir, monkeypatch, f'[notify.wecom]\nwebhook = "{url}"\n')
    lines = tuple(f"窗口{n:03d}：本周回访完成率低于目标，请尽快安排补访" for n in range(200))
    long = Message("本周回访完成率未达标", lines, MESSAGE.link)
    assert len(long.markdown().encode()) > 4096
    notifier("wecom").deliver("", long, settings)  # the emulator refuses content over 4096 bytes (40058)
    content = robots.received("督查科")[0]["markdown"]["content"]
    assert len(content.encode()) <= 4096
    assert len(content.encode()) > 4000  # cut where the limit is, not lines early
    assert content.startswith("**本周回访完成率未达标**")
    assert content.endswith(f"…\n\n[在控制台查看]({MESSAGE.link})")
    assert "窗口000：" in content and "窗口199" not in content


def test_wecom_cuts_an_overlong_title_and_still_links(workdir, monkeypatch, robots):
    url = robots.add_wecom("督查科")
    settings = configure(workdir, monkeypatch, f'[notify.wecom]\nwebhook = "{url}"\n')
    notifier("wecom").deliver("", Message("窗口" * 1000, ("一行",), MESSAGE.link), settings)
    content = robots.received("督查科")[0]["markdown"]["content"]
    assert 4000 < len(content.encode()) <= 4096
    assert content.startswith("**窗口窗口") and content.endswith(f"…**\n\n[在控制台查看]({MESSAGE.link})")


def test_wecom_wrong_key_is_permanent_and_never_shows_the_key(workdir, monkeypatch, robots):
    robots.add_wecom("督查科")
    key = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa"
    settings = configure(workdir, monkeypatch, f'[notify.wecom]\nwebhook = "{robots.wecom_url(key)}"\n')
    error = failure("wecom", "", settings)
    assert error.permanent
    assert "93000" in error.reason and "key=***" in error.reason
    assert key not in error.reason


@pytest.mark.parametrize(("status", "errcode", "permanent"), [
    (200, 45009, False),  # 20 messages a minute per robot
    (200, -1, False),  # system busy
    (500, None, False),
    (502, None, False),
    (200, 93000, True),  # the robot was removed
    (200, 40001, True),
    (404, None, True),
])
def test_wecom_failures_are_retryable_or_permanent_by_their_cause(workdir, monkeypatch, robots, status, errcode,
                                                                  permanent):
    url = robots.add_wecom("督查科")
    settings = configure(workdir, monkeypatch, f'[notify.wecom]\nwebhook = "{url}"\n')
    robots.fail_next(1, robot="wecom", status=status, errcode=errcode, errmsg="api freq out of limit")
    error = failure("wecom", "", settings)
    assert error.permanent is permanent
    assert (str(errcode) if errcode is not None else f"HTTP {status}") in error.reason
    notifier("wecom").deliver("", MESSAGE, settings)  # the next one passes
    assert len(robots.received("督查科")) == 1


def test_wecom_unreachable_is_retryable(workdir, monkeypatch):
    key = "0f6c8f1e-1c52-4b8e-a8f5-5b2b3cbe8a11"
    settings = configure(workdir, monkeypatch, f"""
[notify.wecom]
webhook = "http://127.0.0.1:{closed_port()}/cgi-bin/webhook/send?key={key}"
timeout = 3
""")
    error = failure("wecom", "", settings)
    assert not error.permanent
    assert "unreachable" in error.reason and key not in error.reason


@pytest.mark.parametrize(("table", "says"), [
    ('webhook = "http://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=SECRETKEY"', "must use https"),
    ('webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"', "has no key"),
    ('groups = { "窗口一组" = "http://10.0.0.8/cgi-bin/webhook/send?key=SECRETKEY" }', "窗口一组"),
    ('groups = { "窗口一组" = { webhook = "x", webhook_env = "Y" } }', "webhook_env"),
    ("timeout = 0", "timeout"),
    ('hook = "https://qyapi.weixin.qq.com/"', "hook"),
    ('ca_file = "/no/such/ca.pem"', "ca_file"),
])
def test_wecom_bad_settings_are_a_config_error_naming_the_key(workdir, monkeypatch, table, says):
    settings = configure(workdir, monkeypatch, f"[notify.wecom]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        notifier("wecom").deliver("", MESSAGE, settings)
    assert str(caught.value).startswith("[notify.wecom]")
    assert says in str(caught.value)
    assert "SECRETKEY" not in str(caught.value)


def test_wecom_webhook_from_the_environment_is_checked_naming_the_variable(workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_WECOM_WEBHOOK", "http://example.com/cgi-bin/webhook/send?key=SECRETKEY")
    settings = configure(workdir, monkeypatch, "")
    with pytest.raises(ConfigError) as caught:
        notifier("wecom").deliver("", MESSAGE, settings)
    assert "CALLBACKD_WECOM_WEBHOOK" in str(caught.value) and "SECRETKEY" not in str(caught.value)


# ---- 钉钉 -----------------------------------------------------------------------------------------------------


def test_dingtalk_delivers_signed_markdown(workdir, monkeypatch, robots: RobotEmulator):
    url, secret = robots.add_dingtalk("督查科")
    settings = configure(workdir, monkeypatch, f'[notify.dingtalk]\nwebhook = "{url}"\nsecret = "{secret}"\n')
    notifier("dingtalk").deliver("", MESSAGE, settings)
    [body] = robots.received("督查科")
    assert body == {"msgtype": "markdown", "markdown": {"title": MESSAGE.title, "text": MESSAGE.markdown()}}
    [request] = robots.requests
    assert {"access_token", "timestamp", "sign"} <= set(request.query)  # checked by the emulator as 钉钉 does


def test_dingtalk_sign_is_url_encoded_as_dingtalk_documents():
    from callbackd_dingtalk.robot import signed
    from callbackd_dingtalk.settings import Robot

    secret = "SEC" + "0123456789abcdef" * 4
    robot = Robot(webhook="https://oapi.dingtalk.com/robot/send?access_token=abc", secret=secret,
                  webhook_source="file", secret_source="file")
    seen = set()
    for second in range(1_700_000_000, 1_700_000_200):  # timestamps whose sign has "+" and "/" in base64
        url = signed(robot, now=second)
        query = parse_qs(urlsplit(url).query)
        timestamp = int(query["timestamp"][0])
        expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                             hashlib.sha256).digest()).decode()
        assert timestamp == second * 1000
        assert query["sign"][0] == expected  # decoded, the sign is the base64 itself: "+" did not become " "
        seen |= set(expected) & {"+", "/", "="}
    assert seen == {"+", "/", "="}


def test_dingtalk_wrong_secret_is_refused_by_the_robot_and_permanent(workdir, monkeypatch, robots):
    url, secret = robots.add_dingtalk("督查科")
    wrong = "SEC" + "f" * 64
    monkeypatch.setenv("CALLBACKD_DINGTALK_WEBHOOK", url)
    monkeypatch.setenv("CALLBACKD_DINGTALK_SECRET", wrong)
    settings = configure(workdir, monkeypatch, "")
    error = failure("dingtalk", "", settings)
    assert error.permanent and "310000" in error.reason
    token = parse_qs(urlsplit(url).query)["access_token"][0]
    assert token not in error.reason and wrong not in error.reason and secret not in error.reason
    assert "access_token=***" in error.reason
    assert robots.received() == []


def test_dingtalk_without_a_secret_for_a_signed_robot_says_to_set_it(workdir, monkeypatch, robots):
    url, _ = robots.add_dingtalk("督查科")
    settings = configure(workdir, monkeypatch, f'[notify.dingtalk]\nwebhook = "{url}"\n')
    error = failure("dingtalk", "", settings)
    assert error.permanent and "CALLBACKD_DINGTALK_SECRET" in error.reason


def test_dingtalk_robot_without_signing_takes_unsigned_messages(workdir, monkeypatch, robots):
    url, _ = robots.add_dingtalk("督查科", secret="")  # secured by keyword or IP list instead
    settings = configure(workdir, monkeypatch, f'[notify.dingtalk]\nwebhook = "{url}"\n')
    notifier("dingtalk").deliver("", MESSAGE, settings)
    assert len(robots.received("督查科")) == 1
    assert "sign" not in robots.requests[0].query


def test_dingtalk_groups_with_secrets_from_the_environment(workdir, monkeypatch, robots):
    one_url, one_secret = robots.add_dingtalk("窗口一组")
    two_url, two_secret = robots.add_dingtalk("窗口二组")
    monkeypatch.setenv("WINDOW_TWO_SECRET", two_secret)
    settings = configure(workdir, monkeypatch, f"""
[notify.dingtalk.groups]
"窗口一组" = {{ webhook = "{one_url}", secret = "{one_secret}" }}
"窗口二组" = {{ webhook = "{two_url}", secret_env = "WINDOW_TWO_SECRET" }}
""")
    dingtalk = notifier("dingtalk")
    dingtalk.deliver("窗口一组", Message("一组"), settings)
    dingtalk.deliver("窗口二组", Message("二组"), settings)
    assert [b["markdown"]["title"] for b in robots.received("窗口一组")] == ["一组"]
    assert [b["markdown"]["title"] for b in robots.received("窗口二组")] == ["二组"]
    assert failure("dingtalk", "", settings).permanent  # no default robot
    unknown = failure("dingtalk", "窗口九组", settings)
    assert unknown.permanent and "窗口九组" in unknown.reason
    monkeypatch.delenv("WINDOW_TWO_SECRET")
    unset = failure("dingtalk", "窗口二组", settings)
    assert unset.permanent and "WINDOW_TWO_SECRET" in unset.reason


@pytest.mark.parametrize(("status", "errcode", "permanent"), [
    (200, 130101, False),  # send too fast
    (200, 410100, False),
    (500, None, False),
    (503, None, False),
    (200, 300001, True),  # token
    (200, 310000, True),  # sign, keyword or IP
    (403, None, True),
])
def test_dingtalk_failures_are_retryable_or_permanent_by_their_cause(workdir, monkeypatch, robots, status, errcode,
                                                                     permanent):
    url, secret = robots.add_dingtalk("督查科")
    settings = configure(workdir, monkeypatch, f'[notify.dingtalk]\nwebhook = "{url}"\nsecret = "{secret}"\n')
    robots.fail_next(1, robot="dingtalk", status=status, errcode=errcode, errmsg="send too fast")
    error = failure("dingtalk", "", settings)
    assert error.permanent is permanent
    assert (str(errcode) if errcode is not None else f"HTTP {status}") in error.reason
    notifier("dingtalk").deliver("", MESSAGE, settings)
    assert len(robots.received("督查科")) == 1


def test_dingtalk_unknown_token_is_permanent(workdir, monkeypatch, robots):
    settings = configure(workdir, monkeypatch, f'[notify.dingtalk]\nwebhook = "{robots.dingtalk_url("nosuch")}"\n')
    error = failure("dingtalk", "", settings)
    assert error.permanent and "300001" in error.reason and "nosuch" not in error.reason


def test_dingtalk_unreachable_is_retryable(workdir, monkeypatch):
    settings = configure(workdir, monkeypatch, f"""
[notify.dingtalk]
webhook = "http://localhost:{closed_port()}/robot/send?access_token=TOKEN123"
secret = "SEC{"a" * 64}"
timeout = 3
""")
    error = failure("dingtalk", "", settings)
    assert not error.permanent and "TOKEN123" not in error.reason and "a" * 64 not in error.reason


@pytest.mark.parametrize(("table", "says"), [
    ('webhook = "http://oapi.dingtalk.com/robot/send?access_token=TOKEN123"', "must use https"),
    ('webhook = "https://oapi.dingtalk.com/robot/send"', "access_token"),
    ('secret = "not-a-secret"', "secret"),
    ('groups = { "窗口一组" = { secret = "SEC0123456789" } }', "webhook"),
    ('ca_file = "/no/such/ca.pem"', "ca_file"),
])
def test_dingtalk_bad_settings_are_a_config_error_naming_the_key(workdir, monkeypatch, table, says):
    settings = configure(workdir, monkeypatch, f"[notify.dingtalk]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        notifier("dingtalk").deliver("", MESSAGE, settings)
    assert str(caught.value).startswith("[notify.dingtalk]") and says in str(caught.value)
    assert "TOKEN123" not in str(caught.value) and "not-a-secret" not in str(caught.value)


# ---- email ----------------------------------------------------------------------------------------------------


def email_settings(workdir: Path, monkeypatch: pytest.MonkeyPatch, server: SmtpServer, extra: str = "") -> Settings:
    return configure(workdir, monkeypatch, f"""
[notify.email]
host = "{server.host}"
port = {server.port}
from = "滨江区政务服务中心 <notice@example.gov.cn>"
timeout = 5
{extra}
""")


def test_email_delivers_with_a_chinese_subject_and_body(workdir, monkeypatch, smtp_server: SmtpServer):
    settings = email_settings(workdir, monkeypatch, smtp_server, "starttls = false")
    notifier("email").deliver("li.ming@example.gov.cn", MESSAGE, settings)
    [mail] = smtp_server.messages
    assert mail.rcpt_tos == ["li.ming@example.gov.cn"]
    assert mail.mail_from == "notice@example.gov.cn"
    assert mail.message["Subject"] == "整改逾期：窗口一组"  # decoded from RFC 2047 by the email package
    assert b"=?utf-8?" in mail.raw  # and it went encoded, as SMTP needs
    assert mail.message["From"].addresses[0].display_name == "滨江区政务服务中心"
    assert mail.message["To"] == "li.ming@example.gov.cn"
    assert mail.message["Auto-Submitted"] == "auto-generated"
    assert mail.message.get_content().replace("\r\n", "\n").rstrip("\n") == MESSAGE.text()  # CRLF on the wire
    assert MESSAGE.link in mail.message.get_content()
    assert not mail.tls and mail.login is None


def test_email_starttls_against_a_server_without_it_is_permanent(workdir, monkeypatch, smtp_server: SmtpServer):
    settings = email_settings(workdir, monkeypatch, smtp_server)  # starttls defaults to true
    error = failure("email", "li.ming@example.gov.cn", settings)
    assert error.permanent and "[notify.email] starttls" in error.reason
    assert smtp_server.messages == []


def test_email_over_starttls_with_the_organisations_ca(workdir, monkeypatch, tmp_path):
    server = start_smtp(tmp_path, starttls=True)
    try:
        settings = email_settings(workdir, monkeypatch, server, f'ca_file = "{server.tls_cert}"')
        notifier("email").deliver("li.ming@example.gov.cn", MESSAGE, settings)
        [mail] = server.messages
        assert mail.tls and mail.message["Subject"] == MESSAGE.title

        untrusted = email_settings(workdir, monkeypatch, server)  # the system's CAs do not know it
        error = failure("email", "li.ming@example.gov.cn", untrusted)
        assert error.permanent and "ca_file" in error.reason
        assert len(server.messages) == 1
    finally:
        server.stop()


def test_email_implicit_tls_against_a_plain_server_is_permanent(workdir, monkeypatch, smtp_server):
    settings = email_settings(workdir, monkeypatch, smtp_server, "ssl = true")
    error = failure("email", "li.ming@example.gov.cn", settings)
    assert error.permanent and "[notify.email] ssl" in error.reason


def test_email_logs_in_with_the_environments_credentials(workdir, monkeypatch, tmp_path):
    server = start_smtp(tmp_path, starttls=True, user=SMTP_USER, password=SMTP_PASSWORD)
    try:
        settings = email_settings(workdir, monkeypatch, server, f'ca_file = "{server.tls_cert}"')
        anonymous = failure("email", "li.ming@example.gov.cn", settings)  # the server requires a login
        assert anonymous.permanent and "530" in anonymous.reason

        monkeypatch.setenv("CALLBACKD_SMTP_USER", SMTP_USER)
        monkeypatch.setenv("CALLBACKD_SMTP_PASSWORD", "wrong-password")
        refused = failure("email", "li.ming@example.gov.cn", settings)
        assert refused.permanent and "535" in refused.reason and "wrong-password" not in refused.reason

        monkeypatch.setenv("CALLBACKD_SMTP_PASSWORD", SMTP_PASSWORD)
        notifier("email").deliver("li.ming@example.gov.cn", MESSAGE, settings)
        [mail] = server.messages
        assert mail.login == SMTP_USER and mail.tls
        assert server.logins[-1] == (SMTP_USER, True)
        assert all(not accepted for _, accepted in server.logins[:-1])  # smtplib tries each mechanism offered
    finally:
        server.stop()


@pytest.mark.parametrize(("reply", "permanent"), [
    ("550 5.1.1 <wang@example.gov.cn>: Recipient address rejected: User unknown", True),
    ("452 4.2.2 Mailbox full, try again later", False),
])
def test_email_refused_recipient_by_the_reply_code(workdir, monkeypatch, tmp_path, reply, permanent):
    server = start_smtp(tmp_path, refuse={"wang@example.gov.cn": reply})
    try:
        settings = email_settings(workdir, monkeypatch, server, "starttls = false")
        error = failure("email", "wang@example.gov.cn", settings)
        assert error.permanent is permanent and reply[:3] in error.reason
        notifier("email").deliver("li.ming@example.gov.cn", MESSAGE, settings)
        assert [m.rcpt_tos for m in server.messages] == [["li.ming@example.gov.cn"]]
    finally:
        server.stop()


@pytest.mark.parametrize("address", ["", "li.ming", "li ming@example.gov.cn", "a@b", "x@example.gov.cn, y@example.cn",
                                     "<x@example.gov.cn>"])
def test_email_malformed_address_is_permanent(workdir, monkeypatch, smtp_server, address):
    settings = email_settings(workdir, monkeypatch, smtp_server, "starttls = false")
    error = failure("email", address, settings)
    assert error.permanent and "not an email address" in error.reason
    assert smtp_server.messages == []


def test_email_missing_settings_are_permanent_and_say_what_to_set(workdir, monkeypatch):
    assert "[notify.email] host" in failure("email", "li@example.gov.cn", configure(workdir, monkeypatch, "")).reason
    no_sender = configure(workdir, monkeypatch, '[notify.email]\nhost = "127.0.0.1"\n')
    error = failure("email", "li@example.gov.cn", no_sender)
    assert error.permanent and "[notify.email] from" in error.reason


def test_email_unreachable_server_is_retryable(workdir, monkeypatch):
    settings = configure(workdir, monkeypatch, f"""
[notify.email]
host = "127.0.0.1"
port = {closed_port()}
from = "notice@example.gov.cn"
timeout = 3
""")
    error = failure("email", "li@example.gov.cn", settings)
    assert not error.permanent and "unreachable" in error.reason


@pytest.mark.parametrize(("table", "says"), [
    ('from = "not an address"', "from"),
    ('host = "smtp.example.gov.cn:587"', "host"),
    ('host = "smtp://smtp.example.gov.cn"', "host"),
    ("port = 70000", "port"),
    ('ca_file = "/no/such/ca.pem"', "ca_file"),
    ('user = "x"', "user"),  # credentials are never settings
])
def test_email_bad_settings_are_a_config_error_naming_the_key(workdir, monkeypatch, table, says):
    settings = configure(workdir, monkeypatch, f"[notify.email]\n{table}\n")
    with pytest.raises(ConfigError) as caught:
        notifier("email").deliver("li@example.gov.cn", MESSAGE, settings)
    assert str(caught.value).startswith(f"[notify.email] {says}")


# ---- what the plugins show ----------------------------------------------------------------------------------


def test_plugins_list_shows_the_notifiers_and_no_secret(workdir, monkeypatch, cli: Any, robots: RobotEmulator):
    wecom_key = "5d1e2a3b-0c4d-4e5f-8a9b-c0d1e2f3a4b5"
    wecom_url = robots.wecom_url(wecom_key)
    robots.add_wecom("窗口一组", wecom_key)
    dingtalk_url, dingtalk_secret = robots.add_dingtalk("督查科", token="d" * 64)
    group_url, group_secret = robots.add_dingtalk("窗口一组", token="e" * 64)
    monkeypatch.setenv("CALLBACKD_WECOM_WEBHOOK", wecom_url)
    monkeypatch.setenv("CALLBACKD_DINGTALK_WEBHOOK", dingtalk_url)
    monkeypatch.setenv("CALLBACKD_DINGTALK_SECRET", dingtalk_secret)
    monkeypatch.setenv("CALLBACKD_SMTP_USER", SMTP_USER)
    monkeypatch.setenv("CALLBACKD_SMTP_PASSWORD", SMTP_PASSWORD)
    settings = configure(workdir, monkeypatch, f"""
[notify.wecom.groups]
"窗口一组" = "{robots.wecom_url("f" * 36)}"
[notify.dingtalk.groups]
"窗口一组" = {{ webhook = "{group_url}", secret = "{group_secret}" }}
[notify.email]
host = "smtp.example.gov.cn"
port = 587
from = "notice@example.gov.cn"
""")
    secrets = [wecom_key, "f" * 36, "d" * 64, "e" * 64, dingtalk_secret, group_secret, SMTP_PASSWORD]

    run = cli("plugins", "list", "--json")
    assert run.code == 0, run.err
    notifiers = {name: plugin["name"] for plugin in run.json() for name in plugin.get("notifiers", [])}
    assert notifiers == {"wecom": "wecom", "dingtalk": "dingtalk", "email": "email"}
    assert not [s for s in secrets if s in run.out]

    shown = {name: notifier(name).configuration(settings) for name in ("wecom", "dingtalk", "email")}
    assert shown["wecom"] == {"webhook": "configured (env)", "groups": "窗口一组", "timeout": "10s"}
    assert shown["dingtalk"] == {"webhook": "configured (env)", "secret": "configured (env)", "groups": "窗口一组",
                                 "timeout": "10s"}
    assert shown["email"] == {"server": "smtp.example.gov.cn:587 (STARTTLS)", "from": "configured",
                              "login": "configured (env)", "timeout": "30s"}
    assert not [s for s in secrets if s in repr(shown)]
