"""Reading ledger files (受理台帐), read as tables by `intake.tables`: finding the columns; checking each row on its
own and reporting a bad one by its line (the file's own: title rows above the header count) and sheet.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Dialect

from callbackd.core.errors import LedgerFileError
from callbackd.core.phones import PhoneError, mobile_pattern, normalise
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FIELDS, LIMIT_FIELDS
from callbackd.intake.tables import HEADER_ROWS, Reading, file_kind, locate_header, read_sheets
from callbackd.store.models import Case

# Ledger fields and the headers hall systems export for them. More names map through [ledger] columns.
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
    # optional: the time limits, in working days (see `parse_limit`); time_limit is the design's name for it
    "promised_days": ("承诺时限", "承诺办结时限", "承诺期限", "承诺办理时限", "time_limit"),
    "statutory_days": ("法定时限", "法定办结时限", "法定期限", "法定办理时限"),
}
REQUIRED = ("case_id", "window", "case_type", "phone", "accepted_at", "resolved_at")
LABELS = {name: aliases[0] for name, aliases in HEADERS.items()}

_DATE_TEXT = re.compile(r"^[\d\s\-/.:T年月日时分秒点]+$")
_NUMBERS = re.compile(r"\d+")
CHUNK = 20_000  # rows per executemany
# rows in the first batch: the writer, waiting for it, starts sooner (the first rows are the slowest to read, as
# their times are all new)
_FIRST_CHUNK = 2_000
# Ledgers repeat times (recorded to the minute, many cases in each minute): each distinct time text is parsed,
# and each distinct time converted for the database, once per import; this bounds what is remembered.
_TIME_CACHE = 1 << 16


@dataclass(frozen=True)
class RowError:
    """A bad row: its line (in its sheet, for a workbook read sheet by sheet), its case id, why it is bad."""

    line: int
    case_id: str | None
    reason: str
    sheet: str | None = None

    def as_dict(self) -> dict[str, Any]:
        found = {"line": self.line, "case_id": self.case_id, "reason": self.reason}
        return found if self.sheet is None else {"sheet": self.sheet, **found}


@dataclass(frozen=True)
class TitleRows:
    """Rows above a table's header (a title, a date line), skipped: lines 1 to `count` of `sheet` (None: the
    file)."""

    sheet: str | None
    count: int

    def as_dict(self) -> dict[str, Any]:
        return {"sheet": self.sheet, "count": self.count}


@dataclass
class ImportReport:
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    titles: list[TitleRows] = field(default_factory=list)  # title rows skipped above a header
    sheets: list[str] = field(default_factory=list)  # the worksheets read, for a workbook

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "imported": self.imported,
            "updated": self.updated,
            "unchanged": self.unchanged,
            "errors": [error.as_dict() for error in self.errors],
            "title_rows": [title.as_dict() for title in self.titles],
        }
        if self.sheets:
            found["sheets"] = self.sheets
        return found


class RowProblem(ValueError):
    """One cell makes its row unusable; the message names the column and what is wrong."""


# ---- headers and cells -----------------------------------------------------------------------------------


def header_names(settings: Settings) -> dict[str, str]:
    """Each header a ledger's column may have (cleaned as `_clean_header` does) -> its field: built-in Chinese
    headers, English field names and config."""
    names: dict[str, str] = {}
    for name in FIELDS + LIMIT_FIELDS:
        names[name] = name
        for alias in HEADERS[name]:
            names[alias] = name
    for name, aliases in settings.ledger.columns.items():
        for alias in aliases:
            names[_clean_header(alias)] = name
    return names


def ledger_header(names: dict[str, str]) -> Callable[[list[Any]], tuple[int, bool]]:
    """For `locate_header`: how many of a row's cells name a ledger field, and whether every required one is
    named."""
    def known(row: list[Any]) -> tuple[int, bool]:
        found = {names[cell] for cell in map(_clean_header, row) if cell in names}
        return len(found), all(name in found for name in REQUIRED)

    return known


def header_map(header: list[Any], settings: Settings, path: Path) -> dict[str, int]:
    """Column index of each known field, from built-in Chinese headers, English field names and config."""
    names = header_names(settings)
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


# A time limit as ledgers write it: 5, 5工作日, 5个工作日 (full-width digits and spaces too, once NFKC-normalised).
# Calendar days (5天, 5日) are refused rather than miscounted as working days.
_LIMIT = re.compile(r"(\d{1,6})(?:\.(\d+))?(?:个)?(?:工作日)?")
LONGEST_LIMIT = 365  # working days: more is not a limit anyone promised


def parse_limit(value: Any, column: str) -> int | None:
    """A time limit cell (承诺时限, 法定时限) as a whole number of working days; None for an empty cell. Raises
    `RowProblem` for anything else."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RowProblem(f"{column}: {value!r} is not a number of working days such as 5 or 5个工作日")
    if isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            raise RowProblem(f"{column}: {value:g} is not a whole number of working days")
        days = int(value)
        if days < 0:
            raise RowProblem(f"{column}: {days} is not a number of working days such as 5 or 5个工作日")
    else:
        raw = unicodedata.normalize("NFKC", str(value)).strip()
        if not raw:
            return None
        found = _LIMIT.fullmatch(raw.replace(" ", ""))
        if found is None:
            raise RowProblem(f"{column}: {raw!r} is not a number of working days such as 5 or 5个工作日")
        if found[2] and found[2].strip("0"):
            raise RowProblem(f"{column}: {raw} is not a whole number of working days")
        days = int(found[1])
    if days > LONGEST_LIMIT:
        raise RowProblem(f"{column}: {days} working days is more than a year; at most {LONGEST_LIMIT}")
    return days


