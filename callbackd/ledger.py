"""Import cases from a window ledger (受理台帐): CSV in UTF-8, UTF-8 with BOM, GBK or GB18030, or XLSX.

Each row is checked on its own. A bad row is reported with its line (the header is line 1) and reason and is not
imported; good rows are. The whole import is one transaction, so a file that cannot be read, or `--strict` with
a bad row, leaves the database as it was. Re-importing a file changes nothing; a changed row updates its case.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import column, insert, select, table, update
from sqlalchemy.orm import Session

from callbackd import audit, clock
from callbackd.config import Settings
from callbackd.errors import LedgerFileError, StrictImportError
from callbackd.models import Case, Window
from callbackd.phones import PhoneError, normalise

# Ledger fields and the headers hall systems export for them. More names map through [ledger] columns.
FIELDS = ("case_id", "window", "matter", "case_type", "applicant", "phone", "accepted_at", "resolved_at", "status")
HEADERS: dict[str, tuple[str, ...]] = {
    "case_id": ("办件编号", "受理编号", "业务编号", "件号"),
    "window": ("窗口", "窗口名称", "受理窗口", "办理窗口"),
    "matter": ("事项名称", "事项", "业务名称"),
    "case_type": ("办件类型", "件类型", "类型"),
    "applicant": ("申请人", "申请人姓名", "姓名", "联系人"),
    "phone": ("联系电话", "电话", "手机号码", "手机", "联系方式"),
    "accepted_at": ("受理时间", "受理日期"),
    "resolved_at": ("办结时间", "办结日期", "完成时间"),
    "status": ("状态", "办件状态", "办理状态"),
}
REQUIRED = ("case_id", "window", "case_type", "phone", "accepted_at", "resolved_at")
LABELS = {name: aliases[0] for name, aliases in HEADERS.items()}

_DATE_TEXT = re.compile(r"^[\d\s\-/.:T年月日时分秒点]+$")
_NUMBERS = re.compile(r"\d+")
_CHUNK = 20_000  # rows per executemany
# Ledgers repeat times (recorded to the minute, many cases in each minute): each distinct time text is parsed,
# and each distinct time converted for the database, once per import; this bounds what is remembered.
_TIME_CACHE = 1 << 16


@dataclass(frozen=True)
class RowError:
    line: int
    case_id: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "case_id": self.case_id, "reason": self.reason}


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [error.as_dict() for error in self.errors],
        }


class RowProblem(ValueError):
    """One cell makes its row unusable; the message names the column and what is wrong."""


# ---- reading files --------------------------------------------------------------------------------------


class LedgerReader(Protocol):
    """A plugin's reader for another ledger file format (registered with `register_ledger_readers`)."""

    name: str
    suffixes: tuple[str, ...]  # e.g. (".json",): files whose name ends so are read by this reader

    def read(self, path: Path, encoding: str | None, sheet: str | None) -> Iterator[list[Any]]:
        """The header row, then each row as a list of cells."""
        ...


def read_table(
    path: Path, encoding: str | None = None, sheet: str | None = None,
    readers: Mapping[str, LedgerReader] | None = None,
) -> Iterator[list[Any]]:
    """Rows of a CSV or XLSX file (or a format a plugin reads, by suffix), the header first. Raises
    `LedgerFileError` when the file cannot be read."""
    if not path.exists():
        raise LedgerFileError(f"{path}: no such file")
    if path.is_dir():
        raise LedgerFileError(f"{path}: is a folder, not a ledger file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise LedgerFileError(f"{path}: cannot be read ({exc.strerror})") from None
    reader = (readers or {}).get(path.suffix.lower())
    if reader is not None:
        return reader.read(path, encoding, sheet)
    if magic == b"PK\x03\x04" or path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path, sheet)
    if sheet is not None:
        raise LedgerFileError(f"{path}: --sheet applies to XLSX files only")
    return _read_csv(path, encoding)


