"""Built-in behaviour, registered as an ordinary plugin: the ranking export formats.

Marked `trylast` so that a plugin registering the same format name replaces the built-in one.
"""

from __future__ import annotations

from collections.abc import Callable

from callbackd.exports import BUILTIN_EXPORTERS, Exporter
from callbackd.hookspecs import hookimpl


@hookimpl(trylast=True)
def register_exporters(register: Callable[[Exporter], None]) -> None:
    """The xlsx, csv, html and json rankings."""
    for exporter in BUILTIN_EXPORTERS:
        register(exporter)