# ---- rows ------------------------------------------------------------------------------------------------

# A good row as the import passes it on: a plain tuple, in this order (see RowReader.read). The times and the two
# flags (phone_sms, resolved) are already in the form the database's driver takes (see `time_storage` and
# `flag_storage`), so the writer passes them on untouched; then the two time limits (promised, statutory: working
# days or None); the times' isoformat, last, goes into the case's digest (see `digest`).
CaseRow = tuple[str, str, str, str, str, str, Any, Any, Any, str, Any, int | None, int | None, str, str]
# Good rows as `read_rows` gives them, each the first of its case id in the file
Batch = list[CaseRow]
# A parsed time cell: (aware time, its isoformat for the digest, its value as the database's driver takes it)
ParsedTime = tuple[datetime, str, Any]


def flag_storage(dialect: Dialect) -> tuple[Any, Any]:
    """False and True as the cases table's flag columns give them to the driver on `dialect`: on SQLite the ints 0
    and 1. Its driver binds an int as it is, where a bool first goes through a search for an adapter: with two
    flags in each row, a fifth of the cost of inserting it."""
    flag_type = Case.__table__.c.resolved.type.dialect_impl(dialect)
    process = flag_type.bind_processor(dialect)
    return (False, True) if process is None else (process(False), process(True))


def time_storage(dialect: Dialect) -> Callable[[datetime], Any]:
    """What the cases table's time columns do to an aware time before the driver gets it on `dialect` (on SQLite,
    naive UTC text; on PostgreSQL, where cases are written with COPY, the text COPY reads): applied once per
    distinct time, where SQLAlchemy would apply it to every value. Text either way, so a second reading process
    sends rows as plain values (see `intake.parallel.encode`)."""
    if dialect.name == "postgresql":
        from callbackd.store.pg_copy import stored_time  # psycopg: only where PostgreSQL is used

        return stored_time
    time_type = Case.__table__.c.accepted_at.type.dialect_impl(dialect)
    process = time_type.bind_processor(dialect)
    return process if process is not None else (lambda moment: moment)


class Times:
    """Time cells read as local times in `zone`; each distinct text is parsed once per import. `store` turns an
    aware time into the value the database's driver takes (see `time_storage`)."""

    def __init__(self, zone: ZoneInfo, store: Callable[[datetime], Any]) -> None:
        self.zone = zone
        self.store = store
        # cell text -> ParsedTime, or None for an empty cell; see _TIME_CACHE
        self.seen: dict[str, ParsedTime | None] = {}

    def get(self, value: Any, column: str) -> ParsedTime | None:
        """The cell as (aware time, its isoformat, its stored value), None when empty; raises `RowProblem`."""
        if type(value) is not str:
            return self._parse(value, column)
        try:
            return self.seen[value]
        except KeyError:
            pass
        if len(self.seen) >= _TIME_CACHE:
            self.seen.clear()
        parsed = self.seen[value] = self._parse(value, column)
        return parsed

    def _parse(self, value: Any, column: str) -> ParsedTime | None:
        moment = parse_time(value, self.zone, column)
        return None if moment is None else (moment, moment.isoformat(), self.store(moment))


