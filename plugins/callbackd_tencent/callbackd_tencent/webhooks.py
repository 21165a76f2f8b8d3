"""Tencent's callbacks, mounted under /hooks/tencent/: `/{token}/voice` (语音消息: key pressed, call ended, call
failed) and `/{token}/sms` (短信: delivery reports, replies), each answered `{"result": 0, "errmsg": "OK"}` as
Tencent requires.

Tencent signs nothing: the secret is the token in the path, compared in constant time; a wrong one gets 404 before
the body is read, and changes nothing. A body that is not the JSON Tencent documents (not UTF-8, not JSON, a field
missing or of the wrong type) gets 400 and changes nothing. Tencent delivers again what it thinks was not
received: each receipt is recorded by its ids (`scope.first_time`) and a repeat changes nothing twice. Handlers run
in a few threads, one `services.delivery()` each, never on the server's event loop; nothing here logs a number.

Receipts name the call (callid) or the message (sid) and the number, never our SessionContext: one finds its
attempt by Tencent's id (`scope.attempt_for`), which the attempt keeps as its provider id.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request, Response

from callbackd.api import (
    ConfigError,
    Conversation,
    PhoneError,
    WebhookScope,
    WebhookServices,
    mask_in,
    normalise,
    same_token,
)
from callbackd_tencent import (
    SMS,
    VOICE,
    TencentSettings,
    callback_token,
    tencent_settings,
)

log = logging.getLogger("callbackd_tencent")

HANDLER_THREADS = 2  # the database takes one writer at a time (as the Twilio plugin's webhooks)
ID_LENGTH = 64  # a callid or sid longer than this is no id of Tencent's (attempts keep 64 characters)
TEXT_LENGTH = 2000  # a reply's text (a long SMS is some 1,000 characters)
ACK = b'{"result":0,"errmsg":"OK"}'
# voice_failure_callback's failure_code (语音推送回执错误码) as the attempt's ending; any other code: failed
FAILURE_OUTCOMES = {
    2: "busy", 9: "busy", 10: "busy", 18: "busy",  # 通话中, 电路正忙, 用户正忙, 网络忙
    5: "no_answer", 20: "no_answer",  # 无人接听, 无应答
    8: "invalid_number", 15: "invalid_number",  # 空号, 号码不存在
}
# voiceprompt_callback's result: 0 answered, 1 not answered, 2 a call failure (呼叫异常)
PROMPT_OUTCOMES = {"1": "no_answer", "2": "failed"}
# delivery reports' errmsg that mean the number takes no SMS at all (空号, 号码错误); any other failure is taken as
# temporary (switched off, out of coverage, a carrier's fault): the attempt ends failed and is tried again
UNREACHABLE_SMS = {"MK:0001", "DB:0101", "CB:0001", "CB:0053", "MI:0073", "MI:0210", "MK:0000"}


class Malformed(ValueError):
    """A body that is not what Tencent sends: answered 400, nothing changed."""


# ---- reading Tencent's JSON ------------------------------------------------------------------------------


def parsed(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Malformed("the body is not UTF-8 JSON") from None


def text(item: dict[str, Any], name: str, *, required: bool = True, limit: int = 200) -> str:
    """The string field `name` (a number is taken as its digits, as Tencent sends some either way)."""
    value = item.get(name)
    if value is None:
        if required:
            raise Malformed(f"{name} is missing")
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value) > limit:
        raise Malformed(f"{name} is not a string of at most {limit} characters")
    return value


def digits(item: dict[str, Any], name: str, *, limit: int = 20) -> str:
    value = text(item, name, limit=limit)
    if not (value.isascii() and value.isdigit()):
        raise Malformed(f"{name} is not a number")
    return value


def identifier(item: dict[str, Any], name: str) -> str:
    value = text(item, name, limit=ID_LENGTH).strip()
    if not value:
        raise Malformed(f"{name} is empty")
    return value


def number_of(item: dict[str, Any]) -> str | None:
    """The receipt's number in E.164 from its nationcode and mobile; None for a number callbackd never calls."""
    nationcode, mobile = digits(item, "nationcode", limit=4), digits(item, "mobile")
    try:
        return normalise(f"+{nationcode}{mobile}").e164
    except PhoneError:
        return None


def an_object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Malformed(f"{what} is not a JSON object")
    return value


