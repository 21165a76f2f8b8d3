"""Ledger import: encodings, dates, phones, bad rows by line, idempotent re-import, strict mode, bad files."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from openpyxl import Workbook
from sqlalchemy import func, inspect, select

from callbackd.app.synthetic import HEADER, ledger_rows, write_ledger_csv
from callbackd.core.errors import LedgerFileError, StrictImportError
from callbackd.core.phones import PhoneError, normalise
from callbackd.core.settings import load_settings
from callbackd.intake import ledger, tables
from callbackd.intake import parallel as ledger_parallel
from callbackd.intake import rows as reading
from callbackd.store.db import Database
from callbackd.store.models import Case, Window
from tests.conftest import case_row, phone_for, write_csv


def cases_in(database) -> dict[str, Case]:
    with database.session() as s:
        return {c.case_no: c for c in s.scalars(select(Case))}


def test_gbk_file_with_dirty_rows_reports_each_bad_line_and_keeps_the_good(cli, workdir, database):
    rows = [
        case_row("A1", "　社保窗口　", phone="138 0013 8000"),                   # line 2: good, window trimmed
        case_row("A2", phone="12345"),                                         # line 3: invalid phone
        case_row("A3", phone=""),                                              # line 4: missing phone
        case_row("A4", accepted="昨天上午"),                                     # line 5: unparseable date
        case_row("A5", accepted="2026-11-05 10:00", resolved="2026-11-04 10:00"),  # line 6: resolved first
        case_row("A6", case_type="加急件"),                                       # line 7: unknown type
        case_row("", phone=phone_for(7)),                                      # line 8: missing case id
        case_row("A8", window=" "),                                            # line 9: missing window
        case_row("A1", phone=phone_for(9)),                                    # line 10: repeated case id
        case_row("A10", "公积金窗口", phone="+86-139-0000-0010", case_type="承诺件"),  # line 11: good
    ]
    path = write_csv(workdir / "台帐.csv", rows, encoding="gbk")

    run = cli("ledger", "import", path, "--json")

    assert run.code == 0, run.err
    report = run.json()
    assert (report["imported"], report["updated"], report["unchanged"]) == (2, 0, 0)
    by_line = {e["line"]: e for e in report["errors"]}
    assert sorted(by_line) == [3, 4, 5, 6, 7, 8, 9, 10]
    assert "not a valid number" in by_line[3]["reason"] and by_line[3]["case_id"] == "A2"
    assert "missing" in by_line[4]["reason"] and "联系电话" in by_line[4]["reason"]
    assert "受理时间" in by_line[5]["reason"]
    assert "before" in by_line[6]["reason"]
    assert "加急件" in by_line[7]["reason"]
    assert by_line[8]["case_id"] is None and "办件编号" in by_line[8]["reason"]
    assert "窗口" in by_line[9]["reason"]
    assert "line 2" in by_line[10]["reason"] and by_line[10]["case_id"] == "A1"
    stored = cases_in(database)
    assert set(stored) == {"A1", "A10"}
    assert stored["A1"].phone == "+8613800138000"  # the first A1 row won
    with database.session() as s:
        assert sorted(s.scalars(select(Window.name))) == ["公积金窗口", "社保窗口"]


@pytest.mark.parametrize(
    ("written", "expected_utc"),
    [
        ("2026-11-03 09:05:00", datetime(2026, 11, 3, 1, 5, tzinfo=UTC)),
        ("2026/11/3 9:05", datetime(2026, 11, 3, 1, 5, tzinfo=UTC)),
        ("2026-11-03 09:05", datetime(2026, 11, 3, 1, 5, tzinfo=UTC)),
        ("2026年11月3日 9时5分", datetime(2026, 11, 3, 1, 5, tzinfo=UTC)),
        ("2026年11月3日 9时5分30秒", datetime(2026, 11, 3, 1, 5, 30, tzinfo=UTC)),
        ("2026.11.03 09:05:00", datetime(2026, 11, 3, 1, 5, tzinfo=UTC)),
        ("2026-11-03", datetime(2026, 11, 2, 16, 0, tzinfo=UTC)),
    ],
)
def test_dates_as_hall_systems_write_them_are_local_time_stored_as_utc(cli, workdir, database, written, expected_utc):
    path = write_csv(workdir / "l.csv", [case_row("D1", accepted=written, resolved="2026-11-30 18:00")])
    assert cli("ledger", "import", path).code == 0
    assert cases_in(database)["D1"].accepted_at == expected_utc


@pytest.mark.parametrize(
    ("written", "e164", "sms"),
    [
        ("13800138000", "+8613800138000", True),
        ("138-0013-8000", "+8613800138000", True),
        ("(+86) 138 0013 8000", "+8613800138000", True),
        ("8613800138000", "+8613800138000", True),
        ("１３８００１３８０００", "+8613800138000", True),
        ("010-65521234", "+861065521234", False),
        ("(0755) 8888 6666", "+8675588886666", False),
    ],
)
def test_phones_normalise_to_e164_and_landlines_are_not_sms_capable(cli, workdir, database, written, e164, sms):
    path = write_csv(workdir / "l.csv", [case_row("P1", phone=written)])
    run = cli("ledger", "import", path, "--json")
    assert run.json()["errors"] == []
    case = cases_in(database)["P1"]
    assert (case.phone, case.phone_sms) == (e164, sms)


def test_xlsx_with_excel_date_cells_and_numeric_phones(cli, workdir, database):
    book = Workbook()
    sheet = book.active
    sheet.title = "十一月"
    sheet.append(HEADER)
    sheet.append(["X1", "税务窗口", "发票领用", "即办件", "李四", 13900139000,
                  datetime(2026, 11, 4, 14, 30), datetime(2026, 11, 4, 15, 0), "已办结"])
    sheet.append(["X2", "税务窗口", "发票领用", "即办件", "王五", "bad", datetime(2026, 11, 4), None, "办理中"])
    other = book.create_sheet("说明")
    other.append(["这一页不是台帐"])
    path = workdir / "台帐.xlsx"
    book.save(path)

    run = cli("ledger", "import", path, "--sheet", "十一月", "--json")

    report = run.json()
    assert report["imported"] == 1
    assert [(e["line"], e["case_id"]) for e in report["errors"]] == [(3, "X2")]
    case = cases_in(database)["X1"]
    assert case.phone == "+8613900139000"
    assert case.accepted_at == datetime(2026, 11, 4, 6, 30, tzinfo=UTC)
    missing_sheet = cli("ledger", "import", path, "--sheet", "十二月")
    assert missing_sheet.code == 1 and "十二月" in missing_sheet.err and "十一月" in missing_sheet.err


def test_reimport_changes_nothing_and_changed_rows_update(cli, workdir, database):
    rows = [case_row(f"R{i}", phone=phone_for(i)) for i in range(5)]
    path = write_csv(workdir / "l.csv", rows, encoding="gbk")
    assert cli("ledger", "import", path, "--json").json()["imported"] == 5

    again = cli("ledger", "import", path, "--json").json()
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 5)

    rows[2] = case_row("R2", phone=phone_for(2), status="办理中", resolved="")
    rows.append(case_row("R9", phone=phone_for(9)))
    changed = cli("ledger", "import", write_csv(workdir / "l2.csv", rows), "--json").json()
    assert (changed["imported"], changed["updated"], changed["unchanged"]) == (1, 1, 4)
    stored = cases_in(database)
    assert stored["R2"].status == "办理中" and stored["R2"].resolved is False and stored["R2"].resolved_at is None
    assert len(stored) == 6


def test_a_changed_row_updates_its_case_to_what_a_first_import_of_it_stores(workdir, database, settings, tmp_path):
    before = [case_row("U1", phone=phone_for(1)), case_row("U2", phone=phone_for(2))]
    after = [
        case_row("U1", "　公积金窗口", matter="提取", case_type="承诺", applicant="李四", phone="010-65521234",
                 accepted="2026/11/4 8:05", resolved="2026年11月5日 16时30分", status="已办结"),
        case_row("U2", phone=phone_for(2)),
    ]
    import_file(database, settings, write_csv(workdir / "before.csv", before, encoding="gbk"))
    report = import_file(database, settings, write_csv(workdir / "after.csv", after, encoding="gbk"))
    assert (report.imported, report.updated, report.unchanged) == (0, 1, 1)

    fresh = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    fresh.ensure_schema()
    try:
        import_file(fresh, settings, workdir / "after.csv")
        expected, updated = stored_by_window_name(fresh), stored_by_window_name(database)
    finally:
        fresh.dispose()
    assert updated == expected
    assert updated["U1"][:9] == (
        "公积金窗口", "提取", "承诺件", "李四", "+861065521234", False, datetime(2026, 11, 4, 0, 5, tzinfo=UTC),
        datetime(2026, 11, 5, 8, 30, tzinfo=UTC), "已办结",
    )
    with database.session() as s:
        case = s.scalars(select(Case).where(Case.case_no == "U1")).one()
        assert case.updated_at > case.created_at


def stored_by_window_name(database) -> dict[str, tuple]:
    """Each case's stored values, its window by name (ids differ from one database to another)."""
    with database.session() as s:
        return {
            c.case_no: (name, c.matter, c.case_type, c.applicant, c.phone, c.phone_sms, c.accepted_at, c.resolved_at,
                        c.status, c.resolved, c.digest)
            for c, name in s.execute(select(Case, Window.name).join(Window))
        }


