"""Reading table files: CSV in UTF-8, UTF-8 with BOM, GBK or GB18030, XLSX (one worksheet, or each in turn), or a
format a plugin reads; and finding a table's header among its first rows, below any title rows."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from itertools import chain, repeat
from pathlib import Path
from typing import Any

from callbackd.api.formats import LedgerReader
from callbackd.core.errors import LedgerFileError


@dataclass(frozen=True)
class Reading:
    """How to read a table file: a CSV file's text encoding (guessed when None), an XLSX file's worksheet (when
    None: every worksheet that has the header for a ledger, the first for `read_table`), and plugins' readers for
    other formats, by file suffix."""

    encoding: str | None = None
    sheet: str | None = None
    readers: Mapping[str, LedgerReader] | None = None


def read_table(
    path: Path, encoding: str | None = None, sheet: str | None = None,
    readers: Mapping[str, LedgerReader] | None = None,
) -> Iterator[list[Any]]:
    """Rows of a CSV or XLSX file (or a format a plugin reads, by suffix), from the first (see `locate_header` for
    the header). Raises `LedgerFileError` when the file cannot be read."""
    kind = file_kind(path, readers)
    if kind == "plugin":
        return (readers or {})[path.suffix.lower()].read(path, encoding, sheet)
    if kind == "xlsx":
        return _read_xlsx(path, sheet)
    if sheet is not None:
        raise LedgerFileError(f"{path}: --sheet applies to XLSX files only")
    return _read_csv(path, encoding)


def read_sheets(
    path: Path, encoding: str | None = None, sheet: str | None = None,
    readers: Mapping[str, LedgerReader] | None = None,
) -> list[tuple[str | None, Iterator[list[Any]]]]:
    """The tables of a file, each (its worksheet's name, its rows): every worksheet of an XLSX workbook, or the
    one named by `sheet`; the one table of any other file (named None)."""
    if sheet is None and file_kind(path, readers) == "xlsx":
        return _xlsx_sheets(path)
    return [(sheet, read_table(path, encoding, sheet, readers))]


# The header is looked for in a table's first rows; the rows above it (a title, a date line) are skipped.
HEADER_ROWS = 10


@dataclass
class Located:
    """A table's header, found among its first `HEADER_ROWS` rows: the header, its line (1 for the first row),
    and the rows under it."""

    header: list[Any]
    line: int
    rows: Iterator[list[Any]]


def locate_header(rows: Iterator[list[Any]], known: Callable[[list[Any]], tuple[int, bool]]) -> Located | None:
    """The header among the first `HEADER_ROWS` rows: the first row that `known` finds complete (it returns how many
    of a row's cells are known column names, and whether every required one is there); failing that the row with
    the most known names, whose missing columns its caller reports; None when no row names any known column."""
    rows = iter(rows)
    first: list[list[Any]] = []
    best, best_count = -1, 0
    for row in rows:
        first.append(row)
        count, complete = known(row)
        if complete:
            best = len(first) - 1
            break
        if count > best_count:
            best, best_count = len(first) - 1, count
        if len(first) >= HEADER_ROWS:
            break
    if best < 0:
        return None
    under = first[best + 1:]
    # the usual header, complete in the last row read, has nothing under it read yet: its rows are the file's own
    return Located(first[best], best + 1, chain(under, rows) if under else rows)


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


def _open_workbook(path: Path) -> Any:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        return load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, OSError, KeyError, ValueError) as exc:
        raise LedgerFileError(f"{path}: not a readable XLSX workbook ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile and friends from a damaged file
        raise LedgerFileError(f"{path}: not a readable XLSX workbook ({type(exc).__name__})") from None


def _xlsx_sheets(path: Path) -> list[tuple[str | None, Iterator[list[Any]]]]:
    # every worksheet of the workbook, in order; each read with a workbook of its own, closed when its rows end
    names = _open_workbook(path)
    try:
        sheetnames = [worksheet.title for worksheet in names.worksheets]  # not chart sheets
    finally:
        names.close()
    return [(name, _sheet_rows(path, name)) for name in sheetnames]


def _sheet_rows(path: Path, sheet: str) -> Iterator[list[Any]]:
    # the rows of one worksheet, its workbook opened when the first row is wanted and closed after the last
    book = _open_workbook(path)
    try:
        for row in book[sheet].iter_rows(values_only=True):
            yield list(row)
    finally:
        book.close()


def _read_xlsx(path: Path, sheet: str | None) -> Iterator[list[Any]]:
    book = _open_workbook(path)
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
