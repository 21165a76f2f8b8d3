"""Ledger import as PostgreSQL's COPY writes it (store/pg_copy.py): awkward text arrives as written, re-imports
update in place, a refused or failed import leaves the table, its keys and indexes as they were, imports take turns.
The tests that hold on any database run in both passes of scripts/test; those about PostgreSQL's own machinery run
in its pass."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import insert, inspect, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from callbackd.app.synthetic import HEADER, ledger_rows, write_ledger_csv
from callbackd.core.errors import StrictImportError
from callbackd.intake import ledger
from callbackd.store.models import Case, Window
from tests.conftest import POSTGRES, case_row, phone_for, write_csv

on_postgres = pytest.mark.skipif(not POSTGRES, reason="PostgreSQL's COPY, locks and catalog: its pass of scripts/test")

AWKWARD = {
    "K1": "补办\t换领",                         # a tab: COPY text's column separator
    "K2": "补办\n（加急）\r\n第二行",             # line breaks: COPY text's row separator
    "K3": "C:\\材料\\N\\.",                      # backslashes, \N (COPY text's NULL) and \. (its end marker)
    "K4": "\"引号\" '单引号' ,逗号;分号",          # quotes and delimiters
    "K5": "刘䶮的证明 ＡＢＣ 😀",                  # GB18030-only and full-width characters, an emoji
    "K6": "\\N",                                 # exactly what COPY text reads as NULL
}


def import_file(database, settings, path, **options) -> ledger.ImportReport:
    with database.session() as s:
        return ledger.import_ledger(s, settings, path, **options)


def stored(database) -> dict[str, Case]:
    with database.session() as s:
        return {case.case_no: case for case in s.scalars(select(Case))}


def schema_of_cases(database) -> tuple:
    """The cases table's indexes, unique constraints and foreign keys, as the database reports them."""
    with database.session() as s:
        found = inspect(s.connection())
        indexes = sorted((index["name"], tuple(index["column_names"])) for index in found.get_indexes("cases"))
        uniques = sorted((unique["name"], tuple(unique["column_names"]))
                         for unique in found.get_unique_constraints("cases"))
        keys = sorted((key["name"] or "", tuple(key["constrained_columns"]), key["referred_table"])
                      for key in found.get_foreign_keys("cases"))
        return indexes, uniques, keys


def big_ledger(workdir, name: str, rows: int, seed: int, *extra: list[str]):
    """A ledger of `rows` synthetic cases (enough for a bulk load past the first batch), then `extra` rows."""
    return write_ledger_csv(workdir / name, [*ledger_rows(date(2026, 11, 1), rows, windows=20, seed=seed), *extra])


def test_awkward_text_arrives_exactly_as_the_ledger_wrote_it(workdir, database, settings):
    header = [*HEADER, "承诺时限"]
    rows = [[*case_row(no, "人才服务窗口", matter=matter, phone=phone_for(n)), "5个工作日"]
            for n, (no, matter) in enumerate(AWKWARD.items())]
    rows.append([*case_row("N1", applicant="", phone=phone_for(90), resolved="", status="办理中"), ""])
    path = write_csv(workdir / "台帐.csv", rows, encoding="gb18030", header=header)

    report = import_file(database, settings, path)

    assert (report.imported, report.errors) == (7, [])
    cases = stored(database)
    assert {no: cases[no].matter for no in AWKWARD} == AWKWARD
    assert all(cases[no].promised_days == 5 for no in AWKWARD)
    empty = cases["N1"]
    # an empty cell is empty text where the column holds text, NULL where it holds a time or a number
    assert (empty.applicant, empty.resolved_at, empty.promised_days, empty.statutory_days) == ("", None, None, None)
    assert (empty.resolved, empty.phone_sms) == (False, True)
    assert empty.accepted_at == datetime(2026, 11, 3, 1, 5, tzinfo=UTC)
    again = import_file(database, settings, path)  # the digests read back equal: nothing changed
    assert (again.imported, again.updated, again.unchanged) == (0, 0, 7)


def test_a_reimport_updates_the_changed_row_in_place_and_leaves_the_rest(workdir, database, settings):
    rows = [case_row(f"R{n}", phone=phone_for(n)) for n in range(4)]
    import_file(database, settings, write_csv(workdir / "first.csv", rows))
    before = stored(database)

    rows[2] = case_row("R2", "公积金窗口", matter="提取\t（部分）", phone=phone_for(2), resolved="", status="办理中")
    report = import_file(database, settings, write_csv(workdir / "second.csv", [*rows, case_row("R9")]))

    assert (report.imported, report.updated, report.unchanged) == (1, 1, 3)
    after = stored(database)
    changed = after["R2"]
    assert changed.id == before["R2"].id  # updated, not inserted again
    assert (changed.matter, changed.status, changed.resolved, changed.resolved_at) == ("提取\t（部分）", "办理中",
                                                                                       False, None)
    assert changed.created_at == before["R2"].created_at and changed.updated_at > before["R2"].updated_at
    with database.session() as s:
        assert s.scalar(select(Window.name).where(Window.id == changed.window_id)) == "公积金窗口"
    for no in ("R0", "R1", "R3"):
        assert (after[no].updated_at, after[no].digest) == (before[no].updated_at, before[no].digest)
    assert set(after) == {"R0", "R1", "R2", "R3", "R9"}


def test_a_strict_bulk_load_with_a_bad_row_keeps_nothing_and_the_table_as_it_was(workdir, database, settings):
    import_file(database, settings, write_csv(workdir / "small.csv", [case_row("S1")]))
    schema = schema_of_cases(database)
    path = big_ledger(workdir, "bad.csv", 25_000, 7, case_row("S2", phone="000"))

    with pytest.raises(StrictImportError):
        import_file(database, settings, path, strict=True)

    assert set(stored(database)) == {"S1"}
    assert schema_of_cases(database) == schema
    with database.session() as s:
        assert list(s.scalars(select(Window.name))) == ["社保窗口"]  # the load's new windows went with it


