"""Reading ledger files (受理台帐): CSV in UTF-8, UTF-8 with BOM, GBK or GB18030, or XLSX, or a format a plugin
reads; finding the columns; checking each row on its own and reporting a bad one by its line (the header is line 1).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import partial
from itertools import chain, repeat
from operator import itemgetter
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.engine import Dialect

from callbackd.api.formats import LedgerReader
from callbackd.core.errors import LedgerFileError
from callbackd.core.phones import PhoneError, mobile_pattern, normalise
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FIELDS
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


@dataclass(frozen=True)
class Reading:
    """How to read a table file: a CSV file's text encoding (guessed when None), an XLSX file's worksheet (the
    first when None), and plugins' readers for other formats, by file suffix."""

    encoding: str | None = None
    sheet: str | None = None
    readers: Mapping[str, LedgerReader] | None = None


def read_table(
    path: Path, encoding: str | None = None, sheet: str | None = None,
    readers: Mapping[str, LedgerReader] | None = None,
) -> Iterator[list[Any]]:
    """Rows of a CSV or XLSX file (or a format a plugin reads, by suffix), the header first. Raises
    `LedgerFileError` when the file cannot be read."""
    kind = file_kind(path, readers)
    if kind == "plugin":
        return (readers or {})[path.suffix.lower()].read(path, encoding, sheet)
    if kind == "xlsx":
        return _read_xlsx(path, sheet)
    if sheet is not None:
        raise LedgerFileError(f"{path}: --sheet applies to XLSX files only")
    return _read_csv(path, encoding)


def file_kind(path: Path, readers: Mapping[str, LedgerReader] | None) -> str:
    # "plugin", "xlsx" or "csv"; raises LedgerFileError for a file that is missing or cannot be opened
    if not path.exists():
        raise LedgerFileError(f"{path}: no such file")
    if path.is_dir():
        raise LedgerFileError(f"{path}: is a folder, not a ledger file")
    try:
        with path.open("rb") as handle:
            magic = handle.read(4)
    except OSError as exc:
        raise LedgerFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if path.suffix.lower() in (readers or {}):
        return "plugin"
    if magic == b"PK\x03\x04" or path.suffix.lower() in (".xlsx", ".xlsm"):
        return "xlsx"
    return "csv"


def decoded(path: Path, encoding: str | None) -> Iterator[str]:
    """The file's text, in pieces as it is read: the given encoding, else UTF-8 (with or without BOM), else GB18030
    (a superset of GBK). A piece that turns out not to be text raises `LedgerFileError` when it is reached.

    Without an encoding, pieces are UTF-8 as long as the file is. A file that stops being UTF-8 further on is GBK
    from there if all before was ASCII (the same text in either); otherwise it mixes encodings, an error."""
    try:
        with path.open("rb") as handle:
            pieces = iter(partial(handle.read, _DECODE_BYTES), b"")
            first = next(pieces, b"")
            if b"\x00" in first[:4096]:
                raise LedgerFileError(f"{path}: not a CSV or XLSX file (binary content)")
            pieces = chain([first], pieces)
            if encoding:
                try:
                    codecs.lookup(encoding)
                except LookupError:
                    raise LedgerFileError(f"--encoding {encoding!r} is not a known text encoding") from None
                yield from _decode_pieces(pieces, [encoding], f"{path}: not valid {encoding} text; check --encoding")
            else:
                yield from _utf8_or_gb(pieces, path)
    except OSError as exc:
        raise LedgerFileError(f"{path}: cannot be read ({exc.strerror})") from None


_DECODE_BYTES = 1 << 20  # bytes read and decoded at once


def _utf8_or_gb(pieces: Iterator[bytes], path: Path) -> Iterator[str]:
    # UTF-8 while the text is; from the first piece that is not, GBK and GB18030 (see `decoded`)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    plain = True  # every piece so far was ASCII
    for piece in pieces:
        try:
            yield decoder.decode(piece)
        except UnicodeDecodeError:
            if not plain:
                raise LedgerFileError(
                    f"{path}: UTF-8 text at first, not UTF-8 further on; give its encoding with --encoding"
                ) from None
            # GBK first only for speed (its codec is a third faster): any GBK text decodes to the very same
            # characters as GB18030, whose four-byte sequences GBK refuses
            yield from _decode_pieces(
                chain([piece], pieces), ["gbk", "gb18030"],
                f"{path}: neither UTF-8 nor GBK/GB18030 text; give its encoding with --encoding",
            )
            return
        plain = plain and piece.isascii()
    try:
        decoder.decode(b"", True)
    except UnicodeDecodeError:  # the file ends part-way through a character
        raise LedgerFileError(f"{path}: its last character is cut short; give its encoding with --encoding") from None


