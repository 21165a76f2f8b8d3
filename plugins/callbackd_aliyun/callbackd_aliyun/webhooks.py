"""Alibaba Cloud's receipts (回执消息, HTTP 批量推送), mounted under /hooks/aliyun/:

- `POST /{token}/voice`: call receipts, a JSON array of VoiceCallReport (呼叫中间状态: status_code 300000 carries
  the key pressed, `dtmf`) and VoiceReport (呼叫记录: the call's final status_code, `dtmf`, duration...);
- `POST /{token}/sms`: a JSON array of SmsReport (delivery: `success`, `err_code`) and SmsUp (a reply: the
  sender's `phone_number`, `content`, `sequence_id`).

Alibaba Cloud signs nothing, so the path's token is the secret: a wrong one gets 404 before the body is read. A
body that is not a JSON array of receipts of the documented shape gets 400 and changes nothing. Every receipt
is applied once (`first_time` on its call_id and status, biz_id or sequence_id: Alibaba Cloud pushes again on
any answer but HTTP 200, and may repeat itself). The answer is the one Alibaba Cloud requires,
`{"code":0,"msg":"接收成功"}`, at once: handlers run in a few threads, never on the event loop, and log nothing
(receipts carry the applicant's number: `callee`, `phone_number`).

A reply is read with the survey's SMS reader (`conversation.reply`); nothing is sent back, since every message
Alibaba Cloud delivers must be an approved template.
"""

from __future__ import annotations

import json
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
    normalise,
    path_token,
    same_token,
)
from callbackd_aliyun.settings import AliyunSettings, aliyun_settings, callback_token

ACK = json.dumps({"code": 0, "msg": "接收成功"}, ensure_ascii=False).encode()
HANDLER_THREADS = 2  # as the Twilio plugin: the database takes one writer at a time
ID_DIGITS = 15  # OutId holds at most 15 bytes
DTMF = "300000"  # VoiceCallReport: a key was pressed
# VoiceReport's status_code (呼叫状态码) for a call that ended without a key recorded: what the attempt becomes
ANSWERED = {"200000": "listened to the end", "200001": "hung up before a key", "200008": "no key in time"}
CALL_OUTCOMES = {
    "200002": ("busy", "busy"), "200003": ("no_answer", "not answered"), "200004": ("invalid_number", "no such number"),
    "200005": ("no_answer", "could not be connected"), "200007": ("no_answer", "out of coverage"),
    "200010": ("no_answer", "switched off"), "200011": ("no_answer", "suspended (停机)"),
}
# SmsReport's err_code (回执错误码): the number does not exist or is out of service; the applicant unsubscribed or
# the number is on a blacklist (they refused contact, as Twilio's 21610)
SMS_INVALID = {"MOBILE_NOT_ON_SERVICE", "INVALID_NUMBER", "MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_NUMBER_ILLEGAL"}
SMS_REFUSED = {"USER_REJECT", "MOBILE_IN_BLACK"}
SMS_CHANNELS = ["aliyun-sms"]
UNREADABLE = "sms reply unreadable"


class Malformed(ValueError):
    """A body that is not what Alibaba Cloud sends: answered 400, nothing changed."""


# ---- reading the body --------------------------------------------------------------------------------------


def receipts(body: bytes) -> list[dict[str, Any]]:
    """The body as Alibaba Cloud sends it: a JSON array of objects."""
    try:
        items = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise Malformed("the body is not JSON") from None
    if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
        raise Malformed("the body is not a JSON array of objects")
    return items


def text(item: dict[str, Any], name: str, *, required: bool = True) -> str:
    """A string field ("" when optional and absent or null)."""
    value = item.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value):
        raise Malformed(f"{name} must be a non-empty string" if required else f"{name} must be a string")
    return value


def number(item: dict[str, Any], name: str) -> str:
    """A numeric field, sent as a string of digits (or, in older receipts, a JSON number)."""
    value = item.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return value
    raise Malformed(f"{name} must be a number")


