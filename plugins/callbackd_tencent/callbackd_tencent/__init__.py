"""One-key voice and SMS surveys through Tencent Cloud: channels `tencent-voice` (语音消息 VMS, `SendTtsVoice`) and
`tencent-sms` (短信, `SendSms`), and the callbacks Tencent pushes for them (`callbackd_tencent.webhooks`).

Tencent speaks an approved template and sends an approved template, nothing else: both channels ask the
survey's short form (`form = "short"`, by default the one question 总体评价), answered with one key or by one
reply. Each template's parameters are the case's organisation, window, matter and resolution date, in the order
the settings name them.

Settings in `[channels.tencent]` (`TencentSettings`); the callback token also from CALLBACKD_TENCENT_CALLBACK_TOKEN.
Credentials only from the environment: TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY. A missing one is an
error when a channel is used, never at import.

Tencent's callbacks name the call (callid) or the message (sid) and the number, never the SessionContext we send:
a receipt finds its attempt by that id (`WebhookScope.attempt_for`), kept as the attempt's provider id. Neither
product offers a query by the id we send, so the channels have no `lookup`: an attempt whose dispatcher died while
placing it ends with its placing outcome unknown, and is never placed twice.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from datetime import date
from functools import cache
from typing import Any, Literal

from pydantic import Field

from callbackd.api import (
    Channel,
    ChannelSettings,
    ConfigError,
    Conversation,
    NumberLimit,
    Settings,
    StartResult,
    WebhookServices,
    hookimpl,
    mask_in,
    path_token,
)

SECRET_ID, SECRET_KEY = "TENCENTCLOUD_SECRET_ID", "TENCENTCLOUD_SECRET_KEY"
TOKEN_VARIABLE = "CALLBACKD_TENCENT_CALLBACK_TOKEN"
VOICE, SMS = "tencent-voice", "tencent-sms"
# What a template parameter may be filled with, from the case the attempt is about.
PARAMETERS = Literal["organisation", "window", "matter", "date", "case_no"]
# The attempt's detail names the provider's id as "<prefix> <id>": receipts are believed only for that attempt.
# The SDK logs each request and response (the called number, the SendStatusSet) at DEBUG: it is kept at WARNING.
SDK_LOGGER = "tencentcloud_sdk_common"

# ---- Tencent's error codes (the SDK's errorcodes modules; 语音消息 and 短信 API 3.0 错误码), as typed failures ------

INVALID_NUMBER = {
    "InvalidParameterValue.CalledNumberVerifyFail",  # VMS: 被叫手机号码格式校验失败
    "InvalidParameterValue.IncorrectPhoneNumber",  # SMS: 手机号格式错误
    "FailedOperation.PhoneNumberParseFail",  # SMS: 号码解析失败
    "MissingParameter.EmptyPhoneNumberSet",
}
BLACKLISTED = {"FailedOperation.PhoneNumberInBlacklist"}  # 免打扰名单: the applicant unsubscribed (退订)
NOT_CONFIGURED_PREFIXES = ("AuthFailure", "UnauthorizedOperation")  # bad credentials, a disabled or unpaid app
NOT_CONFIGURED = {
    "InvalidParameterValue.SdkAppidNotExist", "InvalidParameterValue.SdkAppIdNotExist",
    "InvalidParameter.AppidAndBizId",
    "FailedOperation.TemplateIncorrectOrUnapproved", "FailedOperation.TemplateUnapprovedOrNotExist",
    "FailedOperation.TemplateIdNotExist", "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
    "FailedOperation.MissingTemplateList", "FailedOperation.SignatureIncorrectOrUnapproved",
    "FailedOperation.MissingSignatureList", "FailedOperation.MissingSignature",
    "FailedOperation.PhonenumberUnappliedOrExpired",  # VMS: no show number bought, or it expired
    "FailedOperation.InsufficientBalanceInVoicePackage", "FailedOperation.InsufficientBalanceInSmsPackage",
    "FailedOperation.NotEnterpriseCertification",
}
RATE_LIMITED_PREFIXES = ("LimitExceeded", "RequestLimitExceeded")  # 频率限制 per number or app, and the API's QPS


class TencentSettings(ChannelSettings):
    """`[channels.tencent]`."""

    section = "tencent"

    callback_token: str = ""  # or CALLBACKD_TENCENT_CALLBACK_TOKEN: the secret in the callback paths
    region: str = "ap-guangzhou"
    scheme: Literal["https", "http"] = "https"
    voice_endpoint: str = "vms.tencentcloudapi.com"
    sms_endpoint: str = "sms.tencentcloudapi.com"
    request_timeout: int = Field(default=10, ge=1, le=60)
    voice_sdk_app_id: str = ""
    voice_template_id: str = ""
    voice_template_params: tuple[PARAMETERS, ...] = ("organisation", "date", "matter")
    play_times: int = Field(default=2, ge=1, le=3)
    sms_sdk_app_id: str = ""
    sms_sign_name: str = ""
    sms_template_id: str = ""
    sms_template_params: tuple[PARAMETERS, ...] = ("organisation", "date", "matter")
    sms_extend_code: str = ""
    param_max_length: int = Field(default=12, ge=1, le=100)
    calls_per_second: float = Field(default=20.0, gt=0)  # SendTtsVoice: 20 requests a second
    messages_per_second: float = Field(default=50.0, gt=0)  # SendSms takes up to 3,000


def tencent_settings(settings: Settings) -> TencentSettings:
    """`[channels.tencent]`, validated once per distinct table; an error names the bad key."""
    table = settings.channels.get("tencent", {})
    key = tuple(sorted((k, repr(v)) for k, v in table.items()))
    cached = _SETTINGS.get(key)
    if cached is None:
        cached = _SETTINGS[key] = TencentSettings.from_table(table)
    return cached


_SETTINGS: dict[tuple[tuple[str, str], ...], TencentSettings] = {}


def callback_token(config: TencentSettings) -> str:
    """The callback paths' token, from CALLBACKD_TENCENT_CALLBACK_TOKEN or `callback_token`, checked (128 random
    bits at least); a `ConfigError` naming both when it is missing or short."""
    value = os.environ.get(TOKEN_VARIABLE) or config.callback_token
    return path_token(value, f"[channels.tencent] callback_token (or {TOKEN_VARIABLE})")


def credentials() -> tuple[str, str]:
    """TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, from the environment only."""
    secret_id, secret_key = os.environ.get(SECRET_ID, ""), os.environ.get(SECRET_KEY, "")
    missing = [name for name, value in ((SECRET_ID, secret_id), (SECRET_KEY, secret_key)) if not value]
    if missing:
        raise ConfigError(f"the Tencent channels need {' and '.join(missing)} in the environment")
    return secret_id, secret_key


def require(config: TencentSettings, *keys: str) -> None:
    for key in keys:
        if not getattr(config, key):
            raise ConfigError(f"[channels.tencent] {key} is not set")


VOICE_KEYS = ("voice_sdk_app_id", "voice_template_id")
SMS_KEYS = ("sms_sdk_app_id", "sms_sign_name", "sms_template_id")


def configuration(settings: Settings, keys: Sequence[str]) -> list[tuple[str, bool]]:
    """What `callbackd plugins list` shows of a channel's set-up: credentials, the callback token, its app and
    template; never a value."""
    config = tencent_settings(settings)
    try:
        token = bool(callback_token(config))
    except ConfigError:
        token = False
    return [
        (f"{SECRET_ID}/{SECRET_KEY}", bool(os.environ.get(SECRET_ID) and os.environ.get(SECRET_KEY))),
        ("callback token", token),
        *((key, bool(getattr(config, key))) for key in keys),
    ]


# ---- the SDK's clients -----------------------------------------------------------------------------------


@cache
def _client(product: str, secret_id: str, secret_key: str, endpoint: str, scheme: str, region: str,
            timeout: int) -> Any:
    from tencentcloud.common.credential import Credential
    from tencentcloud.common.profile.client_profile import ClientProfile
    from tencentcloud.common.profile.http_profile import HttpProfile

    profile = ClientProfile(httpProfile=HttpProfile(protocol=scheme, endpoint=endpoint, reqTimeout=timeout))
    credential = Credential(secret_id, secret_key)
    if product == "vms":
        from tencentcloud.vms.v20200902.vms_client import VmsClient

        return VmsClient(credential, region, profile)
    from tencentcloud.sms.v20210111.sms_client import SmsClient

    return SmsClient(credential, region, profile)


def client_for(config: TencentSettings, product: Literal["vms", "sms"]) -> Any:
    """The SDK's client for 语音消息 ("vms") or 短信 ("sms"), at the configured endpoint and scheme."""
    secret_id, secret_key = credentials()
    # the SDK's DEBUG records name the numbers called: whatever a deployment's logging says, they are not kept
    logging.getLogger(SDK_LOGGER).setLevel(logging.WARNING)
    endpoint = config.voice_endpoint if product == "vms" else config.sms_endpoint
    return _client(product, secret_id, secret_key, endpoint, config.scheme, config.region, config.request_timeout)


