"""The Twilio channels end to end: the real dispatcher places calls and messages through the real twilio library
against the Twilio emulator, which drives the real web app (uvicorn on loopback) with signed webhooks, following
the TwiML it returns and playing a person from a script. Outcomes are read back through the CLI and the database.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from twilio.request_validator import RequestValidator

from callbackd.store.models import Attempt, Callback, Case
from tests.conftest import case_row
from tests.integration.conftest import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM_NUMBER,
    MONDAY,
    ORGANISATION,
    PUBLIC_BASE_URL,
    Deployment,
    leaked_phones,
)
from tests.integration.twilio_emulator import SILENT, Person

# the applicants: three mobiles and a Beijing landline, as a hall's ledger writes them, and as Twilio sees them
MOBILE, MOBILE_2, MOBILE_3 = "13900000001", "13900000002", "13900000003"
LANDLINE = "010-62345678"
A, B, C, LAND = "+8613900000001", "+8613900000002", "+8613900000003", "+861062345678"
SIX = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")
LEVEL = {"1": "满意", "2": "基本满意", "3": "不满意"}
THANKS_VOICE = "您的评价已记录"
THANKS_SMS = "您的评价已收到"
HOOKS = f"{PUBLIC_BASE_URL}/hooks/twilio"


def round_on(deployment: Deployment, channel: str, *rows: list[str]) -> None:
    """A week's round on one channel, over `rows` (default: case K1 of the mobile A, 不动产登记)."""
    deployment.ledger(*(rows or (case_row("K1", "不动产窗口", matter="不动产登记", phone=MOBILE),)))
    deployment.open_round("2026-W48", channel)


def text_of(element: ET.Element) -> str:
    return "".join(element.itertext())


def levels(keys: str) -> dict[str, tuple[str, str]]:
    return {question: (LEVEL[key], LEVEL[key]) for question, key in zip(SIX, keys, strict=True)}


def due_times(deployment: Deployment, case_no: str) -> list[str]:
    """Each attempt's due time in the organisation's zone, as "Mon 14:00"."""
    with deployment.database.session() as session:
        times = session.scalars(
            select(Attempt.due_at).join(Callback).join(Case, Case.id == Callback.case_id)
            .where(Case.case_no == case_no).order_by(Attempt.number)
        ).all()
    return [t.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%a %H:%M") for t in times]


# ---- voice ---------------------------------------------------------------------------------------------------


def test_a_full_keypad_survey_completes_with_six_answers(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys="123112"))

    assert deployment.dispatch()["outcomes"] == {"in_progress": 1}
    (call,) = deployment.emulator.play()

    # the call as the twilio library asked for it
    assert (call.to, call.from_) == (A, FROM_NUMBER)
    assert call.url == f"{HOOKS}/voice/1" and call.status_callback == f"{HOOKS}/status/1"
    assert call.machine_detection == "Enable"
    assert call.events == ["initiated", "ringing", "answered", "completed"]
    # the first TwiML: greeting naming the organisation and the matter, the first question in a one-key Gather
    first = call.documents[0]
    gather = first.find("Gather")
    assert gather is not None and gather.get("numDigits") == "1"
    assert gather.get("action", "").startswith(f"{HOOKS}/voice/1/answer?")
    say = gather.find("Say")
    assert say is not None and say.get("language") == "zh-CN" and "服务态度" in text_of(say)
    assert ORGANISATION in text_of(first) and "不动产登记" in text_of(first)
    # six questions heard, each in its Gather, then thanks and a hang-up from the project
    assert len(call.gathers) == 6 and all(g["numDigits"] == "1" for g in call.gathers)
    last = call.documents[-1]
    assert [verb.tag for verb in last] == ["Say", "Hangup"] and THANKS_VOICE in text_of(last)
    assert call.ended_by == "project"

    assert deployment.status("K1") == "completed"
    assert deployment.answers("K1") == levels("123112")
    assert deployment.attempts("K1") == [("twilio-voice", "completed")]
    assert deployment.dispatch()["placed"] == 0  # nothing more to do


def test_an_invalid_key_is_asked_again_once_then_the_valid_answer_is_recorded(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys=["7", "2", "1", "1", "1", "1", "1"]))
    deployment.dispatch()
    (call,) = deployment.emulator.play()

    reask = call.documents[1]
    assert "按键无效" in text_of(reask)
    gather = reask.find("Gather")
    assert gather is not None and "服务态度" in text_of(gather)  # the same question again
    assert gather.get("action") == f"{HOOKS}/voice/1/answer?q=attitude&try=1"
    assert "办事的效率" in text_of(call.documents[2].find("Gather"))
    assert deployment.answers("K1") == levels("211111")
    assert deployment.status("K1") == "completed"