def test_unresolved_cases_are_imported_but_not_resolved(cli, workdir, database):
    rows = [
        case_row("U1", status="办理中"),
        case_row("U2", phone=phone_for(2), resolved="", status=""),
        case_row("U3", phone=phone_for(3)),
    ]
    cli("ledger", "import", write_csv(workdir / "l.csv", rows))
    stored = cases_in(database)
    assert {no: c.resolved for no, c in stored.items()} == {"U1": False, "U2": False, "U3": True}


def test_strict_imports_nothing_when_any_row_is_bad(cli, workdir, database):
    rows = [case_row("S1"), case_row("S2", phone="000")]
    run = cli("ledger", "import", write_csv(workdir / "l.csv", rows), "--strict", "--json")
    assert run.code == 1
    assert "line 3" in run.err and "--strict" in run.err
    assert run.json()["errors"][0]["line"] == 3
    assert cases_in(database) == {}
    assert cli("ledger", "import", workdir / "l.csv").code == 0
    assert set(cases_in(database)) == {"S1"}


def test_utf8_bom_and_gb18030_are_detected(cli, workdir, database):
    bom = write_csv(workdir / "bom.csv", [case_row("B1", "人才服务窗口")], encoding="utf-8-sig")
    # 䶮 is outside GBK: only GB18030 can hold it
    gb = write_csv(workdir / "gb.csv", [case_row("G1", "人才服务窗口", applicant="刘䶮", phone=phone_for(1))],
                   encoding="gb18030")
    assert cli("ledger", "import", bom).code == 0
    assert cli("ledger", "import", gb).code == 0
    stored = cases_in(database)
    assert stored["G1"].applicant == "刘䶮"
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Window)) == 1