# Control characters no ledger text holds (an ANSI escape, NUL, a bell); a tab and a line break may stand in a cell.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# 状态 as long as the cases column holds: PostgreSQL refuses a longer value, which would fail the whole import
_LONGEST = {"办件编号": 64, "窗口": 64, "事项名称": 200, "申请人": 50, "状态": 20}
_LONGEST_STATUS = _LONGEST["状态"]


def _unfit(*texts: str) -> bool:
    """Whether a cell of a row's text holds a control character or is longer than its column allows."""
    return any(_CONTROL.search(value) is not None or len(value) > _LONGEST[column]
               for column, value in zip(_LONGEST, texts, strict=True))


def _unfit_text(*texts: str) -> str:
    """Why a row's text cannot be kept: the first cell with a control character, or longer than its column allows."""
    for column, value in zip(_LONGEST, texts, strict=True):
        found = _CONTROL.search(value)
        if found is not None:
            return f"{column} holds a control character (\\x{ord(found[0]):02x}); remove it from the cell"
        if len(value) > _LONGEST[column]:
            return f"{column} is {len(value)} characters long; at most {_LONGEST[column]} are kept"
    raise AssertionError("a row's text was refused without a reason")


class RowReader:
    """Turns one raw row into a `CaseRow`, or raises `RowProblem`.

    `text_cells` promises every cell is a str (as from a CSV file), which lets a full-width row skip `text()`.
    `store` gives times their database form (see `time_storage`), `flags` False and True theirs (`flag_storage`).
    """

    def __init__(
        self, settings: Settings, columns: dict[str, int], store: Callable[[datetime], Any], *,
        text_cells: bool = False, flags: tuple[Any, Any] = (False, True),
    ) -> None:
        self.times = Times(settings.zone, store)
        self.case_types = {name: name for name in settings.ledger.case_types}
        self.case_types.update(settings.ledger.case_type_aliases)
        self.known_types = "、".join(settings.ledger.case_types)
        self.unresolved = frozenset(settings.ledger.unresolved_statuses)
        self.no, self.yes = flags
        # One call picks the cells of all FIELDS, in order. A row at least as wide as the header's known columns
        # is picked as it is when the file has every field; otherwise from the row padded by `cells`, where a
        # field the file lacks reads the padding's last cell (index -1), which is always empty.
        self._width = max(columns.values()) + 1
        self._pick = itemgetter(*(columns.get(name, -1) for name in FIELDS))
        self._direct = text_cells and all(name in columns for name in FIELDS)
        self._time = self.times.get
        self._times = self.times.seen
        self.regions = tuple(settings.phones.regions)
        pattern = mobile_pattern("CN") if self.regions[0] == "CN" else None  # a plain mobile of the home region
        self._mobile = pattern.fullmatch if pattern is not None else lambda _: None
        # One object for each distinct window, matter and status text, which repeat from row to row: a batch
        # holding each once is sent to the writing process with references to it (marshal's), decoded there once,
        # and encoded for the database once. `read_rows` empties it after each batch.
        self.texts: dict[str, str] = {}
        # the time limit columns the file has, as (field, its label, its index); most ledgers have none
        self.limits = tuple((name, LABELS[name], columns[name]) for name in LIMIT_FIELDS if name in columns)

    def time_limits(self, row: list[Any]) -> tuple[int | None, int | None]:
        """The row's promised and statutory time limits in working days (None when not given)."""
        found: dict[str, int | None] = {}
        for name, label, index in self.limits:
            found[name] = parse_limit(row[index] if index < len(row) else None, label)
        return found.get("promised_days"), found.get("statutory_days")

    def cells(self, row: list[Any]) -> tuple[Any, ...]:
        """The row's cell for each of FIELDS; None where the file has no such column or the line is short."""
        return self._pick([*row, *(None,) * max(self._width - len(row) + 1, 1)])

    def case_id(self, row: list[Any]) -> str:
        return text(self.cells(row)[0])

    def read(self, row: list[Any]) -> CaseRow:
        if self._direct and len(row) >= self._width:
            (
                case_no, window, matter, raw_type, applicant, raw_phone, raw_accepted, raw_resolved, status,
            ) = self._pick(row)
            case_no, window, matter, raw_type = case_no.strip(), window.strip(), matter.strip(), raw_type.strip()
            applicant, status = applicant.strip(), status.strip()
        else:
            (
                case_no, window, matter, raw_type, applicant, raw_phone, raw_accepted, raw_resolved, status,
            ) = self.cells(row)
            case_no, window, matter, raw_type = text(case_no), text(window), text(matter), text(raw_type)
            applicant, status = text(applicant), text(status)
        if not case_no:
            raise RowProblem("办件编号 missing")
        if not window:
            raise RowProblem("窗口 missing")
        # the usual row, short and printable, passes both tests at once (every cell but 状态 may hold 50 characters
        # or more); any other is looked at cell by cell
        joined = case_no + window + matter + applicant + status
        if (len(joined) > 50 or len(status) > _LONGEST_STATUS or not joined.isprintable()) \
                and _unfit(case_no, window, matter, applicant, status):
            raise RowProblem(_unfit_text(case_no, window, matter, applicant, status))
        same = self.texts.setdefault
        window, matter, status = same(window, window), same(matter, matter), same(status, status)
        case_type = self.case_types.get(raw_type)
        if case_type is None:
            if not raw_type:
                raise RowProblem("办件类型 missing")
            raise RowProblem(f"办件类型 {raw_type!r} is not a known case type ({self.known_types})")
        # the usual cell, a plain mobile, settled here as `normalise` would (see mobile_pattern), without a call
        if raw_phone.__class__ is str and len(raw_phone) == 11 and self._mobile(raw_phone) is not None:
            phone, sms = "+86" + raw_phone, self.yes
        else:
            try:
                phone, mobile = normalise(raw_phone, self.regions)
            except PhoneError as exc:
                raise RowProblem(f"联系电话: {exc}") from None
            sms = self.yes if mobile else self.no
        # a time cell's text is looked up here, as nearly every one was seen before (see Times)
        times = self._times
        accepted = times.get(raw_accepted) if raw_accepted.__class__ is str else None
        if accepted is None:
            accepted = self._time(raw_accepted, "受理时间")
            if accepted is None:
                raise RowProblem("受理时间 missing")
        resolved = times.get(raw_resolved) if raw_resolved.__class__ is str else None
        if resolved is None:
            resolved = self._time(raw_resolved, "办结时间")
        if resolved is None:
            resolved_text = ""
            resolved_stored = None
            done = self.no
        else:
            if resolved[0] < accepted[0]:
                raise RowProblem(
                    f"办结时间 {resolved[0]:%Y-%m-%d %H:%M} is before 受理时间 {accepted[0]:%Y-%m-%d %H:%M}"
                )
            resolved_text, resolved_stored = resolved[1], resolved[2]
            done = self.no if status in self.unresolved else self.yes
        promised, statutory = self.time_limits(row) if self.limits else (None, None)
        return (case_no, window, matter, case_type, applicant, phone, sms, accepted[2], resolved_stored, status, done,
                promised, statutory, accepted[1], resolved_text)