def test_a_second_invalid_key_moves_on_without_guessing(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys=["7", "9", "1", "1", "1", "1", "1"]))
    deployment.dispatch()
    (call,) = deployment.emulator.play()
    assert "办事的效率" in text_of(call.documents[2].find("Gather"))
    assert "attitude" not in deployment.answers("K1") and len(deployment.answers("K1")) == 5
    assert deployment.status("K1") == "partial"


def test_silence_is_asked_again_once_then_the_survey_moves_on_and_ends_partial(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys=[SILENT, SILENT, "1", "1", "1", "1", "1"]))
    deployment.dispatch()
    (call,) = deployment.emulator.play()

    # silence: the Gather times out and Twilio follows the <Redirect> after it
    assert [verb.tag for verb in call.documents[0]] == ["Say", "Gather", "Redirect"]
    no_input = call.documents[1]
    assert "没有收到您的按键" in text_of(no_input) and "服务态度" in text_of(no_input.find("Gather"))
    assert "办事的效率" in text_of(call.documents[2].find("Gather"))
    assert THANKS_VOICE in call.transcript and call.ended_by == "project"
    answers = deployment.answers("K1")
    assert set(answers) == set(SIX) - {"attitude"}
    assert deployment.status("K1") == "partial"
    assert deployment.attempts("K1") == [("twilio-voice", "partial")]


def test_a_hang_up_after_two_answers_keeps_those_two_and_ends_partial(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys="21"))
    deployment.dispatch()
    (call,) = deployment.emulator.play()

    assert call.ended_by == "person" and call.status == "completed"
    assert deployment.answers("K1") == {"attitude": ("基本满意", "基本满意"), "efficiency": ("满意", "满意")}
    assert deployment.status("K1") == "partial"
    assert deployment.attempts("K1") == [("twilio-voice", "partial")]  # no retry after answers were given


def test_a_hang_up_before_any_answer_is_tried_again(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys=()))
    deployment.dispatch()
    (call,) = deployment.emulator.play()
    assert call.ended_by == "person" and len(call.gathers) == 1
    assert deployment.answers("K1") == {}
    assert deployment.attempts("K1") == [("twilio-voice", "hung_up"), ("twilio-voice", "due")]
    assert deployment.status("K1") == "in_progress"


def test_an_answering_machine_gets_no_survey_and_counts_as_no_answer(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person("machine"))
    deployment.dispatch()
    (call,) = deployment.emulator.play()

    assert call.answered_by == "machine_start"
    assert [[verb.tag for verb in document] for document in call.documents] == [["Hangup"]]
    assert call.said == [] and call.gathers == []
    assert deployment.answers("K1") == {}
    assert deployment.attempts("K1") == [("twilio-voice", "machine"), ("twilio-voice", "due")]
    assert due_times(deployment, "K1") == ["Mon 10:00", "Mon 14:00"]  # ≥2 h later, after the lunch break
    assert deployment.status("K1") == "in_progress"


def test_busy_then_answered_on_the_retry(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person("busy"), Person(keys="111111"))
    deployment.dispatch()
    (busy,) = deployment.emulator.play()
    assert busy.status == "busy" and busy.documents == []
    assert deployment.attempts("K1") == [("twilio-voice", "busy"), ("twilio-voice", "due")]

    assert deployment.dispatch("2026-11-23T11:30:00+08:00")["placed"] == 0  # not 2 h yet
    assert deployment.emulator.play() == []
    assert deployment.dispatch("2026-11-23T14:00:00+08:00")["placed"] == 1
    (answered,) = deployment.emulator.play()
    assert answered.url == f"{HOOKS}/voice/2"
    assert deployment.status("K1") == "completed"
    assert deployment.attempts("K1") == [("twilio-voice", "busy"), ("twilio-voice", "completed")]
    assert deployment.answers("K1") == levels("111111")


