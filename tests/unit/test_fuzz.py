"""Hostile files and texts, generated: the ledger and result importers and the SMS reader never crash, report every
bad row by its line, keep every good row, and leave a database that passes its integrity check."""

from __future__ import annotations

import csv
import itertools

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlalchemy import text

from callbackd.app.synthetic import EVALUATOR_HEADER, FORM_HEADER, HEADER
from callbackd.core.settings import load_settings
from callbackd.rounds.sampling import survey_in_force
from callbackd.store.db import Database
from tests.conftest import POSTGRES, case_row, phone_for, write_csv

FUZZ = hypothesis_settings(max_examples=40, deadline=None,
                           suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
ENCODINGS = ("utf-8", "utf-8-sig", "gbk", "gb18030", "utf-16", "latin-1")
# what hall exports hold, and what an adversary puts in a cell: markup, formulas, escapes, nothing, a lot
cells = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "=1+1", "@SUM(A1)", "窗口[/]", "[/x]", "\x1b[2J", "\x00", "\r\n", "'", '"', ",",
                     "１３８００１３８０００", "+1 650 253 0000", "400-810-8888", "2026-13-45", "45000", "-1"]),
    st.just("x" * 300),
)
_files = itertools.count()


def integrity_ok() -> None:
    if POSTGRES:
        return  # PostgreSQL checks its own constraints on every statement
    database = Database(load_settings().database_url)
    with database.engine.connect() as connection:
        assert connection.execute(text("PRAGMA integrity_check")).scalar() == "ok"
    database.dispose()


def one_line_error(run) -> None:
    assert run.code == 1, run.err
    assert "Traceback" not in run.err and len(run.err.strip().splitlines()) == 1, run.err


@FUZZ
@given(data=st.binary(max_size=2_000))
def test_a_ledger_of_random_bytes_is_read_or_refused_in_one_line(cli, workdir, data):
    path = workdir / f"bytes{next(_files)}.csv"
    path.write_bytes(data)
    run = cli("ledger", "import", path, "--json")
    if run.code:
        one_line_error(run)
    else:
        report = run.json()
        assert report["imported"] + report["updated"] + report["unchanged"] >= 0
    integrity_ok()


@FUZZ
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=11), min_size=1, max_size=8),
       good=st.integers(min_value=0, max_value=3), encoding=st.sampled_from(ENCODINGS))
def test_random_ledger_rows_are_each_imported_or_reported_by_line(cli, workdir, rows, good, encoding):
    n = next(_files)
    mixed = [case_row(f"G{n}-{i}", phone=phone_for(n * 10 + i)) for i in range(good)] + rows
    path = workdir / f"cells{n}.csv"
    try:
        write_csv(path, mixed, encoding=encoding)
    except UnicodeEncodeError:
        write_csv(path, mixed, encoding="gb18030")  # every Unicode text has a gb18030 form
    run = cli("ledger", "import", path, "--json")
    if run.code:
        one_line_error(run)  # a file that cannot be read at all (say, utf-16 read as text of another encoding)
    else:
        report = run.json()
        lines = {error["line"] for error in report["errors"]}
        assert len(lines) == len(report["errors"])  # one reason a line
        assert all(2 <= line <= len(mixed) + 1 for line in lines)
        # a row of no text at all is a blank line, not a case; every other row is a case or a reported line
        written = sum(1 for row in mixed if any(str(cell).strip() for cell in row))
        assert report["imported"] + report["updated"] + report["unchanged"] + len(lines) == written
        assert report["imported"] + report["unchanged"] + report["updated"] >= good  # the good rows are kept
    integrity_ok()


# title rows as hall systems write them above the header: a title, a date line, blank lines; never a column's name
TITLE_CELLS = ["", "2026年11月受理台帐", "导出时间：2026-12-01", "单位：办事大厅", "合计"]
titles = st.lists(st.lists(st.sampled_from(TITLE_CELLS), max_size=3), max_size=9)


@FUZZ
@given(titles=titles, bad=st.integers(min_value=0, max_value=2))
def test_title_rows_above_the_header_are_skipped_and_lines_stay_the_files_own(cli, workdir, titles, bad):
    n = next(_files)
    rows = [case_row(f"T{n}-{i}", phone=phone_for(n * 10 + i)) for i in range(2)]
    rows += [case_row(f"B{n}-{i}", phone="12345") for i in range(bad)]
    path = workdir / f"titled{n}.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerows([*titles, HEADER, *rows])
    run = cli("ledger", "import", path, "--json")
    assert run.code == 0, run.err
    report = run.json()
    assert report["imported"] + report["unchanged"] == 2
    first_row = len(titles) + 2  # the file's line of the first row under the header
    assert [e["line"] for e in report["errors"]] == list(range(first_row + 2, first_row + 2 + bad))
    assert report["title_rows"] == ([{"sheet": None, "count": len(titles)}] if titles else [])


@FUZZ
@given(rows=st.lists(st.lists(cells, min_size=0, max_size=10), min_size=1, max_size=8),
       source=st.sampled_from(["onsite", "evaluator"]))
def test_random_result_rows_are_each_imported_or_reported_by_line(cli, workdir, rows, source):
    if next(_files) == 0 or not (workdir / "l.csv").exists():
        write_csv(workdir / "l.csv", [case_row("W1", "社保窗口")])
        assert cli("ledger", "import", workdir / "l.csv").code == 0
    header = FORM_HEADER if source == "onsite" else EVALUATOR_HEADER
    path = write_csv(workdir / f"r{next(_files)}.csv", rows, header=header)
    run = cli("results", "import", path, "--source", source, "--json")
    if run.code:
        one_line_error(run)
    else:
        report = run.json()
        lines = {error["line"] for error in report["errors"]}
        written = sum(1 for row in rows if any(str(cell).strip() for cell in row))
        assert report["imported"] + report["updated"] + report["unchanged"] + len(lines) == written
    integrity_ok()


@hypothesis_settings(max_examples=400, deadline=None)
@given(reply=st.text(max_size=80))
def test_the_sms_reader_reads_any_reply(reply):
    survey = survey_in_force(load_settings())
    reading = survey.read_sms(reply, survey.rating_questions())
    assert reading.kind in ("answers", "opt_out", "unreadable", "empty")
    keys = [key for key, _ in reading.answers]
    assert len(keys) == len(set(keys)) and set(keys) <= {q.key for q in survey.rating_questions()}
