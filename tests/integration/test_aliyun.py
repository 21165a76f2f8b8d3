"""The Alibaba Cloud channels end to end: the real dispatcher places one-key calls and SMS through the official SDKs
against the Alibaba Cloud emulator, which checks each request's V3 signature and pushes the receipts Alibaba Cloud
pushes (VoiceCallReport, VoiceReport, SmsReport, SmsUp) to the real web app (uvicorn on loopback) at the secret
token path. Outcomes are read back through the CLI and the database. Runs on SQLite, and on PostgreSQL in the
PostgreSQL pass of scripts/test.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callbackd.store.db import Database
from callbackd.store.models import Attempt, Callback, Case
from tests.conftest import POSTGRES, case_row
from tests.integration.aliyun_emulator import AliyunEmulator, Call
from tests.integration.conftest import (
    MONDAY,
    ORGANISATION,
    Deployment,
    LogRecords,
    WebServer,
    leaked_phones,
)

KEY_ID, KEY_SECRET = "LTAI5tFq3mWz8RkP2vXn7Yc4", "hT6pQ2wE9rU1yI8oP3aS5dF7gH0jK4"
TOKEN = "q8Jx-3vN_tR7wZ2pL5mK9cYb"  # 24 URL-safe characters, as secrets.token_urlsafe(18) makes
SHOW_NUMBER, VOICE_TEMPLATE, THANKS_TEMPLATE = "057112345678", "TTS_300001", "TTS_300002"
SIGN_NAME, SMS_TEMPLATE = "滨江政务", "SMS_400001"
VOICE_TEMPLATES = {
    VOICE_TEMPLATE: "您好，这里是${org}。您于${day}办结的${item}业务，请评价：满意请按1，基本满意请按2，不满意请按3。",
    THANKS_TEMPLATE: "感谢您的评价，再见。",
}
SMS_TEMPLATES = {SMS_TEMPLATE: "您于${date}在${organisation}办结的${matter}业务，请回复数字评价：1满意，2基本满意，"
                               "3不满意。回复TD退订。"}
MOBILE, MOBILE_2, MOBILE_3 = "13900000001", "13900000002", "13900000003"
LANDLINE = "010-62345678"
A = "+8613900000001"
LEVEL = {"1": "满意", "2": "基本满意", "3": "不满意"}
ACK = {"code": 0, "msg": "接收成功"}
SDK_LOGGERS = ("callbackd_aliyun", "darabonba-core", "alibabacloud-tea")


def settings_text(endpoint: str) -> str:
    return f"""
organisation = "{ORGANISATION}"