def test_no_call_goes_out_outside_calling_hours(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys="111111"))
    for when in ("2026-11-27T20:30:00+08:00",  # Friday evening
                 "2026-11-28T10:00:00+08:00",  # Saturday
                 "2026-11-30T08:59:00+08:00"):  # Monday, before nine
        assert deployment.dispatch(when)["placed"] == 0
        assert deployment.emulator.calls == [] and deployment.emulator.api_requests == []
    assert deployment.status("K1") == "in_progress"  # scheduled, waiting for Monday
    assert deployment.dispatch("2026-11-30T09:00:00+08:00")["placed"] == 1
    assert len(deployment.emulator.play()) == 1
    assert deployment.status("K1") == "completed"


def test_a_retry_due_in_the_evening_is_held_until_the_next_working_morning(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person("no-answer"), Person(keys="111111"))
    deployment.dispatch()
    deployment.emulator.play()
    assert due_times(deployment, "K1") == ["Mon 10:00", "Mon 14:00"]

    report = deployment.dispatch("2026-11-23T21:00:00+08:00")  # due since 14:00, but it is evening now
    assert (report["placed"], report["held"]) == (0, 1)
    assert len(deployment.emulator.calls) == 1
    assert due_times(deployment, "K1") == ["Mon 10:00", "Tue 09:00"]
    assert deployment.dispatch("2026-11-24T09:00:00+08:00")["placed"] == 1
    assert len(deployment.emulator.play()) == 1 and deployment.status("K1") == "completed"


# ---- SMS -----------------------------------------------------------------------------------------------------


def test_an_sms_survey_answered_in_one_reply(deployment):
    round_on(deployment, "twilio-sms")
    assert deployment.dispatch()["outcomes"] == {"in_progress": 1}
    (survey,) = deployment.emulator.messages
    assert (survey.to, survey.from_, survey.direction) == (A, FROM_NUMBER, "outbound-api")
    assert survey.status_callback == f"{HOOKS}/status/sms/1"
    assert ORGANISATION in survey.body and "不动产登记" in survey.body and "6.总体评价" in survey.body
    assert "TD" in survey.body  # how to opt out

    assert deployment.emulator.report_message(survey, "delivered").status == 204
    replies = deployment.emulator.text(A, "1 1 2 1 1 1")
    assert len(replies) == 1 and THANKS_SMS in replies[0]
    assert deployment.status("K1") == "completed"
    assert deployment.answers("K1") == levels("112111")
    assert deployment.attempts("K1") == [("twilio-sms", "completed")]
    assert [m.direction for m in deployment.emulator.messages_to(A)] == ["outbound-api", "outbound-reply"]


def test_an_unreadable_sms_is_asked_again_once_and_never_guessed(deployment):
    round_on(deployment, "twilio-sms")
    deployment.dispatch()

    (reask,) = deployment.emulator.text(A, "9 9 9 9 9 9")
    assert "未能识别" in reask and "6.总体评价" in reask
    assert deployment.emulator.text(A, "1 1 2 1 1 1 7") == []  # asked again once already: no second re-ask
    assert deployment.answers("K1") == {}
    assert deployment.status("K1") == "in_progress"

    (thanks,) = deployment.emulator.text(A, "3 3 3 3 3 3")
    assert THANKS_SMS in thanks
    assert deployment.answers("K1") == levels("333333") and deployment.status("K1") == "completed"
    assert len(deployment.emulator.messages_to(A)) == 3  # the survey, one re-ask, the thanks


