"""Ledger text reaches the terminal as text: square brackets are not rich markup, and control characters (an ANSI
escape, a bell) are shown as visible escapes, in every listing and in the import's bad-row table."""

from __future__ import annotations

from tests.conftest import case_row, phone_for, write_csv

ESCAPE = "\x1b[2J\x1b]0;owned\x07"  # clear the screen, retitle the window


def test_bracketed_window_names_list_and_draw_without_a_traceback(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T17:00:00+08:00")
    rows = [case_row(f"B{i}", name, phone=phone_for(i)) for i, name in enumerate(["窗口[/]", "[/x]", "[bold]社保"])]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0

    listed = cli("windows", "list")
    assert listed.code == 0, listed.err
    assert "窗口[/]" in listed.out and "[/x]" in listed.out and "[bold]社保" in listed.out

    cases = cli("cases", "list")
    assert cases.code == 0, cases.err
    assert "[/x]" in cases.out

    opened = cli("round", "open", "--week", "2026-W48", "--seed", "s")
    assert opened.code == 0, opened.err
    assert "Traceback" not in opened.err
    assert "窗口[/]" in opened.out


def test_an_escape_in_a_bad_row_is_shown_not_obeyed(cli, workdir):
    rows = [case_row(f"E1{ESCAPE}", phone="12345"), case_row("E2")]
    run = cli("ledger", "import", write_csv(workdir / "l.csv", rows))
    assert run.code == 0, run.err
    assert "\x1b" not in run.out and "\x07" not in run.out
    assert "E1\\x1b[2J\\x1b]0;owned\\x07" in run.out  # the bad row's case id, every control character visible
