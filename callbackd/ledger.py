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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import insert, select, update
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
_CHUNK = 5000


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


def read_table(path: Path, encoding: str | None = None, sheet: str | None = None) -> Iterator[list[Any]]:
    """Rows of a CSV or XLSX file, the header first. Raises `LedgerFileError` when the file cannot be read."""
    if not path.exists():
        raise LedgerFileError(f"{path}: no such file")
    if path.is_dir():
        raise LedgerFileError(f"{path}: is a folder, not a ledger file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise LedgerFileError(f"{path}: cannot be read ({exc.strerror})") from None
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
        name = names.get(_clean_header(cell))
        if name is None:
            continue
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
                return datetime(*parts, tzinfo=zone)  # type: ignore[misc]
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

    def cell(self, row: list[Any], name: str) -> Any:
        index = self.columns.get(name)
        return row[index] if index is not None and index < len(row) else None

    def case_id(self, row: list[Any]) -> str:
        return text(self.cell(row, "case_id"))

    def read(self, row: list[Any]) -> dict[str, Any]:
        case_no = self.case_id(row)
        if not case_no:
            raise RowProblem("办件编号 missing")
        window = text(self.cell(row, "window"))
        if not window:
            raise RowProblem("窗口 missing")
        raw_type = text(self.cell(row, "case_type"))
        case_type = self.case_types.get(raw_type)
        if case_type is None:
            if not raw_type:
                raise RowProblem("办件类型 missing")
            raise RowProblem(f"办件类型 {raw_type!r} is not a known case type ({'、'.join(self.settings.ledger.case_types)})")
        try:
            phone = normalise(self.cell(row, "phone"))
        except PhoneError as exc:
            raise RowProblem(f"联系电话: {exc}") from None
        accepted_at = parse_time(self.cell(row, "accepted_at"), self.zone, "受理时间")
        if accepted_at is None:
            raise RowProblem("受理时间 missing")
        resolved_at = parse_time(self.cell(row, "resolved_at"), self.zone, "办结时间")
        if resolved_at is not None and resolved_at < accepted_at:
            raise RowProblem(f"办结时间 {resolved_at:%Y-%m-%d %H:%M} is before 受理时间 {accepted_at:%Y-%m-%d %H:%M}")
        status = text(self.cell(row, "status"))
        values = {
            "case_no": case_no,
            "window": window,
            "matter": text(self.cell(row, "matter")),
            "case_type": case_type,
            "applicant": text(self.cell(row, "applicant")),
            "phone": phone.e164,
            "phone_sms": phone.sms,
            "accepted_at": accepted_at,
            "resolved_at": resolved_at,
            "status": status,
            "resolved": resolved_at is not None and status not in self.unresolved,
        }
        values["digest"] = digest(values)
        return values


def digest(values: dict[str, Any]) -> str:
    """A fingerprint of a case's normalised values: equal digests mean a re-import changes nothing."""
    parts = (
        values["window"], values["matter"], values["case_type"], values["applicant"], values["phone"],
        values["accepted_at"].isoformat(), values["resolved_at"].isoformat() if values["resolved_at"] else "",
        values["status"], "1" if values["resolved"] else "0",
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
) -> ImportReport:
    """Import one ledger file into the session's transaction and return what happened.

    Raises `LedgerFileError` when the file cannot be read at all, and `StrictImportError` (carrying the report)
    when `strict` and any row is bad; the caller's transaction then rolls back and nothing is written.
    """
    rows = read_table(path, encoding, sheet)
    header = next(iter(rows), None)
    if header is None:
        raise LedgerFileError(f"{path}: empty file, no header line")
    reader = RowReader(settings, header_map(header, settings, path))
    report = ImportReport()
    writer = _CaseWriter(session, clock.now())
    seen: dict[str, int] = {}
    for line, row in enumerate(rows, start=2):
        if not any(cell not in (None, "") for cell in row):
            continue
        try:
            values = reader.read(row)
        except RowProblem as exc:
            report.errors.append(RowError(line, reader.case_id(row) or None, str(exc)))
            continue
        first = seen.get(values["case_no"])
        if first is not None:
            report.errors.append(
                RowError(line, values["case_no"], f"办件编号 {values['case_no']} repeats line {first}; the first row wins")
            )
            continue
        seen[values["case_no"]] = line
        writer.add(values)
    writer.flush()
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


class _CaseWriter:
    """Buffers rows and writes them in batches: inserts for new case ids, updates for changed ones."""

    def __init__(self, session: Session, now: datetime) -> None:
        self.session = session
        self.now = now
        self.windows = {name: id_ for name, id_ in session.execute(select(Window.name, Window.id))}
        self.existing = {no: (id_, dig) for no, id_, dig in session.execute(select(Case.case_no, Case.id, Case.digest))}
        self.pending: list[dict[str, Any]] = []
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
        window_id = self.window_id(values.pop("window"))
        values["window_id"] = window_id
        values["updated_at"] = self.now
        known = self.existing.get(values["case_no"])
        if known is None:
            values["created_at"] = self.now
            self.pending.append(values)
        elif known[1] == values["digest"]:
            self.unchanged += 1
        else:
            values["id"] = known[0]
            self.changed.append(values)
        if len(self.pending) >= _CHUNK or len(self.changed) >= _CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.session.execute(insert(Case), self.pending)
            self.inserted += len(self.pending)
            self.pending = []
        if self.changed:
            self.session.execute(update(Case), self.changed)
            self.updated += len(self.changed)
            self.changed = []