def test_other_header_names_map_through_the_settings(cli, workdir, database):
    (workdir / "config").mkdir()
    (workdir / "config" / "callbackd.toml").write_text(
        '[ledger.columns]\ncase_id = ["流水号"]\nphone = ["申请人电话"]\n', encoding="utf-8"
    )
    header = ["流水号", "窗口", "事项名称", "办件类型", "申请人", "申请人电话", "受理时间", "办结时间", "状态"]
    path = write_csv(workdir / "l.csv", [case_row("M1")], header=header)
    run = cli("ledger", "import", path, "--json")
    assert run.json()["imported"] == 1


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.csv", "no such file"),
        (lambda d: d, "folder"),
        (lambda d: _write(d / "empty.csv", b""), "empty"),
        (lambda d: _write(d / "x.csv", "窗口,联系电话\n社保,13800138000\n".encode()), "办件编号"),
        (lambda d: _write(d / "x.pdf", b"%PDF-1.4\x00\x01\x02binary"), "not a CSV or XLSX"),
        (lambda d: _write(d / "x.xlsx", b"PK\x03\x04 broken zip"), "XLSX"),
        (lambda d: _write(d / "x.csv", b"\xff\xfe\xfa\xfb\x81\x30"), "encoding"),
    ],
)
def test_a_bad_file_is_one_clear_line_and_writes_nothing(cli, workdir, database, make, expected):
    before = cases_in(database)
    run = cli("ledger", "import", make(workdir))
    assert run.code == 1
    assert run.err.count("\n") == 1 and run.err.startswith("error: ")
    assert expected in run.err
    assert "Traceback" not in run.err
    assert cases_in(database) == before


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---- large files: read by a second process, written as a bulk load ----------------------------------------


