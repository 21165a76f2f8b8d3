"""Plugin loading through real entry points: listing, a third-party channel, duplicates, plugins that raise,
autoload switches, and the plugin guide whose example runs."""

from __future__ import annotations

import re
import textwrap
import tomllib
from pathlib import Path

import pytest

from callbackd.api.manager import PluginError, load_plugins

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "plugins.md"


def install_plugin(site: Path, name: str, source: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Install a plugin module with an entry point in group "callbackd", as pip would lay it out."""
    site.mkdir(exist_ok=True)
    (site / f"{name}.py").write_text(textwrap.dedent(source), encoding="utf-8")
    info = site / f"{name}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n", encoding="utf-8")
    (info / "entry_points.txt").write_text(f"[callbackd]\n{name} = {name}\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))


CHANNEL_PLUGIN = """
    from callbackd.api.channels import StartResult
    from callbackd.api.hookspecs import hookimpl

    class Pager:
        name = "{channel}"
        kind = "voice"

        def start(self, conversation):
            return StartResult.placed("P-1")

    @hookimpl
    def register_channels(register):
        register(Pager())
"""


def test_first_party_plugins_load_through_entry_points(cli):
    listed = {p["name"]: p for p in cli("plugins", "list", "--json").json()}
    assert listed["builtin"]["source"] == "built-in"
    assert listed["simulator"]["source"].startswith("entry point callbackd")
    assert listed["simulator"]["channels"] == ["simulator"]
    assert listed["operator"]["channels"] == ["operator"]
    assert "register_channels" in listed["operator"]["hooks"]
    assert set(listed["builtin"]["exporters"]) == {"xlsx", "csv", "html", "json"}


def test_a_third_party_plugin_adds_a_channel(tmp_path, monkeypatch, cli):
    install_plugin(tmp_path / "site", "pager_plugin", CHANNEL_PLUGIN.format(channel="pager"), monkeypatch)
    plugins = load_plugins()
    assert plugins.channel("pager").kind == "voice"
    assert plugins.channels.owners["pager"] == "pager_plugin"
    listed = {p["name"]: p for p in cli("plugins", "list", "--json").json()}
    assert listed["pager_plugin"]["source"] == "entry point pager_plugin 1.0"


def test_a_duplicate_channel_names_both_plugins(tmp_path, monkeypatch, cli):
    install_plugin(tmp_path / "site", "copycat", CHANNEL_PLUGIN.format(channel="simulator"), monkeypatch)
    with pytest.raises(PluginError) as caught:
        load_plugins()
    assert "simulator" in str(caught.value) and "copycat" in str(caught.value)
    run = cli("plugins", "list")
    assert run.code == 1 and "copycat" in run.err and "'simulator'" in run.err


def test_a_plugin_that_raises_is_reported_with_its_name(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "broken_plugin", """
        from callbackd.api.hookspecs import hookimpl

        @hookimpl
        def register_channels(register):
            raise RuntimeError("gateway address missing")
    """, monkeypatch)
    with pytest.raises(PluginError, match="broken_plugin.*gateway address missing"):
        load_plugins()


def test_a_plugin_that_fails_to_import_is_reported(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "typo_plugin", "import not_a_module_anywhere\n", monkeypatch)
    with pytest.raises(PluginError, match="typo_plugin.*failed to load"):
        load_plugins()


def test_a_misspelled_hook_fails_loudly(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "misspelt", """
        from callbackd.api.hookspecs import hookimpl

        @hookimpl
        def register_channel(register):
            pass
    """, monkeypatch)
    with pytest.raises(PluginError, match="misspelt"):
        load_plugins()


def test_an_event_hook_that_raises_is_named(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "noisy", """
        from callbackd.api.hookspecs import hookimpl

        @hookimpl
        def callback_closed(callback):
            raise ValueError("mail server down")
    """, monkeypatch)
    plugins = load_plugins()
    with pytest.raises(PluginError, match="noisy.*callback_closed.*mail server down"):
        plugins.notify("callback_closed", callback=None)


def test_autoload_can_be_switched_off_and_plugins_named(monkeypatch):
    monkeypatch.setenv("CALLBACKD_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert [p.name for p in load_plugins().loaded] == ["builtin"]
    monkeypatch.setenv("CALLBACKD_LOAD_PLUGINS", "simulator")
    assert [p.name for p in load_plugins().loaded] == ["builtin", "simulator"]
    monkeypatch.setenv("CALLBACKD_LOAD_PLUGINS", "nonexistent")
    with pytest.raises(PluginError, match="nonexistent"):
        load_plugins()


def test_an_unknown_channel_is_refused_with_the_known_ones(cli, workdir):
    run = cli("round", "open", "--week", "2026-W48", "--channel", "carrier-pigeon")
    assert run.code == 1 and "carrier-pigeon" in run.err and "simulator" in run.err


def test_the_guide_example_runs_as_an_installed_plugin(tmp_path, monkeypatch, cli):
    example = re.findall(r"```python\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.S)[-1]
    install_plugin(tmp_path / "site", "callbackd_gateway", example, monkeypatch)
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    from tests.conftest import case_row, phone_for, write_csv

    rows = [case_row(f"G{i}", phone=phone_for(i)) for i in range(3)]
    rows.append(case_row("LAND", phone="010-65521234"))
    assert cli("ledger", "import", write_csv(Path("l.csv"), rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--channel", "gateway-sms", "--channel", "simulator").code == 0
    report = cli("dispatch", "--once", "--json").json()
    assert report["outcomes"]["in_progress"] == 3  # three mobiles wait for their SMS replies
    import callbackd_gateway

    # the landline skipped the SMS channel and went straight to the simulator, which closed it
    states = {c["case_id"]: c["status"] for c in cli("callbacks", "list", "--json").json()}
    assert states["LAND"] != "in_progress" and states["G0"] == "in_progress"
    assert [status for _, status in callbackd_gateway.CLOSED] == [states["LAND"]]


def test_a_plugin_reads_another_ledger_format(tmp_path, monkeypatch, cli):
    install_plugin(tmp_path / "site", "json_ledger", """
        import json
        from callbackd.api.hookspecs import hookimpl

        class JsonLedger:
            name = "json-ledger"
            suffixes = (".json",)

            def read(self, path, encoding, sheet):
                rows = json.loads(path.read_text(encoding="utf-8"))
                yield list(rows[0])
                for row in rows:
                    yield list(row.values())

        @hookimpl
        def register_ledger_readers(register):
            register(JsonLedger())
    """, monkeypatch)
    import json

    rows = [{"办件编号": "J1", "窗口": "社保窗口", "事项名称": "社保卡补办", "办件类型": "即办件", "申请人": "张三",
             "联系电话": "13800138000", "受理时间": "2026-11-03 09:00", "办结时间": "2026-11-03 10:00",
             "状态": "已办结"}]
    (tmp_path / "ledger.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    report = cli("ledger", "import", tmp_path / "ledger.json", "--json").json()
    assert report["imported"] == 1 and report["errors"] == []


def test_each_bundled_plugin_is_its_own_distribution():
    folders = sorted(p for p in (ROOT / "plugins").iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    assert [p.name for p in folders] == [
        "callbackd_aliyun", "callbackd_dingtalk", "callbackd_email", "callbackd_operator", "callbackd_simulator",
        "callbackd_tencent", "callbackd_twilio", "callbackd_wecom"]
    for folder in folders:
        project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8"))["project"]
        assert project["name"] == folder.name.replace("_", "-")
        assert "callbackd" in project["dependencies"]
        entry_points = project["entry-points"]["callbackd"]
        assert list(entry_points.values()) == [folder.name], folder.name
        assert (folder / folder.name / "__init__.py").is_file()
    core = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "entry-points" not in core["project"]  # the core declares no plugin: each plugin declares itself
    assert not any(dependency.startswith(("twilio", "alibabacloud", "tencentcloud"))
                   for dependency in core["project"]["dependencies"])
    assert core["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["callbackd"]
    # each is installed by scripts/test, held to callbackd.api by import-linter, and type-checked
    contracts = {c["name"]: c for c in core["tool"]["importlinter"]["contracts"]}
    script = (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    for folder in folders:
        assert f"-e plugins/{folder.name}" in script, folder.name
        assert folder.name in core["tool"]["importlinter"]["root_packages"], folder.name
        assert folder.name in contracts["plugins import only callbackd.api"]["source_modules"], folder.name
        assert f"plugins/{folder.name}/{folder.name}" in core["tool"]["mypy"]["files"], folder.name


def test_hooks_go_through_pluggy_so_wrappers_and_monitoring_see_them(tmp_path, monkeypatch):
    install_plugin(tmp_path / "site", "tracer", """
        from callbackd.api import hookimpl

        SEEN = []

        @hookimpl(wrapper=True)
        def register_channels(register):
            SEEN.append("register_channels")
            return (yield)

        @hookimpl(wrapper=True)
        def callback_closed(callback):
            SEEN.append(("before", callback))
            result = yield
            SEEN.append(("after", callback))
            return result
    """, monkeypatch)
    install_plugin(tmp_path / "site", "listener", """
        from callbackd.api import hookimpl

        HEARD = []

        @hookimpl
        def callback_closed(callback):
            HEARD.append(callback)
    """, monkeypatch)
    plugins = load_plugins()
    import listener
    import tracer

    # registration is per plugin, each call wrapped: the simulator, operator, twilio, aliyun and tencent channels
    assert tracer.SEEN.count("register_channels") == len(plugins.implementers("register_channels")) == 5
    assert sorted(plugins.channels) == ["aliyun-sms", "aliyun-voice", "operator", "simulator", "tencent-sms",
                                        "tencent-voice", "twilio-sms", "twilio-voice"]
    monitored = []
    plugins.manager.add_hookcall_monitoring(lambda name, impls, kwargs: monitored.append(name),
                                            lambda outcome, name, impls, kwargs: None)
    plugins.notify("callback_closed", callback="closed-1")
    assert tracer.SEEN[-2:] == [("before", "closed-1"), ("after", "closed-1")]
    assert listener.HEARD == ["closed-1"] and monitored == ["callback_closed"]


def test_the_plugin_that_raises_is_named_among_several(tmp_path, monkeypatch):
    bodies = {"quiet_one": "pass", "loud_one": "raise ValueError('mail server down')", "calm_one": "pass"}
    for name, body in bodies.items():
        install_plugin(tmp_path / "site", name, f"""
            from callbackd.api import hookimpl

            @hookimpl
            def answer_recorded(answer):
                {body}
        """, monkeypatch)
    plugins = load_plugins()
    with pytest.raises(PluginError, match="plugin 'loud_one' failed in answer_recorded: ValueError: mail server down"):
        plugins.notify("answer_recorded", answer=None)