def _decode_pieces(pieces: Iterator[bytes], encodings: list[str], error: str) -> Iterator[str]:
    # the pieces decoded with the first of `encodings`, going on with the next one from the piece the previous
    # one fails on; `error` when the last one fails
    names = iter(encodings)
    decoder = codecs.getincrementaldecoder(next(names))()
    piece = next(pieces, b"")
    while True:
        following = next(pieces, None)
        final = following is None
        pending = decoder.getstate()[0]  # a character's first bytes, left over from the piece before
        while True:
            try:
                text = decoder.decode(piece, final)
                break
            except UnicodeDecodeError:
                encoding = next(names, None)
                if encoding is None:
                    raise LedgerFileError(error) from None
                decoder = codecs.getincrementaldecoder(encoding)()
                piece = pending + piece
        yield text
        if following is None:
            return
        piece = following


def _line_blocks(pieces: Iterator[str]) -> Iterator[str]:
    """The text given in pieces, in blocks of whole lines, about one per piece. A block ends where a line ends, as
    `io.StringIO(text, newline="")` reads lines: at "\n", "\r\n" or a lone "\r". A line split between two pieces
    (or its "\r\n") goes with the later one; the text's last line ends the last block, with an ending or not."""
    carry = ""
    for piece in pieces:
        text = carry + piece
        cut = text.rfind("\n") + 1
        lone = text.rfind("\r", cut)  # a line ending in a lone "\r" after the last "\n"
        if lone == len(text) - 1:  # or the "\r" of a "\r\n" the next piece may complete: that line goes on
            lone = text.rfind("\r", cut, lone)
        cut = max(cut, lone + 1)
        carry = text[cut:]
        if cut:
            yield text[:cut]
    if carry:
        yield carry


# Characters `str.splitlines` ends lines at besides "\r" and "\n"; to csv they are text like any other
_OTHER_BREAKS = "\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def _lines(block: str) -> list[str] | Iterator[str]:
    """The lines of a block of whole lines (see `_line_blocks`), without their endings."""
    if "\r" not in block:
        lines = block.split("\n")
        if not lines[-1]:  # after the block's last line ending
            lines.pop()
        return lines
    if not any(char in block for char in _OTHER_BREAKS):
        return block.splitlines()
    return map(str.rstrip, io.StringIO(block, newline="").readlines(), repeat("\r\n"))


def _read_csv(path: Path, encoding: str | None) -> Iterator[list[str]]:
    pieces = decoded(path, encoding)
    first = next(pieces, "")
    try:
        delimiter = csv.Sniffer().sniff(first[:4096], delimiters=",\t;").delimiter
    except csv.Error:
        delimiter = ","
    # only the delimiter is guessed: cells are quoted as Excel and every hall system quote them, with '"' (a guessed
    # quote character would read an apostrophe in a name as the start of a quoted cell)
    dialect = csv.excel_tab if delimiter == "\t" else csv.excel
    if delimiter == ";":
        dialect = _Semicolons
    return _csv_rows(chain([first], pieces), dialect)


class _Semicolons(csv.excel):
    delimiter = ";"


def _csv_rows(pieces: Iterator[str], dialect: type[csv.Dialect] | csv.Dialect) -> Iterator[list[str]]:
    """The rows `csv.reader` reads from the text given in pieces. Most ledgers quote nothing: until the first piece
    holding a quote (or escape) character, lines are split at the delimiter, to the same cells and faster; from
    there on `csv.reader` reads, as a quoted cell may hold delimiters and line breaks. A blank line gives [""]
    where `csv.reader` gives []: both are a row of no text."""
    special = [char for char in (dialect.quotechar, dialect.escapechar, "\0") if char]
    blocks = _line_blocks(pieces)
    for block in blocks:
        if dialect.skipinitialspace or any(char in block for char in special):
            lines = chain.from_iterable(io.StringIO(text, newline="") for text in chain([block], blocks))
            yield from csv.reader(lines, dialect)
            return
        yield from map(str.split, _lines(block), repeat(dialect.delimiter))


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