def dirty_rows() -> list[list[str]]:
    """Good rows in every form the reader folds, and one of each kind of bad row."""
    return [
        case_row("C1", "　社保窗口　", phone="138 0013 8000"),
        case_row("C2", phone="12345"),
        case_row("C3", phone="010-65521234", accepted="2026/11/3 9:05", resolved="2026年11月3日 10时5分"),
        case_row("C4", accepted="昨天上午"),
        case_row("C5", phone="１３８００１３８００５", resolved="", status="办理中"),
        case_row("C1", phone=phone_for(6)),
        case_row("C7", "公积金窗口", phone="+86-139-0000-0010", case_type="承诺件"),
        case_row("C8", accepted="2026-11-05 10:00", resolved="2026-11-04 10:00"),
        case_row("", phone=phone_for(9)),
    ]


def import_file(database, settings, path, **options) -> ledger.ImportReport:
    with database.session() as s:
        return ledger.import_ledger(s, settings, path, **options)


def stored_cases(database) -> dict[str, tuple]:
    with database.session() as s:
        return {
            c.case_no: (c.window_id, c.matter, c.case_type, c.applicant, c.phone, c.phone_sms, c.accepted_at,
                        c.resolved_at, c.status, c.resolved, c.digest)
            for c in s.scalars(select(Case))
        }


def test_a_file_read_by_a_second_process_imports_exactly_as_one_read_here(workdir, database, settings):
    path = write_csv(workdir / "台帐.csv", dirty_rows(), encoding="gbk")

    apart = import_file(database, settings, path, parallel=True)
    stored = stored_cases(database)
    here = import_file(database, settings, path, parallel=False)

    assert (apart.imported, apart.updated, apart.unchanged) == (4, 0, 0)
    assert (here.imported, here.updated, here.unchanged) == (0, 0, 4)  # same digests: nothing changed
    assert apart.errors == here.errors
    assert [e.line for e in apart.errors] == [3, 5, 7, 9, 10]
    assert apart.errors[2].reason == "办件编号 C1 repeats line 2; the first row wins"
    assert stored == stored_cases(database)
    assert stored["C3"][4:8] == ("+861065521234", False, datetime(2026, 11, 3, 1, 5, tzinfo=UTC),
                                 datetime(2026, 11, 3, 2, 5, tzinfo=UTC))
    assert stored["C5"][4:6] == ("+8613800138005", True)


def test_a_process_running_threads_reads_in_a_fresh_interpreter_to_the_same_result(workdir, database, settings):
    path = write_csv(workdir / "台帐.csv", dirty_rows(), encoding="gbk")
    assert ledger_parallel.alone()  # this test's process forks its reading process

    forked = import_file(database, settings, path, parallel=True)
    stored = stored_cases(database)
    with database.session() as s:
        s.execute(Case.__table__.delete())
    # With another thread running, forking is not safe: a plain interpreter reads instead.
    release = threading.Event()
    other = threading.Thread(target=release.wait)
    other.start()
    try:
        assert not ledger_parallel.alone()
        fresh = import_file(database, settings, path, parallel=True)
    finally:
        release.set()
        other.join()

    assert (fresh.imported, fresh.errors) == (forked.imported, forked.errors)
    assert stored_cases(database) == stored