def decode(path: Path, encoding: str | None) -> str:
    """The file's text: the given encoding, else UTF-8 (with or without BOM), else GB18030 (a superset of GBK)."""
    data = path.read_bytes()
    if b"\x00" in data[:4096]:
        raise LedgerFileError(f"{path}: not a CSV or XLSX file (binary content)")
    candidates = [encoding] if encoding else ["utf-8-sig", "gb18030"]
    for name in candidates:
        try:
            return data.decode(name)
        except LookupError:
            raise LedgerFileError(f"--encoding {name!r} is not a known text encoding") from None
        except UnicodeDecodeError:
            continue
    if encoding:
        raise LedgerFileError(f"{path}: not valid {encoding} text; check --encoding")
    raise LedgerFileError(f"{path}: neither UTF-8 nor GBK/GB18030 text; give its encoding with --encoding")


def _read_csv(path: Path, encoding: str | None) -> Iterator[list[Any]]:
    text = decode(path, encoding)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:4096], delimiters=",\t;")
    except csv.Error:
        dialect = csv.excel
    return csv.reader(io.StringIO(text, newline=""), dialect)


def _read_xlsx(path: Path, sheet: str | None) -> Iterator[list[Any]]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as exc:
        raise LedgerFileError(f"{path}: not a readable XLSX workbook ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile and friends from a damaged file
        raise LedgerFileError(f"{path}: not a readable XLSX workbook ({type(exc).__name__})") from None
    if sheet is not None and sheet not in book.sheetnames:
        raise LedgerFileError(f"{path}: no sheet named {sheet!r} (sheets: {', '.join(book.sheetnames)})")
    worksheet = book[sheet] if sheet is not None else book.worksheets[0]

    def rows() -> Iterator[list[Any]]:
        try:
            for row in worksheet.iter_rows(values_only=True):
                yield list(row)
        finally:
            book.close()

    return rows()


# ---- headers and cells -----------------------------------------------------------------------------------


def header_map(header: list[Any], settings: Settings, path: Path) -> dict[str, int]:
    """Column index of each known field, from built-in Chinese headers, English field names and config."""
    names: dict[str, str] = {}
    for name in FIELDS:
        names[name] = name
        for alias in HEADERS[name]:
            names[alias] = name
    for name, aliases in settings.ledger.columns.items():
        for alias in aliases:
            names[_clean_header(alias)] = name
    found: dict[str, int] = {}
    for index, cell in enumerate(header):
        field_name = names.get(_clean_header(cell))
        if field_name is None:
            continue
        name = field_name
        if name in found:
            raise LedgerFileError(
                f"{path}: columns {header[found[name]]!r} and {cell!r} both give {LABELS[name]}; keep one"
            )
        found[name] = index
    missing = [LABELS[name] for name in REQUIRED if name not in found]
    if missing:
        raise LedgerFileError(
            f"{path}: required column {'、'.join(missing)} missing from the header line "
            f"(map other names in [ledger] columns of the settings)"
        )
    return found


def _clean_header(cell: Any) -> str:
    return str(cell or "").strip().lstrip("\ufeff").strip("*＊ \u3000").lower()


def text(value: Any) -> str:
    """A cell as trimmed text; whole numbers from spreadsheets lose their '.0'."""
    if type(value) is str:  # every CSV cell: settled first, as it is most of an import's calls
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def parse_time(value: Any, zone: ZoneInfo, column: str) -> datetime | None:
    """A local time as hall systems write it, aware in `zone`; None for an empty cell."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone) if value.tzinfo is None else value
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=zone)
    if isinstance(value, int | float):
        return _excel_serial(value, zone, column)
    raw = str(value).strip()
    if not raw:
        return None
    try:
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        parsed = None
    if parsed is not None:
        return parsed.replace(tzinfo=zone) if parsed.tzinfo is None else parsed
    if _DATE_TEXT.match(raw):
        parts = [int(p) for p in _NUMBERS.findall(raw)]
        if len(parts) in (3, 5, 6) and parts[0] > 1900:
            try:
                return datetime(*parts[:6], tzinfo=zone)  # type: ignore[arg-type,misc]
            except ValueError:
                pass
    try:
        serial = float(raw)
    except ValueError:
        raise RowProblem(f"{column}: {raw!r} is not a date and time such as 2026-11-03 09:05") from None
    return _excel_serial(serial, zone, column)


def _excel_serial(serial: float, zone: ZoneInfo, column: str) -> datetime:
    from openpyxl.utils.datetime import from_excel

    if not 20000 < serial < 80000:  # 1954..2119: anything else is not a date someone meant
        raise RowProblem(f"{column}: {serial!r} is not a date and time such as 2026-11-03 09:05")
    moment = from_excel(serial)
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute, moment.second, tzinfo=zone)


# ---- rows ------------------------------------------------------------------------------------------------


@dataclass
class RowReader:
    """Turns one raw row into the values of a case, or raises `RowProblem`."""

    settings: Settings
    columns: dict[str, int]
    zone: ZoneInfo = field(init=False)
    case_types: dict[str, str] = field(init=False)
    unresolved: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        self.zone = self.settings.zone
        self.case_types = {name: name for name in self.settings.ledger.case_types}
        self.case_types.update(self.settings.ledger.case_type_aliases)
        self.unresolved = frozenset(self.settings.ledger.unresolved_statuses)
        # One call picks the cells of all FIELDS, in order, from a row padded by `cells`; a field the file
        # lacks reads the padding's last cell (index -1), which is always empty.
        self._width = max(self.columns.values()) + 1
        self._pick = itemgetter(*(self.columns.get(name, -1) for name in FIELDS))
        # time text -> (aware time, its isoformat for the digest); see _TIME_CACHE
        self._times: dict[str, tuple[datetime, str] | None] = {}

    def cells(self, row: list[Any]) -> tuple[Any, ...]:
        """The row's cell for each of FIELDS; None where the file has no such column or the line is short."""
        return self._pick([*row, *(None,) * max(self._width - len(row) + 1, 1)])

    def case_id(self, row: list[Any]) -> str:
        return text(self.cells(row)[0])

    def read(self, row: list[Any]) -> dict[str, Any]:
        (
            raw_case_id, raw_window, raw_matter, raw_type, raw_applicant, raw_phone, raw_accepted, raw_resolved,
            raw_status,
        ) = self.cells(row)
        case_no = text(raw_case_id)
        if not case_no:
            raise RowProblem("办件编号 missing")
        window = text(raw_window)
        if not window:
            raise RowProblem("窗口 missing")
        raw_type = text(raw_type)
        case_type = self.case_types.get(raw_type)
        if case_type is None:
            if not raw_type:
                raise RowProblem("办件类型 missing")
            known = "、".join(self.settings.ledger.case_types)
            raise RowProblem(f"办件类型 {raw_type!r} is not a known case type ({known})")
        try:
            phone = normalise(raw_phone)
        except PhoneError as exc:
            raise RowProblem(f"联系电话: {exc}") from None
        accepted = self.time(raw_accepted, "受理时间")
        if accepted is None:
            raise RowProblem("受理时间 missing")
        accepted_at, accepted_text = accepted
        resolved = self.time(raw_resolved, "办结时间")
        resolved_at, resolved_text = resolved if resolved is not None else (None, "")
        if resolved_at is not None and resolved_at < accepted_at:
            raise RowProblem(f"办结时间 {resolved_at:%Y-%m-%d %H:%M} is before 受理时间 {accepted_at:%Y-%m-%d %H:%M}")
        status = text(raw_status)
        values = {
            "case_no": case_no,
            "window": window,
            "matter": text(raw_matter),
            "case_type": case_type,
            "applicant": text(raw_applicant),
            "phone": phone.e164,
            "phone_sms": phone.sms,
            "accepted_at": accepted_at,
            "resolved_at": resolved_at,
            "status": status,
            "resolved": resolved_at is not None and status not in self.unresolved,
        }
        values["digest"] = _digest(values, accepted_text, resolved_text)
        return values

    def time(self, value: Any, column: str) -> tuple[datetime, str] | None:
        """A time cell as (aware time, its isoformat), None when empty; text is parsed once per distinct value."""
        if type(value) is not str:
            return self._parse_time(value, column)
        if value in self._times:
            return self._times[value]
        if len(self._times) >= _TIME_CACHE:
            self._times.clear()
        parsed = self._times[value] = self._parse_time(value, column)
        return parsed

    def _parse_time(self, value: Any, column: str) -> tuple[datetime, str] | None:
        moment = parse_time(value, self.zone, column)
        return None if moment is None else (moment, moment.isoformat())


def _digest(values: dict[str, Any], accepted_text: str, resolved_text: str) -> str:
    # a fingerprint of a case's normalised values (times as their isoformat): equal digests mean a re-import
    # changes nothing
    parts = (
        values["window"], values["matter"], values["case_type"], values["applicant"], values["phone"],
        accepted_text, resolved_text, values["status"], "1" if values["resolved"] else "0",
    )
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=16).hexdigest()