# A good row as the import passes it on: a plain tuple, in this order (see RowReader.read). The times and the two
# flags (phone_sms, resolved) are already in the form the database's driver takes (see `time_storage` and
# `flag_storage`), so the writer passes them on untouched; the times' isoformat, last, goes into the case's digest
# (see `digest`).
CaseRow = tuple[str, str, str, str, str, str, Any, Any, Any, str, Any, str, str]
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
    naive UTC text): applied once per distinct time, where SQLAlchemy would apply it to every value."""
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
_LONGEST = {"办件编号": 64, "窗口": 64, "事项名称": 200, "申请人": 50, "状态": 64}


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
        if _CONTROL.search(case_no + window + matter + applicant + status) is not None or (
            len(matter) > 200 or len(applicant) > 50 or len(case_no) > 64 or len(window) > 64 or len(status) > 64
        ):
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
        return (case_no, window, matter, case_type, applicant, phone, sms, accepted[2], resolved_stored, status, done,
                accepted[1], resolved_text)


def read_rows(rows: Iterator[list[Any]], reader: RowReader, errors: list[RowError]) -> Iterator[Batch]:
    """The good rows in batches; every bad row goes to `errors`, by line (the header is line 1). So does a row
    whose case id an earlier row of the file has: the first row wins."""
    read = reader.read
    batch: list[CaseRow] = []
    lines: list[int] = []
    size = _FIRST_CHUNK
    firsts: dict[str, int] = {}  # each case id's first line
    for line, row in enumerate(rows, start=2):
        # any() settles the usual row at once; only a row of falsy cells (0, False from a sheet) needs the full test
        if not any(row) and all(cell in (None, "") for cell in row):
            continue
        try:
            batch.append(read(row))
        except RowProblem as exc:
            errors.append(RowError(line, reader.case_id(row) or None, str(exc)))
            continue
        lines.append(line)
        if len(batch) >= size:
            yield first_rows(batch, lines, firsts, errors)
            batch, lines = [], []
            size = CHUNK
            reader.texts.clear()
    if batch:
        yield first_rows(batch, lines, firsts, errors)


def first_rows(batch: list[CaseRow], lines: list[int], firsts: dict[str, int], errors: list[RowError]) -> Batch:
    """The batch, read at these lines, without the rows whose case id an earlier row has (in `firsts`, each case
    id's first line), which go to `errors`; records its case ids' lines in `firsts`."""
    found = list(map(firsts.setdefault, map(itemgetter(0), batch), lines))
    if found == lines:
        return batch
    kept: list[CaseRow] = []
    for row, line, first in zip(batch, lines, found, strict=True):
        if first == line:
            kept.append(row)
        else:
            errors.append(repeated(line, row[0], first))
    return kept


def repeated(line: int, case_id: str, first: int) -> RowError:
    """The error of a row whose case id an earlier row, at line `first`, has."""
    return RowError(line, case_id, f"办件编号 {case_id} repeats line {first}; the first row wins")


def open_rows(
    path: Path, settings: Settings, encoding: str | None, sheet: str | None, readers: Mapping[str, LedgerReader] | None,
    dialect: Dialect,
) -> tuple[Iterator[list[Any]], RowReader]:
    """A ledger file's rows after its header, and the `RowReader` of its columns; raises `LedgerFileError` for a
    file without a header line or without a required column."""
    rows = read_table(path, encoding, sheet, readers)
    header = next(iter(rows), None)
    if header is None:
        raise LedgerFileError(f"{path}: empty file, no header line")
    columns = header_map(header, settings, path)
    text_cells = sheet is None and file_kind(path, readers) == "csv"  # every cell a str
    return rows, RowReader(settings, columns, time_storage(dialect), text_cells=text_cells, flags=flag_storage(dialect))