def test_a_reading_process_left_early_is_stopped_and_reaped(workdir, settings, database):
    path = write_ledger_csv(workdir / "big.csv", ledger_rows(date(2026, 11, 1), 60_000, windows=20, seed=5))
    dialect = database.engine.dialect
    for threads in (0, 1):  # forked, then a fresh interpreter
        release = threading.Event()
        others = [threading.Thread(target=release.wait) for _ in range(threads)]
        for other in others:
            other.start()
        try:
            before = children()
            batches = ledger_parallel.rows_from_process(path, settings, None, dialect, [])
            rows = next(batches)
            assert len(rows) == 2_000  # a small first batch
            assert len(children() - before) == 1
            batches.close()  # the writing side stops early, as when a database error ends the import
            assert children() == before
        finally:
            release.set()
            for other in others:
                other.join()


def children() -> set[int]:
    """This process's child processes, as Linux lists them."""
    pids: set[int] = set()
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children", encoding="ascii") as listed:
            pids.update(int(pid) for pid in listed.read().split())
    return pids


def test_a_bad_file_read_by_a_second_process_is_the_same_clear_error(cli, workdir, database, settings):
    undecodable = _write(workdir / "x.csv", b"\xff\xfe\xfa\xfb\x81\x30")
    no_case_id = _write(workdir / "y.csv", "窗口,联系电话\n社保,13800138000\n".encode("gbk"))
    for path, expected in ((undecodable, "encoding"), (no_case_id, "办件编号")):
        with pytest.raises(LedgerFileError, match=expected):
            import_file(database, settings, path, parallel=True)
    assert cases_in(database) == {}


def test_a_bulk_load_rebuilds_the_indexes_and_restores_the_connection(workdir, database, settings):
    rows = list(ledger_rows(date(2026, 11, 1), 20_001, windows=20, seed=3))
    path = write_ledger_csv(workdir / "big.csv", rows, encoding="gbk")
    indexes = table_indexes(database)

    with database.session() as s:
        settings_before = connection_settings(s)
        report = ledger.import_ledger(s, settings, path, parallel=True)
        assert connection_settings(s) == settings_before
    assert (report.imported, report.errors) == (20_001, [])
    assert table_indexes(database) == indexes
    again = import_file(database, settings, path, parallel=False)
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 20_001)
    with database.session() as s:
        first = s.scalars(select(Case).where(Case.case_no == rows[0][0])).one()
        assert (first.applicant, first.phone) == (rows[0][4], "+86" + rows[0][5])

    # a next month's load into the same windows, refused by --strict after its rows were written
    more = [*ledger_rows(date(2026, 12, 1), 40_000, windows=20, seed=4), case_row("X1", phone="000")]
    with pytest.raises(StrictImportError), database.session() as s:
        ledger.import_ledger(s, settings, write_ledger_csv(workdir / "bad.csv", more), strict=True, parallel=True)
    assert len(cases_in(database)) == 20_001
    assert table_indexes(database) == indexes


@pytest.mark.parametrize("parallel", [False, True])
def test_repeats_found_writing_and_bad_rows_found_reading_are_reported_in_line_order(
    workdir, database, settings, parallel
):
    rows = [case_row(f"R{n}", phone=phone_for(n)) for n in range(20_100)]
    rows[20_050] = case_row("R5", phone=phone_for(30_001))  # line 20052 repeats line 7, from the batch before
    rows[20_060] = case_row("R20060", phone="12345")  # line 20062: a bad phone
    rows[30] = case_row("R29", phone=phone_for(30_002))  # line 32 repeats line 31
    rows[31] = case_row("R31", accepted="昨天")  # line 33: a bad time
    path = write_csv(workdir / "repeats.csv", rows)

    report = import_file(database, settings, path, parallel=parallel)

    assert [(e.line, e.case_id) for e in report.errors] == [(32, "R29"), (33, "R31"), (20052, "R5"),
                                                            (20062, "R20060")]
    assert report.errors[0].reason == "办件编号 R29 repeats line 31; the first row wins"
    assert report.errors[2].reason == "办件编号 R5 repeats line 7; the first row wins"
    assert (report.imported, report.updated, report.unchanged) == (20_096, 0, 0)
    assert cases_in(database)["R5"].phone == "+86" + phone_for(5)


