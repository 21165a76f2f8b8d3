"""Phone IVR and SMS surveys through Twilio: channels `twilio-voice` and `twilio-sms`, and their webhooks.

Settings in `[channels.twilio]`, each also from the environment as deployments expect:
`public_base_url` (CALLBACKD_TWILIO_PUBLIC_BASE_URL; the address Twilio calls back), `api_base_url`
(CALLBACKD_TWILIO_API_BASE_URL; Twilio's own by default, or an operator's gateway), `from_number`
(CALLBACKD_TWILIO_FROM), `voice`, `language`, `sms_mode` ("all" questions in one message, or "one" a message),
`machine_detection`, `gather_timeout`, `record_suggestion`, `calls_per_second`, `messages_per_second`.
Credentials only from the environment: TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN. A missing one is an error when
a channel is used, never at import.

`twilio-voice` looks up an attempt whose dispatcher was killed while placing it in Twilio's Calls list (calls to
the number since the attempt was taken); `twilio-sms` has no lookup, so such an SMS attempt ends with its placing
outcome unknown and is never sent again blindly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import timedelta
from functools import cache
from typing import Any, Literal

from pydantic import Field

from callbackd.api import (
    Channel,
    ChannelSettings,
    ConfigError,
    Conversation,
    InDoubt,
    LookupResult,
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
# A call's final status in Twilio's Calls list, as the attempt's outcome. A call found `completed` while its attempt
# never heard from the voice webhook reached nobody's survey: it failed. Other statuses (queued, ringing,
# in-progress) are under way, and the webhooks end them.
LOOKED_UP_OUTCOMES = {"completed": "failed", "busy": "busy", "no-answer": "no_answer", "failed": "failed",
                      "canceled": "failed"}
# How far callbackd's clock and Twilio's may differ: a call up to this long before the attempt was taken still
# counts as its call. Shorter than the spacing between two calls to one number ([dispatch] per_number_gap_seconds,
# 60 s by default), so an earlier attempt's call is not taken for this one's.
CLOCK_SKEW = timedelta(seconds=30)
# The twilio library logs every request's query string at INFO; a Calls list query names the number. Lookups go
# through a client logging to this logger, which keeps only warnings.
_UNLOGGED = logging.getLogger("callbackd_twilio.lookups")
_UNLOGGED.setLevel(logging.WARNING)


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


def configuration(settings: Settings) -> list[tuple[str, bool]]:
    """What `callbackd plugins list` shows of the account's set-up: credentials, the public address, the number."""
    config = twilio_settings(settings)
    return [
        ("TWILIO_ACCOUNT_SID/TWILIO_AUTH_TOKEN",
         bool(os.environ.get("TWILIO_ACCOUNT_SID") and os.environ.get("TWILIO_AUTH_TOKEN"))),
        ("public_base_url", bool(config.public_base_url)), ("from_number", bool(config.from_number)),
    ]


def require(config: TwilioSettings) -> None:
    for key in ("public_base_url", "from_number"):
        if not getattr(config, key):
            raise ConfigError(f"[channels.twilio] {key} is not set (or {ENVIRONMENT[key]})")


@cache
def _client(sid: str, token: str, api_base_url: str, quiet: bool = False) -> Any:
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    client = Client(sid, token, http_client=TwilioHttpClient(logger=_UNLOGGED) if quiet else None)
    client.api.base_url = api_base_url.rstrip("/")  # Twilio's own by default; a gateway or emulator otherwise
    return client


def client_for(config: TwilioSettings, *, quiet: bool = False) -> Any:
    """The twilio client for the account; `quiet`, one that does not log its requests (their query names a number)."""
    sid, token = credentials()
    return _client(sid, token, config.api_base_url, quiet)


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

    def configuration(self, settings: Settings) -> list[tuple[str, bool]]:
        return configuration(settings)

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

    def lookup(self, attempt: InDoubt) -> LookupResult:
        """Twilio's word on an attempt whose dispatcher stopped while placing it: the first call to the number in
        the Calls list since the attempt was taken (allowing `CLOCK_SKEW`) is its call, under way or ended as
        `LOOKED_UP_OUTCOMES` says; none means Twilio never placed it. The list filters by start time, which a call
        still waiting in Twilio's queue does not have yet, so queued calls to the number are asked for too."""
        client = client_for(twilio_settings(attempt.settings), quiet=True)
        since = attempt.since - CLOCK_SKEW
        started = client.calls.list(to=attempt.phone, start_time_after=since, limit=50)
        queued = client.calls.list(to=attempt.phone, status="queued", limit=50)
        calls = [call for call in started if call.start_time is None or call.start_time >= since]
        calls += [call for call in queued if call.date_created is None or call.date_created >= since]
        if not calls:
            return LookupResult.not_placed("no call to the number in Twilio's Calls list since the attempt was taken")
        call = min(calls, key=lambda found: found.start_time or found.date_created or since)
        return LookupResult.found(call.sid, LOOKED_UP_OUTCOMES.get(call.status),
                                  f"call {call.status} (found in Twilio's Calls list)")


class SmsChannel:
    """The survey by text message, answered by reply."""

    name = "twilio-sms"
    kind = "sms"

    def configuration(self, settings: Settings) -> list[tuple[str, bool]]:
        return configuration(settings)

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
