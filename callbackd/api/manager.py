"""Loading plugins: the built-in one, then every entry point in group "callbackd" (first-party plugins too).

`CALLBACKD_DISABLE_PLUGIN_AUTOLOAD=1` loads no entry point except those `CALLBACKD_LOAD_PLUGINS=a,b` names;
`CALLBACKD_LOAD_PLUGINS` may also name importable modules. Nothing happens at import time: `load_plugins()`
builds a fresh manager each call. Hooks are called through pluggy (`manager.hook.<name>`; registration hooks
through a per-plugin subset of it, see `Plugins.call_as`). A plugin that fails is reported with its name;
nothing is swallowed.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar

import pluggy
from pluggy import HookCaller

from callbackd.api import hookspecs
from callbackd.api.channels import KINDS, Channel, form_of, number_limits
from callbackd.core.errors import CallbackdError

ENTRY_POINT_GROUP = "callbackd"
T = TypeVar("T")
BUILTIN = ("callbackd.report.builtin",)


class PluginError(CallbackdError):
    """A plugin could not be loaded, registered something twice, or raised."""


@dataclass
class LoadedPlugin:
    name: str
    source: str  # "built-in", "entry point <dist> <version>", or "module"
    module: str
    hooks: list[str] = field(default_factory=list)
    channels: list[str] = field(default_factory=list)
    exporters: list[str] = field(default_factory=list)
    notifiers: list[str] = field(default_factory=list)


class Registry(Generic[T]):
    """Things registered by name through a `register` callable; a second registration of a name is an error
    naming both plugins."""

    def __init__(self, what: str, key: Callable[[T], str]) -> None:
        self.what = what
        self.key = key
        self.items: dict[str, T] = {}
        self.owners: dict[str, str] = {}

    def register_for(self, plugin: str, *, yields: bool = False) -> Callable[[T], None]:
        """The `register` callable handed to `plugin`. A yielding (built-in) plugin skips names taken already."""

        def register(item: T) -> None:
            name = self.key(item)
            if name in self.items and yields:
                return
            if name in self.items:
                raise PluginError(
                    f"{self.what} {name!r} is registered by both plugin {self.owners[name]!r} and plugin {plugin!r}"
                )
            self.items[name] = item
            self.owners[name] = plugin

        return register

    def loaded(self, name: str) -> T:
        """The item called `name`; an unknown name is a `PluginError` listing the loaded ones."""
        if name not in self.items:
            known = ", ".join(sorted(self.items)) or "none"
            raise PluginError(f"no {self.what} named {name!r} (loaded {self.what}s: {known}; see `callbackd plugins "
                              f"list`)")
        return self.items[name]

    def __contains__(self, name: object) -> bool:
        return name in self.items

    def __iter__(self) -> Iterator[str]:
        return iter(self.items)


@dataclass
class Plugins:
    """The loaded plugins and what they registered."""

    manager: pluggy.PluginManager
    loaded: list[LoadedPlugin]
    channels: Registry[Channel]
    exporters: Registry[Any]
    ledger_readers: Registry[Any]
    notifiers: Registry[Any]

    def channel(self, name: str) -> Channel:
        """The channel called `name`; an unknown name is an error listing the known ones."""
        return self.channels.loaded(name)

    def check_plan(self, plan: list[str], rest_by: str = "") -> None:
        """A round's channel plan, and `[surveys] rest_by`, name loaded channels (for `rest_by`, an SMS channel
        that asks the whole survey); a `PluginError` names the first that does not."""
        for name in plan:
            self.channel(name)
        if rest_by and (self.channel(rest_by).kind != "sms" or form_of(self.channel(rest_by)) != "full"):
            raise PluginError(f"[surveys] rest_by names channel {rest_by!r}, which is not an SMS channel asking "
                              "the whole survey")

    def exporter(self, name: str) -> Any:
        if name not in self.exporters.items:
            known = ", ".join(sorted(self.exporters)) or "none"
            raise PluginError(f"no export format {name!r} (known: {known})")
        return self.exporters.items[name]

    def listens(self, hook: str) -> bool:
        """True when some plugin implements the event hook (else there is nobody to tell)."""
        return bool(getattr(self.manager.hook, hook).get_hookimpls())

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an event hook on every plugin through pluggy; a plugin that raises is reported with its name."""
        call_hook(getattr(self.manager.hook, hook), hook, **kwargs)

    def implementers(self, hook: str) -> list[str]:
        """The plugins implementing `hook` (wrappers aside), in the order pluggy calls them."""
        impls = getattr(self.manager.hook, hook).get_hookimpls()
        return [impl.plugin_name for impl in reversed(impls) if not (impl.wrapper or impl.hookwrapper)]

    def call_as(self, plugin: str, hook: str, **kwargs: Any) -> Any:
        """Call a registration hook for `plugin` alone (and every plugin's wrappers of it), through pluggy.

        Registration is per plugin because what a plugin registers is its own: a `register` callable names its
        plugin when a name is taken twice, and each plugin's routes go under `/hooks/<plugin>/`. pluggy calls every
        implementation with the same arguments, so each plugin gets a hook caller of its own
        (`subset_hook_caller`) instead of `manager.hook.<hook>`.
        """
        others = [
            impl.plugin for impl in getattr(self.manager.hook, hook).get_hookimpls()
            if impl.plugin_name != plugin and not (impl.wrapper or impl.hookwrapper)
        ]
        return call_hook(self.manager.subset_hook_caller(hook, remove_plugins=others), hook, **kwargs)

    def notifier(self, name: str) -> Any:
        """The notifier called `name`; an unknown name is an error listing the known ones."""
        return self.notifiers.loaded(name)

    def readers_by_suffix(self) -> dict[str, Any]:
        """Plugins' ledger readers, by the file suffixes they read."""
        return {suffix.lower(): reader for reader in self.ledger_readers.items.values() for suffix in reader.suffixes}

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": p.name, "source": p.source, "module": p.module, "hooks": p.hooks, "channels": p.channels,
             "exporters": p.exporters, "notifiers": p.notifiers}
            for p in self.loaded
        ]

    def _configuration(self, registry: Registry[Any], name: str, settings: Any) -> dict[str, Any]:
        # what a channel's or notifier's `configuration(settings)` says of its set-up; {} when it offers none
        configuration = getattr(registry.items[name], "configuration", None)
        owner = registry.owners[name]
        return dict(call_plugin(owner, "configuration", configuration, settings)) if configuration else {}

    def describe_channels(self, settings: Any) -> list[dict[str, Any]]:
        """Each channel: its plugin, kind, the questions it asks, its per-number limits and what of its set-up is
        in place (`configuration(settings)`, when it offers one; never a secret's value)."""
        described = []
        for name, channel in self.channels.items.items():
            described.append({
                "channel": name, "plugin": self.channels.owners[name], "kind": channel.kind,
                "form": form_of(channel), "number_limits": [str(limit) for limit in number_limits(channel)],
                "configuration": self._configuration(self.channels, name, settings),
            })
        return described

    def describe_notifiers(self, settings: Any) -> list[dict[str, Any]]:
        """Each notifier: its plugin and what of its set-up is in place (`configuration(settings)`, when it offers
        one; never a secret's value)."""
        return [{"notifier": name, "plugin": self.notifiers.owners[name],
                 "configuration": self._configuration(self.notifiers, name, settings)} for name in self.notifiers]


