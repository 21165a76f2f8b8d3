"""The plugin guide (`docs/plugins.md`) documents every hook, every member of the plugin API's protocols and every
setting a plugin reads: each list is taken from the code, so a new hook or setting without its paragraph fails here."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

from callbackd.api import (
    ChannelSettings,
    Conversation,
    NotifierSettings,
    Survey,
    WebhookScope,
    WebhookServices,
    hookspecs,
)
from callbackd.core.settings import Settings

pytestmark = pytest.mark.no_database

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "plugins.md"
BUNDLED = ("callbackd_simulator", "callbackd_operator", "callbackd_twilio", "callbackd_aliyun", "callbackd_tencent")


def guide() -> str:
    return GUIDE.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The guide's text under the heading `title`, up to the next heading of any level."""
    text = guide()
    start = text.index(f"### {title}\n")
    following = re.search(r"^#{1,3} ", text[start + 4:], re.M)
    return text[start:start + 4 + following.start()] if following else text[start:]


def hooks() -> list[str]:
    return [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "callbackd_spec")]


def test_there_are_hooks_to_check():
    assert {"register_channels", "register_routes", "answer_recorded", "callback_closed"} <= set(hooks())


@pytest.mark.parametrize("name", hooks())
def test_every_hook_is_typed_documented_and_in_the_guide(name):
    function = getattr(hookspecs, name)
    assert function.__doc__ and ":param" in function.__doc__, name
    parameters = inspect.signature(function).parameters
    assert all(p.annotation is not inspect.Parameter.empty for p in parameters.values())
    for parameter in parameters:
        assert f":param {parameter}:" in function.__doc__, (name, parameter)
    assert f"### `{name}({', '.join(parameters)})`" in guide(), name


def members(protocol: type) -> list[str]:
    return [name for name in vars(protocol) if not name.startswith("_")]


@pytest.mark.parametrize("protocol", [Conversation, Survey, WebhookServices, WebhookScope], ids=lambda p: p.__name__)
def test_every_member_of_the_plugin_protocols_is_in_the_guide(protocol):
    text = guide()
    missing = [name for name in members(protocol) if not re.search(rf"`{name}[`(]", text)]
    assert not missing, f"docs/plugins.md does not mention {protocol.__name__}.{', '.join(missing)}"


def channel_settings() -> list[type[ChannelSettings]]:
    """Every `ChannelSettings` model of the bundled plugins: the tables a plugin reads from `[channels]`."""
    found = []
    for package in BUNDLED:
        module = importlib.import_module(package)
        found += [value for value in vars(module).values()
                  if isinstance(value, type) and issubclass(value, ChannelSettings) and value is not ChannelSettings]
    return found


def test_the_bundled_channel_settings_are_found():
    assert {model.section for model in channel_settings()} == {"simulator", "twilio", "aliyun", "tencent"}


@pytest.mark.parametrize("model", channel_settings(), ids=lambda m: m.section)
def test_every_key_of_a_plugins_table_is_documented(model):
    text = section(f"`[channels.{model.section}]`")
    missing = [key for key in model.model_fields if f"`{key}`" not in text]
    assert not missing, f"[channels.{model.section}] keys missing from docs/plugins.md: {', '.join(missing)}"


NOTIFIERS = ("callbackd_wecom", "callbackd_dingtalk", "callbackd_email")


def notifier_settings() -> list[type[NotifierSettings]]:
    """Every `NotifierSettings` model of the bundled notifier plugins: the tables they read from `[notify]`."""
    found = []
    for package in NOTIFIERS:
        module = importlib.import_module(package)
        found += [value for value in vars(module).values()
                  if isinstance(value, type) and issubclass(value, NotifierSettings) and value is not NotifierSettings]
    return found


def test_the_bundled_notifier_settings_are_found():
    assert {model.section for model in notifier_settings()} == {"wecom", "dingtalk", "email"}


@pytest.mark.parametrize("model", notifier_settings(), ids=lambda m: m.section)
def test_every_key_of_a_notifiers_table_is_documented(model):
    text = guide()
    start = text.index(f"#### `[notify.{model.section}]`\n")
    following = re.search(r"^#{1,4} ", text[start + 5:], re.M)
    documented = text[start:start + 5 + following.start()] if following else text[start:]
    keys = [field.alias or name for name, field in model.model_fields.items()]
    missing = [key for key in keys if f"`{key}`" not in documented]
    assert not missing, f"[notify.{model.section}] keys missing from docs/plugins.md: {', '.join(missing)}"


def core_settings_read_by_plugins() -> set[str]:
    """callbackd's own settings the bundled plugins read (`settings.surveys.language` -> "surveys.language")."""
    read = set()
    for package in BUNDLED:
        folder = Path(importlib.import_module(package).__file__ or "").parent
        for source in folder.glob("*.py"):
            for first, second in re.findall(r"\bsettings\.([a-z_]+)(?:\.([a-z_]+))?", source.read_text("utf-8")):
                if first not in Settings.model_fields:
                    continue
                nested = Settings.model_fields[first].annotation
                fields = getattr(nested, "model_fields", {})
                read.add(f"{first}.{second}" if second in fields else first)
    return read


def test_every_setting_of_callbackd_a_plugin_reads_is_documented():
    read = core_settings_read_by_plugins()
    assert {"channels", "surveys.language", "organisation"} <= read
    text = section("Settings") if "### Settings\n" in guide() else guide().split("## Settings", 1)[1]
    missing = [name for name in sorted(read) if f"`{name}`" not in text]
    assert not missing, f"settings plugins read but docs/plugins.md does not document: {', '.join(missing)}"
