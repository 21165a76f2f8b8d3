"""Settings: `config/callbackd.toml` (or the file `CALLBACKD_CONFIG` names), then `CALLBACKD_*` environment.

Every setting has a documented default in `config/callbackd.toml`; the models below carry the same defaults so a
missing file still gives a working embedded install. Environment variables win over the file; nested settings use
a double underscore (`CALLBACKD_SAMPLING__PER_WINDOW=10`). An unknown key anywhere is a start-up error naming it.
"""

from __future__ import annotations

import os
import tomllib
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from callbackd.errors import ConfigError

CASE_TYPES = ("即办件", "承诺件", "联办件", "上报件", "补办件", "退回件", "投诉", "举报", "报修")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingRule(Section):
    """A rate policy: a share of one category's resolved cases, called back within a number of days."""

    name: str
    case_types: list[str]
    matter_keywords: list[str] = Field(default_factory=list)
    share: float = Field(gt=0, le=1)
    within_days: int | None = Field(default=None, ge=0)
    phone_cooldown: bool = False


class SamplingSettings(Section):
    policy: Literal["fixed"] = "fixed"
    per_window: int = Field(default=20, ge=0)
    stratify_by: Literal["none", "case_type"] = "none"
    phone_cooldown_days: int = Field(default=30, ge=0)
    rules: list[SamplingRule] = Field(default_factory=list)


class LedgerSettings(Section):
    # field -> extra header names accepted beside the built-in Chinese ones
    columns: dict[str, list[str]] = Field(default_factory=dict)
    case_types: list[str] = Field(default_factory=lambda: list(CASE_TYPES))
    case_type_aliases: dict[str, str] = Field(default_factory=dict)
    unresolved_statuses: list[str] = Field(
        default_factory=lambda: ["办理中", "受理中", "待受理", "审核中", "补正中", "待补正", "挂起", "暂停"]
    )

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        from callbackd.ledger import FIELDS

        unknown = sorted(set(value) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown ledger field {unknown[0]!r} (known: {', '.join(FIELDS)})")
        return value


class CalendarSettings(Section):
    holidays_file: str = "holidays.toml"
    calling_hours: list[tuple[time, time]] = Field(
        default_factory=lambda: [(time(9, 0), time(12, 0)), (time(14, 0), time(20, 0))]
    )

    @field_validator("calling_hours")
    @classmethod
    def _ordered(cls, value: list[tuple[time, time]]) -> list[tuple[time, time]]:
        for start, end in value:
            if start >= end:
                raise ValueError(f"calling hours {start:%H:%M}-{end:%H:%M} end before they start")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CALLBACKD_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    database_url: str = "sqlite:///var/callbackd.db"
    timezone: str = "Asia/Shanghai"
    organisation: str = "政务服务中心"
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)

    # where the settings came from; not a setting itself
    config_dir: Path = Field(default=Path("."), exclude=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The file's values arrive as init arguments; the environment must win over them.
        return (env_settings, init_settings)

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _rules_name_known_types(self) -> Settings:
        known = set(self.ledger.case_types)
        for rule in self.sampling.rules:
            for case_type in rule.case_types:
                if case_type not in known:
                    raise ValueError(f"sampling rule {rule.name!r} names unknown case type {case_type!r}")
        return self

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def config_file(self, name: str) -> Path:
        """A file beside the settings file, falling back to the bundled defaults."""
        local = self.config_dir / name
        return local if local.exists() else bundled_config_dir() / name


def bundled_config_dir() -> Path:
    """The defaults shipped with callbackd: `callbackd/_config` in a wheel, `config/` in a checkout."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_config", package.parent / "config"):
        if candidate.is_dir():
            return candidate
    return package / "_config"


def settings_path() -> Path:
    """The settings file in force: `CALLBACKD_CONFIG`, else `./config/callbackd.toml`, else the bundled one."""
    named = os.environ.get("CALLBACKD_CONFIG")
    if named:
        return Path(named)
    local = Path("config") / "callbackd.toml"
    return local if local.exists() else bundled_config_dir() / "callbackd.toml"


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the settings; any mistake is a `ConfigError` naming the file and the key."""
    path = path or settings_path()
    try:
        data: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"settings file {path} not found (set CALLBACKD_CONFIG or create it)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Settings(**data, config_dir=path.parent)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc)}") from None


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown setting {where!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"setting {where!r}: {message}" if where else message
