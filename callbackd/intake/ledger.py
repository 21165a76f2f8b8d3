"""Import cases from a window ledger (受理台帐): CSV in UTF-8, UTF-8 with BOM, GBK or GB18030, or XLSX.

Each row is checked on its own. A bad row is reported with its line (the header is line 1) and reason and is not
imported; good rows are. The whole import is one transaction, so a file that cannot be read, or `--strict` with
a bad row, leaves the database as it was. Re-importing a file changes nothing; a changed row updates its case.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, column, insert, literal_column, select, table, update
from sqlalchemy.orm import Session

from callbackd.core import clock
from callbackd.core.errors import StrictImportError
from callbackd.core.settings import Settings
from callbackd.intake.rows import (
    CHUNK,
    Batch,
    CaseRow,
    ImportReport,
    open_rows,
    read_rows,
    time_storage,
    titles_of,
)
from callbackd.intake.tables import Reading, file_kind
from callbackd.store import audit
from callbackd.store.models import Case, Window

# ---- import ----------------------------------------------------------------------------------------------


def import_ledger(
    session: Session,
    settings: Settings,
    path: Path,
    *,
    strict: bool = False,
    reading: Reading = Reading(),
    parallel: bool | None = None,
) -> ImportReport:
    """Import one ledger file into the session's transaction and return what happened. `reading` says how to read
    it (its encoding or sheet, plugins' readers for other formats). `parallel` reads a CSV file in a second
    process while this one writes (other files are always read in this one); by default, CSV files of 8 MB or more
    are read so when the machine has a core to spare (see `ledger_parallel`).

    Raises `LedgerFileError` when the file cannot be read at all, and `StrictImportError` (carrying the report)
    when `strict` and any row is bad; the caller's transaction then rolls back and nothing is written.
    """
    report = ImportReport()
    batches: Iterator[Batch]
    dialect = session.get_bind().dialect
    encoding, sheet, readers = reading.encoding, reading.sheet, reading.readers
    csv_file = sheet is None and file_kind(path, readers) == "csv"
    if csv_file and parallel is None:
        from callbackd.intake.parallel import worth_it  # here: that module builds on this one

        parallel = worth_it(path)
    if csv_file and parallel:
        from callbackd.intake.parallel import rows_from_process

        batches = rows_from_process(path, settings, encoding, dialect, report.errors, report.titles)
    else:
        parts = open_rows(path, settings, reading, dialect)
        report.titles.extend(titles_of(parts))
        report.sheets = [part.sheet for part in parts if part.sheet is not None]
        batches = read_rows(parts, report.errors)
    writer = _writer(session, clock.now())
    # Hundreds of thousands of row tuples pass through and make no cycles, yet each batch would start collector
    # passes over everything alive; collect once afterwards instead.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for batch in batches:
            writer.add(batch)
        writer.finish()
    finally:
        writer.close()
        if collecting:
            gc.enable()
    # a repeat is found at the end of its batch; a workbook's rows go sheet by sheet
    order: dict[str | None, int] = {sheet: index for index, sheet in enumerate(report.sheets)}
    report.errors.sort(key=lambda error: (order.get(error.sheet, 0), error.line))
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


# On SQLite (and any database but PostgreSQL) cases go straight to the driver's executemany, as rows of values
# already in the database's own form: the times as the reader stored them (see `time_storage`), every other column a
# plain str, int or bool that needs no processing. SQLAlchemy would otherwise process each value of each row, which
# is most of a big import's cost. On PostgreSQL they go through COPY (see `store.pg_copy`).
_NEW_CASE_COLUMNS = tuple(c.name for c in Case.__table__.columns if c.name != "id")
_CASES = table("cases", column("id"), *(column(name) for name in _NEW_CASE_COLUMNS))  # untyped: no processing
# A new case's columns: the values a `CaseRow` gives, in its order; the digest the writer takes (see `digest`);
# then the import's time, the same in every case it creates. Where the database keeps times as text (SQLite), that
# time is written into the statement, so the driver binds two values fewer for each row.
_VALUE_COLUMNS = _NEW_CASE_COLUMNS[:_NEW_CASE_COLUMNS.index("digest")]
_STAMPS = ("created_at", "updated_at")
_DIGESTED_COLUMNS = (*_VALUE_COLUMNS, "digest")
assert (*_DIGESTED_COLUMNS, *_STAMPS) == _NEW_CASE_COLUMNS
_TIME_TEXT = re.compile(r"[0-9 :.-]+")
# A changed case: every column a re-import may change, by the case's id
_UPDATE_CASE = update(_CASES).where(_CASES.c.id == bindparam("case_pk"))
# While a bulk load writes on SQLite: a page cache (32 MB) that holds the case id index of a million cases and
# the pages being filled, which the default 2 MB spills to the log again and again. Larger is slower: the pages
# it holds are all written to the log at commit, where they would have been written while the rows were still
# being read, and the index rebuild sorts no faster in it. A setting of the connection, set back afterwards; it
# changes neither what is written nor how safely.
_BULK_PRAGMAS = {"cache_size": -32_768}
# While the dropped indexes are created again: SQLite's sorter keeps as many keys in memory as the page cache
# holds, sorts each full load in a helper thread while the table is still being scanned, and merges them with
# helper threads; with a small cache (8 MB) and the machine's cores it sorts a million keys in about 60% of the
# time one thread takes with a large one.
_INDEX_PRAGMAS = {"cache_size": -8_192, "threads": min(os.cpu_count() or 1, 8)}
# A case's values as the writers take them: `_DIGESTED_COLUMNS`, the window by id
CaseValues = tuple[Any, ...]


def _writer(session: Session, now: datetime) -> _CaseWriter:
    """The case writer for the session's database: COPY on PostgreSQL, the driver's executemany elsewhere."""
    # the writers read and write the tables past the session: first what it holds (a window added, an audit entry)
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        return _CopyWriter(session, now)
    return _SqlWriter(session, now)


class _CaseWriter:
    """Sorts batches of rows into new, changed and unchanged cases, and has a subclass write them.

    Once an import has inserted more cases than the table held before it (a first load, a backlog), the writer
    prepares a bulk load (`prepare_bulk_load`: on SQLite and PostgreSQL, without the indexes that a rebuild in
    `finish` makes faster than row by row updates); the import's transaction hides it from every other
    connection and a rollback undoes it.
    """

    def __init__(self, session: Session, now: datetime, existing: dict[str, tuple[Any, str]]) -> None:
        self.session = session
        self.now = now
        self.existing = existing  # case id -> (row id, digest), as the import began
        self.windows: dict[str, int] = {}
        self.cases_before = len(existing)
        self.bulk_ready = False
        self.inserted = self.updated = self.unchanged = 0

    def add(self, batch: list[CaseRow]) -> None:
        """Write one batch of rows, each a case id's first in the file: insert its new cases, update its changed
        ones."""
        windows, existing = self.windows, self.existing
        names = dict.fromkeys(map(itemgetter(1), batch))  # in order of appearance: new windows' ids follow it
        if not names.keys() <= windows.keys():
            self.add_windows([name for name in names if name not in windows])
        new: list[CaseValues] = []
        changed: list[tuple[Any, CaseValues]] = []
        for row in batch:  # one pass over the batch, each row unpacked once
            (case_no, window, matter, case_type, applicant, phone, sms, accepted, resolved, status, done, promised,
             statutory, _, _) = row
            row_digest = digest(row)
            known = existing.get(case_no) if existing else None
            if known is not None and known[1] == row_digest:
                self.unchanged += 1
                continue
            values = (case_no, windows[window], matter, case_type, applicant, phone, sms, accepted, resolved, status,
                      done, promised, statutory, row_digest)
            if known is None:
                new.append(values)
            else:
                changed.append((known[0], values))
        if changed:
            self.write_changed(changed)
        if new:
            if not self.bulk_ready and len(new) >= CHUNK and self.inserted + len(new) > self.cases_before:
                self.bulk_ready = True  # once per import
                self.prepare_bulk_load()
            self.write_new(new)

    def add_windows(self, names: list[str]) -> None:
        """Create these windows, which do not exist yet, in the order named, and keep their ids."""
        raise NotImplementedError

    def write_new(self, rows: list[CaseValues]) -> None:
        """Insert cases the table did not hold; adds to the counts."""
        raise NotImplementedError

    def write_changed(self, rows: list[tuple[Any, CaseValues]]) -> None:
        """Update cases whose values changed, each with its row id; adds to the counts."""
        raise NotImplementedError

    def prepare_bulk_load(self) -> None:
        """Before the rows of a bulk load: drop what `finish` creates again."""

    def finish(self) -> None:
        """After the last batch: create again what `prepare_bulk_load` dropped."""

    def close(self) -> None:
        """Set the connection back, whether the import succeeded or not."""


class _SqlWriter(_CaseWriter):
    """Writes cases with the driver's executemany (see `_NEW_CASE_COLUMNS`).

    A bulk load on SQLite drops the table's secondary indexes and `finish` creates them again: SQLite builds an
    index from sorted keys several times faster than it updates it row by row at random places.
    """

    def __init__(self, session: Session, now: datetime) -> None:
        self.connection = connection = session.connection()
        super().__init__(session, now, {
            no: (id_, dig) for no, id_, dig in connection.execute(select(Case.case_no, Case.id, Case.digest))
        })
        self.windows = {name: id_ for name, id_ in connection.execute(select(Window.name, Window.id))}
        dialect = connection.dialect
        self.stored_now = time_storage(dialect)(now)
        written = isinstance(self.stored_now, str) and _TIME_TEXT.fullmatch(self.stored_now) is not None
        stamps: dict[str, Any] = {name: literal_column(f"'{self.stored_now}'") for name in _STAMPS} if written else {}
        self.bound = _DIGESTED_COLUMNS if written else _NEW_CASE_COLUMNS  # the columns each row binds, in order
        statement = insert(_CASES).values(stamps).compile(dialect=dialect, column_keys=list(self.bound))
        self.insert_sql = str(statement)
        # rows are built in that order: the driver takes them as they are when its placeholders are positional in
        # that order (SQLite's "?"), else as dicts by name
        self.positional = bool(statement.positional) and tuple(statement.positiontup or ()) == self.bound
        self.bulk_ready = dialect.name != "sqlite"  # nothing to prepare elsewhere
        self.dropped_indexes: list[tuple[str, str]] = []
        self.saved_pragmas: dict[str, Any] = {}

    def add_windows(self, names: list[str]) -> None:
        for name in names:
            window = Window(name=name, created_at=self.now)
            self.session.add(window)
            self.session.flush()
            self.windows[name] = window.id

    def write_new(self, rows: list[CaseValues]) -> None:
        now = self.stored_now
        if self.bound is _NEW_CASE_COLUMNS:  # the import's time is bound with each row
            rows = [(*row, now, now) for row in rows]
        bound = rows if self.positional else [dict(zip(self.bound, row, strict=True)) for row in rows]
        self.connection.exec_driver_sql(self.insert_sql, bound)
        self.inserted += len(rows)

    def write_changed(self, rows: list[tuple[Any, CaseValues]]) -> None:
        self.connection.execute(_UPDATE_CASE, [
            {**dict(zip(_DIGESTED_COLUMNS, values, strict=True)), "case_pk": case_pk, "updated_at": self.stored_now}
            for case_pk, values in rows
        ])
        self.updated += len(rows)

    def finish(self) -> None:
        if self.dropped_indexes:
            self.set_pragmas(_INDEX_PRAGMAS)
        for _, sql in self.dropped_indexes:
            self.connection.exec_driver_sql(sql)
        self.dropped_indexes = []

    def close(self) -> None:
        for name, value in self.saved_pragmas.items():
            self.connection.exec_driver_sql(f"PRAGMA {name} = {int(value)}")
        self.saved_pragmas = {}

    def set_pragmas(self, pragmas: Mapping[str, int]) -> None:
        """Set these settings of the connection, keeping what each was before the import for `close`."""
        for name, value in pragmas.items():
            if name not in self.saved_pragmas:
                self.saved_pragmas[name] = self.connection.exec_driver_sql(f"PRAGMA {name}").scalar()
            self.connection.exec_driver_sql(f"PRAGMA {name} = {int(value)}")

    def prepare_bulk_load(self) -> None:
        """On SQLite: the bulk-load settings, and drop the cases table's secondary indexes, keeping the SQL that
        `finish` creates them again with."""
        # The sqlite3 driver begins its transaction only at the first INSERT, UPDATE or DELETE: a DROP INDEX
        # before any (every window already known, nothing written yet) would be committed at once, and a failed
        # import would leave the table without its index.
        if not self.connection.connection.driver_connection.in_transaction:  # type: ignore[union-attr]
            self.connection.exec_driver_sql("BEGIN")
        self.set_pragmas(_BULK_PRAGMAS)
        self.dropped_indexes = [
            (name, sql)
            for name, sql in self.connection.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'cases' AND sql IS NOT NULL"
            )
        ]
        for name, _ in self.dropped_indexes:
            self.connection.exec_driver_sql(f'DROP INDEX "{name}"')


class _CopyWriter(_CaseWriter):
    """Writes cases on PostgreSQL through COPY (see `store.pg_copy`): new ones straight into the table, changed
    ones merged from a staging table. Ledger imports take turns there, so the case ids an import finds at its
    start are the ones it competes with."""

    def __init__(self, session: Session, now: datetime) -> None:
        from callbackd.store.pg_copy import CaseCopy, stored_time  # psycopg: only where PostgreSQL is used

        self.copy = CaseCopy(session.connection())
        super().__init__(session, now, self.copy.existing())
        self.stamp = stored_time(now)  # the import's time, as the rows' times are given (see `time_storage`)

    def add_windows(self, names: list[str]) -> None:
        self.windows.update(self.copy.windows(names, self.now))

    def write_new(self, rows: list[CaseValues]) -> None:
        now = self.stamp
        self.copy.insert((*row, now, now) for row in rows)
        self.inserted += len(rows)

    def write_changed(self, rows: list[tuple[Any, CaseValues]]) -> None:
        now = self.stamp
        updated = self.copy.merge([(case_pk, *values, now, now) for case_pk, values in rows])
        self.updated += updated
        self.unchanged += len(rows) - updated

    def prepare_bulk_load(self) -> None:
        self.copy.prepare_bulk_load()

    def finish(self) -> None:
        self.copy.finish()

    def close(self) -> None:
        self.copy.close()


def digest(row: CaseRow) -> str:
    """The fingerprint of a case's normalised values (times as their isoformat): equal digests mean a re-import
    changes nothing. Taken where the rows are written: there, it leaves the reading and the writing processes of
    a large import about equally busy (repeated case ids are found where they are read). The time limits count
    only when given, so a row without them keeps the digest it had before ledgers carried them."""
    _, window, matter, case_type, applicant, phone, _, _, _, status, done, promised, statutory, accepted, resolved = row
    fingerprint = _DIGEST.copy()
    fingerprint.update(
        "\x1f".join((window, matter, case_type, applicant, phone, accepted, resolved, status, "1" if done else "0"))
        .encode()
    )
    if promised is not None or statutory is not None:
        fingerprint.update(f"\x1f{promised}\x1f{statutory}".encode())
    return fingerprint.hexdigest()


# A row's digest starts from a copy of this: cheaper than passing blake2b its digest size by keyword each time
_DIGEST = hashlib.blake2b(digest_size=16)
