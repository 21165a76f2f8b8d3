"""`[channels.aliyun]`: the endpoints, the approved templates and what fills their variables, the callback token.

Credentials are never settings: ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET come from the
environment only. The callback token may come from CALLBACKD_ALIYUN_CALLBACK_TOKEN instead of the file (the
variable wins), so the secret path need not be written into a configuration file.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field, field_validator

from callbackd.api import ChannelSettings, ConfigError, Settings, path_token

KEY_ID, KEY_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"
TOKEN_VARIABLE = "CALLBACKD_ALIYUN_CALLBACK_TOKEN"
# what a template variable may be filled with: the case's facts an applicant recognises, never a name or number
FIELDS = ("organisation", "window", "matter", "date")
DEFAULT_PARAMS = {"organisation": "organisation", "matter": "matter", "date": "date"}


class AliyunSettings(ChannelSettings):
    """`[channels.aliyun]`."""

    section = "aliyun"

    callback_token: str = ""
    voice_endpoint: str = "dyvmsapi.aliyuncs.com"
    sms_endpoint: str = "dysmsapi.aliyuncs.com"
    protocol: Literal["https", "http"] = "https"
    # voice: the purchased caller number (外呼号码), the prompt's TTS template (StartCode) and the template played
    # after a valid key (MenuKeyMap Code), and how often the prompt is read and how long a key is waited for
    show_number: str = ""
    voice_template: str = ""
    thanks_template: str = ""
    voice_params: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PARAMS))
    play_times: int = Field(default=2, ge=1, le=3)
    timeout: int = Field(default=8, ge=1, le=60)  # seconds to wait for a key (IvrCall's Timeout is milliseconds)
    # SMS: the approved sign name (签名) and template (模板), and what fills the template's variables
    sms_sign_name: str = ""
    sms_template: str = ""
    sms_params: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_PARAMS))
    # how the resolution date fills a `date` variable, and what fills it when the case has none
    date_format: str = "{year}年{month}月{day}日"
    undated: str = "近期"
    param_max_chars: int = Field(default=35, ge=1)  # a variable's value is cut to this (Alibaba Cloud's limit)
    calls_per_second: float = Field(default=10.0, gt=0)  # IvrCall allows 100 a second per account
    messages_per_second: float = Field(default=100.0, gt=0)  # SendSms allows 5,000 a second per account

    @field_validator("voice_params", "sms_params")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        for variable, source in value.items():
            if not variable or source not in FIELDS:
                raise ValueError(f"template variable {variable!r} must be filled with one of {', '.join(FIELDS)}")
        return value

    @field_validator("date_format")
    @classmethod
    def _date_format(cls, value: str) -> str:
        try:
            value.format(year=2026, month=1, day=1)
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"may name only {{year}}, {{month}} and {{day}} ({exc})") from None
        return value


def aliyun_settings(settings: Settings) -> AliyunSettings:
    """`[channels.aliyun]`, validated (each distinct table once: every webhook asks for it)."""
    table = dict(settings.channels.get(AliyunSettings.section, {}))
    key = repr(sorted((name, repr(value)) for name, value in table.items()))
    cached = _SETTINGS.get(key)
    if cached is None:
        cached = _SETTINGS[key] = AliyunSettings.from_table(table)
    return cached


_SETTINGS: dict[str, AliyunSettings] = {}


def callback_token(config: AliyunSettings) -> str:
    """The secret in the receipts' path: CALLBACKD_ALIYUN_CALLBACK_TOKEN, else `callback_token` ("" when unset)."""
    return os.environ.get(TOKEN_VARIABLE, "").strip() or config.callback_token.strip()


def credentials() -> tuple[str, str]:
    """The AccessKey pair, from the environment only."""
    key_id, secret = os.environ.get(KEY_ID, ""), os.environ.get(KEY_SECRET, "")
    missing = [name for name, value in ((KEY_ID, key_id), (KEY_SECRET, secret)) if not value]
    if missing:
        raise ConfigError(f"the Alibaba Cloud channels need {' and '.join(missing)} in the environment")
    return key_id, secret


def missing(config: AliyunSettings, keys: tuple[str, ...]) -> list[str]:
    """Those of `keys` not set in `[channels.aliyun]`."""
    return [key for key in keys if not getattr(config, key)]


def require(config: AliyunSettings, keys: tuple[str, ...]) -> None:
    """Raise `ConfigError` naming what a channel still needs: credentials, settings, a valid callback token."""
    credentials()
    absent = missing(config, keys)
    if absent:
        raise ConfigError(f"[channels.{AliyunSettings.section}] {', '.join(absent)} not set")
    path_token(callback_token(config), f"[channels.{AliyunSettings.section}] callback_token (or {TOKEN_VARIABLE})")


def template_values(config: AliyunSettings, params: dict[str, str], facts: dict[str, Any]) -> dict[str, str]:
    """A template's variables filled from the case's facts as `params` maps them, each cut to the provider's limit."""
    return {variable: str(facts[source])[: config.param_max_chars] for variable, source in params.items()}
