"""Settings: `config/callbackd.toml` (or the file `CALLBACKD_CONFIG` names), then `CALLBACKD_*` environment.

Every setting has a documented default in `config/callbackd.toml`; the models below carry the same defaults so a
missing file still gives a working embedded install. Environment variables win over the file; nested settings use
a double underscore (`CALLBACKD_SAMPLING__PER_WINDOW=10`). An unknown key anywhere is a start-up error naming it.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import time
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from callbackd.core.errors import CallbackdError, ConfigError
from callbackd.core.phones import DEFAULT_REGIONS, region_codes
from callbackd.core.vocabulary import CASE_TYPES, FIELDS, LEVEL_NAMES, LIMIT_FIELDS, SOURCES

# The defaults `config/callbackd.toml` documents, so that a settings file without these keys keeps them.
DEFAULT_RULES: tuple[dict[str, Any], ...] = (
    {"name": "投诉", "case_types": ["投诉"], "share": 1.0, "within_days": 3, "working_days": True},
    {"name": "举报", "case_types": ["举报"], "share": 1.0, "within_days": 5, "working_days": True},
    {
        "name": "报修-安全",
        "case_types": ["报修"],
        "matter_keywords": ["安全", "燃气", "电梯", "消防", "漏电"],
        "share": 1.0,
        "within_days": 2,
    },
    {
        "name": "报修-漏水",
        "case_types": ["报修"],
        "matter_keywords": ["漏水", "渗水", "水管", "爆管"],
        "share": 1.0,
        "within_days": 3,
    },
    {"name": "报修-其他", "case_types": ["报修"], "share": 1.0, "within_days": 7},
)
DEFAULT_CASE_TYPE_ALIASES = {
    "即办": "即办件",
    "承诺": "承诺件",
    "联办": "联办件",
    "上报": "上报件",
    "补办": "补办件",
    "退回": "退回件",
    "投诉件": "投诉",
    "举报件": "举报",
    "报修件": "报修",
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SamplingRule(Section):
    """A rate policy: a share of one category's resolved cases, called back within a number of days."""

    name: str = Field(min_length=1, max_length=50)
    case_types: list[str]
    matter_keywords: list[str] = Field(default_factory=list)
    share: float = Field(gt=0, le=1)
    within_days: int | None = Field(default=None, ge=0)
    # count within_days as working days (holidays skipped, make-up days counted) rather than calendar days
    working_days: bool = False
    phone_cooldown: bool = False


class SamplingSettings(Section):
    policy: Literal["fixed"] = "fixed"
    per_window: int = Field(default=20, ge=0)
    stratify_by: Literal["none", "case_type"] = "none"
    phone_cooldown_days: int = Field(default=30, ge=0)
    rules: list[SamplingRule] = Field(default_factory=lambda: [SamplingRule(**rule) for rule in DEFAULT_RULES])


class LedgerSettings(Section):
    # field -> extra header names accepted beside the built-in Chinese ones
    columns: dict[str, list[str]] = Field(default_factory=dict)
    case_types: list[str] = Field(default_factory=lambda: list(CASE_TYPES))
    case_type_aliases: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_CASE_TYPE_ALIASES))
    unresolved_statuses: list[str] = Field(
        default_factory=lambda: ["办理中", "受理中", "待受理", "审核中", "补正中", "待补正", "挂起", "暂停"]
    )

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(FIELDS) - set(LIMIT_FIELDS))
        if unknown:
            raise ValueError(f"unknown ledger field {unknown[0]!r} (known: {', '.join(FIELDS + LIMIT_FIELDS)})")
        return value


class PhoneSettings(Section):
    # the regions whose numbers are called; a number of any other region is a bad ledger row. The first is the
    # region of numbers written without a country code.
    regions: list[str] = Field(default_factory=lambda: list(DEFAULT_REGIONS))

    @field_validator("regions")
    @classmethod
    def _known_regions(cls, value: list[str]) -> list[str]:
        return region_codes(value)


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