# ---- placing ---------------------------------------------------------------------------------------------


def chinese_date(day: date | None) -> str:
    """A day as a Chinese date (2026年11月20日), for a template's date parameter; 近日 when the case has none."""
    return "近日" if day is None else f"{day.year}年{day.month}月{day.day}日"


def template_params(conversation: Conversation, names: Sequence[str], limit: int) -> list[str]:
    """The template's parameters in the configured order, each cut to `limit` characters (Tencent refuses a longer
    variable)."""
    values = {
        "organisation": conversation.organisation, "window": conversation.window, "matter": conversation.matter,
        "date": chinese_date(conversation.resolved_on), "case_no": conversation.case_no,
    }
    return [values[name][:limit] for name in names]


def failure(code: str, message: object, phone: str) -> StartResult:
    """Tencent's refusal (an error code and its message) as a typed failure; the message is kept with the number
    masked."""
    detail = f"Tencent {code}: {mask_in(message, phone)}"[:500]
    if code in INVALID_NUMBER:
        return StartResult.failed("invalid_number", detail)
    if code in BLACKLISTED:
        return StartResult.failed("refused", detail)
    if code in NOT_CONFIGURED or code.startswith(NOT_CONFIGURED_PREFIXES):
        # the account's fault, not the applicant's: retried without using up a try
        return StartResult.failed("not_configured", detail)
    if code.startswith(RATE_LIMITED_PREFIXES):
        return StartResult.failed("rate_limited", detail)
    return StartResult.failed("failed", detail)