def call_plugin(plugin: str, what: str, function: Callable[..., Any], *args: Any) -> Any:
    """Call a plugin's own function; what it raises becomes a `PluginError` naming the plugin."""
    try:
        return function(*args)
    except CallbackdError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin {plugin!r} failed in {what}: {type(exc).__name__}: {exc}") from exc


def call_hook(caller: HookCaller, hook: str, **kwargs: Any) -> Any:
    """Call a hook through pluggy (`manager.hook.<hook>`, or a subset of it), so wrappers, `tryfirst`/`trylast`,
    `firstresult` and hook-call monitoring apply; an exception a plugin raised becomes a `PluginError` naming it."""
    try:
        return caller(**kwargs)
    except CallbackdError:
        raise
    except Exception as exc:
        raise PluginError(
            f"plugin {_raised_by(caller, exc)!r} failed in {hook}: {type(exc).__name__}: {exc}"
        ) from exc


def _raised_by(caller: HookCaller, exc: BaseException) -> str:
    """The plugin whose implementation of the hook raised `exc`: pluggy re-raises what an implementation raised
    with its traceback intact, so the first of the hook's implementations on that traceback is the one."""
    by_code = {getattr(impl.function, "__code__", None): impl.plugin_name for impl in caller.get_hookimpls()}
    frames = exc.__traceback__
    while frames is not None:
        name = by_code.get(frames.tb_frame.f_code)
        if name is not None:
            return name
        frames = frames.tb_next
    return "unknown"