def attempt_of(item: dict[str, Any]) -> int | None:
    """The attempt a receipt is about, from its out_id; None for a receipt of a call or message not ours."""
    out = text(item, "out_id", required=False)
    return int(out) if out.isascii() and out.isdigit() and len(out) <= ID_DIGITS else None


@dataclass(frozen=True)
class CallReceipt:
    """A VoiceCallReport (`final` False) or VoiceReport (`final` True)."""

    call_id: str
    status_code: str
    dtmf: str
    attempt_id: int | None
    final: bool

    @classmethod
    def read(cls, item: dict[str, Any]) -> CallReceipt:
        final = "duration" in item or "end_time" in item  # VoiceReport's; VoiceCallReport has status_time
        return cls(text(item, "call_id"), number(item, "status_code"), text(item, "dtmf", required=False),
                   attempt_of(item), final)

    @property
    def key(self) -> str:
        return f"aliyun:call:{self.call_id}:{self.status_code}:{'end' if self.final else 'progress'}:{self.dtmf}"


@dataclass(frozen=True)
class SmsReceipt:
    """An SmsReport."""

    biz_id: str
    success: bool
    err_code: str
    attempt_id: int | None

    @classmethod
    def read(cls, item: dict[str, Any]) -> SmsReceipt:
        if not isinstance(item.get("success"), bool):
            raise Malformed("success must be true or false")
        return cls(text(item, "biz_id"), item["success"], text(item, "err_code", required=False), attempt_of(item))


@dataclass(frozen=True)
class SmsReply:
    """An SmsUp: the applicant's reply."""

    sequence_id: str
    phone_number: str
    content: str

    @classmethod
    def read(cls, item: dict[str, Any]) -> SmsReply:
        return cls(number(item, "sequence_id"), text(item, "phone_number"), text(item, "content", required=False))


def sms_receipt(item: dict[str, Any]) -> SmsReceipt | SmsReply:
    if "sequence_id" in item or "content" in item:
        return SmsReply.read(item)
    if "biz_id" in item or "success" in item:
        return SmsReceipt.read(item)
    raise Malformed("neither an SmsReport nor an SmsUp")


# ---- voice -------------------------------------------------------------------------------------------------


def apply_call(scope: WebhookScope, receipt: CallReceipt) -> None:
    """One call receipt: the key pressed answers the short form's question; the call's end ends the attempt."""
    if not scope.first_time(receipt.key) or receipt.attempt_id is None:
        return
    conversation = scope.conversation(receipt.attempt_id)
    if conversation is None or conversation.finished:
        return
    if receipt.dtmf and (receipt.final or receipt.status_code == DTMF):
        press(conversation, receipt.dtmf)
    if receipt.final and not conversation.finished:
        end_call(conversation, receipt)


def press(conversation: Conversation, dtmf: str) -> None:
    """The keys pressed: the first that is one of the question's answers is the one the IVR took (others were
    pressed before the menu, or after it ended). Once the short form is answered the attempt is complete."""
    conversation.pick_up()
    question = conversation.current_question()
    if question is None or question.scale is None:
        return
    keys = {choice.key for choice in question.scale.choices}
    key = next((digit for digit in dtmf if digit in keys), None)
    if key is None or conversation.press(key, question.key) is None:
        conversation.note(f"key {dtmf[:8]} is no answer")
        return
    if conversation.current_question() is None:
        conversation.finish("completed")


def end_call(conversation: Conversation, receipt: CallReceipt) -> None:
    """A call that ended without its question answered: answered but no valid key (a hang-up, retried), or not
    answered at all, by Alibaba Cloud's 呼叫状态码."""
    code = receipt.status_code
    if code in ANSWERED:
        conversation.pick_up()
        detail = conversation.detail if conversation.detail.startswith("key ") else ANSWERED[code]
        conversation.finish("hung_up", f"call {code}: {detail}")
        return
    outcome, label = CALL_OUTCOMES.get(code, ("failed", "call failed"))
    conversation.finish(outcome, f"call {code}: {label}")


# ---- SMS ---------------------------------------------------------------------------------------------------


def apply_sms(scope: WebhookScope, services: WebhookServices, receipt: SmsReceipt | SmsReply) -> None:
    if isinstance(receipt, SmsReply):
        apply_reply(scope, services, receipt)
    else:
        apply_report(scope, receipt)