def table_indexes(database) -> set[str]:
    with database.session() as s:
        return {index["name"] for index in inspect(s.connection()).get_indexes("cases")}


def connection_settings(session) -> tuple:
    if session.get_bind().dialect.name != "sqlite":
        return ()
    connection = session.connection()
    return tuple(connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in ("cache_size", "threads"))


# ---- the reader's quick paths give what the full parse gives ---------------------------------------------

_DIGITS = "0123456789０１２３４５６７８９"
phone_cells = st.one_of(
    st.text(alphabet=_DIGITS, min_size=10, max_size=12),  # mostly 11 digits: plain mobiles and near misses
    st.builds(lambda prefix, n: prefix + n, st.sampled_from(["1", "13", "15", "17", "18", "19", "010", "0"]),
              st.text(alphabet="0123456789", min_size=8, max_size=11)),
    st.builds(lambda lead, n, tail: lead + n + tail, st.sampled_from(["", " ", "+86", "86", "０", "(010)"]),
              st.text(alphabet="0123456789", min_size=11, max_size=11), st.sampled_from(["", " ", "-", "\u3000"])),
    st.text(max_size=14),
)


@cache
def _row_reader() -> reading.RowReader:
    settings = load_settings()
    columns = reading.header_map(HEADER, settings, Path("test.csv"))
    return reading.RowReader(settings, columns, lambda moment: moment, text_cells=True)


@hypothesis_settings(max_examples=600, deadline=None)
@given(cell=phone_cells)
def test_a_rows_phone_is_what_normalise_gives(cell):
    reader = _row_reader()
    try:
        expected: tuple | str = tuple(normalise(cell))
    except PhoneError as exc:
        expected = f"联系电话: {exc}"
    try:
        row = reader.read(case_row("P1", phone=cell))
        got: tuple | str = (row[5], row[6])
    except reading.RowProblem as exc:
        got = str(exc)
    assert got == expected


def test_a_rows_digest_is_blake2b_of_its_normalised_values_so_stored_digests_stay_valid():
    import hashlib

    row = _row_reader().read(case_row("D1", "社保窗口 ", phone="138-0013-8000", resolved=""))
    assert row[11:] == (None, None, "2026-11-03T09:05:00+08:00", "")  # no time limits, then the times
    values = (
        "社保窗口", "社保卡补办", "即办件", "张三", "+8613800138000", "2026-11-03T09:05:00+08:00", "", "已办结", "0",
    )
    assert ledger.digest(row) == hashlib.blake2b("\x1f".join(values).encode(), digest_size=16).hexdigest()


def test_rows_sent_by_the_reading_process_arrive_unchanged():
    import io

    from callbackd.intake.parallel import encode as _encode
    from callbackd.intake.parallel import receive as _receive

    aware = datetime(2026, 11, 3, 1, 5, tzinfo=UTC)
    messages = [
        ("rows", [("C1", "社保窗口", "补办", "即办件", "张三", "+8613800138000", 1, "2026-11-03 01:05:00.000000",
                   None, "已办结", 1, "2026-11-03T09:05:00+08:00", "")]),
        ("rows", [("C2", "社保窗口", "补办", "即办件", "张三", "+861065521234", False, aware, aware, "已办结", True,
                   "2026-11-03T09:05:00+08:00", "2026-11-03T09:05:00+08:00")]),  # datetimes: sent as a pickle
        ("done", [reading.RowError(3, None, "办件编号 missing")]),
    ]
    stream = io.BytesIO()
    for message in messages:
        stream.write(_encode(message))
    whole = stream.getvalue()
    stream.seek(0)
    assert [_receive(stream) for _ in messages] == messages
    assert _receive(stream) is None
    assert _receive(io.BytesIO(whole[:-1])) is not None and _receive(io.BytesIO(whole[:12])) is None