@pytest.mark.parametrize("word", ["退订", "TD"])
def test_an_opt_out_reply_is_confirmed_and_the_number_is_never_contacted_again(deployment, monkeypatch, word):
    round_on(deployment, "twilio-sms", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    assert {m.to for m in deployment.emulator.messages} == {A, B}

    (confirmation,) = deployment.emulator.text(A, word)
    assert "您已退订" in confirmation
    assert deployment.status("K1") == "opted_out" and deployment.answers("K1") == {}
    assert deployment.opted_out() == {A}
    assert deployment.attempts("K1") == [("twilio-sms", "opted_out")]

    # a week later, a new case of the same applicant (and one of another) is resolved: the next round never
    # selects it, whatever the phone cool-down says
    monkeypatch.setenv("CALLBACKD_SAMPLING__PHONE_COOLDOWN_DAYS", "0")
    deployment.at("2026-11-30T10:00:00+08:00")
    deployment.ledger(case_row("K3", phone=MOBILE, resolved="2026-11-26 10:00:00"),
                      case_row("K4", phone=MOBILE_3, resolved="2026-11-26 11:00:00"))
    deployment.open_round("2026-W49", "twilio-sms")
    assert set(deployment.callbacks(round_id=2)) == {"K4"}
    sent_before = len(deployment.emulator.messages)
    assert deployment.dispatch()["placed"] == 1
    assert [m.to for m in deployment.emulator.messages[sent_before:]] == [C]
    assert deployment.emulator.calls_to(A) == []


def test_td_from_a_number_with_no_open_survey_is_still_recorded(deployment):
    (confirmation,) = deployment.emulator.text(B, "TD")
    assert "您已退订" in confirmation
    assert deployment.opted_out() == {B}


def test_an_sms_to_a_switched_off_handset_is_tried_again_but_a_landline_is_invalid(deployment):
    round_on(deployment, "twilio-sms", case_row("K1", phone=MOBILE), case_row("K2", phone=MOBILE_2))
    deployment.dispatch()
    off, landline = deployment.emulator.messages_to(A)[0], deployment.emulator.messages_to(B)[0]
    deployment.emulator.report_message(off, "sent")
    deployment.emulator.report_message(off, "undelivered", 30003)  # powered off or out of coverage: temporary
    deployment.emulator.report_message(landline, "undelivered", 30006)  # the ledger's mobile is in fact a landline
    assert deployment.attempts("K1") == [("twilio-sms", "failed"), ("twilio-sms", "due")]
    assert deployment.status("K1") == "in_progress"
    assert deployment.attempts("K2") == [("twilio-sms", "invalid_number")]
    assert deployment.status("K2") == "invalid"


# ---- fallback and provider errors ----------------------------------------------------------------------------


def test_voice_never_answered_falls_back_to_sms_for_a_mobile_only(deployment):
    deployment.ledger(case_row("K1", phone=MOBILE), case_row("K2", phone=LANDLINE))
    deployment.open_round("2026-W48", "twilio-voice", "twilio-sms")
    for number in (A, LAND):
        deployment.emulator.script(number, *[Person("no-answer")] * 3)
    for hour in ("10:00", "14:00", "16:00"):
        assert deployment.dispatch(f"2026-11-23T{hour}:00+08:00")["placed"] == 2
        assert len(deployment.emulator.play()) == 2
    assert deployment.emulator.messages == []
    assert deployment.status("K2") == "unreachable" and deployment.reason("K2") == "no_answer"
    assert deployment.attempts("K2") == [("twilio-voice", "no_answer")] * 3

    # the SMS is due at once, but three calls today were the number's daily limit: it goes next morning
    assert deployment.dispatch("2026-11-23T16:05:00+08:00")["held"] == 1
    assert deployment.emulator.messages == []
    assert deployment.dispatch("2026-11-24T09:00:00+08:00")["outcomes"] == {"in_progress": 1}
    (survey,) = deployment.emulator.messages
    assert survey.to == A and "6.总体评价" in survey.body
    assert deployment.emulator.messages_to(LAND) == [] and len(deployment.emulator.calls_to(LAND)) == 3

    (thanks,) = deployment.emulator.text(A, "111111")
    assert THANKS_SMS in thanks and deployment.status("K1") == "completed"
    assert deployment.attempts("K1") == [("twilio-voice", "no_answer")] * 3 + [("twilio-sms", "completed")]


def test_twilio_21211_on_a_call_makes_the_number_invalid(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.fail_next(A, 21211)
    assert deployment.dispatch()["outcomes"] == {"invalid_number": 1}
    assert [resource for resource, _ in deployment.emulator.api_requests] == ["Calls"]
    assert deployment.emulator.calls == []
    assert deployment.attempts("K1") == [("twilio-voice", "invalid_number")]
    assert deployment.status("K1") == "invalid" and deployment.reason("K1") == "invalid_number"
    with deployment.database.session() as session:
        detail = session.scalar(select(Attempt.detail))
    assert "not a valid phone number" in detail and "0001" in detail  # Twilio's message, kept...
    assert A not in detail and MOBILE not in detail  # ...with the number it names masked
    assert deployment.dispatch("2026-11-23T16:00:00+08:00")["placed"] == 0  # never tried again


def test_wrong_credentials_are_refused_by_the_api_and_nobody_is_called(deployment, monkeypatch):
    round_on(deployment, "twilio-voice")
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "f" * 32)
    # the account's fault, not the applicant's: it is reported, and retried without using up the applicant's tries
    assert deployment.dispatch()["outcomes"] == {"not_configured": 1}
    assert deployment.emulator.calls == [] and deployment.emulator.api_requests == []
    with deployment.database.session() as session:
        detail = session.scalar(select(Attempt.detail).where(Attempt.number == 1))
        retry = session.scalar(select(Attempt.status).where(Attempt.number == 2))
    assert detail.startswith("Twilio 20003:") and "Authenticate" in detail  # as the twilio library raised it
    assert retry == "due"


def test_twilio_21610_on_a_message_opts_the_number_out(deployment):
    round_on(deployment, "twilio-sms")
    deployment.emulator.fail_next(A, 21610)
    assert deployment.dispatch()["outcomes"] == {"opted_out": 1}
    assert deployment.emulator.messages == []
    assert deployment.status("K1") == "opted_out"
    assert deployment.opted_out() == {A}
    assert deployment.attempts("K1") == [("twilio-sms", "opted_out")]


# ---- signatures and repeated deliveries ----------------------------------------------------------------------

# each webhook with a request that would change something if it were believed
FORGERIES = {
    "voice": ("voice", "voice/1", {"CallStatus": "in-progress", "AnsweredBy": "machine_start"}),
    "answer": ("voice", "voice/1/answer?q=attitude&try=0", {"CallStatus": "in-progress", "Digits": "3"}),
    "suggestion": ("voice", "voice/1/suggestion", {"CallStatus": "in-progress", "RecordingUrl": "https://x.test/r"}),
    "call status": ("voice", "status/1", {"CallStatus": "busy"}),
    "inbound sms": ("sms", "sms", {"From": A, "Body": "退订", "MessageSid": "SM" + "f" * 32}),
    "message status": ("sms", "status/sms/1", {"MessageStatus": "undelivered", "ErrorCode": "21610"}),
}


@pytest.mark.parametrize("webhook", list(FORGERIES))
def test_a_forged_webhook_is_refused_and_changes_nothing(deployment, webhook):
    channel, path, extra = FORGERIES[webhook]
    round_on(deployment, f"twilio-{channel}")
    deployment.dispatch()
    sid = deployment.emulator.calls[0].sid if channel == "voice" else deployment.emulator.messages[0].sid
    params = {"AccountSid": ACCOUNT_SID, "CallSid": sid, "MessageSid": sid, "From": FROM_NUMBER, "To": A,
              **extra}
    url = f"{HOOKS}/{path}"
    local = deployment.app_url + url[len(PUBLIC_BASE_URL):]
    signatures = {
        "empty signature": "",
        "wrong token": RequestValidator("f" * 32).compute_signature(url, params),
        "signed for another URL": RequestValidator(AUTH_TOKEN).compute_signature(local, params),
        "signed other parameters": RequestValidator(AUTH_TOKEN).compute_signature(url, {**params, "Digits": "1",
                                                                                        "Body": "1 1 1 1 1 1"}),
    }
    forgeries = {"no signature": {}, **{name: {"X-Twilio-Signature": sig} for name, sig in signatures.items()}}
    before = deployment.state()
    for name, headers in forgeries.items():
        delivery = deployment.emulator.post(url, params, headers=headers)
        assert delivery.status == 403, name
        assert deployment.state() == before, name

    # the same request signed as Twilio signs it is believed: the forgeries were refused for their signature
    assert deployment.emulator.post(url, params).status in (200, 204)
    assert deployment.state() != before


def test_a_delivery_signed_for_the_url_with_its_default_port_is_believed(deployment):
    # Twilio has signed some webhooks for https://host:443/...: RequestValidator accepts both forms
    round_on(deployment, "twilio-voice")
    deployment.dispatch()
    sid = deployment.emulator.calls[0].sid
    url = f"{HOOKS}/voice/1/answer?q=attitude&try=0"
    params = {"AccountSid": ACCOUNT_SID, "CallSid": sid, "CallStatus": "in-progress", "Digits": "2"}
    with_port = url.replace(PUBLIC_BASE_URL, PUBLIC_BASE_URL + ":443")
    signature = RequestValidator(AUTH_TOKEN).compute_signature(with_port, params)
    assert signature != RequestValidator(AUTH_TOKEN).compute_signature(url, params)

    assert deployment.emulator.post(url, params, headers={"X-Twilio-Signature": signature}).status == 200
    assert deployment.answers("K1") == {"attitude": ("基本满意", "基本满意")}


def test_a_whole_call_delivered_twice_records_everything_once(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys="123112"))
    deployment.dispatch()
    deployment.emulator.deliver_twice = True
    assert len(deployment.emulator.play()) == 1

    answers = [d for d in deployment.emulator.deliveries if "/answer?" in d.url]
    assert len(answers) == 12
    for first, again in zip(answers[0:10:2], answers[1:10:2], strict=True):
        assert (first.params, first.body) == (again.params, again.body)  # the same digits, the same next question
    # the last answer's copy finds the survey over: it only hangs up, with nothing recorded again
    assert THANKS_VOICE in answers[10].body and THANKS_VOICE not in answers[11].body and "Hangup" in answers[11].body
    assert deployment.answers("K1") == levels("123112")
    assert deployment.attempts("K1") == [("twilio-voice", "completed")]
    assert deployment.status("K1") == "completed"


