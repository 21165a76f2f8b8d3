"""One-key IVR calls and SMS surveys through Alibaba Cloud (阿里云): channels `aliyun-voice` and `aliyun-sms`, and
the receipts Alibaba Cloud pushes back (回执消息, HTTP 批量推送).

`aliyun-voice` places an `IvrCall` (语音服务): one approved TTS template (the prompt, 话术报备 with the
provider) read once or more, then one key. It asks the survey's short form (`form = "short"`: by default the one
question 总体评价), since several questions in one call need SmartCall. `aliyun-sms` sends one approved
template (`SendSms`, 短信服务) asking the same short form, answered by replying (上行短信). Both reach
mainland numbers only (+86).

Alibaba Cloud signs no receipt: its webhooks are reached at a secret path, `/hooks/aliyun/<callback token>/voice`
and `/.../sms` (the token from `[channels.aliyun] callback_token` or CALLBACKD_ALIYUN_CALLBACK_TOKEN, compared in
constant time). Receipts are matched to attempts by OutId, the attempt's id; SMS replies by the sender's number.

Credentials come only from the environment: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET. A
missing one, or a missing template, sign name or show number, fails the attempt as `not_configured` (retried
without using up the applicant's tries), never at import.

Neither channel offers `lookup`: Alibaba Cloud has no query by the OutId we send (QueryCallDetailByCallId needs
the CallId an interrupted dispatcher never received), so an attempt whose placing outcome is unknown ends
`failed` and is never placed twice.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from callbackd.api import (
    Channel,
    ConfigError,
    Conversation,
    NumberLimit,
    Settings,
    StartResult,
    WebhookServices,
    hookimpl,
    path_token,
)
from callbackd_aliyun.settings import (
    KEY_ID,
    KEY_SECRET,
    TOKEN_VARIABLE,
    AliyunSettings,
    aliyun_settings,
    callback_token,
)

__all__ = ["AliyunSettings", "SmsChannel", "VoiceChannel", "aliyun_settings", "callback_token"]

# Alibaba Cloud's flow control per called number. Voice (语音通知/IVR 流控): 1 a minute, 5 an hour, 20 a day.
VOICE_LIMITS = (NumberLimit(1, 60), NumberLimit(5, 3600), NumberLimit(20, 86400))
# SMS (短信通知, one sign name and template to one number): 50 in any 24 hours. The 1/min, 5/h, 10/day rule is
# for 验证码 templates only.
SMS_LIMITS = (NumberLimit(50, 86400),)


def _configuration(settings: Settings, needed: tuple[str, ...]) -> list[tuple[str, bool]]:
    """What `callbackd plugins list` shows of a channel's set-up: which of its settings are present, never a value."""
    try:
        config = aliyun_settings(settings)
    except ConfigError:
        return [(f"[channels.{AliyunSettings.section}] valid", False)]
    try:
        token = bool(path_token(callback_token(config), "callback token"))
    except ConfigError:
        token = False
    shown = [(f"{KEY_ID}/_SECRET", bool(os.environ.get(KEY_ID) and os.environ.get(KEY_SECRET))),
             (f"callback token ({TOKEN_VARIABLE} or callback_token)", token)]
    return shown + [(key, bool(getattr(config, key))) for key in needed]


class VoiceChannel:
    """A one-key IVR call (IvrCall): the prompt template, then one key for the short form's question."""

    name = "aliyun-voice"
    kind = "voice"
    form = "short"
    number_limits = VOICE_LIMITS

    def rate_limit(self, settings: Settings) -> tuple[str, float]:
        """IvrCall requests a second for the account, shared by every dispatcher."""
        return f"aliyun:{os.environ.get(KEY_ID, '')}:calls", aliyun_settings(settings).calls_per_second

    def configuration(self, settings: Settings) -> list[tuple[str, bool]]:
        return _configuration(settings, ("show_number", "voice_template", "thanks_template"))

    def start(self, conversation: Conversation) -> StartResult:
        from callbackd_aliyun.provider import place_call

        return place_call(conversation, aliyun_settings(conversation.settings))


class SmsChannel:
    """One approved SMS template asking the short form, answered by reply (上行短信)."""

    name = "aliyun-sms"
    kind = "sms"
    form = "short"
    number_limits = SMS_LIMITS

    def rate_limit(self, settings: Settings) -> tuple[str, float]:
        """SendSms requests a second for the account, shared by every dispatcher."""
        return f"aliyun:{os.environ.get(KEY_ID, '')}:messages", aliyun_settings(settings).messages_per_second

    def configuration(self, settings: Settings) -> list[tuple[str, bool]]:
        return _configuration(settings, ("sms_sign_name", "sms_template"))

    def start(self, conversation: Conversation) -> StartResult:
        from callbackd_aliyun.provider import send_message

        return send_message(conversation, aliyun_settings(conversation.settings))


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """The `aliyun-voice` and `aliyun-sms` channels."""
    register(VoiceChannel())
    register(SmsChannel())


@hookimpl
def register_routes(router: Any, services: WebhookServices) -> None:
    """Alibaba Cloud's receipts: call reports (with the key pressed) and SMS delivery reports and replies."""
    from callbackd_aliyun.webhooks import add_routes

    add_routes(router, services)