def test_idle_cores_are_measured_not_guessed_from_the_load_average():
    cores = os.cpu_count() or 1
    assert 0.0 <= ledger_parallel.idle_cores() <= cores
    # a process spinning on a core for the whole window leaves at most the others idle
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        assert ledger_parallel.idle_cores(0.5) <= cores - 0.5
    finally:
        spinner.kill()
        spinner.wait()


# ---- reading CSV text in pieces ----------------------------------------------------------------------------

# lines as ledgers end them (\r\n from Windows, \n, a lone \r), blank lines, quoted cells holding delimiters, line
# breaks and doubled quotes, characters only GB18030 holds (䶮), and characters that end a line to
# str.splitlines but not to csv (\x0b, \x1c, \x85, \u2028)
_csv_text = st.lists(st.sampled_from(["A1", "社保窗口", "刘䶮", ",", ";", "\t", " ", "\n", "\r\n", "\r", '"', '""',
                                      "2026-11-03 09:05", "\x0b", "\x1c", "\x85", "\u2028"]), max_size=40).map("".join)


@hypothesis_settings(max_examples=400, deadline=None)
@given(text=_csv_text, cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=4))
def test_csv_text_in_pieces_reads_to_the_rows_csv_reader_gives(text, cuts):
    import csv
    import io

    bounds = sorted({min(cut, len(text)) for cut in cuts})
    pieces = [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]
    expected = list(csv.reader(io.StringIO(text, newline=""), csv.excel))
    got = list(tables._csv_rows(iter(pieces), csv.excel))
    # a blank line is [] to csv.reader and [""] when split: both a row of no text, skipped alike
    assert [row if any(row) else [] for row in got] == [row if any(row) else [] for row in expected]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 64])