[channels.aliyun]
voice_endpoint = "{endpoint}"
sms_endpoint = "{endpoint}"
protocol = "http"
show_number = "{SHOW_NUMBER}"
voice_template = "{VOICE_TEMPLATE}"
thanks_template = "{THANKS_TEMPLATE}"
voice_params = {{ org = "organisation", item = "matter", day = "date" }}
sms_sign_name = "{SIGN_NAME}"
sms_template = "{SMS_TEMPLATE}"
calls_per_second = 50
messages_per_second = 50
"""


@dataclass
class AliyunDeployment(Deployment):
    """The integration deployment (conftest's), its provider Alibaba Cloud's emulator."""

    aliyun: AliyunEmulator | None = None

    @property
    def cloud(self) -> AliyunEmulator:
        assert self.aliyun is not None
        return self.aliyun

    def hook(self, kind: str, token: str = TOKEN) -> str:
        return f"{self.app_url}/hooks/aliyun/{token}/{kind}"

    def detail(self, number: int = 1) -> str:
        with self.database.session() as session:
            return session.scalar(select(Attempt.detail).where(Attempt.number == number)) or ""


def now() -> datetime:
    return datetime.fromisoformat(os.environ.get("CALLBACKD_NOW", MONDAY))


@pytest.fixture
def deployment(workdir: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, log_records: LogRecords
               ) -> Iterator[AliyunDeployment]:
    """callbackd with its Alibaba Cloud channels against the emulator (see `deployed`)."""
    with deployed(workdir, monkeypatch, cli, log_records) as deployment:
        yield deployment


# the core's own per-number rules loosened (retries at once, no gap, ten a day): a channel's limits are the strictest
LOOSE = """
[dispatch]
per_number_gap_seconds = 0
per_number_per_day = 10
retry_minutes = 0
attempts_per_day = 10
attempts_per_channel = 10
"""


@pytest.fixture
def loose_deployment(workdir: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, log_records: LogRecords
                     ) -> Iterator[AliyunDeployment]:
    """The deployment with the core's per-number rules loosened (`LOOSE`)."""
    with deployed(workdir, monkeypatch, cli, log_records, LOOSE) as deployment:
        yield deployment


@contextmanager
def deployed(workdir: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, log_records: LogRecords, extra: str = ""
             ) -> Iterator[AliyunDeployment]:
    """callbackd with its Alibaba Cloud channels against the emulator, the web app running, clock at MONDAY, on
    the test's database (SQLite here, PostgreSQL in scripts/test's second pass); afterwards, no phone number may
    have reached a log, the SDKs' debug logging switched on (DEBUG=sdk) included."""
    url = os.environ["CALLBACKD_DATABASE_URL"] if POSTGRES else f"sqlite:///{workdir / 'callbackd.db'}"
    web = WebServer()
    emulator = AliyunEmulator(KEY_ID, KEY_SECRET, voice_url=f"{web.url}/hooks/aliyun/{TOKEN}/voice",
                              sms_url=f"{web.url}/hooks/aliyun/{TOKEN}/sms", show_numbers={SHOW_NUMBER},
                              voice_templates=VOICE_TEMPLATES, sms_templates=SMS_TEMPLATES, sign_names={SIGN_NAME},
                              clock=now).start()
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(settings_text(emulator.endpoint) + extra, encoding="utf-8")
    for name, value in {"CALLBACKD_DATABASE_URL": url, "CALLBACKD_NOW": MONDAY, "ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
                        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": KEY_SECRET, "CALLBACKD_ALIYUN_CALLBACK_TOKEN": TOKEN,
                        "DEBUG": "sdk"}.items():
        monkeypatch.setenv(name, value)
    levels = {name: logging.getLogger(name).level for name in SDK_LOGGERS}
    for name in SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)
    database = Database(url)
    database.ensure_schema()
    try:
        web.start()
        deployment = AliyunDeployment(None, database, web.url, workdir, cli, monkeypatch,  # type: ignore[arg-type]
                                      log_records, aliyun=emulator)
        yield deployment
    finally:
        emulator.stop()
        web.stop()
        database.dispose()
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
    assert leaked_phones(log_records.text, deployment.phones) == []


def round_on(deployment: AliyunDeployment, channel: str, *rows: list[str]) -> None:
    """A week's round on one channel, over `rows` (default: case K1 of the mobile A, 不动产登记, resolved 3 Nov)."""
    deployment.ledger(*(rows or (case_row("K1", "不动产窗口", matter="不动产登记", phone=MOBILE),)))
    deployment.open_round("2026-W48", channel)


def placed_call(deployment: AliyunDeployment) -> Call:
    assert deployment.dispatch()["outcomes"] == {"in_progress": 1}
    (call,) = deployment.cloud.calls
    return call