def test_a_status_longer_than_its_column_is_a_bad_row_not_a_failed_import(cli, workdir, database):
    rows = [case_row("L1"), case_row("L2", phone=phone_for(2), status="已办结" * 7)]
    run = cli("ledger", "import", write_csv(workdir / "l.csv", rows), "--json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["imported"] == 1
    reasons = [(error["line"], error["reason"]) for error in report["errors"]]
    assert reasons == [(3, "状态 is 21 characters long; at most 20 are kept")]


def test_a_window_the_session_added_before_the_import_is_the_one_its_rows_name(workdir, database, settings):
    path = write_csv(workdir / "l.csv", [case_row("W1", "新设窗口"), case_row("W2", "新设窗口", phone=phone_for(2))])
    with database.session() as s:
        s.add(Window(name="新设窗口", created_at=datetime(2026, 11, 1, tzinfo=UTC)))
        report = ledger.import_ledger(s, settings, path)
    assert report.imported == 2
    with database.session() as s:
        assert list(s.scalars(select(Window.name))) == ["新设窗口"]


@on_postgres
def test_a_bulk_load_restores_the_keys_validated_and_the_index_and_updates_cases_meanwhile(
        workdir, database, settings):
    schema = schema_of_cases(database)
    import_file(database, settings, write_csv(workdir / "first.csv", [
        case_row("U1", phone=phone_for(1)), case_row("U2", phone=phone_for(2))]))
    before = stored(database)
    # the two known cases come after the first batches: they are merged while the bulk load is under way
    report = import_file(database, settings, big_ledger(
        workdir, "big.csv", 45_000, 8, case_row("U1", phone=phone_for(1), matter="换领"),
        case_row("U2", phone=phone_for(2))))

    assert (report.imported, report.updated, report.unchanged, report.errors) == (45_000, 1, 1, [])
    assert schema_of_cases(database) == schema
    after = stored(database)
    assert (after["U1"].id, after["U1"].matter) == (before["U1"].id, "换领")
    assert after["U2"].updated_at == before["U2"].updated_at
    with database.session() as s:
        assert s.scalar(text("SELECT bool_and(convalidated) FROM pg_constraint WHERE conrelid = 'cases'::regclass"))
        case = s.scalars(select(Case).limit(1)).one()
    row = {"matter": "", "case_type": "即办件", "applicant": "", "phone": case.phone, "phone_sms": True,
           "accepted_at": case.accepted_at, "status": "", "resolved": False, "digest": "",
           "created_at": case.created_at, "updated_at": case.created_at}
    with pytest.raises(IntegrityError, match="cases_window_id_fkey"), database.session() as s:
        s.execute(insert(Case).values(case_no="X1", window_id=10**6, **row))
    with pytest.raises(IntegrityError, match="cases_case_no_key"), database.session() as s:
        s.execute(insert(Case).values(case_no=case.case_no, window_id=case.window_id, **row))


@on_postgres
def test_a_bulk_load_keeps_its_key_and_index_when_a_reader_holds_the_tables(workdir, database, settings):
    schema = schema_of_cases(database)
    path = big_ledger(workdir, "big.csv", 25_000, 9)
    reports = []
    with database.engine.connect() as reader:
        reader.execute(select(Window.id)).all()  # its transaction holds the windows table until it ends
        importing = threading.Thread(target=lambda: reports.append(import_file(database, settings, path)))
        importing.start()
        importing.join(60)
        done = not importing.is_alive()  # it did not wait for the reader: it gave up dropping the key
        reader.rollback()
    importing.join()
    assert done
    assert (reports[0].imported, reports[0].errors) == (25_000, [])
    assert schema_of_cases(database) == schema


@on_postgres
def test_a_database_error_in_a_copy_is_sqlalchemys_and_quotes_no_row(database):
    from callbackd.store.pg_copy import COLUMNS, CaseCopy

    now = datetime(2026, 11, 3, tzinfo=UTC)
    values = {"case_no": "E1", "window_id": 10**6, "matter": "补办", "case_type": "即办件", "applicant": "张三丰",
              "phone": "+8613912345678", "phone_sms": True, "accepted_at": now, "resolved_at": None, "status": "已办结",
              "resolved": True, "promised_days": None, "statutory_days": None, "digest": "d", "created_at": now,
              "updated_at": now}
    with pytest.raises(DBAPIError) as raised, database.session() as s:
        copy = CaseCopy(s.connection())
        copy.insert([tuple(values[name] for name in COLUMNS), tuple({**values, "matter": None}[name]
                                                                     for name in COLUMNS)])
    message = str(raised.value)
    assert "13912345678" not in message and "张三丰" not in message
    assert isinstance(raised.value, IntegrityError) and "null value" in message


@on_postgres
def test_two_imports_of_one_ledger_take_turns(workdir, database, settings):
    path = write_csv(workdir / "l.csv", [case_row(f"T{n}", phone=phone_for(n)) for n in range(50)])
    first_open, reports = threading.Event(), {}

    def second() -> None:
        first_open.wait()
        reports["second"] = import_file(database, settings, path)

    other = threading.Thread(target=second)
    other.start()
    with database.session() as s:
        reports["first"] = ledger.import_ledger(s, settings, path)
        first_open.set()
        other.join(1.0)
        assert other.is_alive()  # waiting for the first import's transaction
    other.join(30)
    assert (reports["first"].imported, reports["second"].imported, reports["second"].unchanged) == (50, 0, 50)
