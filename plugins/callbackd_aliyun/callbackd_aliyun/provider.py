"""Placing attempts through Alibaba Cloud's official SDKs, `IvrCall` (alibabacloud-dyvmsapi20170525) and `SendSms`
(alibabacloud-dysmsapi20170525), and the provider's refusals as the typed failures the dispatcher understands.

The SDK signs every request (ACS3-HMAC-SHA256, with the action in `x-acs-action`) and raises for an HTTP error
(a ClientException or ServerException carrying Alibaba Cloud's Code); a business refusal may also come back as
HTTP 200 with a Code other than "OK". Both are read the same way. The SDK's debug log (switched on by a DEBUG
variable set to "sdk") writes every request's URL, whose query names the number: its loggers are kept at WARNING.
"""

from __future__ import annotations

import json
import logging
from datetime import date
from functools import cache
from typing import Any

from callbackd.api import ConfigError, Conversation, StartResult, mask_in
from callbackd_aliyun.settings import AliyunSettings, credentials, require, template_values

MAINLAND = "+86"
OUT_ID_BYTES = 15  # IvrCall's and SendSms's OutId: 1 to 15 bytes
CONNECT_MS, READ_MS = 5_000, 10_000
VOICE_NEEDS = ("show_number", "voice_template", "thanks_template")
SMS_NEEDS = ("sms_sign_name", "sms_template")
# Alibaba Cloud's API error codes (语音服务 and 短信服务 API 错误码) this plugin acts on
INVALID_NUMBER = {"isv.MOBILE_NUMBER_ILLEGAL"}
RATE_LIMITED = {"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "isv.MONTH_LIMIT_CONTROL",
                "isv.QPS_LIMIT_CONTROL"}
# the account's fault, not the applicant's: credentials, permissions, balance, an unapproved template or sign
# name, a show number that is not the account's
NOT_CONFIGURED = {
    "InvalidAccessKeyId", "InvalidAccessKeyId.NotFound", "InvalidAccessKeyId.Inactive", "SignatureDoesNotMatch",
    "IncompleteSignature", "MissingAccessKeyId", "isp.RAM_PERMISSION_DENY", "isv.OUT_OF_SERVICE",
    "isv.PRODUCT_UN_SUBSCRIPT", "isv.PRODUCT_UNSUBSCRIBE", "isv.ACCOUNT_NOT_EXISTS", "isv.ACCOUNT_ABNORMAL",
    "isv.AMOUNT_NOT_ENOUGH", "isv.TTS_TEMPLATE_ILLEGAL", "isv.TEMPLATE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS",
    "isv.TEMPLATE_PARAMS_ILLEGAL", "isv.DISPLAY_NUMBER_ILLEGAL", "isv.BILLID_NOT_EXIST", "BillidNotExist",
    "isv.SMS_SIGNATURE_ILLEGAL", "isv.SMS_SIGN_ILLEGAL", "isv.SMS_TEMPLATE_ILLEGAL", "isv.SMS_SIGNATURE_SCENE_ILLEGAL",
    "isv.BLACK_KEY_CONTROL_LIMIT", "isv.PARAM_NOT_SUPPORT_URL", "isv.INVALID_JSON_PARAM", "isv.DENY_IP_RANGE",
}
_SDK_LOGGERS = ("darabonba-core", "alibabacloud-tea")


# ---- the number and the template -------------------------------------------------------------------------


def called_number(e164: str) -> str | None:
    """The number as Alibaba Cloud wants it: a mobile's 11 digits, a landline with its trunk 0 and area code
    (0571xxxxxxxx); None for a number outside the mainland, which these channels cannot reach."""
    if not e164.startswith(MAINLAND):
        return None
    digits = e164.removeprefix(MAINLAND)
    return digits if is_mobile(digits) else f"0{digits}"


def is_mobile(digits: str) -> bool:
    return len(digits) == 11 and digits.startswith("1")


def spoken_date(config: AliyunSettings, day: date | None) -> str:
    """The resolution date as a template says it (2026年11月23日), or `undated` for a case without one."""
    return config.undated if day is None else config.date_format.format(year=day.year, month=day.month, day=day.day)


def template_param(config: AliyunSettings, params: dict[str, str], conversation: Conversation) -> str:
    """A template's variables as the JSON text StartTtsParams and TemplateParam take (values are strings)."""
    facts = {"organisation": conversation.organisation, "window": conversation.window,
             "matter": conversation.matter, "date": spoken_date(config, conversation.resolved_on)}
    return json.dumps(template_values(config, params, facts), ensure_ascii=False, separators=(",", ":"))


def out_id(conversation: Conversation) -> str | None:
    """The attempt's id as OutId, or None when it is longer than OutId allows."""
    text = str(conversation.attempt_id)
    return text if len(text.encode()) <= OUT_ID_BYTES else None


# ---- the SDK clients ---------------------------------------------------------------------------------------


@cache
def _client(product: str, key_id: str, secret: str, endpoint: str, protocol: str) -> Any:
    from alibabacloud_tea_openapi.models import Config

    config = Config(access_key_id=key_id, access_key_secret=secret, endpoint=endpoint, protocol=protocol,
                    connect_timeout=CONNECT_MS, read_timeout=READ_MS)
    if product == "voice":
        from alibabacloud_dyvmsapi20170525.client import Client as VoiceClient

        return VoiceClient(config)
    from alibabacloud_dysmsapi20170525.client import Client as SmsClient

    return SmsClient(config)