@dataclass
class Part:
    """One table of a ledger file under its header: a CSV file, or one worksheet of a workbook."""

    rows: Iterator[list[Any]]  # the rows under the header
    reader: RowReader
    header_line: int  # 1 when the header is the first row; the rows above it are titles, skipped
    sheet: str | None = None


# A row's place in `read_rows` while repeated case ids are looked for: its line plus its part's index times this,
# so that rows of two sheets never share a place (a plain int, cheap to compare)
_PART_LINES = 1 << 32


def read_rows(parts: list[Part], errors: list[RowError]) -> Iterator[Batch]:
    """The good rows in batches; every bad row goes to `errors`, by line (and sheet). So does a row whose case id an
    earlier row of the file (of any of its sheets) has: the first row wins."""
    firsts: dict[str, int] = {}  # each case id's first place (see _PART_LINES)
    sheets = [part.sheet for part in parts]
    for batch, places in read_pieces(parts, errors):
        yield first_rows(batch, places, firsts, errors, sheets)


def read_pieces(parts: list[Part], errors: list[RowError]) -> Iterator[tuple[list[CaseRow], list[int]]]:
    """The good rows in batches, each with its rows' places (see _PART_LINES), repeated case ids still in them
    (see `first_rows`); every bad row goes to `errors`, by line (and sheet)."""
    size = _FIRST_CHUNK
    for index, part in enumerate(parts):
        reader, sheet, offset = part.reader, part.sheet, index * _PART_LINES
        read = reader.read
        batch: list[CaseRow] = []
        places: list[int] = []
        for place, row in enumerate(part.rows, start=offset + part.header_line + 1):
            # any() settles the usual row at once; only a row of falsy cells (0, False from a sheet) needs the full
            # test
            if not any(row) and all(cell in (None, "") for cell in row):
                continue
            try:
                batch.append(read(row))
            except RowProblem as exc:
                if any(map(text, row)):  # else a row of spaces: a blank line, as the file's reader sees it
                    errors.append(RowError(place - offset, reader.case_id(row) or None, str(exc), sheet))
                continue
            places.append(place)
            if len(batch) >= size:
                yield batch, places
                batch, places = [], []
                size = CHUNK
                reader.texts.clear()
        if batch:
            yield batch, places