def test_a_gbk_file_with_gb18030_characters_further_on_decodes_whole_in_pieces(size):
    text = "办件编号,申请人\r\n" + "A1,张三\r\n" * 20 + "A2,刘䶮\r\n" + "A3,李四\r\n"  # 䶮: four bytes, GB18030 only
    data = text.encode("gb18030")
    pieces = list(tables._decode_pieces(_cut(data, size), ["gbk", "gb18030"], "not text"))
    assert "".join(pieces) == text
    assert len(pieces) == -(-len(data) // size)  # one piece per `size` bytes: the file is never decoded whole
    with pytest.raises(LedgerFileError, match="not text"):
        list(tables._decode_pieces(_cut("A1,窗口\n".encode() + b"\xff\xff\n", size), ["gbk", "gb18030"], "not text"))


def _cut(data: bytes, size: int) -> Iterator[bytes]:
    return (data[start:start + size] for start in range(0, len(data), size))


def test_a_file_read_in_pieces_is_utf8_while_it_is_and_says_so_when_it_mixes(workdir):
    piece = tables._DECODE_BYTES
    header = "case_id,applicant\n"
    ascii_rows = header + "A1,Zhang San\n" * (piece // 13 + 1)  # more than the first piece, all ASCII
    later = "A2,张三\n" * 1_000
    # ASCII is the same text in GBK: a GBK file whose first piece has no Chinese reads whole, started as UTF-8
    gbk = workdir / "gbk.csv"
    gbk.write_bytes((ascii_rows + later).encode("gbk"))
    assert "".join(tables.decoded(gbk, None)) == ascii_rows + later
    # UTF-8 with Chinese, then bytes that are not UTF-8: no encoding fits the whole file
    mixed = workdir / "mixed.csv"
    mixed.write_bytes((header + later).encode() * (piece // 5_000) + "A3,李四\n".encode("gbk"))
    with pytest.raises(LedgerFileError, match="not UTF-8 further on; give its encoding with --encoding"):
        list(tables.decoded(mixed, None))
    # read a piece at a time: the first text is there before the file's end is read
    big = workdir / "big.csv"
    big.write_bytes((header + later * 100).encode() * 3)
    pieces = tables.decoded(big, None)
    assert next(pieces).startswith(header)
    assert sum(map(len, pieces)) > 0


def test_a_quoted_cell_far_into_a_file_is_read_as_csv_reads_it(cli, workdir, database):
    # the first pieces hold no quote and are split at the delimiter; the quoted cell (a comma and a line break in
    # the matter) switches to csv.reader for the rest of the file
    rows = [case_row(f"Q{i:05d}", "人才服务窗口", phone=phone_for(i)) for i in range(60_000)]
    rows[50_000][2] = "补办,换领\n（加急）"
    path = write_csv(workdir / "quoted.csv", rows, encoding="gbk")
    assert path.stat().st_size > 2 * tables._DECODE_BYTES
    run = cli("ledger", "import", path, "--json")
    assert run.code == 0 and run.json()["errors"] == [] and run.json()["imported"] == 60_000
    with database.session() as s:
        assert s.scalar(select(Case.matter).where(Case.case_no == "Q50000")) == "补办,换领\n（加急）"
        assert s.scalar(select(Case.matter).where(Case.case_no == "Q50001")) == rows[50_001][2]



def test_the_reading_process_reads_on_while_the_pipe_is_full_and_stops_when_nobody_reads():
    from callbackd.intake.parallel import Sender, receive

    readable, writable = os.pipe()
    out = open(writable, "wb")  # noqa: SIM115  (closed by the sender's owner below)
    sender = Sender(out, ahead=4)
    big = "窗" * 200_000  # 600 KB as UTF-8: a few of these fill the pipe many times over
    filling = threading.Thread(target=lambda: [sender.send(("rows", [(str(n), big)])) for n in range(4)])
    filling.start()
    filling.join(5)
    sent_unread = not filling.is_alive()  # not one was read, yet none waited for the reading side
    received: list[Any] = []
    with open(readable, "rb") as stream:
        reading = threading.Thread(target=lambda: received.extend(iter(lambda: receive(stream), None)))
        reading.start()
        filling.join()
        sender.send(("done", []))
        sender.close()
        out.close()
        reading.join(10)
    assert sent_unread
    assert [message[0] for message in received] == ["rows"] * 4 + ["done"]
    assert [message[1][0][0] for message in received[:4]] == ["0", "1", "2", "3"]
    assert received[3][1][0][1] == big

    # the other side stops reading: a send or the close says so, and neither blocks
    readable, writable = os.pipe()
    os.close(readable)
    out = open(writable, "wb", buffering=0)  # noqa: SIM115  (unbuffered: nothing left to flush at close)
    sender = Sender(out, ahead=2)
    with pytest.raises(BrokenPipeError):
        for _ in range(10):
            sender.send(("rows", [("C1", big)]))
            time.sleep(0.05)
        sender.close()
    out.close()


def test_control_characters_and_overlong_text_are_bad_rows_by_line(cli, workdir):
    rows = [
        case_row("C1", "社保\x01窗口"),                       # line 2: a control character in the window
        case_row("C2", matter="补办\x1b[2J"),                 # line 3: an ANSI escape
        case_row("C3", matter="补" * 201),                    # line 4: too long to read aloud
        case_row("C4", applicant="张" * 51),                  # line 5
        case_row("C5", matter="补办,换领\n（加急）\t"),        # line 6: a line break and a tab are text
        case_row("C6", "[/]窗口", applicant="=1+1"),          # line 7: brackets and formulas are text too
    ]
    report = cli("ledger", "import", write_csv(workdir / "l.csv", rows), "--json").json()
    reasons = {error["line"]: error["reason"] for error in report["errors"]}
    assert reasons == {
        2: "窗口 holds a control character (\\x01); remove it from the cell",
        3: "事项名称 holds a control character (\\x1b); remove it from the cell",
        4: "事项名称 is 201 characters long; at most 200 are kept",
        5: "申请人 is 51 characters long; at most 50 are kept",
    }
    assert report["imported"] == 2