def client_for(product: str, config: AliyunSettings) -> Any:
    """The SDK client of `product` ("voice" or "sms") for the account and the configured endpoint."""
    endpoint = config.voice_endpoint if product == "voice" else config.sms_endpoint
    client = _client(product, *credentials(), endpoint, config.protocol)
    # after the SDK's import, which sets its loggers to DEBUG: their debug records carry each request's URL,
    # which names the number
    for name in _SDK_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return client


def runtime() -> Any:
    """One try per request: a request that may have reached Alibaba Cloud is never sent again blindly."""
    from darabonba.runtime import RuntimeOptions

    return RuntimeOptions(autoretry=False, connect_timeout=CONNECT_MS, read_timeout=READ_MS)


# ---- placing -----------------------------------------------------------------------------------------------


def place_call(conversation: Conversation, config: AliyunSettings) -> StartResult:
    """An IvrCall asking the short form's question: the prompt template, then each of its keys answered by the
    thanks template. OutId is the attempt's id, which every call receipt carries back."""
    from alibabacloud_dyvmsapi20170525 import models

    ready = _ready(config, VOICE_NEEDS, conversation)
    if isinstance(ready, StartResult):
        return ready
    number, outid = ready
    keys = _keys(conversation)
    request = models.IvrCallRequest(
        called_number=number, called_show_number=config.show_number, start_code=config.voice_template,
        start_tts_params=template_param(config, config.voice_params, conversation),
        menu_key_map=[models.IvrCallRequestMenuKeyMap(key=key, code=config.thanks_template) for key in keys],
        play_times=config.play_times, timeout=config.timeout * 1000, out_id=outid,
    )
    try:
        body = client_for("voice", config).ivr_call_with_options(request, runtime()).body
    except Exception as exc:  # the provider's answer, typed into a failure the dispatcher understands
        return _failure(exc, conversation.phone)
    if body.code != "OK":
        return refusal(str(body.code), body.message, conversation.phone)
    return StartResult.placed(str(body.call_id or f"OutId {outid}"))


def send_message(conversation: Conversation, config: AliyunSettings) -> StartResult:
    """A SendSms of the approved template to a mobile; OutId is the attempt's id, which the delivery report carries
    back. The applicant's reply comes back as an SmsUp from their number."""
    from alibabacloud_dysmsapi20170525 import models

    ready = _ready(config, SMS_NEEDS, conversation)
    if isinstance(ready, StartResult):
        return ready
    number, outid = ready
    if not is_mobile(number):
        return StartResult.failed("invalid_number", "a landline cannot receive SMS")
    request = models.SendSmsRequest(
        phone_numbers=number, sign_name=config.sms_sign_name, template_code=config.sms_template,
        template_param=template_param(config, config.sms_params, conversation), out_id=outid,
    )
    try:
        body = client_for("sms", config).send_sms_with_options(request, runtime()).body
    except Exception as exc:
        return _failure(exc, conversation.phone)
    if body.code != "OK":
        return refusal(str(body.code), body.message, conversation.phone)
    return StartResult.placed(str(body.biz_id or f"OutId {outid}"))


def _ready(config: AliyunSettings, needs: tuple[str, ...], conversation: Conversation
           ) -> tuple[str, str] | StartResult:
    """The number and OutId to send, or the failure that stops the attempt before anything is sent."""
    try:
        require(config, needs)
    except ConfigError as exc:  # retried later without using up the applicant's tries
        return StartResult.failed("not_configured", str(exc))
    number = called_number(conversation.phone)
    if number is None:
        return StartResult.failed("invalid_number", "Alibaba Cloud reaches mainland China (+86) numbers only")
    outid = out_id(conversation)
    if outid is None:
        return StartResult.failed("failed", f"attempt id longer than OutId's {OUT_ID_BYTES} bytes")
    return number, outid


def _keys(conversation: Conversation) -> list[str]:
    """The keys of the question the call asks (the short form's first unanswered one, or its first)."""
    question = conversation.current_question() or conversation.survey.questions[0]
    return [] if question.scale is None else [choice.key for choice in question.scale.choices]


# ---- refusals ----------------------------------------------------------------------------------------------


def refusal(code: str, message: object, phone: str) -> StartResult:
    """Alibaba Cloud's Code as a typed failure; its message is kept with the number masked."""
    detail = f"Alibaba Cloud {code}: {mask_in(message, phone)}"[:400]
    if code in INVALID_NUMBER:
        return StartResult.failed("invalid_number", detail)
    if code in RATE_LIMITED or code.startswith("Throttling"):
        return StartResult.failed("rate_limited", detail)
    if code in NOT_CONFIGURED or code.startswith(("InvalidAccessKeyId", "Forbidden")):
        return StartResult.failed("not_configured", detail)
    return StartResult.failed("failed", detail)


def _failure(exc: Exception, phone: str) -> StartResult:
    """An exception from the SDK: a refusal when it carries Alibaba Cloud's Code (HTTP 4xx/5xx), else a failure
    whose text (which may hold the request's URL, naming the number) is masked."""
    from Tea.exceptions import TeaException

    if isinstance(exc, TeaException) and exc.code:
        data = exc.data if isinstance(exc.data, dict) else {}
        return refusal(str(exc.code), data.get("Message") or exc.message, phone)
    return StartResult.failed("failed", f"{type(exc).__name__}: {mask_in(exc, phone)}"[:400])
