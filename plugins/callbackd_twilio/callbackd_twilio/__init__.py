"""Phone IVR and SMS surveys through Twilio: channels `twilio-voice` and `twilio-sms`, and their webhooks.

Settings in `[channels.twilio]`, each also from the environment as deployments expect:
`public_base_url` (CALLBACKD_TWILIO_PUBLIC_BASE_URL; the address Twilio calls back), `api_base_url`
(CALLBACKD_TWILIO_API_BASE_URL; Twilio's own by default, or an operator's gateway), `from_number`
(CALLBACKD_TWILIO_FROM), `voice`, `language`, `sms_mode` ("all" questions in one message, or "one" a message),
`machine_detection`, `gather_timeout`, `record_suggestion`, `calls_per_second`, `messages_per_second`.
Credentials only from the environment: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN. A missing one is an error when
a channel is used, never at import.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any, Literal

from pydantic import Field

from callbackd.api import (
    Channel,
    ChannelSettings,
    ConfigError,
    Conversation,
    Settings,
    StartResult,
    WebhookServices,
    hookimpl,
    mask_in,
)

ENVIRONMENT = {
    "public_base_url": "CALLBACKD_TWILIO_PUBLIC_BASE_URL",
    "api_base_url": "CALLBACKD_TWILIO_API_BASE_URL",
    "from_number": "CALLBACKD_TWILIO_FROM",
}
# Twilio error codes this plugin acts on
INVALID_NUMBER = {21211, 21214, 21217, 21401, 21407, 21421, 21614}
UNSUBSCRIBED = 21610
NOT_CONFIGURED = {20003, 20404, 21212, 21606, 21659}  # bad credentials, unknown account, unusable caller id


class TwilioSettings(ChannelSettings):
    """`[channels.twilio]`."""

    section = "twilio"

    public_base_url: str = ""
    api_base_url: str = "https://api.twilio.com"
    from_number: str = ""
    # Twilio's built-in Mandarin voice for language zh-CN; a Polly or Google voice needs its own language code
    voice: str = "alice"
    language: str = "zh-CN"
    sms_mode: Literal["all", "one"] = "all"
    machine_detection: bool = True
    gather_timeout: int = Field(default=6, ge=1, le=30)
    record_suggestion: bool = False
    calls_per_second: float = Field(default=1.0, gt=0)
    messages_per_second: float = Field(default=1.0, gt=0)


def twilio_settings(settings: Settings) -> TwilioSettings:
    """`[channels.twilio]` with the CALLBACKD_TWILIO_* environment on top; an error names the bad key."""
    table = dict(settings.channels.get("twilio", {}))
    for key, variable in ENVIRONMENT.items():
        if os.environ.get(variable):
            table[key] = os.environ[variable]
    return _validated(tuple(sorted((k, repr(v)) for k, v in table.items())), table)


def _validated(key: tuple[tuple[str, str], ...], table: dict[str, Any]) -> TwilioSettings:
    # every webhook asks for the settings: validate each distinct table once
    cached = _SETTINGS.get(key)
    if cached is None:
        cached = _SETTINGS[key] = TwilioSettings.from_table(table)
    return cached


_SETTINGS: dict[tuple[tuple[str, str], ...], TwilioSettings] = {}


def credentials() -> tuple[str, str]:
    """TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, from the environment only."""
    sid, token = os.environ.get("TWILIO_ACCOUNT_SID", ""), os.environ.get("TWILIO_AUTH_TOKEN", "")
    missing = [name for name, value in (("TWILIO_ACCOUNT_SID", sid), ("TWILIO_AUTH_TOKEN", token)) if not value]
    if missing:
        raise ConfigError(f"the Twilio channels need {' and '.join(missing)} in the environment")
    return sid, token


def require(config: TwilioSettings) -> None:
    for key in ("public_base_url", "from_number"):
        if not getattr(config, key):
            raise ConfigError(f"[channels.twilio] {key} is not set (or {ENVIRONMENT[key]})")


@cache
def _client(sid: str, token: str, api_base_url: str) -> Any:
    from twilio.rest import Client

    client = Client(sid, token)
    client.api.base_url = api_base_url.rstrip("/")  # Twilio's own by default; a gateway or emulator otherwise
    return client


def client_for(config: TwilioSettings) -> Any:
    sid, token = credentials()
    return _client(sid, token, config.api_base_url)


def hook_url(config: TwilioSettings, path: str) -> str:
    return f"{config.public_base_url.rstrip('/')}/hooks/twilio/{path.lstrip('/')}"


def _failure(exc: Exception, phone: str) -> StartResult:
    """The provider's refusal as a typed failure. Twilio's messages name the number ("The 'To' number +86... is not
    a valid phone number"): it is masked before the text is kept."""
    from twilio.base.exceptions import TwilioRestException

    def masked(text: object) -> str:
        return mask_in(text, phone)

    if isinstance(exc, TwilioRestException):
        if exc.code in INVALID_NUMBER:
            return StartResult.failed("invalid_number", f"Twilio {exc.code}: {masked(exc.msg)}")
        if exc.code == UNSUBSCRIBED:
            return StartResult.failed("refused", f"Twilio {UNSUBSCRIBED}: the number unsubscribed")
        if exc.code in NOT_CONFIGURED or exc.status in (401, 403):
            # the account's fault, not the applicant's: the attempt is retried without using up a try
            return StartResult.failed("not_configured", f"Twilio {exc.code or exc.status}: {masked(exc.msg)}")
        return StartResult.failed("failed", f"Twilio {exc.code or exc.status}: {masked(exc.msg)}")
    return StartResult.failed("failed", f"{type(exc).__name__}: {masked(exc)}")


class VoiceChannel:
    """An outbound call that runs the survey as keypad questions (IVR)."""

    name = "twilio-voice"
    kind = "voice"

    def rate_limit(self, settings: Settings) -> tuple[str, float]:
        """Calls a second for the account, shared by every dispatcher."""
        return f"twilio:{os.environ.get('TWILIO_ACCOUNT_SID', '')}:calls", twilio_settings(settings).calls_per_second

    def start(self, conversation: Conversation) -> StartResult:
        config = twilio_settings(conversation.settings)
        require(config)
        client = client_for(config)
        extra: dict[str, Any] = {"machine_detection": "Enable"} if config.machine_detection else {}
        try:
            call = client.calls.create(
                to=conversation.phone,
                from_=config.from_number,
                url=hook_url(config, f"voice/{conversation.attempt_id}"),
                status_callback=hook_url(config, f"status/{conversation.attempt_id}"),
                status_callback_event=["initiated", "ringing", "answered", "completed"],
                **extra,
            )
        except Exception as exc:  # the provider's answer, typed into a failure the dispatcher understands
            result = _failure(exc, conversation.phone)
            if result.failure == "refused":
                conversation.opt_out("carrier", note=result.detail)
            return result
        return StartResult.placed(call.sid)


class SmsChannel:
    """The survey by text message, answered by reply."""

    name = "twilio-sms"
    kind = "sms"

    def rate_limit(self, settings: Settings) -> tuple[str, float]:
        """Messages a second for the account, shared by every dispatcher."""
        account = os.environ.get("TWILIO_ACCOUNT_SID", "")
        return f"twilio:{account}:messages", twilio_settings(settings).messages_per_second

    def start(self, conversation: Conversation) -> StartResult:
        config = twilio_settings(conversation.settings)
        require(config)
        client = client_for(config)
        from callbackd_twilio.webhooks import first_message

        try:
            message = client.messages.create(
                to=conversation.phone,
                from_=config.from_number,
                body=first_message(conversation, config),
                status_callback=hook_url(config, f"status/sms/{conversation.attempt_id}"),
            )
        except Exception as exc:
            result = _failure(exc, conversation.phone)
            if result.failure == "refused":
                conversation.opt_out("carrier", note=result.detail)
            return result
        return StartResult.placed(message.sid)


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """The `twilio-voice` and `twilio-sms` channels."""
    register(VoiceChannel())
    register(SmsChannel())


@hookimpl
def register_routes(router: Any, services: WebhookServices) -> None:
    """Twilio's webhooks: voice, keypad answers, call and message status, inbound SMS."""
    from callbackd_twilio.webhooks import add_routes

    add_routes(router, services)
