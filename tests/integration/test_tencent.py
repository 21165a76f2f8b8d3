"""The Tencent Cloud channels end to end: the real dispatcher places one-key calls (语音消息) and SMS surveys (短信)
through the real `tencentcloud` SDK against the Tencent emulator, which then pushes Tencent's callbacks, in the
documented JSON shapes, over HTTP to the real web app (uvicorn on loopback) at the token path. Outcomes are read
back through the CLI and the database, on SQLite or on PostgreSQL (whichever the suite runs on).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from callbackd.store.db import Database
from callbackd.store.models import Attempt, Callback, Case
from tests.conftest import case_row
from tests.integration.conftest import MONDAY, ORGANISATION, Deployment, LogRecords, WebServer, leaked_phones
from tests.integration.tencent_emulator import Account, TencentEmulator

TOKEN = "k8Hq0wR3nZ_v5Jc2Lx9Ty-4bMd7Pe1Gs"  # as `secrets.token_urlsafe(24)` makes one
SECRET_ID, SECRET_KEY = "AKID" + "x7Rk" * 8, "s3cr3t" * 5
ACCOUNT = Account(SECRET_ID, SECRET_KEY, voice_app="1400000001", voice_templates={"4356": 3},
                  sms_app="1400000002", sms_sign="滨江政务", sms_templates={"1234567": 3})
MOBILE, MOBILE_2, MOBILE_3 = "13900000001", "13900000002", "13900000003"
A, B, C = "+8613900000001", "+8613900000002", "+8613900000003"
LEVEL = {"1": "满意", "2": "基本满意", "3": "不满意"}
SIX = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")
ACK = {"result": 0, "errmsg": "OK"}


def settings_toml(endpoint: str, *, token: str = "") -> str:
    """callbackd.toml with `[channels.tencent]` pointed at the emulator over http."""
    extra = f'callback_token = "{token}"\n' if token else ""
    return f"""
organisation = "{ORGANISATION}"

[channels.tencent]
{extra}scheme = "http"
voice_endpoint = "{endpoint}"
sms_endpoint = "{endpoint}"
voice_sdk_app_id = "{ACCOUNT.voice_app}"
voice_template_id = "4356"
sms_sdk_app_id = "{ACCOUNT.sms_app}"
sms_sign_name = "{ACCOUNT.sms_sign}"
sms_template_id = "1234567"
calls_per_second = 50
messages_per_second = 50
"""


@dataclass
class TencentDeployment(Deployment):
    """The deployment with the Tencent emulator in the Twilio emulator's place."""

    emulator: TencentEmulator  # type: ignore[assignment]


