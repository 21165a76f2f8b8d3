"""Settings: the bundled defaults, the file in force, unknown keys, bad values, the environment over the file."""

from __future__ import annotations

from datetime import time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from callbackd.core.errors import ConfigError
from callbackd.core.settings import Settings, bundled_config_dir, load_settings, settings_path

BUNDLED = bundled_config_dir() / "callbackd.toml"


# tests/conftest.py's autouse `workdir` fixture runs each test in an empty folder with no CALLBACKD_*.


def settings_file(folder: Path, text: str = "", name: str = "callbackd.toml") -> Path:
    """A settings file with `text`, written as UTF-8."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(path: Path) -> str:
    with pytest.raises(ConfigError) as raised:
        load_settings(path)
    return str(raised.value)


# ---- defaults and the file in force ---------------------------------------------------------------------


def test_the_bundled_file_gives_the_documented_defaults() -> None:
    assert BUNDLED.is_file()
    settings = load_settings(BUNDLED)
    assert settings.sampling.per_window == 20
    assert settings.sampling.policy == "fixed"
    assert settings.sampling.phone_cooldown_days == 30
    assert settings.timezone == "Asia/Shanghai"
    assert settings.zone == ZoneInfo("Asia/Shanghai")
    assert settings.calendar.calling_hours == [(time(9, 0), time(12, 0)), (time(14, 0), time(20, 0))]
    assert settings.calendar.holidays_file == "holidays.toml"
    assert [rule.name for rule in settings.sampling.rules] == ["投诉", "举报", "报修-安全", "报修-漏水", "报修-其他"]
    assert settings.ledger.case_type_aliases["投诉件"] == "投诉"
    assert settings.config_dir == BUNDLED.parent


def test_without_a_local_file_the_bundled_one_is_in_force(tmp_path: Path) -> None:
    assert settings_path() == BUNDLED
    assert load_settings().sampling.per_window == 20


def test_a_local_config_folder_wins_over_the_bundled_file(tmp_path: Path) -> None:
    path = settings_file(tmp_path / "config", "[sampling]\nper_window = 12\n")
    assert settings_path() == Path("config") / "callbackd.toml"
    settings = load_settings()
    assert settings.sampling.per_window == 12
    assert settings.config_dir.resolve() == path.parent


def test_the_models_carry_the_same_defaults_as_the_bundled_file() -> None:
    # "delete a line to keep the default": a key left out must mean what the bundled file shows
    from_file = load_settings(BUNDLED).model_dump(exclude={"config_dir"})
    assert Settings().model_dump(exclude={"config_dir"}) == from_file


def test_a_short_file_keeps_the_default_rules_and_aliases(tmp_path: Path) -> None:
    settings = load_settings(settings_file(tmp_path, 'organisation = "市民服务中心"\n'))
    assert settings.organisation == "市民服务中心"
    assert {rule.name: rule.within_days for rule in settings.sampling.rules}["投诉"] == 3
    assert settings.ledger.case_type_aliases["即办"] == "即办件"


def test_a_file_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    path = tmp_path / "callbackd.toml"
    path.write_bytes(b"\xef\xbb\xbf" + 'organisation = "政务服务中心"\n'.encode())
    assert load_settings(path).organisation == "政务服务中心"


# ---- mistakes in the file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("per_window = 7\n", "unknown setting 'per_window'"),
        ("[sampling]\nper_windw = 7\n", "unknown setting 'sampling.per_windw'"),
        ("[calendar]\nholiday_file = 'x.toml'\n", "unknown setting 'calendar.holiday_file'"),
        (
            '[[sampling.rules]]\nname = "投诉"\ncase_types = ["投诉"]\nshares = 1.0\n',
            "unknown setting 'sampling.rules.0.shares'",
        ),
        ('config_dir = "/etc"\n', "unknown setting 'config_dir'"),
    ],
)
def test_an_unknown_key_is_an_error_naming_it(tmp_path: Path, text: str, message: str) -> None:
    path = settings_file(tmp_path, text)
    assert config_error(path) == f"{path}: {message}"


@pytest.mark.parametrize("zone", ["Asia/Shangai", "Beijing", "asia/shanghai", "", "../etc/passwd", "Asia"])
def test_a_bad_time_zone_is_an_error(tmp_path: Path, zone: str) -> None:
    message = config_error(settings_file(tmp_path, f'timezone = "{zone}"\n'))
    assert f"setting 'timezone': unknown time zone {zone!r}" in message


def test_a_rate_rule_naming_an_unknown_case_type_is_an_error(tmp_path: Path) -> None:
    text = '[[sampling.rules]]\nname = "投诉抽查"\ncase_types = ["投拆"]\nshare = 1.0\n'
    message = config_error(settings_file(tmp_path, text))
    assert "sampling rule '投诉抽查' names unknown case type '投拆'" in message


def test_a_case_type_alias_to_an_unknown_type_is_an_error(tmp_path: Path) -> None:
    message = config_error(settings_file(tmp_path, '[ledger]\ncase_type_aliases = { "加急" = "加急件" }\n'))
    assert "maps '加急' to unknown case type '加急件'" in message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[calendar]\ncalling_hours = [["12:00", "09:00"]]\n', "calling hours 12:00-09:00 end before they start"),
        ("[sampling]\nper_window = -1\n", "setting 'sampling.per_window'"),
        ('[sampling]\npolicy = "random"\n', "setting 'sampling.policy'"),
        ('[[sampling.rules]]\nname = "x"\ncase_types = ["投诉"]\nshare = 1.5\n', "setting 'sampling.rules.0.share'"),
    ],
)
def test_a_bad_value_is_an_error_naming_the_setting(tmp_path: Path, text: str, message: str) -> None:
    path = settings_file(tmp_path, text)
    error = config_error(path)
    assert error.startswith(f"{path}: ")
    assert message in error


def test_invalid_toml_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = settings_file(tmp_path, "[sampling\nper_window = 20\n")
    message = config_error(path)
    assert message.startswith(f"{path}: not valid TOML")


def test_a_file_not_in_utf8_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "callbackd.toml"
    path.write_bytes('organisation = "政务服务中心"\n'.encode("gbk"))
    assert config_error(path) == f"{path}: not UTF-8 text (save the file as UTF-8)"


def test_a_missing_file_or_a_folder_is_an_error(tmp_path: Path) -> None:
    assert "not found" in config_error(tmp_path / "nowhere.toml")
    assert str(tmp_path) in config_error(tmp_path)


# ---- the environment ------------------------------------------------------------------------------------


def test_environment_overrides_win_over_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = settings_file(
        tmp_path,
        'database_url = "sqlite:///file.db"\n[sampling]\nper_window = 15\nstratify_by = "case_type"\n',
    )
    monkeypatch.setenv("CALLBACKD_DATABASE_URL", "postgresql+psycopg://cb@localhost/callbackd")
    monkeypatch.setenv("CALLBACKD_SAMPLING__PER_WINDOW", "7")
    settings = load_settings(path)
    assert settings.database_url == "postgresql+psycopg://cb@localhost/callbackd"
    assert settings.sampling.per_window == 7
    assert settings.sampling.stratify_by == "case_type"  # the rest of the file's section stays


def test_callbackd_config_names_another_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings_file(tmp_path / "config", "[sampling]\nper_window = 12\n")  # would win without the variable
    other = settings_file(tmp_path / "elsewhere", "[sampling]\nper_window = 3\n", name="site.toml")
    monkeypatch.setenv("CALLBACKD_CONFIG", str(other))
    assert settings_path() == other
    settings = load_settings()
    assert settings.sampling.per_window == 3
    assert settings.config_dir == other.parent


def test_callbackd_config_naming_a_missing_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACKD_CONFIG", str(tmp_path / "gone.toml"))
    with pytest.raises(ConfigError, match="gone.toml not found"):
        load_settings()


def test_variables_that_are_not_settings_are_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = settings_file(tmp_path / "site")
    monkeypatch.setenv("CALLBACKD_CONFIG", str(path))
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T10:00:00+08:00")
    monkeypatch.setenv("CALLBACKD_CONFIG_DIR", str(tmp_path / "elsewhere"))
    settings = load_settings()
    assert settings.config_dir == path.parent  # where the file is, whatever the environment says


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("CALLBACKD_TIMEZONE", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("CALLBACKD_SAMPLING__PER_WINDOW", "many", "setting 'sampling.per_window'"),
        ("CALLBACKD_SAMPLING__PER_WINDW", "7", "unknown setting 'sampling.per_windw'"),
        ("CALLBACKD_CALENDAR__CALLING_HOURS", "9-12", "JSON"),
        ("CALLBACKD_SAMPLING", "per_window=7", "JSON"),
    ],
)
def test_a_bad_environment_value_is_an_error_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    path = settings_file(tmp_path)
    monkeypatch.setenv(name, value)
    error = config_error(path)
    assert f"environment variable {name}" in error
    assert message in error


def test_a_whole_section_can_come_from_the_environment_as_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACKD_CALENDAR__CALLING_HOURS", '[["08:30", "11:30"]]')
    settings = load_settings(settings_file(tmp_path))
    assert settings.calendar.calling_hours == [(time(8, 30), time(11, 30))]


def test_a_rectification_deadline_of_no_working_day_is_refused(tmp_path: Path) -> None:
    path = settings_file(tmp_path, "[rectification]\ndue_workdays_by_case_type = { \"投诉\" = 0 }\n")
    message = config_error(path)
    assert "rectification.due_workdays_by_case_type" in message and "at least 1 working day" in message
