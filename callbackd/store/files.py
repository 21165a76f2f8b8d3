"""Files written whole or not at all: a reader never sees half a file, and a failed write leaves the old one."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from callbackd.core.errors import CallbackdError


class ExportError(CallbackdError):
    """An export that cannot be written where it was asked to go."""


def database_files(database_url: str) -> list[Path]:
    """The files of an SQLite database (the database, its journals and its writers' lock file); none elsewhere."""
    from sqlalchemy.engine import make_url

    parsed = make_url(database_url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return []
    database = Path(parsed.database)
    return [database, *(database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal",
                                                                                    "-writer"))]


def check_output(path: Path, *, overwrite: bool, protected: dict[Path, str]) -> None:
    """Refuse, with an `ExportError` saying what to do, to write `path` where it would lose something: never onto
    one of `protected` (the database and its journals, a file the command reads; by any name that reaches it), and
    onto another existing file only with `overwrite`."""
    path = Path(path)
    for kept, what in protected.items():
        same = path.resolve() == kept.resolve() or (path.exists() and kept.exists() and os.path.samefile(path, kept))
        if same:
            raise ExportError(f"--out {path} is {what}; write the file somewhere else")
    if path.is_dir():
        raise ExportError(f"--out {path} is a folder; name the file to write")
    if path.exists() and not overwrite:
        raise ExportError(f"--out {path} exists; add --overwrite to replace it, or choose another file")


def write_atomically(path: Path, fill: Callable[[Path], object], *, private: bool = False) -> None:
    """Have `fill` write a temporary file beside `path`, then move it into place; on failure remove it, so no
    half-written file is ever left. A folder that cannot be written is an `ExportError`. A `private` file (one that
    holds applicants' numbers or names) is readable by its owner only (0600); others keep an existing file's mode,
    or 0644."""
    path = Path(path)
    if path.is_dir():
        raise ExportError(f"{path} is a folder; name the file to write (for example {path / 'ranking.xlsx'})")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror}") from None
    os.close(handle)
    temporary = Path(name)
    try:
        fill(temporary)
        # mkstemp makes the file private (0600); an ordinary document keeps the old file's mode, or 644
        if not private:
            os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# What a spreadsheet would read as the start of a formula (OWASP's list), and the control characters an xlsx file
# cannot hold at all.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNWRITABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def spreadsheet_text(value: Any) -> Any:
    """A cell value as every CSV and xlsx file callbackd writes holds it: text that a spreadsheet would evaluate
    (`=HYPERLINK(...)`, `+1`, `@SUM(...)`) gets a leading `'`, so it is shown and never run; control characters
    are written as visible escapes (\\x01). Numbers, times and None pass as they are."""
    if not isinstance(value, str):
        return value
    if _UNWRITABLE.search(value):
        value = _UNWRITABLE.sub(lambda found: f"\\x{ord(found[0]):02x}", value)
    return "'" + value if value.startswith(_FORMULA_START) else value