def due_times(deployment: AliyunDeployment, case_no: str) -> list[str]:
    """Each attempt's due time in the organisation's zone, as "Mon 14:00"."""
    with deployment.database.session() as session:
        times = session.scalars(
            select(Attempt.due_at).join(Callback).join(Case, Case.id == Callback.case_id)
            .where(Case.case_no == case_no).order_by(Attempt.number)
        ).all()
    return [t.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%a %H:%M") for t in times]


def acknowledged(delivery: Any) -> bool:
    return delivery.status == 200 and delivery.json() == ACK


# ---- voice ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["1", "2", "3"])
def test_a_one_key_call_records_the_key_pressed(deployment, key):
    round_on(deployment, "aliyun-voice")
    call = placed_call(deployment)

    # the IvrCall as the SDK sent it, signed, and as Alibaba Cloud wants it: the number without +86
    assert deployment.cloud.actions() == ["IvrCall"]
    assert (call.called, call.show_number, call.start_code) == (MOBILE, SHOW_NUMBER, VOICE_TEMPLATE)
    assert call.tts_params == {"org": ORGANISATION, "item": "不动产登记", "day": "2026年11月3日"}
    assert call.prompt.startswith(f"您好，这里是{ORGANISATION}。您于2026年11月3日办结的不动产登记业务")
    assert call.menu == {"1": THANKS_TEMPLATE, "2": THANKS_TEMPLATE, "3": THANKS_TEMPLATE}
    assert (call.play_times, call.timeout_ms, call.out_id) == (2, 8000, "1")
    assert "x-acs-action" in deployment.cloud.signed_headers[0].split(";")
    assert deployment.status("K1") == "in_progress"

    progress, report = deployment.cloud.answer(call, key)
    assert acknowledged(progress) and acknowledged(report)  # HTTP 200 {"code":0,"msg":"接收成功"}
    assert deployment.status("K1") == "completed"
    assert deployment.answers("K1") == {"overall": (LEVEL[key], LEVEL[key])}
    assert deployment.attempts("K1") == [("aliyun-voice", "completed")]
    with deployment.database.session() as session:
        assert session.scalar(select(Attempt.provider_id)) == call.call_id
    assert deployment.dispatch()["placed"] == 0


def test_the_key_alone_in_the_final_report_is_enough(deployment):
    # an account that subscribed VoiceReport only: its dtmf answers the question
    round_on(deployment, "aliyun-voice")
    call = placed_call(deployment)
    assert acknowledged(deployment.cloud.push("voice", [deployment.cloud.call_report(call, "200000", dtmf="2")]))
    assert deployment.answers("K1") == {"overall": ("基本满意", "基本满意")}
    assert deployment.status("K1") == "completed"


def test_an_invalid_key_records_nothing_and_the_call_is_tried_again(deployment):
    round_on(deployment, "aliyun-voice")
    call = placed_call(deployment)
    assert all(acknowledged(d) for d in deployment.cloud.answer(call, "7"))
    assert deployment.answers("K1") == {}
    assert deployment.attempts("K1") == [("aliyun-voice", "hung_up"), ("aliyun-voice", "due")]
    assert "key 7 is no answer" in deployment.detail()
    assert due_times(deployment, "K1") == ["Mon 10:00", "Mon 14:00"]


@pytest.mark.parametrize(("ends", "why"), [("200008", "no key in time"), ("200001", "hung up before a key"),
                                           ("200000", "listened to the end")])
def test_no_key_or_a_hang_up_is_tried_again(deployment, ends, why):
    round_on(deployment, "aliyun-voice")
    call = placed_call(deployment)
    deployment.cloud.answer(call, ends=ends)
    assert deployment.answers("K1") == {}
    assert deployment.attempts("K1") == [("aliyun-voice", "hung_up"), ("aliyun-voice", "due")]
    assert deployment.detail() == f"call {ends}: {why}"
    assert deployment.status("K1") == "in_progress"


def test_an_unanswered_call_is_tried_again_after_two_hours_and_then_answered(deployment):
    round_on(deployment, "aliyun-voice")
    first = placed_call(deployment)
    deployment.cloud.answer(first, status="200003")
    assert deployment.attempts("K1") == [("aliyun-voice", "no_answer"), ("aliyun-voice", "due")]
    assert due_times(deployment, "K1") == ["Mon 10:00", "Mon 14:00"]

    assert deployment.dispatch("2026-11-23T11:30:00+08:00")["placed"] == 0
    assert deployment.dispatch("2026-11-23T14:00:00+08:00")["placed"] == 1
    second = deployment.cloud.calls[-1]
    assert second.out_id == "2" and second.called == MOBILE
    deployment.cloud.answer(second, "1")
    assert deployment.attempts("K1") == [("aliyun-voice", "no_answer"), ("aliyun-voice", "completed")]
    assert deployment.status("K1") == "completed"


@pytest.mark.parametrize(("status", "outcome", "callback"), [
    ("200002", "busy", "in_progress"), ("200010", "no_answer", "in_progress"),
    ("200004", "invalid_number", "invalid"), ("999999", "failed", "in_progress"),
])
def test_a_calls_end_status_becomes_the_attempts_outcome(deployment, status, outcome, callback):
    round_on(deployment, "aliyun-voice")
    deployment.cloud.answer(placed_call(deployment), status=status)
    assert deployment.attempts("K1")[0] == ("aliyun-voice", outcome)
    assert deployment.status("K1") == callback


def test_a_landline_is_called_with_its_area_code(deployment):
    round_on(deployment, "aliyun-voice", case_row("K1", phone=LANDLINE))
    call = placed_call(deployment)
    assert call.called == "01062345678"
    deployment.cloud.answer(call, "3")
    assert deployment.answers("K1") == {"overall": ("不满意", "不满意")}


# ---- repeated receipts, the token, malformed bodies ----------------------------------------------------------


def test_receipts_pushed_again_change_nothing_twice(deployment):
    round_on(deployment, "aliyun-voice", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    answered, busy = deployment.cloud.calls_to(MOBILE)[0], deployment.cloud.calls_to(MOBILE_2)[0]
    deliveries = deployment.cloud.answer(answered, "2") + deployment.cloud.answer(busy, status="200002")
    before = deployment.state()
    for delivery in deliveries:
        assert acknowledged(deployment.cloud.redeliver(delivery))  # still answered as Alibaba Cloud requires
    assert deployment.state() == before
    assert deployment.attempts("K2") == [("aliyun-voice", "busy"), ("aliyun-voice", "due")]  # one retry


def test_a_batch_of_receipts_is_applied_together(deployment):
    round_on(deployment, "aliyun-voice", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    one, two = deployment.cloud.calls_to(MOBILE)[0], deployment.cloud.calls_to(MOBILE_2)[0]
    cloud = deployment.cloud
    batch = [cloud.call_progress(one, "300000", "1"), cloud.call_report(two, "200003"), cloud.call_report(one, "200000",
                                                                                                           dtmf="1")]
    assert acknowledged(cloud.push("voice", batch))
    assert deployment.status("K1") == "completed" and deployment.answers("K1") == {"overall": ("满意", "满意")}
    assert deployment.attempts("K2") == [("aliyun-voice", "no_answer"), ("aliyun-voice", "due")]


@pytest.mark.parametrize("kind", ["voice", "sms"])
def test_a_wrong_token_is_not_found_and_changes_nothing(deployment, kind):
    round_on(deployment, f"aliyun-{kind}")
    deployment.dispatch()
    cloud = deployment.cloud
    item = (cloud.call_report(cloud.calls[0], "200000", dtmf="3") if kind == "voice"
            else cloud.sms_report(cloud.messages[0], success=False, err_code="MOBILE_NOT_ON_SERVICE", err_msg="停机"))
    before = deployment.state()
    for token in (TOKEN[:-1] + "X", TOKEN + "x", TOKEN.lower(), "x", "%20" + TOKEN):
        delivery = cloud.push(kind, [item], url=deployment.hook(kind, token))
        assert delivery.status == 404, token
        assert deployment.state() == before, token
    assert acknowledged(cloud.push(kind, [item]))  # the same receipt at the right path is believed
    assert deployment.state() != before


def test_without_a_token_configured_every_path_is_not_found(deployment, monkeypatch):
    round_on(deployment, "aliyun-voice")
    deployment.dispatch()
    monkeypatch.setenv("CALLBACKD_ALIYUN_CALLBACK_TOKEN", "too-short")  # not a valid token: no path matches
    before = deployment.state()
    delivery = deployment.cloud.push("voice", [deployment.cloud.call_report(deployment.cloud.calls[0], "200002")],
                                     url=deployment.hook("voice", "too-short"))
    assert delivery.status == 404 and deployment.state() == before


BAD_BODIES = {
    "not JSON": b"status_code=300000",
    "not UTF-8": '[{"call_id": "不"}]'.encode("gbk"),
    "an object, not an array": b'{"call_id": "1^2", "status_code": "200000", "out_id": "1"}',
    "an array of strings": b'["200000"]',
    "no call_id": b'[{"status_code": "200000", "out_id": "1", "duration": "0"}]',
    "status_code not a number": b'[{"call_id": "1^2", "status_code": "busy", "out_id": "1", "duration": "0"}]',
    "out_id not a string": b'[{"call_id": "1^2", "status_code": "200002", "out_id": 1, "duration": "0"}]',
    "dtmf not a string": b'[{"call_id": "1^2", "status_code": "300000", "out_id": "1", "dtmf": [1]}]',
    "one good, one bad": b'[{"call_id": "1^2", "status_code": "200002", "out_id": "1", "duration": "0"}, {}]',
}
BAD_SMS_BODIES = {
    "neither a report nor a reply": b'[{"phone_number": "13900000001"}]',
    "success not a boolean": b'[{"biz_id": "9^0", "success": "false", "err_code": "X", "out_id": "1"}]',
    "a reply without a number": b'[{"content": "1", "sequence_id": "5"}]',
    "sequence_id not a number": b'[{"phone_number": "13900000001", "content": "1", "sequence_id": "x"}]',
}


@pytest.mark.parametrize(("kind", "body"), [("voice", b) for b in BAD_BODIES.values()]
                         + [("sms", b) for b in BAD_SMS_BODIES.values()],
                         ids=list(BAD_BODIES) + list(BAD_SMS_BODIES))
def test_a_malformed_body_is_refused_with_400_and_changes_nothing(deployment, kind, body):
    round_on(deployment, f"aliyun-{kind}")
    deployment.dispatch()
    before = deployment.state()
    delivery = deployment.cloud.push(kind, [], raw=body)
    assert delivery.status == 400, delivery.body
    assert deployment.state() == before


def test_a_receipt_of_another_applications_call_is_acknowledged_and_ignored(deployment):
    round_on(deployment, "aliyun-voice")
    deployment.dispatch()
    before = deployment.state()
    other = {**deployment.cloud.call_report(deployment.cloud.calls[0], "200002"), "out_id": "order-8812"}
    assert acknowledged(deployment.cloud.push("voice", [other]))
    assert acknowledged(deployment.cloud.push("voice", []))
    assert {k: v for k, v in deployment.state().items() if k != "receipts"} == {
        k: v for k, v in before.items() if k != "receipts"}


# ---- SMS -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("reply", "level"), [("1", "满意"), ("１", "满意"), ("满意", "满意"), (" 2 ", "基本满意"),
                                              ("3不满意", "不满意"), ("基本满意", "基本满意")])
def test_an_sms_survey_answered_by_reply(deployment, reply, level):
    round_on(deployment, "aliyun-sms")
    assert deployment.dispatch()["outcomes"] == {"in_progress": 1}
    assert deployment.cloud.actions() == ["SendSms"]
    (message,) = deployment.cloud.messages
    assert (message.to, message.sign_name, message.template, message.out_id) == (MOBILE, SIGN_NAME, SMS_TEMPLATE, "1")
    assert message.params == {"organisation": ORGANISATION, "matter": "不动产登记", "date": "2026年11月3日"}
    assert message.body.startswith(f"【{SIGN_NAME}】您于2026年11月3日在{ORGANISATION}办结的不动产登记业务")

    assert acknowledged(deployment.cloud.deliver(message))
    assert deployment.status("K1") == "in_progress"
    assert acknowledged(deployment.cloud.reply(MOBILE, reply))
    assert deployment.answers("K1") == {"overall": (level, level)}
    assert deployment.status("K1") == "completed"
    assert deployment.attempts("K1") == [("aliyun-sms", "completed")]


def test_an_unreadable_reply_records_nothing_and_a_reply_pushed_again_is_read_once(deployment):
    round_on(deployment, "aliyun-sms")
    deployment.dispatch()
    deployment.cloud.reply(MOBILE, "你们是哪里")
    assert deployment.answers("K1") == {} and deployment.detail() == "sms reply unreadable"
    answered = deployment.cloud.reply(MOBILE, "2")
    before = deployment.state()
    assert acknowledged(deployment.cloud.redeliver(answered))
    assert deployment.state() == before
    assert deployment.answers("K1") == {"overall": ("基本满意", "基本满意")}


@pytest.mark.parametrize("word", ["退订", "TD"])
def test_an_opt_out_reply_closes_the_survey_and_holds_for_later_rounds(deployment, monkeypatch, word):
    round_on(deployment, "aliyun-sms", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    assert acknowledged(deployment.cloud.reply(MOBILE, word))
    assert deployment.status("K1") == "opted_out" and deployment.opted_out() == {A}
    assert deployment.status("K2") == "in_progress"

    monkeypatch.setenv("CALLBACKD_SAMPLING__PHONE_COOLDOWN_DAYS", "0")
    deployment.at("2026-11-30T10:00:00+08:00")
    deployment.ledger(case_row("K3", phone=MOBILE, resolved="2026-11-26 10:00:00"),
                      case_row("K4", phone=MOBILE_3, resolved="2026-11-26 11:00:00"))
    deployment.open_round("2026-W49", "aliyun-sms")
    assert set(deployment.callbacks(round_id=2)) == {"K4"}


def test_td_from_a_number_without_an_open_survey_is_kept(deployment):
    assert acknowledged(deployment.cloud.reply(MOBILE_3, "TD"))
    assert deployment.opted_out() == {"+8613900000003"}


@pytest.mark.parametrize(("err_code", "attempts", "status"), [
    ("MOBILE_NOT_ON_SERVICE", [("aliyun-sms", "invalid_number")], "invalid"),
    ("SP_UNKNOWN_ERROR", [("aliyun-sms", "failed"), ("aliyun-sms", "due")], "in_progress"),
    ("USER_REJECT", [("aliyun-sms", "opted_out")], "opted_out"),
])
def test_a_delivery_failure_ends_the_attempt_by_its_err_code(deployment, err_code, attempts, status):
    round_on(deployment, "aliyun-sms")
    deployment.dispatch()
    report = deployment.cloud.deliver(deployment.cloud.messages[0], success=False, err_code=err_code, err_msg="失败")
    assert acknowledged(report)
    assert deployment.attempts("K1") == attempts and deployment.status("K1") == status
    before = deployment.state()
    deployment.cloud.redeliver(report)
    assert deployment.state() == before


def test_a_landline_gets_no_sms(deployment):
    round_on(deployment, "aliyun-sms", case_row("K1", phone=LANDLINE))
    deployment.dispatch()
    assert deployment.cloud.requests == []
    assert (deployment.status("K1"), deployment.reason("K1")) == ("invalid", "no_channel")
    assert deployment.attempts("K1") == []


# ---- provider errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("channel", "code", "status", "outcome"), [
    ("aliyun-voice", "isv.MOBILE_NUMBER_ILLEGAL", 400, "invalid_number"),
    ("aliyun-sms", "isv.MOBILE_NUMBER_ILLEGAL", 200, "invalid_number"),
    ("aliyun-voice", "isv.BUSINESS_LIMIT_CONTROL", 400, "rate_limited"),
    ("aliyun-sms", "isv.BUSINESS_LIMIT_CONTROL", 200, "rate_limited"),
    ("aliyun-voice", "isv.TTS_TEMPLATE_ILLEGAL", 400, "not_configured"),
    ("aliyun-sms", "isv.SMS_SIGNATURE_ILLEGAL", 200, "not_configured"),
    ("aliyun-voice", "isp.SYSTEM_ERROR", 500, "failed"),
])
def test_provider_refusals_are_typed(deployment, channel, code, status, outcome):
    round_on(deployment, channel)
    deployment.cloud.fail_next(MOBILE, code, status=status, message=f"{MOBILE} 被拒绝")
    assert deployment.dispatch()["outcomes"] == {outcome: 1}
    assert deployment.cloud.calls == [] and deployment.cloud.messages == []
    detail = deployment.detail()
    assert detail.startswith(f"Alibaba Cloud {code}:") and "被拒绝" in detail
    assert MOBILE not in detail and A not in detail  # the provider's message kept, the number masked
    if outcome == "invalid_number":
        assert deployment.status("K1") == "invalid"
        assert deployment.dispatch("2026-11-23T16:00:00+08:00")["placed"] == 0
    else:
        assert deployment.attempts("K1")[-1] == (channel, "due")