def first_rows(
    batch: list[CaseRow], places: list[int], firsts: dict[str, int], errors: list[RowError],
    sheets: list[str | None] | None = None,
) -> Batch:
    """The batch, read at these places (see _PART_LINES; of the parts whose sheets are `sheets`), without the rows
    whose case id an earlier row has (in `firsts`, each case id's first place), which go to `errors`; records its
    case ids' places in `firsts`."""
    found = list(map(firsts.setdefault, map(itemgetter(0), batch), places))
    if found == places:
        return batch
    kept: list[CaseRow] = []
    for row, place, first in zip(batch, places, found, strict=True):
        if first == place:
            kept.append(row)
        else:
            errors.append(repeated(place, row[0], first, sheets or [None]))
    return kept


def repeated(place: int, case_id: str, first: int, sheets: list[str | None]) -> RowError:
    """The error of a row, at `place`, whose case id an earlier row, at place `first`, has (see _PART_LINES)."""
    sheet, first_sheet = sheets[place // _PART_LINES], sheets[first // _PART_LINES]
    where = f"line {first % _PART_LINES}" + (f" of sheet {first_sheet}" if first_sheet != sheet else "")
    return RowError(place % _PART_LINES, case_id, f"办件编号 {case_id} repeats {where}; the first row wins", sheet)


def open_rows(path: Path, settings: Settings, reading: Reading, dialect: Dialect) -> list[Part]:
    """A ledger file's tables: its rows under its header (found in the first `HEADER_ROWS` rows), or for a workbook
    read whole, each worksheet's that has the header; raises `LedgerFileError` for a file without a header line or
    without a required column, and for a workbook none of whose sheets has the header."""
    tables = read_sheets(path, reading.encoding, reading.sheet, reading.readers)
    names = header_names(settings)
    known = ledger_header(names)
    text_cells = reading.sheet is None and file_kind(path, reading.readers) == "csv"  # every cell a str
    store, flags = time_storage(dialect), flag_storage(dialect)
    whole_workbook = reading.sheet is None and file_kind(path, reading.readers) == "xlsx"
    parts: list[Part] = []
    partial: list[str] = []  # sheets whose best header lacks a required column
    for sheet, rows in tables:
        rows = iter(rows)
        head = next(rows, None)
        located = None if head is None else locate_header(chain([head], rows), known)
        if whole_workbook and (located is None or not known(located.header)[1]):
            if located is not None:
                partial.append(str(sheet))
            continue
        if head is None:
            raise LedgerFileError(f"{path}: empty file, no header line")
        if located is None:
            wanted = "、".join(LABELS[name] for name in REQUIRED)
            raise LedgerFileError(f"{path}: no header line in its first {HEADER_ROWS} rows: required column "
                                  f"{wanted} missing (map other names in [ledger] columns of the settings)")
        columns = header_map(located.header, settings, path)
        reader = RowReader(settings, columns, store, text_cells=text_cells, flags=flags)
        parts.append(Part(located.rows, reader, located.line, sheet))
    if whole_workbook and not parts:
        looked = "、".join(str(sheet) for sheet, _ in tables) or "none"
        lacking = f"; sheet {'、'.join(partial)} lacks a required column" if partial else ""
        raise LedgerFileError(
            f"{path}: no sheet has the ledger's header line ({'、'.join(LABELS[name] for name in REQUIRED)}) in its "
            f"first {HEADER_ROWS} rows (looked at sheets: {looked}){lacking}; name the sheet to read with "
            f"--sheet NAME"
        )
    return parts


def titles_of(parts: list[Part]) -> list[TitleRows]:
    """The title rows skipped above each part's header."""
    return [TitleRows(part.sheet, part.header_line - 1) for part in parts if part.header_line > 1]