def refused(exc: Exception, phone: str) -> StartResult:
    """What the SDK raised, as a typed failure (TencentCloudSDKException carries Tencent's error code)."""
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

    if isinstance(exc, TencentCloudSDKException):
        return failure(str(exc.get_code() or "Unknown"), exc.get_message(), phone)
    return StartResult.failed("failed", f"{type(exc).__name__}: {mask_in(exc, phone)}"[:500])


def placed(conversation: Conversation, result: StartResult) -> StartResult:
    """A refusal that says the applicant unsubscribed also opts the number out, as a carrier's word."""
    if result.failure == "refused":
        conversation.opt_out("carrier", note=result.detail)
    return result


class VoiceChannel:
    """A call that speaks the approved template (the short form's question) and reads the key pressed."""

    name = VOICE
    kind = "voice"
    form = "short"
    # 语音消息's default 频率限制 for one called number: 1 in 30 s, 2 in 10 minutes, and 5 a day for 语音通知
    # (3 for voice codes); the core's own rules (1 a minute, 3 a day) are stricter still by default
    number_limits = (NumberLimit(1, 30), NumberLimit(2, 600), NumberLimit(5, 86400))

    def configuration(self, settings: Settings) -> list[tuple[str, bool]]:
        return configuration(settings, VOICE_KEYS)

    def rate_limit(self, settings: Settings) -> tuple[str, float]:
        """SendTtsVoice requests a second for the app, shared by every dispatcher."""
        config = tencent_settings(settings)
        return f"tencent:vms:{config.voice_sdk_app_id}", config.calls_per_second

    def start(self, conversation: Conversation) -> StartResult:
        config = tencent_settings(conversation.settings)
        require(config, *VOICE_KEYS)
        from tencentcloud.vms.v20200902 import models

        request = models.SendTtsVoiceRequest()
        request.TemplateId = config.voice_template_id
        request.CalledNumber = conversation.phone
        request.VoiceSdkAppid = config.voice_sdk_app_id
        request.TemplateParamSet = template_params(conversation, config.voice_template_params,
                                                   config.param_max_length)
        request.PlayTimes = config.play_times
        request.SessionContext = str(conversation.attempt_id)
        try:
            response = client_for(config, "vms").SendTtsVoice(request)
        except Exception as exc:  # the provider's answer, typed into a failure the dispatcher understands
            return placed(conversation, refused(exc, conversation.phone))
        call_id = str(getattr(response.SendStatus, "CallId", "") or "")
        if not call_id:
            return StartResult.failed("failed", "Tencent accepted the call without a CallId")
        return StartResult.placed(call_id)


