"""Loading plugins: the built-in one, then every entry point in group "callbackd" (first-party plugins too).

`CALLBACKD_DISABLE_PLUGIN_AUTOLOAD=1` loads no entry point except those `CALLBACKD_LOAD_PLUGINS=a,b` names;
`CALLBACKD_LOAD_PLUGINS` may also name importable modules. Nothing happens at import time: `load_plugins()`
builds a fresh manager each call. A plugin that fails is reported with its name; nothing is swallowed.
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

from callbackd.api import hookspecs
from callbackd.api.channels import KINDS, Channel
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

    def channel(self, name: str) -> Channel:
        """The channel called `name`; an unknown name is an error listing the known ones."""
        if name not in self.channels.items:
            known = ", ".join(sorted(self.channels)) or "none"
            raise PluginError(f"no channel named {name!r} (loaded channels: {known}; see `callbackd plugins list`)")
        return self.channels.items[name]

    def exporter(self, name: str) -> Any:
        if name not in self.exporters.items:
            known = ", ".join(sorted(self.exporters)) or "none"
            raise PluginError(f"no export format {name!r} (known: {known})")
        return self.exporters.items[name]

    def listens(self, hook: str) -> bool:
        """True when some plugin implements the event hook (else there is nobody to tell)."""
        return bool(getattr(self.manager.hook, hook).get_hookimpls())

    def notify(self, hook: str, **kwargs: Any) -> None:
        """Call an event hook on every plugin; a plugin that raises is reported with its name."""
        call_each(self.manager, hook, **kwargs)

    def readers_by_suffix(self) -> dict[str, Any]:
        """Plugins' ledger readers, by the file suffixes they read."""
        return {suffix.lower(): reader for reader in self.ledger_readers.items.values() for suffix in reader.suffixes}

    def describe(self) -> list[dict[str, Any]]:
        return [
            {"name": p.name, "source": p.source, "module": p.module, "hooks": p.hooks, "channels": p.channels,
             "exporters": p.exporters}
            for p in self.loaded
        ]


def call_each(manager: pluggy.PluginManager, hook: str, **kwargs: Any) -> list[Any]:
    """Call every implementation of `hook` in pluggy's order; wrap any exception with the plugin's name."""
    results = []
    for impl in reversed(getattr(manager.hook, hook).get_hookimpls()):
        try:
            results.append(impl.function(**{arg: kwargs[arg] for arg in impl.argnames}))
        except CallbackdError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}") from exc
    return results


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
    for hook, registry in (
        ("register_channels", channels), ("register_exporters", exporters), ("register_ledger_readers", readers)
    ):
        for impl in reversed(getattr(manager.hook, hook).get_hookimpls()):
            try:
                impl.function(register=registry.register_for(impl.plugin_name, yields=impl.plugin_name == "builtin"))
            except CallbackdError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"plugin {impl.plugin_name!r} failed in {hook}: {type(exc).__name__}: {exc}"
                ) from exc
    for name, channel in channels.items.items():
        if channel.kind not in KINDS:
            raise PluginError(f"channel {name!r} of plugin {channels.owners[name]!r} has unknown kind {channel.kind!r}")
        by_name[channels.owners[name]].channels.append(name)
    for name in exporters:
        by_name[exporters.owners[name]].exporters.append(name)
    for plugin in loaded:
        plugin.hooks = sorted(
            caller.name for caller in manager.get_hookcallers(manager.get_plugin(plugin.name)) or []
        )
    return Plugins(manager, loaded, channels, exporters, readers)