def test_another_digit_for_an_answered_question_changes_nothing(deployment):
    round_on(deployment, "twilio-voice")
    deployment.dispatch()
    params = {"AccountSid": ACCOUNT_SID, "CallSid": deployment.emulator.calls[0].sid, "CallStatus": "in-progress"}
    assert deployment.emulator.post(f"{HOOKS}/voice/1", params).status == 200
    url = f"{HOOKS}/voice/1/answer?q=attitude&try=0"
    first = deployment.emulator.post(url, {**params, "Digits": "1"})
    before = deployment.state()

    again = deployment.emulator.post(url, {**params, "Digits": "3"})
    assert again.status == 200 and "办事的效率" in again.body  # the next question, as after the first delivery
    assert again.body == first.body
    assert deployment.state() == before
    assert deployment.answers("K1") == {"attitude": ("满意", "满意")}


def test_a_call_status_delivered_twice_schedules_one_retry(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person("busy"))
    deployment.dispatch()
    deployment.emulator.deliver_twice = True
    deployment.emulator.play()
    busy = [d for d in deployment.emulator.deliveries if d.params.get("CallStatus") == "busy"]
    assert len(busy) == 2 and busy[0].params == busy[1].params
    assert deployment.attempts("K1") == [("twilio-voice", "busy"), ("twilio-voice", "due")]