def _wanted() -> tuple[bool, list[str]]:
    autoload = os.environ.get("CALLBACKD_DISABLE_PLUGIN_AUTOLOAD", "").strip().lower() in ("", "0", "false", "no")
    named = [n.strip() for n in os.environ.get("CALLBACKD_LOAD_PLUGINS", "").split(",") if n.strip()]
    return autoload, named


def _load_entry_point(entry: EntryPoint) -> ModuleType:
    try:
        loaded = entry.load()
    except Exception as exc:
        raise PluginError(f"plugin {entry.name!r} ({entry.value}) failed to load: {type(exc).__name__}: {exc}") from exc
    if not isinstance(loaded, ModuleType):
        raise PluginError(f"plugin {entry.name!r} must point at a module, not {entry.value}")
    return loaded


def load_plugins() -> Plugins:
    """Build a plugin manager, register the built-in plugin and the wanted entry points, and collect what
    they register. Raises `PluginError` naming the plugin on any failure."""
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    loaded: list[LoadedPlugin] = []

    def add(module: ModuleType, name: str, source: str) -> None:
        try:
            manager.register(module, name=name)
        except ValueError as exc:
            raise PluginError(f"plugin {name!r} cannot be registered: {exc}") from exc
        loaded.append(LoadedPlugin(name, source, module.__name__))

    for module_name in BUILTIN:
        add(importlib.import_module(module_name), "builtin", "built-in")

    autoload, named = _wanted()
    found = {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}
    chosen = list(found) if autoload else [n for n in named if n in found]
    for name in sorted(chosen):
        entry = found[name]
        dist = entry.dist
        source = f"entry point {dist.name} {dist.version}" if dist is not None else "entry point"
        add(_load_entry_point(entry), name, source)
    for name in named:
        if name in found:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name.split(".")[0] and exc.name != name:
                raise PluginError(f"plugin {name!r} failed to load: {exc}") from exc
            raise PluginError(
                f"plugin {name!r} named in CALLBACKD_LOAD_PLUGINS is neither an installed plugin nor a module"
            ) from None
        except Exception as exc:
            raise PluginError(f"plugin {name!r} failed to load: {type(exc).__name__}: {exc}") from exc
        add(module, name, "module")

    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        name = manager.get_name(exc.plugin) or repr(exc.plugin)
        raise PluginError(f"plugin {name!r} implements an unknown hook: {exc}") from exc

    channels: Registry[Channel] = Registry("channel", lambda c: c.name)
    exporters: Registry[Any] = Registry("export format", lambda e: e.name)
    readers: Registry[Any] = Registry("ledger reader", lambda r: r.name)
    by_name = {p.name: p for p in loaded}
    notifiers: Registry[Any] = Registry("notifier", lambda n: n.name)
    plugins = Plugins(manager, loaded, channels, exporters, readers, notifiers)
    for hook, registry in (
        ("register_channels", channels), ("register_exporters", exporters), ("register_ledger_readers", readers),
        ("register_notifiers", notifiers),
    ):
        for name in plugins.implementers(hook):
            plugins.call_as(name, hook, register=registry.register_for(name, yields=name == "builtin"))
    for name, channel in channels.items.items():
        if channel.kind not in KINDS:
            raise PluginError(f"channel {name!r} of plugin {channels.owners[name]!r} has unknown kind {channel.kind!r}")
        by_name[channels.owners[name]].channels.append(name)
    for name in exporters:
        by_name[exporters.owners[name]].exporters.append(name)
    for name in notifiers:
        by_name[notifiers.owners[name]].notifiers.append(name)
    for plugin in loaded:
        plugin.hooks = sorted(
            caller.name for caller in manager.get_hookcallers(manager.get_plugin(plugin.name)) or []
        )
    return plugins
