"""Files written whole or not at all: a reader never sees half a file, and a failed write leaves the old one."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from callbackd.core.errors import CallbackdError


class ExportError(CallbackdError):
    """An export that cannot be written where it was asked to go."""


def write_atomically(path: Path, fill: Callable[[Path], object]) -> None:
    """Have `fill` write a temporary file beside `path`, then move it into place; on failure remove it, so no
    half-written file is ever left. A folder that cannot be written is an `ExportError`."""
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
        # mkstemp makes the file private; an export is an ordinary document, so keep the old file's mode or 644
        os.chmod(temporary, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