# ---- import ----------------------------------------------------------------------------------------------


def import_ledger(
    session: Session,
    settings: Settings,
    path: Path,
    *,
    strict: bool = False,
    encoding: str | None = None,
    sheet: str | None = None,
    readers: Mapping[str, LedgerReader] | None = None,
) -> ImportReport:
    """Import one ledger file into the session's transaction and return what happened. `readers` maps file
    suffixes to plugins' readers for other formats.

    Raises `LedgerFileError` when the file cannot be read at all, and `StrictImportError` (carrying the report)
    when `strict` and any row is bad; the caller's transaction then rolls back and nothing is written.
    """
    rows = read_table(path, encoding, sheet, readers)
    header = next(iter(rows), None)
    if header is None:
        raise LedgerFileError(f"{path}: empty file, no header line")
    reader = RowReader(settings, header_map(header, settings, path))
    report = ImportReport()
    writer = _CaseWriter(session, clock.now())
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        # any() settles the usual row at once; only a row of falsy cells (0, False from a sheet) needs the full test
        if not any(row) and all(cell in (None, "") for cell in row):
            continue
        try:
            values = reader.read(row)
        except RowProblem as exc:
            report.errors.append(RowError(line, reader.case_id(row) or None, str(exc)))
            continue
        case_no = values["case_no"]
        first = seen.get(case_no)
        if first is not None:
            reason = f"办件编号 {case_no} repeats line {first}; the first row wins"
            report.errors.append(RowError(line, case_no, reason))
            continue
        seen[case_no] = line
        writer.add(values)
    writer.finish()
    report.imported, report.updated, report.unchanged = writer.inserted, writer.updated, writer.unchanged
    if strict and report.errors:
        raise StrictImportError(
            f"{path}: {len(report.errors)} bad row(s), first at line {report.errors[0].line}: "
            f"{report.errors[0].reason}; nothing imported (--strict)",
            report,
        )
    audit.record(
        session, "ledger.import", str(path), imported=report.imported, updated=report.updated,
        unchanged=report.unchanged, errors=len(report.errors),
    )
    return report