def apply_report(scope: WebhookScope, receipt: SmsReceipt) -> None:
    """A delivery report: a failure ends the attempt (the number invalid, or the applicant refused contact)."""
    if not scope.first_time(f"aliyun:sms:{receipt.biz_id}") or receipt.success or receipt.attempt_id is None:
        return
    conversation = scope.conversation(receipt.attempt_id)
    if conversation is None:
        return
    detail = f"message not delivered ({receipt.err_code[:60] or 'no err_code'})"
    if receipt.err_code in SMS_REFUSED:
        conversation.opt_out("carrier", note=f"Alibaba Cloud {receipt.err_code}")
    elif not conversation.finished:
        conversation.finish("invalid_number" if receipt.err_code in SMS_INVALID else "failed", detail)


def apply_reply(scope: WebhookScope, services: WebhookServices, reply: SmsReply) -> None:
    """A reply, matched to the open SMS survey of the sender's number; 退订 from anyone is kept."""
    try:
        phone = normalise(reply.phone_number).e164
    except PhoneError:
        return
    if not scope.first_time(f"aliyun:sms-up:{reply.sequence_id}"):
        return
    attempt_id = scope.open_attempt_for(phone, SMS_CHANNELS)
    conversation = None if attempt_id is None else scope.conversation(attempt_id)
    if conversation is None:
        if services.is_opt_out(reply.content):
            scope.record_opt_out(phone, "sms", note=reply.content[:200])
        return
    if not conversation.finished:
        read_reply(conversation, reply.content)


def read_reply(conversation: Conversation, content: str) -> None:
    """What a reply says: the answers (then the survey completes), an opt-out, or nothing readable (noted; the
    attempt waits, and ends unanswered when its time is up)."""
    reading = conversation.reply(content)
    if reading.kind == "opt_out":
        return
    if reading.kind != "answers":
        conversation.note(UNREADABLE)
        return
    conversation.pick_up()
    if not conversation.pending_ratings():
        if reading.remainder:
            conversation.suggest(reading.remainder)
        conversation.finish("completed")


# ---- routes ------------------------------------------------------------------------------------------------


def expected_token(config: AliyunSettings) -> str:
    """The configured token when it is a valid one, else "" (which no path matches)."""
    try:
        return path_token(callback_token(config), "callback token")
    except ConfigError:
        return ""


def acknowledged() -> Response:
    return Response(ACK, media_type="application/json")


def refused(status: int, reason: str) -> Response:
    body = json.dumps({"code": status, "msg": reason}, ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json")


Handler = Callable[[WebhookServices, list[dict[str, Any]]], None]


def add_routes(router: APIRouter, services: WebhookServices) -> None:
    """`/{token}/voice` and `/{token}/sms`. Each checks the token before reading anything, reads and checks every
    receipt of the body, then applies them all in one delivery."""
    threads = anyio.CapacityLimiter(HANDLER_THREADS)

    def post(kind: str, handler: Handler) -> None:
        async def endpoint(request: Request) -> Response:
            if not same_token(request.path_params.get("token", ""), expected_token(aliyun_settings(services.settings))):
                return refused(404, "not found")
            try:
                items = receipts(await request.body())
                await anyio.to_thread.run_sync(handler, services, items, limiter=threads)
            except Malformed as exc:
                return refused(400, f"bad request: {exc}")
            return acknowledged()

        router.add_route(f"/{{token}}/{kind}", endpoint, methods=["POST"])

    post("voice", voice)
    post("sms", sms)


def voice(services: WebhookServices, items: list[dict[str, Any]]) -> None:
    calls = [CallReceipt.read(item) for item in items]  # all checked before anything is applied
    with services.delivery() as scope:
        for receipt in calls:
            apply_call(scope, receipt)


def sms(services: WebhookServices, items: list[dict[str, Any]]) -> None:
    messages = [sms_receipt(item) for item in items]
    with services.delivery() as scope:
        for receipt in messages:
            apply_sms(scope, services, receipt)