class DispatchSettings(Section):
    plan: list[str] = Field(default_factory=lambda: ["simulator"], min_length=1)
    attempts_per_channel: int = Field(default=3, ge=1)
    attempts_per_day: int = Field(default=3, ge=1)
    retry_minutes: int = Field(default=120, ge=0)
    per_number_per_day: int = Field(default=3, ge=1)
    per_number_gap_seconds: int = Field(default=60, ge=0)
    # an attempt still waiting this long for its channel (by kind) ends as no_answer
    # where provider rates are counted: memory:// for one process, redis://host:port/db to share across workers
    rate_storage: str = "memory://"
    # a claimed attempt not placed within this long (its worker died) goes back to due; one in doubt (the provider
    # request may have gone out) is reconciled through its channel's lookup instead
    lease_seconds: int = Field(default=300, ge=1)
    # at most this many attempts claimed and waiting for a worker at once
    batch: int = Field(default=2000, ge=1)
    waiting_minutes: dict[str, int] = Field(
        default_factory=lambda: {"voice": 60, "sms": 1440, "operator": 7200, "simulated": 10, "onsite": 7200}
    )


class WorkerSettings(Section):
    """Celery workers and beat, for deployments that outgrow the embedded runner."""

    broker_url: str = "redis://127.0.0.1:6379/0"
    result_backend: str = ""  # none: every effect of a task lives in the database
    # crontab schedules, in the settings' time zone: minute hour day-of-month month day-of-week
    open_rounds: str = "0 9 * * mon"
    close_rounds: str = "15 * * * *"
    scores: str = "0 8 * * mon"
    tick_seconds: float = Field(default=60, gt=0)
    # claimed attempts per message to the workers
    chunk: int = Field(default=20, ge=1, le=1000)
    concurrency: int = Field(default=2, ge=1)
    # where `beat` keeps the schedule's last runs
    beat_schedule_file: str = "var/celerybeat-schedule"
    # where the `scores` task writes the ranking reports
    reports_folder: str = "var/reports"

    @field_validator("open_rounds", "close_rounds", "scores")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a crontab schedule of five fields such as \"0 9 * * mon\"")
        return value


class SurveySettings(Section):
    folder: str = "surveys"
    default: str = "default"
    language: Literal["zh-CN", "en"] = "zh-CN"
    # after a one-key call answered its short form, the channel (of kind sms) that asks the rest of the survey, to a
    # mobile; "" asks nothing more
    rest_by: str = ""