@pytest.mark.parametrize(("variable", "value", "code"), [
    ("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "w" * 30, "SignatureDoesNotMatch"),
    ("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAI5tUnknownKey00000000", "InvalidAccessKeyId.NotFound"),
])
def test_wrong_credentials_are_not_configured_and_retried_without_using_a_try(deployment, monkeypatch, variable,
                                                                             value, code):
    round_on(deployment, "aliyun-voice")
    monkeypatch.setenv(variable, value)
    assert deployment.dispatch()["outcomes"] == {"not_configured": 1}
    assert deployment.cloud.calls == [] and deployment.cloud.requests == []  # refused before any action
    assert deployment.detail().startswith(f"Alibaba Cloud {code}:")
    assert deployment.attempts("K1") == [("aliyun-voice", "not_configured"), ("aliyun-voice", "due")]


def test_missing_settings_are_not_configured_before_anything_is_sent(deployment, monkeypatch):
    round_on(deployment, "aliyun-voice")
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
    assert deployment.dispatch()["outcomes"] == {"not_configured": 1}
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in deployment.detail()
    assert deployment.cloud.requests == [] and deployment.cloud.signed_headers == []


# ---- per-number flow control ---------------------------------------------------------------------------------


def test_aliyuns_voice_limits_hold_attempts_to_one_number(loose_deployment):
    # the core's own rules loosened: Alibaba Cloud's 1 a minute and 5 an hour are the strictest, and the emulator,
    # which enforces them on the test's clock, never has to refuse
    deployment = loose_deployment
    round_on(deployment, "aliyun-voice")
    for minute in range(5):
        at = f"2026-11-23T10:0{minute}:00+08:00"
        assert deployment.dispatch(at)["placed"] == 1, at
        deployment.cloud.answer(deployment.cloud.calls[-1], status="200003")
        if minute < 4:
            assert deployment.dispatch(f"2026-11-23T10:0{minute}:30+08:00")["placed"] == 0  # 1 a minute
            assert due_times(deployment, "K1")[-1] == f"Mon 10:0{minute + 1}"
    assert deployment.dispatch("2026-11-23T10:05:00+08:00")["placed"] == 0  # 5 in the hour: until 11:00
    assert due_times(deployment, "K1")[-1] == "Mon 11:00"
    assert deployment.dispatch("2026-11-23T11:00:00+08:00")["placed"] == 1
    assert len(deployment.cloud.calls) == 6
    assert all(status == 200 for _, _, status in deployment.cloud.requests)  # never BUSINESS_LIMIT_CONTROL


def test_plugins_list_shows_the_limits_the_form_and_the_set_up(deployment):
    listed = deployment.cli("plugins", "list", "--json")
    assert listed.code == 0, listed.err
    (plugin,) = [p for p in listed.json() if p["name"] == "aliyun"]
    details = {c["channel"]: c for c in plugin["channel_details"]}
    voice, sms = details["aliyun-voice"], details["aliyun-sms"]
    assert voice["form"] == sms["form"] == "short"
    assert voice["number_limits"] == ["1 per minute", "5 per hour", "20 per day"]
    assert sms["number_limits"] == ["50 per day"]
    assert all(voice["configuration"].values()) and all(sms["configuration"].values())
    assert KEY_SECRET not in listed.out and TOKEN not in listed.out


# ---- confidentiality -----------------------------------------------------------------------------------------


def test_no_phone_number_reaches_a_log(deployment):
    # DEBUG=sdk switches the SDKs' request logging on (each URL names the number); receipts name it too
    round_on(deployment, "aliyun-voice", case_row("K1", phone=MOBILE), case_row("K2", phone=LANDLINE),
             case_row("K3", phone=MOBILE_2))
    deployment.cloud.fail_next(MOBILE_2, "isv.MOBILE_NUMBER_ILLEGAL", message=f"号码 {MOBILE_2} 非法")
    deployment.dispatch()
    for call in deployment.cloud.calls:
        deployment.cloud.answer(call, "1")
    deployment.cloud.reply(MOBILE_3, "TD")
    deployment.cloud.push("voice", [], url=deployment.hook("voice", "wrong-token-wrong-token-x"))
    log = deployment.logs.text
    assert f'"POST /hooks/aliyun/{TOKEN}/voice HTTP/1.1" 200' in log  # the access log was captured
    assert leaked_phones(log, deployment.phones | {MOBILE_3}) == []
