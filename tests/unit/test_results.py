"""On-site forms and counter evaluator imports: bad rows by line, good rows kept, idempotent, strict."""

from __future__ import annotations

from sqlalchemy import select

from callbackd.app.synthetic import EVALUATOR_HEADER, FORM_HEADER
from callbackd.core.settings import load_settings
from callbackd.store.db import Database
from callbackd.store.models import Answer, Contact
from tests.conftest import case_row, write_csv

SIX = ["满意", "满意", "基本满意", "满意", "满意", "满意"]


def with_windows(cli, workdir) -> None:
    rows = [case_row("W1", "社保窗口"), case_row("W2", "税务窗口", phone="13900139000")]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0


def contacts() -> list[tuple[str, str, int]]:
    database = Database(load_settings().database_url)
    with database.session() as s:
        out = [(c.source, c.channel, len(s.scalars(select(Answer).where(Answer.contact_id == c.id)).all()))
               for c in s.scalars(select(Contact).order_by(Contact.id))]
    database.dispose()
    return out


def test_onsite_forms_import_with_line_numbered_errors_and_idempotent_reimport(cli, workdir):
    with_windows(cli, workdir)
    rows = [
        ["社保窗口", "2026-11-20", *SIX, "很好"],            # line 2
        ["社保窗口", "2026-11-20", *SIX, "很好"],            # line 3: an identical second form is its own form
        ["不存在窗口", "2026-11-20", *SIX, ""],               # line 4: unknown window
        ["税务窗口", "2026-11-20", "满意", "还行", "", "", "", "", ""],  # line 5: not a level word
        ["税务窗口", "", *SIX, ""],                          # line 6: no date
        ["税务窗口", "2026-11-21", "", "", "", "", "", "", "只有意见"],  # line 7: nothing rated
        ["税务窗口", "2026年11月21日", "非常满意", "", "", "", "", "非常不满意", ""],  # line 8: good
    ]
    path = write_csv(workdir / "forms.csv", rows, header=FORM_HEADER, encoding="gbk")
    report = cli("results", "import", path, "--source", "onsite", "--json").json()
    assert report["imported"] == 3
    errors = {e["line"]: e["reason"] for e in report["errors"]}
    assert sorted(errors) == [4, 5, 6, 7]
    assert "不存在窗口" in errors[4] and "还行" in errors[5] and "日期" in errors[6] and "no rated" in errors[7]
    assert contacts() == [("onsite", "onsite", 6), ("onsite", "onsite", 6), ("onsite", "onsite", 2)]

    again = cli("results", "import", path, "--source", "onsite", "--json").json()
    assert (again["imported"], again["unchanged"]) == (0, 3)
    assert len(contacts()) == 3


def test_evaluator_rows_are_one_rating_each(cli, workdir):
    with_windows(cli, workdir)
    rows = [["社保窗口", "2026-11-20 10:01:00", "满意"], ["社保窗口", "2026-11-20 10:05:00", "不满意"],
            ["税务窗口", "2026-11-20 10:07:00", "很好"]]
    report = cli("results", "import", write_csv(workdir / "e.csv", rows, header=EVALUATOR_HEADER),
                 "--source", "evaluator", "--json").json()
    assert report["imported"] == 2 and [e["line"] for e in report["errors"]] == [4]
    assert contacts() == [("evaluator", "evaluator", 1), ("evaluator", "evaluator", 1)]
    scored = cli("score", "--period", "2026-W47", "--json").json()
    social = next(w for w in scored["windows"] if w["window"] == "社保窗口")
    assert social["by_source"]["evaluator"] == 50.0 and social["simulated"] is False


def test_strict_and_bad_files(cli, workdir):
    with_windows(cli, workdir)
    rows = [["社保窗口", "2026-11-20", *SIX, ""], ["无此窗口", "2026-11-20", *SIX, ""]]
    path = write_csv(workdir / "forms.csv", rows, header=FORM_HEADER)
    strict = cli("results", "import", path, "--source", "onsite", "--strict")
    assert strict.code == 1 and "line 3" in strict.err and contacts() == []
    wrong = cli("results", "import", path, "--source", "evaluator")
    assert wrong.code == 1 and "评价" in wrong.err and wrong.err.count("\n") == 1
    bad_source = cli("results", "import", path, "--source", "paper")
    assert bad_source.code == 1 and "operator, onsite, evaluator" in bad_source.err


def test_unnumbered_forms_are_known_by_their_content_so_a_resaved_file_counts_nothing_twice(cli, workdir):
    with_windows(cli, workdir)
    morning = write_csv(workdir / "am.csv", [["社保窗口", "2026-11-20", *SIX, ""]] * 2, header=FORM_HEADER)
    # the same sheet re-saved in the afternoon with one more identical form and one of another window, the date as
    # Excel may write it: only the two new forms count
    afternoon = write_csv(workdir / "pm.csv", [["社保窗口", "2026/11/20", *SIX, ""]] * 3 + [["税务窗口", "2026-11-20",
                          *SIX, ""]], header=FORM_HEADER)
    assert cli("results", "import", morning, "--source", "onsite", "--json").json()["imported"] == 2
    report = cli("results", "import", afternoon, "--source", "onsite", "--json").json()
    assert (report["imported"], report["unchanged"]) == (2, 2)
    assert cli("results", "import", afternoon, "--source", "onsite", "--json").json()["unchanged"] == 4
    assert len(contacts()) == 4


def test_numbered_forms_are_known_by_their_number(cli, workdir):
    with_windows(cli, workdir)
    header = ["编号", *FORM_HEADER]
    first = write_csv(workdir / "a.csv", [["F-001", "社保窗口", "2026-11-20", *SIX, ""]], header=header)
    again = write_csv(workdir / "b.csv", [["F-001", "社保窗口", "2026-11-20", *SIX, "补录"],
                                          ["F-002", "社保窗口", "2026-11-20", *SIX, ""]], header=header)
    assert cli("results", "import", first, "--source", "onsite", "--json").json()["imported"] == 1
    report = cli("results", "import", again, "--source", "onsite", "--json").json()
    assert (report["imported"], report["unchanged"]) == (1, 1)