@dataclass(frozen=True)
class VoiceReceipt:
    """One 语音消息 callback: `kind` "key" (voicekey_callback), "end" (voiceprompt_callback) or "failure"
    (voice_failure_callback)."""

    kind: str
    callid: str
    phone: str | None
    value: str  # the key pressed, the call's result, or the failure code
    reason: str = ""  # failure_reason

    @property
    def key(self) -> str:
        return f"tencent:voice:{self.callid}:{self.kind}:{self.value}"


VOICE_KINDS = {"voicekey_callback": "key", "voiceprompt_callback": "end", "voice_failure_callback": "failure"}
OTHER_VOICE_KINDS = {"voicecode_callback"}  # a voice code's status: not a survey's, acknowledged and left alone


def voice_receipt(data: Any) -> VoiceReceipt | None:
    """The callback in `data`, checked; None for a kind that concerns no survey. `Malformed` otherwise."""
    data = an_object(data, "the body")
    if len(data) != 1:
        raise Malformed("a voice callback holds exactly one of " + ", ".join(sorted(VOICE_KINDS)))
    (name, item), = data.items()
    if name in OTHER_VOICE_KINDS:
        an_object(item, name)
        return None
    if name not in VOICE_KINDS:
        raise Malformed(f"unknown voice callback {name[:40]!r}")
    item = an_object(item, name)
    kind, callid, phone = VOICE_KINDS[name], identifier(item, "callid"), number_of(item)
    if kind == "key":
        return VoiceReceipt(kind, callid, phone, text(item, "keypress", limit=8).strip())
    if kind == "end":
        result = digits(item, "result", limit=2)
        if result not in ("0", "1", "2"):
            raise Malformed("result is not 0, 1 or 2")
        return VoiceReceipt(kind, callid, phone, result)
    return VoiceReceipt(kind, callid, phone, digits(item, "failure_code", limit=6),
                        text(item, "failure_reason", required=False))


@dataclass(frozen=True)
class DeliveryReport:
    """One 短信下发状态 report: the message's sid, its number, SUCCESS or FAIL, and the carrier's code."""

    sid: str
    phone: str | None
    status: str
    code: str
    description: str

    @property
    def key(self) -> str:
        return f"tencent:sms:{self.sid}:{self.status}"


@dataclass(frozen=True)
class Reply:
    """One 回复短信: Tencent gives a reply no id, so it is known by its number, time, extend code and text."""

    phone: str | None
    text: str
    extend: str
    key: str


def delivery_reports(data: list[Any]) -> list[DeliveryReport]:
    reports = []
    for item in data:
        item = an_object(item, "a delivery report")
        status = text(item, "report_status", limit=10)
        if status not in ("SUCCESS", "FAIL"):
            raise Malformed("report_status is not SUCCESS or FAIL")
        reports.append(DeliveryReport(identifier(item, "sid"), number_of(item), status,
                                      text(item, "errmsg", required=False, limit=100),
                                      text(item, "description", required=False)))
    return reports


def reply_of(data: dict[str, Any]) -> Reply:
    nationcode, mobile = digits(data, "nationcode", limit=4), digits(data, "mobile")
    body, when = text(data, "text", limit=TEXT_LENGTH), digits(data, "time", limit=12)
    extend = text(data, "extend", required=False, limit=20)
    text(data, "sign", limit=100)  # Tencent always names the signature replied to
    digest = hashlib.sha256("\x1f".join((nationcode, mobile, when, extend, body)).encode("utf-8")).hexdigest()
    return Reply(number_of(data), body, extend, f"tencent:sms-in:{digest[:40]}")


# ---- finding the attempt ---------------------------------------------------------------------------------


def matched(scope: WebhookScope, channel: str, provider_id: str) -> Conversation | None:
    """The open attempt on `channel` that Tencent knows as `provider_id` (the CallId or SerialNo it answered
    with): Tencent's receipts carry no SessionContext, only its own id. None for an ended attempt, an earlier
    contact's late receipt, or none of ours."""
    attempt_id = scope.attempt_for(channel, provider_id)
    conversation = None if attempt_id is None else scope.conversation(attempt_id)
    if conversation is None or conversation.finished:
        return None
    return conversation


# ---- what each receipt does ------------------------------------------------------------------------------