def test_an_sms_delivered_twice_is_read_once(deployment):
    round_on(deployment, "twilio-sms")
    deployment.dispatch()
    (reask,) = deployment.emulator.text(A, "1 1")  # two answers; the other four asked again
    assert "4项" in reask
    assert deployment.answers("K1") == {"attitude": ("满意", "满意"), "efficiency": ("满意", "满意")}
    before, sent = deployment.state(), len(deployment.emulator.messages)

    # the same MessageSid again: were it read again, "1 1" would answer the next two questions
    again = deployment.emulator.redeliver(deployment.emulator.deliveries[-1])
    assert again.status == 200 and "<Message" not in again.body
    assert deployment.state() == before
    assert len(deployment.emulator.messages) == sent


# ---- confidentiality -----------------------------------------------------------------------------------------


def test_no_phone_number_reaches_the_web_apps_log(deployment):
    deployment.ledger(case_row("K1", phone=MOBILE), case_row("K2", phone=LANDLINE), case_row("K3", phone=MOBILE_2))
    deployment.open_round("2026-W48", "twilio-voice")
    deployment.emulator.script(A, Person(keys="1"))
    deployment.emulator.script(LAND, Person("machine"))
    deployment.emulator.fail_next(B, 21211)
    deployment.dispatch()
    deployment.emulator.play()
    deployment.emulator.text(A, "TD")
    deployment.emulator.text(C, "1 1 1")  # a number with no survey
    deployment.emulator.post(f"{HOOKS}/sms", {"From": A, "Body": "x"}, headers={"X-Twilio-Signature": "forged"})

    log = deployment.logs.text
    assert '"POST /hooks/twilio/voice/1 HTTP/1.1" 200' in log  # the access log was captured
    assert '"POST /hooks/twilio/sms HTTP/1.1" 403' in log
    assert leaked_phones(log, deployment.phones | {MOBILE_3}) == []


def test_the_web_app_reads_the_same_clock_as_the_dispatcher(deployment):
    round_on(deployment, "twilio-voice")
    deployment.emulator.script(A, Person(keys="111111"))
    deployment.dispatch()
    deployment.emulator.play()
    with deployment.database.session() as session:
        assert session.scalar(select(Callback.closed_at)) == datetime.fromisoformat(MONDAY)