@pytest.fixture
def deployment(workdir: Path, monkeypatch: pytest.MonkeyPatch, cli: Any, log_records: LogRecords
               ) -> Iterator[TencentDeployment]:
    """callbackd with its Tencent channels configured against the emulator, the web app running, clock at MONDAY,
    on the suite's database (PostgreSQL when the suite runs on it); afterwards, no phone number in any log."""
    database_url = os.environ.get("CALLBACKD_DATABASE_URL") or f"sqlite:///{workdir / 'callbackd.db'}"
    for name, value in {
        "CALLBACKD_DATABASE_URL": database_url, "CALLBACKD_NOW": MONDAY, "TENCENTCLOUD_SECRET_ID": SECRET_ID,
        "TENCENTCLOUD_SECRET_KEY": SECRET_KEY, "CALLBACKD_TENCENT_CALLBACK_TOKEN": TOKEN,
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("callbackd_tencent", "tencentcloud_sdk_common"):  # everything they would say, captured
        monkeypatch.setattr(logging.getLogger(name), "level", logging.DEBUG)
    web = WebServer()
    emulator = TencentEmulator(ACCOUNT, f"{web.url}/hooks/tencent/{TOKEN}").start()
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(settings_toml(emulator.endpoint), encoding="utf-8")
    database = Database(database_url)
    found = None
    try:
        web.start()
        found = TencentDeployment(emulator, database, web.url, workdir, cli, monkeypatch, log_records)
        yield found
    finally:
        emulator.stop()
        web.stop()
        database.dispose()
    assert leaked_phones(log_records.text, found.phones if found else set()) == []


def round_on(deployment: Deployment, channel: str, *rows: list[str]) -> None:
    """A week's round on one channel, over `rows` (default: case K1 of the mobile A, 不动产登记)."""
    deployment.ledger(*(rows or (case_row("K1", "不动产窗口", matter="不动产登记", phone=MOBILE),)))
    deployment.open_round("2026-W48", channel)


def due_times(deployment: Deployment, *case_nos: str) -> list[str]:
    """The due times of the cases' attempts in the organisation's zone, as "Mon 10:00:30", sorted."""
    with deployment.database.session() as session:
        times = session.scalars(
            select(Attempt.due_at).join(Callback).join(Case, Case.id == Callback.case_id)
            .where(Case.case_no.in_(case_nos))
        ).all()
    return sorted(t.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%a %H:%M:%S") for t in times)


def detail_of(deployment: Deployment, number: int = 1) -> str:
    with deployment.database.session() as session:
        return session.scalar(select(Attempt.detail).where(Attempt.id == number)) or ""


def effects(deployment: Deployment) -> dict[str, list[tuple[Any, ...]]]:
    """What a callback may change but for its receipt (a callback that changes nothing still records its ids)."""
    return {name: rows for name, rows in deployment.state().items() if name != "receipts"}


def ack(delivery: Any) -> bool:
    return delivery.status == 200 and delivery.json() == ACK


# ---- voice: one key ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["1", "2", "3"])
def test_a_one_key_call_records_the_key_pressed_and_completes(deployment, key):
    round_on(deployment, "tencent-voice")
    assert deployment.dispatch()["outcomes"] == {"in_progress": 1}

    # the call as the SDK asked for it: TC3-signed JSON to SendTtsVoice 2020-09-02
    (request,) = deployment.emulator.requests
    assert request.action == "SendTtsVoice"
    assert request.headers["x-tc-version"] == "2020-09-02" and request.headers["x-tc-region"] == "ap-guangzhou"
    assert request.body == {"TemplateId": "4356", "CalledNumber": A, "VoiceSdkAppid": ACCOUNT.voice_app,
                            "TemplateParamSet": [ORGANISATION[:12], "2026年11月3日", "不动产登记"], "PlayTimes": 2,
                            "SessionContext": "1"}
    (call,) = deployment.emulator.calls
    assert deployment.attempts("K1") == [("tencent-voice", "in_progress")]

    assert ack(deployment.emulator.press(call, key))  # Tencent's required answer, exactly
    assert deployment.answers("K1") == {"overall": (LEVEL[key], LEVEL[key])}  # the short form: one question
    assert deployment.status("K1") == "completed"
    assert deployment.attempts("K1") == [("tencent-voice", "completed")]

    before = effects(deployment)
    assert ack(deployment.emulator.end(call, "0"))  # the call's end changes nothing more
    assert effects(deployment) == before
    assert deployment.dispatch()["placed"] == 0


def test_an_invalid_key_records_nothing_and_a_valid_one_after_it_counts(deployment):
    round_on(deployment, "tencent-voice")
    deployment.dispatch()
    (call,) = deployment.emulator.calls
    assert ack(deployment.emulator.press(call, "7"))
    assert ack(deployment.emulator.press(call, "#"))
    assert deployment.answers("K1") == {}
    assert deployment.status("K1") == "in_progress"
    assert ack(deployment.emulator.press(call, "2"))  # the template plays again: the person tries once more
    assert deployment.answers("K1") == {"overall": ("基本满意", "基本满意")}
    assert deployment.status("K1") == "completed"


def test_only_an_invalid_key_then_the_end_of_the_call_is_a_hang_up_tried_again(deployment):
    round_on(deployment, "tencent-voice")
    deployment.dispatch()
    (call,) = deployment.emulator.calls
    deployment.emulator.answer(call, "9")
    assert deployment.answers("K1") == {}
    assert deployment.attempts("K1") == [("tencent-voice", "hung_up"), ("tencent-voice", "due")]
    assert deployment.status("K1") == "in_progress"


def test_a_call_answered_without_a_key_is_a_hang_up_and_tried_again_later(deployment):
    round_on(deployment, "tencent-voice")
    deployment.dispatch()
    (call,) = deployment.emulator.calls
    assert ack(deployment.emulator.end(call, "0"))  # answered, listened, hung up: no key
    assert deployment.answers("K1") == {}
    assert deployment.attempts("K1") == [("tencent-voice", "hung_up"), ("tencent-voice", "due")]
    assert due_times(deployment, "K1") == ["Mon 10:00:00", "Mon 14:00:00"]  # ≥2 h later, after the lunch break
    assert "no valid key" in detail_of(deployment)

    # a key arriving after the call ended (a late or replayed callback) changes nothing
    before = effects(deployment)
    assert ack(deployment.emulator.press(call, "1"))
    assert effects(deployment) == before


def test_an_unanswered_call_is_tried_again_after_two_hours_and_answered(deployment):
    round_on(deployment, "tencent-voice")
    deployment.dispatch()
    (first,) = deployment.emulator.calls
    assert ack(deployment.emulator.end(first, "1"))  # 用户未接听
    assert deployment.attempts("K1") == [("tencent-voice", "no_answer"), ("tencent-voice", "due")]
    assert due_times(deployment, "K1") == ["Mon 10:00:00", "Mon 14:00:00"]

    assert deployment.dispatch("2026-11-23T11:30:00+08:00")["placed"] == 0  # not 2 h yet
    assert deployment.dispatch("2026-11-23T14:00:00+08:00")["placed"] == 1
    second = deployment.emulator.calls[1]
    assert second.to == A and second.session_context == "2" and second.call_id != first.call_id

    # the first call's key, delivered late, is not the second call's: it changes nothing
    before = effects(deployment)
    assert ack(deployment.emulator.press(first, "3"))
    assert effects(deployment) == before

    deployment.emulator.answer(second, "1")
    assert deployment.status("K1") == "completed"
    assert deployment.answers("K1") == {"overall": ("满意", "满意")}
    assert deployment.attempts("K1") == [("tencent-voice", "no_answer"), ("tencent-voice", "completed")]


@pytest.mark.parametrize(("code", "reason", "outcome", "retried"), [
    (10, "用户正忙", "busy", True),
    (5, "无人接听", "no_answer", True),
    (1, "关机", "failed", True),
    (8, "空号", "invalid_number", False),
])
def test_a_call_that_never_reached_the_person_ends_as_tencent_says_why(deployment, code, reason, outcome,
                                                                       retried):
    round_on(deployment, "tencent-voice")
    deployment.dispatch()
    (call,) = deployment.emulator.calls
    assert ack(deployment.emulator.fail(call, code, reason))
    assert deployment.emulator.end(call, "2").status == 200  # the call's end, after it: changes nothing
    expected = [("tencent-voice", outcome)] + ([("tencent-voice", "due")] if retried else [])
    assert deployment.attempts("K1") == expected
    assert f"failed: {code} {reason}" in detail_of(deployment)
    if not retried:
        assert deployment.status("K1") == "invalid"


def test_a_call_failure_result_is_tried_again(deployment):
    round_on(deployment, "tencent-voice")
    deployment.dispatch()
    (call,) = deployment.emulator.calls
    assert ack(deployment.emulator.end(call, "2"))  # 呼叫异常
    assert deployment.attempts("K1") == [("tencent-voice", "failed"), ("tencent-voice", "due")]


# ---- repeated receipts ---------------------------------------------------------------------------------------


def test_every_voice_callback_delivered_twice_changes_things_once(deployment):
    round_on(deployment, "tencent-voice", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    answered, unanswered = deployment.emulator.calls_to(A)[0], deployment.emulator.calls_to(B)[0]
    deployment.emulator.deliver_twice = True
    assert all(ack(d) for d in deployment.emulator.answer(answered, "3"))
    assert ack(deployment.emulator.end(unanswered, "1"))
    assert len(deployment.emulator.deliveries) == 6
    assert deployment.answers("K1") == {"overall": ("不满意", "不满意")}
    assert deployment.attempts("K1") == [("tencent-voice", "completed")]
    assert deployment.attempts("K2") == [("tencent-voice", "no_answer"), ("tencent-voice", "due")]  # one retry

    before = deployment.state()
    deployment.emulator.deliver_twice = False
    for delivery in list(deployment.emulator.deliveries):  # every one of them again, byte for byte
        assert ack(deployment.emulator.post("voice", delivery.payload))
    assert deployment.state() == before


def test_sms_receipts_delivered_twice_are_read_once(deployment):
    round_on(deployment, "tencent-sms", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    deployment.emulator.deliver_twice = True
    assert ack(deployment.emulator.reply(A, "2", when=1795000000))  # delivered twice, read once
    assert deployment.answers("K1") == {"overall": ("基本满意", "基本满意")}
    assert deployment.status("K1") == "completed"
    failed = deployment.emulator.messages_to(B)[0]
    assert ack(deployment.emulator.report((failed, "FAIL", "MK:0005", "用户停机")))
    assert deployment.attempts("K2") == [("tencent-sms", "failed"), ("tencent-sms", "due")]  # one retry

    before = deployment.state()
    deployment.emulator.deliver_twice = False
    assert ack(deployment.emulator.reply(A, "2", when=1795000000))
    assert ack(deployment.emulator.report((failed, "FAIL", "MK:0005", "用户停机")))
    assert deployment.state() == before


# ---- the token and malformed bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["voice", "sms"])
@pytest.mark.parametrize("token", ["", "x" * 32, TOKEN[:-1], TOKEN + "A", TOKEN.upper()])
def test_a_wrong_token_is_not_found_and_changes_nothing(deployment, kind, token):
    round_on(deployment, f"tencent-{kind}")
    deployment.dispatch()
    if kind == "voice":
        call = deployment.emulator.calls[0]
        payload: Any = {"voiceprompt_callback": {"result": "1", "callid": call.call_id, "mobile": MOBILE,
                                                 "nationcode": "86"}}
    else:
        payload = {"extend": "", "mobile": MOBILE, "nationcode": "86", "sign": ACCOUNT.sms_sign, "text": "退订",
                   "time": 1795000000}
    before = deployment.state()
    url = f"{deployment.app_url}/hooks/tencent/{token}/{kind}" if token else \
        f"{deployment.app_url}/hooks/tencent/{kind}"
    assert deployment.emulator.post(kind, payload, url=url).status == 404
    assert deployment.state() == before
    # the same body at the right path is believed: it was refused for its token
    assert ack(deployment.emulator.post(kind, payload))
    assert deployment.state() != before


def test_the_token_may_come_from_the_settings_and_a_missing_one_refuses_every_callback(deployment, monkeypatch):
    monkeypatch.delenv("CALLBACKD_TENCENT_CALLBACK_TOKEN")
    round_on(deployment, "tencent-voice")
    deployment.dispatch()
    (call,) = deployment.emulator.calls
    assert deployment.emulator.press(call, "1").status == 404  # no token configured: nothing is believed
    assert deployment.answers("K1") == {}
    assert "callback_token" in deployment.logs.text  # the warning names the setting to fill

    settings = deployment.workdir / "config" / "callbackd.toml"
    settings.write_text(settings_toml(deployment.emulator.endpoint, token=TOKEN), encoding="utf-8")
    # the web app reads its settings at start: restart it on the new file
    web = WebServer()
    web.start()
    try:
        url = f"{web.url}/hooks/tencent/{TOKEN}/voice"
        payload = {"voicekey_callback": {"call_from": "", "callid": call.call_id, "keypress": "1",
                                         "mobile": MOBILE, "nationcode": "86"}}
        assert ack(deployment.emulator.post("voice", payload, url=url))
    finally:
        web.stop()
    assert deployment.answers("K1") == {"overall": ("满意", "满意")}


def call_payload(call_id: str, **changes: Any) -> dict[str, Any]:
    item = {"call_from": "", "callid": call_id, "keypress": "1", "mobile": MOBILE, "nationcode": "86"}
    item.update(changes)
    return {"voicekey_callback": {k: v for k, v in item.items() if v is not None}}


MALFORMED_VOICE = {
    "not JSON": b"voicekey_callback=1",
    "not UTF-8": b'{"voicekey_callback": {"callid": "\xff\xfe"}}',
    "an array": b"[]",
    "a number": b"1",
    "two callbacks in one": "two",
    "an unknown callback": "unknown",
    "callid missing": "no callid",
    "callid not a string": "callid list",
    "mobile not digits": "mobile letters",
    "result out of range": "result 9",
    "the callback not an object": "not object",
    "an empty object": b"{}",
}


@pytest.mark.parametrize("case", list(MALFORMED_VOICE))
def test_a_malformed_voice_callback_is_refused_with_400_and_changes_nothing(deployment, case):
    round_on(deployment, "tencent-voice")
    deployment.dispatch()
    call_id = deployment.emulator.calls[0].call_id
    shapes: dict[str, Any] = {
        "two": {**call_payload(call_id), "voiceprompt_callback": {"result": "0", "callid": call_id,
                                                                  "mobile": MOBILE, "nationcode": "86"}},
        "unknown": {"voicefoo_callback": call_payload(call_id)["voicekey_callback"]},
        "no callid": call_payload(call_id, callid=None),
        "callid list": call_payload(call_id, callid=[call_id]),
        "mobile letters": call_payload(call_id, mobile="139abc"),
        "result 9": {"voiceprompt_callback": {"result": "9", "callid": call_id, "mobile": MOBILE,
                                              "nationcode": "86"}},
        "not object": {"voicekey_callback": [call_id, "1"]},
    }
    value = MALFORMED_VOICE[case]
    before = deployment.state()
    if isinstance(value, bytes):
        delivery = deployment.emulator.post("voice", None, raw=value)
    else:
        delivery = deployment.emulator.post("voice", shapes[value])
    assert delivery.status == 400 and delivery.json()["result"] != 0
    assert deployment.state() == before


@pytest.mark.parametrize("payload", [
    [{"sid": "x", "mobile": MOBILE, "nationcode": "86", "report_status": "DELIVERED"}],  # unknown status
    [{"mobile": MOBILE, "nationcode": "86", "report_status": "FAIL"}],  # no sid
    [{"sid": "2433:1", "mobile": MOBILE, "nationcode": "86", "report_status": "SUCCESS"}, "x"],  # one not a report
    {"mobile": MOBILE, "nationcode": "86", "sign": "滨江政务", "time": 1795000000},  # a reply without its text
    {"mobile": MOBILE, "nationcode": "86", "sign": "滨江政务", "text": "退订", "time": "soon"},  # time not a number
    {"mobile": MOBILE, "nationcode": "86", "text": "退订", "time": 1795000000},  # no sign
    "退订",
])
def test_a_malformed_sms_callback_is_refused_with_400_and_changes_nothing(deployment, payload):
    round_on(deployment, "tencent-sms")
    deployment.dispatch()
    before = deployment.state()
    assert deployment.emulator.post("sms", payload).status == 400
    assert deployment.state() == before


# ---- SMS -----------------------------------------------------------------------------------------------------


def test_an_sms_survey_sends_the_approved_template_and_one_reply_completes_it(deployment):
    round_on(deployment, "tencent-sms")
    assert deployment.dispatch()["outcomes"] == {"in_progress": 1}
    (request,) = deployment.emulator.requests
    assert request.action == "SendSms" and request.headers["x-tc-version"] == "2021-01-11"
    assert request.body == {"PhoneNumberSet": [A], "SmsSdkAppId": ACCOUNT.sms_app, "SignName": ACCOUNT.sms_sign,
                            "TemplateId": "1234567",
                            "TemplateParamSet": [ORGANISATION[:12], "2026年11月3日", "不动产登记"],
                            "SessionContext": "1"}
    (message,) = deployment.emulator.messages
    with deployment.database.session() as session:  # its receipts find the attempt by Tencent's SerialNo
        assert session.scalar(select(Attempt.provider_id).where(Attempt.id == 1)) == message.serial

    assert ack(deployment.emulator.report((message, "SUCCESS", "DELIVRD", "用户短信送达成功")))
    assert deployment.status("K1") == "in_progress"  # delivered: the survey waits for the reply
    assert ack(deployment.emulator.reply(A, "1 办事很快，谢谢"))
    assert deployment.status("K1") == "completed"
    assert deployment.answers("K1") == {"overall": ("满意", "满意"), "suggestion": (None, "意见建议")}
    assert [row[2] for row in deployment.state()["contacts"]] == ["办事很快，谢谢"]  # the words after the answer
    assert [row[2] for row in deployment.state()["contacts"]] == ["办事很快，谢谢"]  # the words after the answers
    assert deployment.attempts("K1") == [("tencent-sms", "completed")]
    assert len(deployment.emulator.requests) == 1  # a reply needs no answering message


@pytest.mark.parametrize(("reply", "level"), [
    ("1", "满意"), ("１", "满意"), ("满意", "满意"), (" 2 ", "基本满意"), ("3不满意", "不满意"), ("很差", "不满意"),
])
def test_a_reply_is_read_in_the_spellings_people_use(deployment, reply, level):
    round_on(deployment, "tencent-sms")
    deployment.dispatch()
    assert ack(deployment.emulator.reply(A, reply))
    answers = deployment.answers("K1")
    assert set(answers) == {"overall"} and answers["overall"][0] == level
    assert deployment.status("K1") == "completed"  # the short form answered


def test_an_unreadable_reply_records_nothing_and_sends_nothing(deployment):
    round_on(deployment, "tencent-sms")
    deployment.dispatch()
    assert ack(deployment.emulator.reply(A, "9 9 9 9 9 9"))
    assert ack(deployment.emulator.reply(A, "你们是谁"))
    assert deployment.answers("K1") == {} and deployment.status("K1") == "in_progress"
    assert len(deployment.emulator.requests) == 1


@pytest.mark.parametrize("word", ["退订", "TD", "td"])
def test_an_opt_out_reply_closes_the_survey_and_the_number_is_never_contacted_again(deployment, monkeypatch,
                                                                                    word):
    round_on(deployment, "tencent-sms", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    assert ack(deployment.emulator.reply(A, word))
    assert deployment.status("K1") == "opted_out" and deployment.answers("K1") == {}
    assert deployment.opted_out() == {A}
    assert deployment.attempts("K1") == [("tencent-sms", "opted_out")]

    monkeypatch.setenv("CALLBACKD_SAMPLING__PHONE_COOLDOWN_DAYS", "0")
    deployment.at("2026-11-30T10:00:00+08:00")
    deployment.ledger(case_row("K3", phone=MOBILE, resolved="2026-11-26 10:00:00"),
                      case_row("K4", phone=MOBILE_3, resolved="2026-11-26 11:00:00"))
    deployment.open_round("2026-W49", "tencent-sms")
    assert set(deployment.callbacks(round_id=2)) == {"K4"}
    sent = len(deployment.emulator.messages)
    assert deployment.dispatch()["placed"] == 1
    assert [m.to for m in deployment.emulator.messages[sent:]] == [C]


def test_td_from_a_number_with_no_open_survey_is_still_recorded(deployment):
    assert ack(deployment.emulator.reply(B, "TD"))
    assert deployment.opted_out() == {B}
    assert ack(deployment.emulator.reply(C, "1"))  # anything else from a stranger changes nothing
    assert deployment.opted_out() == {B}


def test_a_failed_delivery_is_tried_again_and_an_empty_number_is_invalid(deployment):
    round_on(deployment, "tencent-sms", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    off, empty = deployment.emulator.messages_to(A)[0], deployment.emulator.messages_to(B)[0]
    # one request carries both reports, as Tencent batches them
    assert ack(deployment.emulator.report((off, "FAIL", "MK:0005", "用户关机"), (empty, "FAIL", "MK:0001", "空号")))
    assert deployment.attempts("K1") == [("tencent-sms", "failed"), ("tencent-sms", "due")]
    assert deployment.status("K1") == "in_progress"
    assert deployment.attempts("K2") == [("tencent-sms", "invalid_number")]
    assert deployment.status("K2") == "invalid"
    assert "MK:0005" in detail_of(deployment, 1)


# ---- provider errors -----------------------------------------------------------------------------------------


def test_a_number_tencent_refuses_as_malformed_is_invalid_and_its_message_is_masked(deployment):
    round_on(deployment, "tencent-voice", case_row("K1", phone=MOBILE))
    deployment.emulator.fail_next(A, "InvalidParameterValue.CalledNumberVerifyFail", "被叫号码 {to} 格式校验失败")
    assert deployment.dispatch()["outcomes"] == {"invalid_number": 1}
    assert deployment.emulator.calls == []
    assert deployment.status("K1") == "invalid" and deployment.reason("K1") == "invalid_number"
    detail = detail_of(deployment)
    assert detail.startswith("Tencent InvalidParameterValue.CalledNumberVerifyFail:") and "格式校验失败" in detail
    assert A not in detail and MOBILE not in detail and "0001" in detail  # the number it names, masked
    assert deployment.dispatch("2026-11-23T16:00:00+08:00")["placed"] == 0  # never tried again


def test_a_number_sendsms_reports_malformed_in_its_send_status_is_invalid(deployment):
    round_on(deployment, "tencent-sms")
    deployment.emulator.fail_next(A, "InvalidParameterValue.IncorrectPhoneNumber", "手机号 {to} 格式错误",
                                  per_number=True)
    assert deployment.dispatch()["outcomes"] == {"invalid_number": 1}
    assert deployment.emulator.messages == []
    assert MOBILE not in detail_of(deployment)


@pytest.mark.parametrize(("channel", "code", "per_number"), [
    ("tencent-sms", "LimitExceeded.PhoneNumberDailyLimit", True),  # inside a 200 SendStatusSet
    ("tencent-sms", "LimitExceeded.PhoneNumberThirtySecondLimit", False),
    ("tencent-voice", "LimitExceeded.DeliveryFrequencyLimit", False),
])
def test_tencents_flow_control_is_rate_limited_and_costs_no_try(deployment, channel, code, per_number):
    round_on(deployment, channel)
    deployment.emulator.fail_next(A, code, per_number=per_number)
    assert deployment.dispatch()["outcomes"] == {"rate_limited": 1}
    assert deployment.attempts("K1") == [(channel, "rate_limited"), (channel, "due")]
    assert detail_of(deployment).startswith(f"Tencent {code}")


@pytest.mark.parametrize("secret", ["key", "id"])
def test_wrong_credentials_are_refused_by_the_api_and_nobody_is_called(deployment, monkeypatch, secret):
    round_on(deployment, "tencent-voice")
    if secret == "key":
        monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "wrong" * 6)
        code = "AuthFailure.SignatureFailure"
    else:
        monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", "AKID" + "0" * 32)
        code = "AuthFailure.SecretIdNotFound"
    assert deployment.dispatch()["outcomes"] == {"not_configured": 1}
    assert deployment.emulator.calls == [] and deployment.emulator.requests == []
    assert detail_of(deployment).startswith(f"Tencent {code}:")
    assert deployment.attempts("K1") == [("tencent-voice", "not_configured"), ("tencent-voice", "due")]


def test_an_unapproved_template_is_not_configured(deployment):
    settings = deployment.workdir / "config" / "callbackd.toml"
    settings.write_text(settings_toml(deployment.emulator.endpoint).replace('"1234567"', '"7654321"'),
                        encoding="utf-8")
    round_on(deployment, "tencent-sms")
    assert deployment.dispatch()["outcomes"] == {"not_configured": 1}
    assert detail_of(deployment).startswith("Tencent FailedOperation.TemplateIncorrectOrUnapproved")


def test_a_number_on_tencents_blacklist_is_refused_and_opted_out(deployment):
    round_on(deployment, "tencent-sms")
    deployment.emulator.fail_next(A, "FailedOperation.PhoneNumberInBlacklist", "手机号在免打扰名单库中",
                                  per_number=True)
    assert deployment.dispatch()["outcomes"] == {"opted_out": 1}
    assert deployment.status("K1") == "opted_out" and deployment.opted_out() == {A}


# ---- per-number limits ---------------------------------------------------------------------------------------


@pytest.fixture
def lenient_core(monkeypatch):
    """The core's own spacing rules relaxed (retries at once, no gap between a number's attempts, ten a day), so
    that only the channel's declared per-number limits hold attempts. Asked for before `deployment`: the web app
    reads its settings when it starts."""
    for name, value in {"RETRY_MINUTES": "0", "PER_NUMBER_GAP_SECONDS": "0", "PER_NUMBER_PER_DAY": "10",
                        "ATTEMPTS_PER_DAY": "10", "ATTEMPTS_PER_CHANNEL": "10"}.items():
        monkeypatch.setenv(f"CALLBACKD_DISPATCH__{name}", value)


def test_tencent_voice_limits_hold_a_numbers_calls_one_in_30_s_and_two_in_10_minutes(lenient_core, deployment):
    round_on(deployment, "tencent-voice")
    deployment.dispatch("2026-11-23T10:00:00+08:00")
    deployment.emulator.end(deployment.emulator.calls[0], "1")  # not answered: tried again at once...
    report = deployment.dispatch()
    assert (report["placed"], report["held"]) == (0, 1)  # ...but Tencent takes one call in 30 s to a number
    assert due_times(deployment, "K1") == ["Mon 10:00:00", "Mon 10:00:30"]
    assert deployment.dispatch("2026-11-23T10:00:29+08:00")["placed"] == 0

    assert deployment.dispatch("2026-11-23T10:00:30+08:00")["placed"] == 1
    deployment.emulator.end(deployment.emulator.calls[1], "1")
    report = deployment.dispatch()
    assert (report["placed"], report["held"]) == (0, 1)
    # one in 30 s would allow 10:01:00; two in 10 minutes hold the third call to 10:10:00
    assert due_times(deployment, "K1") == ["Mon 10:00:00", "Mon 10:00:30", "Mon 10:10:00"]
    assert deployment.dispatch("2026-11-23T10:09:59+08:00")["placed"] == 0
    assert deployment.dispatch("2026-11-23T10:10:00+08:00")["placed"] == 1
    assert len(deployment.emulator.calls_to(A)) == 3


def test_tencent_sms_limits_hold_a_second_message_to_a_number_for_30_s(lenient_core, deployment):
    round_on(deployment, "tencent-sms")
    deployment.dispatch("2026-11-23T10:00:00+08:00")
    deployment.emulator.report((deployment.emulator.messages[0], "FAIL", "MK:0005", "用户关机"))
    report = deployment.dispatch()
    assert (report["placed"], report["held"]) == (0, 1)
    assert due_times(deployment, "K1") == ["Mon 10:00:00", "Mon 10:00:30"]
    assert deployment.dispatch("2026-11-23T10:00:29+08:00")["placed"] == 0
    assert deployment.dispatch("2026-11-23T10:00:30+08:00")["placed"] == 1
    assert len(deployment.emulator.messages_to(A)) == 2


# ---- set-up and confidentiality ------------------------------------------------------------------------------


def test_plugins_list_shows_the_channels_limits_and_what_is_configured(deployment):
    run = deployment.cli("plugins", "list", "--json")
    assert run.code == 0, run.err
    (plugin,) = [p for p in run.json() if p["name"] == "tencent"]
    details = {c["channel"]: c for c in plugin["channel_details"]}
    assert details["tencent-voice"]["form"] == "short" and details["tencent-sms"]["form"] == "short"
    assert details["tencent-voice"]["number_limits"] == ["1 per 30 s", "2 per 10 minutes", "5 per day"]
    assert details["tencent-sms"]["number_limits"] == ["1 per 30 s", "10 per day"]
    assert all(all(c["configuration"].values()) for c in details.values())
    assert SECRET_KEY not in run.out and TOKEN not in run.out  # never a secret's value


def test_no_phone_number_reaches_a_log_even_with_the_sdk_logging_everything(deployment):
    deployment.ledger(case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.open_round("2026-W48", "tencent-voice")
    deployment.emulator.fail_next(B, "InvalidParameterValue.CalledNumberVerifyFail", "被叫号码 {to} 格式校验失败")
    logging.getLogger("tencentcloud_sdk_common").setLevel(logging.DEBUG)  # as a careless deployment might
    deployment.dispatch()
    (call,) = deployment.emulator.calls
    deployment.emulator.fail(call, 2, f"通话中 {A}")
    deployment.emulator.reply(C, "TD")
    deployment.emulator.post("voice", call_payload(call.call_id), url=f"{deployment.app_url}/hooks/tencent/x/voice")
    deployment.emulator.post("sms", {"mobile": MOBILE, "nationcode": "86", "text": "x"})  # malformed: no sign

    log = deployment.logs.text
    assert f'"POST /hooks/tencent/{TOKEN}/voice HTTP/1.1" 200' in log  # the access log was captured
    assert '"POST /hooks/tencent/x/voice HTTP/1.1" 404' in log
    assert logging.getLogger("tencentcloud_sdk_common").level == logging.WARNING  # the plugin quietened the SDK
    assert leaked_phones(log, deployment.phones | {MOBILE_3}) == []
    assert MOBILE not in detail_of(deployment) and MOBILE_2 not in json.dumps(deployment.state(), default=str)