class SmsChannel:
    """The survey by the approved SMS template, answered by reply."""

    name = SMS
    kind = "sms"
    form = "short"  # one approved 服务评价 notice asks one question; a multi-question survey reads as 问卷调查
    # 短信's default 频率限制 for one number: the same content once in 30 s, 10 a calendar day
    number_limits = (NumberLimit(1, 30), NumberLimit(10, 86400))

    def configuration(self, settings: Settings) -> list[tuple[str, bool]]:
        return configuration(settings, SMS_KEYS)

    def rate_limit(self, settings: Settings) -> tuple[str, float]:
        """SendSms requests a second for the app, shared by every dispatcher."""
        config = tencent_settings(settings)
        return f"tencent:sms:{config.sms_sdk_app_id}", config.messages_per_second

    def start(self, conversation: Conversation) -> StartResult:
        config = tencent_settings(conversation.settings)
        require(config, *SMS_KEYS)
        from tencentcloud.sms.v20210111 import models

        request = models.SendSmsRequest()
        request.PhoneNumberSet = [conversation.phone]
        request.SmsSdkAppId = config.sms_sdk_app_id
        request.SignName = config.sms_sign_name
        request.TemplateId = config.sms_template_id
        request.TemplateParamSet = template_params(conversation, config.sms_template_params, config.param_max_length)
        request.SessionContext = str(conversation.attempt_id)
        if config.sms_extend_code:
            request.ExtendCode = config.sms_extend_code
        try:
            response = client_for(config, "sms").SendSms(request)
        except Exception as exc:
            return placed(conversation, refused(exc, conversation.phone))
        # a 200 answer still reports each number's own outcome
        statuses = list(response.SendStatusSet or [])
        if not statuses:
            return StartResult.failed("failed", "Tencent answered SendSms without a SendStatusSet")
        status = statuses[0]
        code = str(status.Code or "")
        if code.lower() != "ok":
            return placed(conversation, failure(code or "Unknown", status.Message or "", conversation.phone))
        serial = str(status.SerialNo or "")
        if not serial:
            return StartResult.failed("failed", "Tencent accepted the message without a SerialNo")
        return StartResult.placed(serial)


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """The `tencent-voice` and `tencent-sms` channels."""
    register(VoiceChannel())
    register(SmsChannel())


@hookimpl
def register_routes(router: Any, services: WebhookServices) -> None:
    """Tencent's callbacks: /{token}/voice (key pressed, call ended, call failed) and /{token}/sms (delivery
    reports, replies)."""
    from callbackd_tencent.webhooks import add_routes

    add_routes(router, services)
