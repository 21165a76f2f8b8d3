"""File formats plugins add: export formats (`register_exporters`) and ledger readers (`register_ledger_readers`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol


@dataclass(frozen=True)
class Exporter:
    """One output format; plugins register more through the `register_exporters` hook, keyed by `name`."""

    name: str
    target: str  # what it exports; "ranking" for the built-in formats
    suffix: str
    description: str
    # write(what, path, context): what is a `Ranking` for target "ranking", a call sheet for "callsheet"
    write: Callable[[Any, Path, Any], None]


class LedgerReader(Protocol):
    """A plugin's reader for another ledger file format (registered with `register_ledger_readers`)."""

    name: str
    suffixes: tuple[str, ...]  # e.g. (".json",): files whose name ends so are read by this reader

    def read(self, path: Path, encoding: str | None, sheet: str | None) -> Iterator[list[Any]]:
        """The header row, then each row as a list of cells."""
        ...
