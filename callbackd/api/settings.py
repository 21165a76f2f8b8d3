"""Settings as plugins see them: the `Settings` in force, and a base for a channel's own table.

A channel plugin keeps its settings in `[channels.<name>]` of the configuration. It declares them as a
`ChannelSettings` model: unknown keys are refused, and a bad value is a `ConfigError` naming the table and the key.
`docs/plugins.md` documents every key of every bundled plugin's model (a test checks it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, ValidationError

from callbackd.core.errors import ConfigError
from callbackd.core.settings import Settings

__all__ = ["ChannelSettings", "Settings"]


class _PluginTable(BaseModel):
    """A plugin's table `[<prefix>.<section>]`, validated: unknown keys refused, a bad value a `ConfigError` naming
    the table and the key. Subclasses set `prefix` and say where the table is (`_table`); a plugin's model, `section`
    and its fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prefix: ClassVar[str]
    section: ClassVar[str]

    @classmethod
    def _table(cls, settings: Settings) -> Mapping[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> Self:
        """`table` validated; a bad or unknown key is a `ConfigError` naming `[<prefix>.<section>] <key>`."""
        try:
            return cls(**table)
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(part) for part in error["loc"])
            raise ConfigError(f"[{cls.prefix}.{cls.section}] {where}: {error['msg']}") from None

    @classmethod
    def of(cls, settings: Settings) -> Self:
        """The plugin's table in `settings` (all defaults when the configuration has none)."""
        return cls.from_table(cls._table(settings))


class ChannelSettings(_PluginTable):
    """A channel plugin's table `[channels.<section>]`, validated. Subclasses set `section` and declare fields; a bad
    or unknown key is a `ConfigError` naming `[channels.<section>] <key>`."""

    prefix = "channels"

    @classmethod
    def _table(cls, settings: Settings) -> Mapping[str, Any]:
        return settings.channels.get(cls.section, {})