def on_voice(scope: WebhookScope, receipt: VoiceReceipt) -> None:
    if not scope.first_time(receipt.key):
        return  # delivered again: changes nothing twice
    conversation = matched(scope, VOICE, receipt.callid)
    if conversation is None:
        return
    call = f"call {receipt.callid}"
    if receipt.kind == "key":
        conversation.pick_up()  # a key was pressed: someone answered
        valid = len(receipt.value) == 1 and conversation.press(receipt.value) is not None
        if valid and not conversation.pending_ratings():
            conversation.finish("completed", f"{call}: key {receipt.value}")
        return  # another key is nothing: not recorded, the call goes on
    if receipt.kind == "end":
        if receipt.value == "0":  # answered, and no valid key came: hung up before answering
            conversation.pick_up()
            conversation.finish("completed" if not conversation.pending_ratings() else "hung_up",
                                f"{call} answered, no valid key")
        else:
            conversation.finish(PROMPT_OUTCOMES[receipt.value], f"{call} result {receipt.value}")
        return
    outcome = FAILURE_OUTCOMES.get(int(receipt.value), "failed")
    reason = mask_in(receipt.reason, receipt.phone or "")[:100]
    conversation.finish(outcome, f"{call} failed: {receipt.value} {reason}".strip())


def on_reports(scope: WebhookScope, reports: list[DeliveryReport]) -> None:
    for report in reports:
        if not scope.first_time(report.key) or report.status == "SUCCESS":
            continue  # a delivery changes nothing: the survey waits for the reply
        conversation = matched(scope, SMS, report.sid)
        if conversation is None:
            continue
        outcome = "invalid_number" if report.code in UNREACHABLE_SMS else "failed"
        said = mask_in(f"{report.code} {report.description}".strip(), report.phone or "")[:200]
        conversation.finish(outcome, f"message {report.sid} not delivered: {said}")


def on_reply(scope: WebhookScope, services: WebhookServices, config: TencentSettings, reply: Reply) -> None:
    if reply.phone is None or not scope.first_time(reply.key):
        return
    attempt_id = scope.open_attempt_for(reply.phone, [SMS])
    conversation = None if attempt_id is None else scope.conversation(attempt_id)
    ours = not config.sms_extend_code or reply.extend == config.sms_extend_code
    if conversation is None or conversation.finished or not ours:
        if services.is_opt_out(reply.text):  # 退订 from anyone we wrote to holds for every later survey
            scope.record_opt_out(reply.phone, "sms", note=mask_in(reply.text, reply.phone)[:200])
        return
    reading = conversation.reply(reply.text)  # an opt-out is recorded by the core; unreadable records nothing
    if reading.kind != "answers":
        return
    conversation.pick_up()
    if not conversation.pending_ratings():
        if reading.remainder:
            conversation.suggest(reading.remainder)
        conversation.finish("completed")
    # answers still missing: a later reply may give them (Tencent sends only the approved template, no re-ask)


# ---- routes ----------------------------------------------------------------------------------------------


def answer(status: int = 200, error: str = "") -> Response:
    if not error:
        return Response(ACK, status_code=status, media_type="application/json")
    return Response(json.dumps({"result": 1, "errmsg": error}, ensure_ascii=False), status_code=status,
                    media_type="application/json")


Handler = Callable[[WebhookServices, TencentSettings, Any], None]


def add_routes(router: APIRouter, services: WebhookServices) -> None:
    """`/{token}/voice` and `/{token}/sms`. Every route goes through `receive`, which checks the token before the
    body is read and parses the body before the handler runs: no handler can forget either."""

    threads = anyio.CapacityLimiter(HANDLER_THREADS)

    def receive(path: str, handler: Handler) -> None:
        async def endpoint(request: Request) -> Response:
            config = tencent_settings(services.settings)
            try:
                expected = callback_token(config)
            except ConfigError as exc:
                log.warning("a Tencent callback was refused: %s", exc)
                return answer(404, "not found")
            if not same_token(str(request.path_params.get("token", "")), expected):
                return answer(404, "not found")
            try:
                data = parsed(await request.body())
                await anyio.to_thread.run_sync(handler, services, config, data, limiter=threads)
            except Malformed as exc:
                return answer(400, f"bad request: {exc}")
            return answer()

        router.add_route(path, endpoint, methods=["POST"])

    receive("/{token}/voice", voice)
    receive("/{token}/sms", sms)


def voice(services: WebhookServices, config: TencentSettings, data: Any) -> None:
    receipt = voice_receipt(data)
    if receipt is None:
        return
    with services.delivery() as scope:
        on_voice(scope, receipt)


def sms(services: WebhookServices, config: TencentSettings, data: Any) -> None:
    """A JSON array is delivery reports (one request may carry several); an object is a reply."""
    if isinstance(data, list):
        reports = delivery_reports(data)  # all checked before any is applied
        with services.delivery() as scope:
            on_reports(scope, reports)
        return
    reply = reply_of(an_object(data, "the body"))
    with services.delivery() as scope:
        on_reply(scope, services, config, reply)