# New cases go straight to the driver's executemany, as rows of values already in the database's own form:
# each distinct time is converted once, by the bind processor of the type every time column shares, and every
# other column takes a plain str, int or bool that needs no processing. SQLAlchemy would otherwise process each
# value of each row, which is most of a big import's cost.
_NEW_CASE_COLUMNS = tuple(c.name for c in Case.__table__.columns if c.name != "id")
_NEW_CASES = table("cases", *(column(name) for name in _NEW_CASE_COLUMNS))


class _CaseWriter:
    """Buffers rows and writes them in batches: inserts for new case ids, updates for changed ones.

    Once an import on SQLite has inserted more cases than the table held before it (a first load, a backlog),
    the writer drops the table's secondary indexes and `finish` creates them again: SQLite builds an index from
    sorted keys several times faster than it updates it row by row at random places (phone numbers). The
    import's transaction hides the gap from every other connection; a rollback restores the indexes.
    """

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.connection = connection = session.connection()
        self.windows = {name: id_ for name, id_ in connection.execute(select(Window.name, Window.id))}
        self.existing = {
            no: (id_, dig) for no, id_, dig in connection.execute(select(Case.case_no, Case.id, Case.digest))
        }
        dialect = connection.dialect
        time_type = Case.__table__.c.accepted_at.type.dialect_impl(dialect)
        self.stored_time = lru_cache(maxsize=_TIME_CACHE)(time_type.bind_processor(dialect) or (lambda at: at))
        self.stored_now = self.stored_time(now)
        statement = insert(_NEW_CASES).compile(dialect=dialect, column_keys=list(_NEW_CASE_COLUMNS))
        self.insert_sql = str(statement)
        # a row as the driver takes it: a tuple in the statement's order (SQLite's "?"), else a dict by name
        self.insert_row: Callable[[dict[str, Any]], Any] = (
            itemgetter(*statement.positiontup) if statement.positional and statement.positiontup else dict
        )
        self.cases_before = len(self.existing)
        self.can_drop_indexes = dialect.name == "sqlite"
        self.dropped_indexes: list[tuple[str, str]] = []
        self.pending: list[Any] = []
        self.changed: list[dict[str, Any]] = []
        self.inserted = self.updated = self.unchanged = 0

    def window_id(self, name: str) -> int:
        window_id = self.windows.get(name)
        if window_id is None:
            window = Window(name=name, created_at=self.now)
            self.session.add(window)
            self.session.flush()
            window_id = self.windows[name] = window.id
        return window_id

    def add(self, values: dict[str, Any]) -> None:
        window = values.pop("window")
        values["window_id"] = self.windows.get(window) or self.window_id(window)
        known = self.existing.get(values["case_no"])
        if known is None:
            stored_time = self.stored_time
            values["accepted_at"] = stored_time(values["accepted_at"])
            if values["resolved_at"] is not None:
                values["resolved_at"] = stored_time(values["resolved_at"])
            values["created_at"] = values["updated_at"] = self.stored_now
            self.pending.append(self.insert_row(values))
            if len(self.pending) >= _CHUNK:
                self.flush()
        elif known[1] == values["digest"]:
            self.unchanged += 1
        else:
            values.update(id=known[0], updated_at=self.now)
            self.changed.append(values)
            if len(self.changed) >= _CHUNK:
                self.flush()

    def flush(self) -> None:
        if self.pending:
            inserted = self.inserted + len(self.pending)
            if self.can_drop_indexes and len(self.pending) >= _CHUNK and inserted > self.cases_before:
                self.drop_indexes()
            self.connection.exec_driver_sql(self.insert_sql, self.pending)
            self.inserted = inserted
            self.pending = []
        if self.changed:
            self.session.execute(update(Case), self.changed)
            self.updated += len(self.changed)
            self.changed = []

    def finish(self) -> None:
        """Write what is buffered and create any index dropped for a bulk load."""
        self.flush()
        for _, sql in self.dropped_indexes:
            self.connection.exec_driver_sql(sql)
        self.dropped_indexes = []

    def drop_indexes(self) -> None:
        """Drop the cases table's secondary indexes, keeping the SQL that `finish` creates them again with."""
        self.can_drop_indexes = False  # once per import
        self.dropped_indexes = [
            (name, sql)
            for name, sql in self.connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cases' AND sql IS NOT NULL"
            )
        ]
        for name, _ in self.dropped_indexes:
            self.connection.exec_driver_sql(f'DROP INDEX "{name}"')