class ScoringSettings(Section):
    points: dict[str, float] = Field(default_factory=lambda: {"满意": 100.0, "基本满意": 80.0, "不满意": 0.0})
    weights: dict[str, float] = Field(default_factory=lambda: {"callback": 0.6, "onsite": 0.2, "evaluator": 0.2})
    # question key -> weight; questions not listed weigh 1
    question_weights: dict[str, float] = Field(default_factory=dict)
    grades: list[tuple[float, str]] = Field(default_factory=lambda: [(95.0, "优秀"), (85.0, "良好"), (70.0, "合格")])
    failing_grade: str = "不合格"
    minimum_contacts: dict[str, int] = Field(
        default_factory=lambda: {"week": 5, "month": 10, "quarter": 30, "year": 100}
    )
    confidence: float = Field(default=0.95, gt=0, lt=1)

    @field_validator("points")
    @classmethod
    def _levels(cls, value: dict[str, float]) -> dict[str, float]:
        if set(value) != set(LEVEL_NAMES):
            raise ValueError(f"points must give exactly the levels {', '.join(LEVEL_NAMES)}")
        return value

    @field_validator("weights")
    @classmethod
    def _sources(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(value) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source {unknown[0]!r} (sources: {', '.join(SOURCES)})")
        if any(weight < 0 for weight in value.values()) or not any(value.values()):
            raise ValueError("weights must not be negative and must not all be zero")
        return value

    @field_validator("minimum_contacts")
    @classmethod
    def _periods(cls, value: dict[str, int]) -> dict[str, int]:
        unknown = sorted(set(value) - {"week", "month", "quarter", "year"})
        if unknown:
            raise ValueError(f"unknown period kind {unknown[0]!r} (week, month, quarter, year)")
        return value

    @field_validator("grades")
    @classmethod
    def _descending(cls, value: list[tuple[float, str]]) -> list[tuple[float, str]]:
        return sorted(value, key=lambda grade: -grade[0])


class RectificationSettings(Section):
    """Rectifications (整改): when they fall due, what opens them, how many follow-ups before escalation."""

    due_workdays: int = Field(default=3, ge=1)
    # per case type (投诉 = 2, ...); other types use due_workdays
    due_workdays_by_case_type: dict[str, int] = Field(default_factory=dict)
    max_loops: int = Field(default=2, ge=1)
    # per case type, a deadline in clock hours from opening instead of working days (报修 = 24: a repair's problem
    # is notified to the repair staff within 24 hours, weekends and holidays included)
    due_hours_by_case_type: dict[str, int] = Field(default_factory=lambda: {"报修": 24})

    @field_validator("due_hours_by_case_type")
    @classmethod
    def _at_least_an_hour(cls, value: dict[str, int]) -> dict[str, int]:
        for case_type, hours in value.items():
            if not 1 <= hours <= 24 * 366:
                raise ValueError(f"{case_type} = {hours}: a rectification is due in 1 to 8784 hours")
        return value

    @field_validator("due_workdays_by_case_type")
    @classmethod
    def _at_least_a_day(cls, value: dict[str, int]) -> dict[str, int]:
        for case_type, days in value.items():
            if days < 1:
                raise ValueError(f"{case_type} = {days}: a rectification is due in at least 1 working day")
        return value

    # case types whose callback, when it could not be made (unreachable, or invalid: a wrong number or no channel
    # that reaches it), opens a rectification
    open_on_unreachable: list[str] = Field(default_factory=lambda: ["投诉"])


class PolicySettings(Section):
    """Category policies: whose identity a window never sees, and who must call back which share of repairs."""

    confidential_case_types: list[str] = Field(default_factory=lambda: ["举报"])
    role_case_types: list[str] = Field(default_factory=lambda: ["报修"])
    # the caller's role -> the least share of the category's completed callbacks that role must make
    role_minimum_shares: dict[str, float] = Field(
        default_factory=lambda: {"经理": 0.10, "主管": 0.30, "维修组长": 0.60}
    )

    @field_validator("role_minimum_shares")
    @classmethod
    def _shares(cls, value: dict[str, float]) -> dict[str, float]:
        for role, share in value.items():
            if not 0 <= share <= 1:
                raise ValueError(f"the share of {role!r} must lie between 0 and 1, not {share}")
        return value


class ReviewSettings(Section):
    """Record review (审核): which sources' records a supervisor approves (归档) or sends back before they are final."""

    required: bool = False
    # of operator (an operator's call or visit, from the console or `results import --source operator`) and onsite
    # (征求意见表); evaluator ratings are machine data and never reviewed
    sources: list[Literal["operator", "onsite"]] = ["operator", "onsite"]


class SignatureSettings(Section):
    """Signed visits (签名确认): which records must carry the applicant's signature to count in scoring."""

    # visit (an operator result whose 回访方式 is 上门) and/or onsite (征求意见表); empty: none needs one
    required_for: list[Literal["visit", "onsite"]] = Field(default_factory=list)
    # where scanned signatures are kept (0600 files), relative to the working folder
    folder: str = "var/signatures"
    max_bytes: int = Field(default=2 * 1024 * 1024, ge=1024, le=20 * 1024 * 1024)


class IndicatorSettings(Section):
    """Indicators beside the score, and the alerts on them."""

    # a window last, or failing, this many periods in a row is flagged
    alert_periods: int = Field(default=2, ge=1)
    # 投诉率 = cases of these types / all cases a window accepted in the period; over the target is flagged
    complaint_case_types: list[str] = Field(default_factory=lambda: ["投诉"])
    complaint_rate_target: float = Field(default=0.01, ge=0, le=1)


class OnsiteSettings(Section):
    """On-site forms (现场征求意见表): how many each window hands in a week (0: no quota, no 现场征求完成率)."""

    per_window_weekly: int = Field(default=5, ge=0)


class WebSettings(Section):
    """The console: where people reach it. Its signing key comes only from `CALLBACKD_SECRET_KEY`."""

    # the address people type (https://...): session cookies are marked Secure when it is https
    public_url: str = ""


class NotifySettings(BaseModel):
    """Notifications to staff (see `callbackd.api.notifications`): when they go out, to whom beyond the accounts'
    own routes, and, as tables of their own (`[notify.wecom]`, `[notify.dingtalk]`, `[notify.email]`), each
    notifier plugin's settings, which the plugin validates."""

    # extra keys are the notifiers' tables; anything else is refused by `_tables_only`
    model_config = ConfigDict(extra="allow", frozen=True)

    # "immediate": each notification as soon as it is written; "digest": one message per recipient per working
    # day at digest_at, in the organisation's zone (the events in `immediate` still go at once)
    delivery: Literal["immediate", "digest"] = "immediate"
    digest_at: time = time(9, 0)
    immediate: list[str] = Field(default_factory=lambda: ["rectification.escalated", "job.failed"])
    # routes that receive what is addressed to a role, beside its accounts' own: { supervisor = ["wecom"] }
    roles: dict[str, list[str]] = Field(default_factory=dict)
    # a round that closes with fewer callbacks completed than this share is reported to the supervisors
    round_completion_target: float = Field(default=0.8, ge=0, le=1)
    # a delivery that failed is tried again after retry_minutes, doubling each time, up to max_tries in all
    retry_minutes: float = Field(default=1, gt=0)
    max_tries: int = Field(default=6, ge=1, le=50)

    @model_validator(mode="after")
    def _tables_only(self) -> NotifySettings:
        for key, value in (self.model_extra or {}).items():
            if not isinstance(value, dict):
                raise ValueError(f"unknown key notify.{key} (a notifier's settings are a table, [notify.{key}])")
        return self

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        roles = ("admin", "supervisor", "operator", "window", "leader")
        for role, routes in value.items():
            if role not in roles:
                raise ValueError(f"unknown role {role!r} (roles: {', '.join(roles)})")
            for route in routes:
                check_route(route)
        return value

    def table(self, name: str) -> dict[str, Any]:
        """The notifier `name`'s table (empty when the configuration has none)."""
        return dict((self.model_extra or {}).get(name, {}))


ROUTE = re.compile(r"^[a-z][a-z0-9_-]{0,31}(:.+)?$")


def check_route(route: str) -> str:
    """A delivery route `notifier[:address]` ("wecom", "dingtalk:窗口一组", "email:li@example.gov.cn"); a
    `ConfigError`-worthy `ValueError` otherwise."""
    if not ROUTE.match(route) or len(route) > 200:
        raise ValueError(f"{route!r} is not a route such as \"wecom\", \"dingtalk:窗口一组\" or "
                         f"\"email:name@example.gov.cn\"")
    return route


class _EnvironmentSource(EnvSettingsSource):
    """The `CALLBACKD_*` variables, except `config_dir`: where the file was found is not a setting."""

    def __call__(self) -> dict[str, Any]:
        values = super().__call__()
        values.pop("config_dir", None)
        return values


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CALLBACKD_", env_nested_delimiter="__", extra="forbid", frozen=True)

    database_url: str = "sqlite:///var/callbackd.db"
    timezone: str = "Asia/Shanghai"
    organisation: str = "政务服务中心"
    sampling: SamplingSettings = Field(default_factory=SamplingSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    phones: PhoneSettings = Field(default_factory=PhoneSettings)
    calendar: CalendarSettings = Field(default_factory=CalendarSettings)
    dispatch: DispatchSettings = Field(default_factory=DispatchSettings)
    workers: WorkerSettings = Field(default_factory=WorkerSettings)
    surveys: SurveySettings = Field(default_factory=SurveySettings)
    scoring: ScoringSettings = Field(default_factory=ScoringSettings)
    rectification: RectificationSettings = Field(default_factory=RectificationSettings)
    policies: PolicySettings = Field(default_factory=PolicySettings)
    review: ReviewSettings = Field(default_factory=ReviewSettings)
    signatures: SignatureSettings = Field(default_factory=SignatureSettings)
    indicators: IndicatorSettings = Field(default_factory=IndicatorSettings)
    onsite: OnsiteSettings = Field(default_factory=OnsiteSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    # one table per channel plugin ([channels.simulator], [channels.twilio]); each plugin validates its own
    channels: dict[str, dict[str, Any]] = Field(default_factory=dict)

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
        return (_EnvironmentSource(settings_cls), init_settings)

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

    @model_validator(mode="after")
    def _aliases_name_known_types(self) -> Settings:
        known = set(self.ledger.case_types)
        for alias, case_type in self.ledger.case_type_aliases.items():
            if case_type not in known:
                raise ValueError(
                    f"ledger.case_type_aliases maps {alias!r} to unknown case type {case_type!r} "
                    f"(known: {', '.join(self.ledger.case_types)})"
                )
        return self

    @model_validator(mode="after")
    def _policies_name_known_types(self) -> Settings:
        known = set(self.ledger.case_types)
        named = [
            ("rectification.due_workdays_by_case_type", list(self.rectification.due_workdays_by_case_type)),
            ("rectification.open_on_unreachable", self.rectification.open_on_unreachable),
            ("policies.confidential_case_types", self.policies.confidential_case_types),
            ("policies.role_case_types", self.policies.role_case_types),
            ("indicators.complaint_case_types", self.indicators.complaint_case_types),
        ]
        for setting, case_types in named:
            for case_type in case_types:
                if case_type not in known:
                    raise ValueError(f"{setting} names unknown case type {case_type!r} "
                                     f"(known: {', '.join(self.ledger.case_types)})")
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
    package = Path(__file__).resolve().parents[1]  # callbackd/
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


def read_toml(
    path: Path, kind: str, error: type[CallbackdError] = ConfigError, missing_hint: str = ""
) -> dict[str, Any]:
    """A TOML file callbackd is configured by (settings, a survey, holidays); a file that is missing, unreadable,
    not UTF-8 or not TOML is an `error` naming it, e.g. "survey file … not found"."""
    try:
        # utf-8-sig: Windows editors often save UTF-8 with a byte-order mark
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise error(f"{kind} file {path} not found{missing_hint}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not UTF-8 text (save the file as UTF-8)") from None
    except OSError as exc:
        raise error(f"{kind} file {path} cannot be read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None


def load_settings(path: Path | None = None) -> Settings:
    """Read and validate the settings; any mistake is a `ConfigError` naming the file and the key."""
    path = path or settings_path()
    data = read_toml(path, "settings", missing_hint=" (set CALLBACKD_CONFIG or create it)")
    if "config_dir" in data:  # recorded from the file's location, never read from it
        raise ConfigError(f"{path}: unknown setting 'config_dir'")
    try:
        return Settings(**data, config_dir=path.parent)
    except ValidationError as exc:
        raise ConfigError(_describe(path, exc)) from None
    except SettingsError as exc:
        raise ConfigError(_describe_environment(exc)) from None


def _describe_environment(exc: SettingsError) -> str:
    """A variable pydantic-settings could not parse: name it and say how lists and sections are written."""
    field = re.search(r'field "(\w+)"', str(exc))
    prefix = f"CALLBACKD_{field.group(1).upper()}" if field else "CALLBACKD_"
    names = sorted(name for name in os.environ if name.upper().startswith(prefix))
    return (
        f"environment variable {', '.join(names) or prefix + '*'}: cannot be read; a list or a whole section is "
        """written as JSON, e.g. CALLBACKD_CALENDAR__CALLING_HOURS='[["09:00", "12:00"]]'"""
    )


def _describe(path: Path, exc: ValidationError) -> str:
    """The first error, blamed on the environment variable that set the value, else on the file."""
    errors = exc.errors()
    # a misspelt key also leaves its field missing; the unknown name is what tells the user what to fix
    error = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = [str(part) for part in error["loc"]]
    where = ".".join(loc)
    source = str(path)
    environment = {name.upper() for name in os.environ}
    for depth in range(len(loc), 0, -1):
        name = "CALLBACKD_" + "__".join(loc[:depth]).upper()
        if name in environment:
            source = f"environment variable {name}"
            break
    if error["type"] == "extra_forbidden":
        return f"{source}: unknown setting {where!r}"
    message = error["msg"].removeprefix("Value error, ")
    return f"{source}: setting {where!r}: {message}" if where else f"{source}: {message}"
