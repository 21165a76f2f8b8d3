"""The console's imports: a ledger or a result file uploaded as the CLI would import it, bad rows shown by line as
the CLI reports them, nothing kept from a file that cannot be read, uploads private, bounded and deleted."""

from __future__ import annotations

import html
import re
import stat
import tempfile
from io import BytesIO
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callbackd.app.synthetic import FORM_HEADER, HEADER
from callbackd.app.web.console import imports
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, Case, Contact
from tests.conftest import case_row, phone_for, write_csv

ROLES = ("sup", "op", "win", "lead", "adm")
NOW = "2026-11-24T10:00:00+08:00"


def ledger_with_bad_rows(workdir: Path) -> Path:
    """Two good rows and three bad ones (lines 3, 5 and 6: a premium number, an unknown case type, no 窗口)."""
    return write_csv(workdir / "台帐.csv", [
        case_row("K1", phone=phone_for(1)),
        case_row("K2", phone="16900000000"),
        case_row("K3", phone=phone_for(3)),
        case_row("K4", case_type="加急件", phone=phone_for(4)),
        case_row("K5", window="", phone=phone_for(5)),
    ])


def upload(client, path: Path, kind: str = "ledger", *, name: str | None = None, csrf: bool = True,
           **fields: str):
    data = {"kind": kind, **fields}
    return client.post("/imports", data, csrf=csrf,
                       files={"file": (name or path.name, path.read_bytes(), "text/csv")})


def count(database: Database, model, *where) -> int:
    with database.session() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def imports_audited(database: Database) -> list[tuple[str, str]]:
    with database.session() as session:
        return [(e.actor, e.action) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action.in_(("ledger.import", "results.import"))))]


def bad_rows(page: str) -> list[tuple[str, str, str]]:
    """The bad rows' table of an import's page: (line, 办件编号, reason), as shown."""
    table = page.split('<table class="bad-rows">', 1)[1].split("</table>", 1)[0]
    return [tuple(html.unescape(cell).strip() for cell in cells)
            for cells in re.findall(r'<tr><td class="num">(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>', table)]


def figure(page: str, name: str) -> int:
    found = re.search(rf'data-count="{name}">(\d+)<', page)
    assert found is not None, name
    return int(found.group(1))


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)


def test_only_the_supervisor_imports(console, workdir, database):
    assert {name: console(name).get("/imports").status_code for name in ROLES} == {
        "sup": 200, "op": 403, "win": 403, "lead": 403, "adm": 403}
    path = ledger_with_bad_rows(workdir)
    for name in ("op", "win", "lead", "adm"):
        assert upload(console(name), path).status_code == 403
    assert count(database, Case) == 0 and imports_audited(database) == []
    form = console("sup").get("/imports").text
    assert 'enctype="multipart/form-data"' in form and 'accept=".xlsx,.csv"' in form
    assert 'for="import-file"' in form and 'for="import-kind"' in form


def test_a_ledger_with_bad_rows_shows_each_as_the_cli_reports_it_and_keeps_the_good_ones(
        console, cli, workdir, database):
    path = ledger_with_bad_rows(workdir)
    # what the CLI reports for this file (--strict: it imports nothing, and still prints its report)
    reported = cli("ledger", "import", path, "--strict", "--json")
    assert reported.code == 1 and count(database, Case) == 0
    expected = [(str(e["line"]), e["case_id"] or "", e["reason"]) for e in reported.json()["errors"]]
    assert [line for line, _, _ in expected] == ["3", "5", "6"]

    page = upload(console("sup"), path)
    assert page.status_code == 200
    assert bad_rows(page.text) == expected
    assert (figure(page.text, "imported"), figure(page.text, "errors")) == (2, 3)
    with database.session() as session:
        assert sorted(session.scalars(select(Case.case_no))) == ["K1", "K3"]
    assert imports_audited(database) == [("console:sup", "ledger.import")]
    again = upload(console("sup"), path)  # idempotent, as the CLI's
    assert (figure(again.text, "imported"), figure(again.text, "unchanged")) == (0, 2)
    assert count(database, Case) == 2


def test_a_file_that_cannot_be_read_keeps_nothing(console, workdir, database):
    no_phone = [column for column in HEADER if column != "联系电话"]
    rows = [[cell for column, cell in zip(HEADER, case_row(f"M{n}"), strict=True) if column != "联系电话"]
            for n in range(3)]
    path = write_csv(workdir / "缺列.csv", rows, header=no_phone)
    page = upload(console("sup"), path)
    assert page.status_code == 400
    assert "无法导入，未写入任何数据" in page.text and "联系电话" in page.text
    assert "缺列.csv" in page.text and "callbackd-upload-" not in page.text  # the upload's name, not its copy's
    assert count(database, Case) == 0 and imports_audited(database) == []


def test_a_strict_import_with_a_bad_row_keeps_nothing_and_lists_the_rows(console, workdir, database):
    page = upload(console("sup"), ledger_with_bad_rows(workdir), strict="1")
    assert page.status_code == 400 and "严格模式" in page.text
    assert [line for line, _, _ in bad_rows(page.text)] == ["3", "5", "6"]
    assert figure(page.text, "imported") == 0
    assert count(database, Case) == 0 and imports_audited(database) == []


def test_a_result_file_is_imported_by_its_source(console, workdir, database):
    forms = [["社保窗口", "2026-11-23", "满意", "满意", "满意", "满意", "满意", "满意", ""],
             ["社保窗口", "2026-11-23", "很好", "满意", "满意", "满意", "满意", "满意", ""],
             ["医保窗口", "2026-11-23", "基本满意", "满意", "满意", "满意", "满意", "满意", "好"]]
    path = write_csv(workdir / "征求意见表.csv", forms, header=FORM_HEADER)
    page = upload(console("sup"), path, "onsite")
    assert page.status_code == 200 and figure(page.text, "imported") == 2
    ((line, _, reason),) = bad_rows(page.text)
    assert line == "3" and "很好" in reason
    assert count(database, Contact, Contact.source == "onsite") == 2
    assert imports_audited(database) == [("console:sup", "results.import")]


def test_a_post_without_csrf_imports_nothing(console, workdir, database):
    sup = console("sup")
    assert upload(sup, ledger_with_bad_rows(workdir), csrf=False).status_code == 403
    assert upload(sup, ledger_with_bad_rows(workdir), csrf=False, csrf_token="forged").status_code == 403
    assert count(database, Case) == 0 and imports_audited(database) == []


def test_only_csv_and_xlsx_files_of_a_known_kind_are_accepted(console, workdir, database):
    sup = console("sup")
    path = ledger_with_bad_rows(workdir)
    refused = upload(sup, path, name="台帐.txt")
    assert refused.status_code == 415 and "只接受 .xlsx 和 .csv 文件" in refused.text
    assert upload(sup, path, "payroll").status_code == 400
    assert sup.post("/imports", {"kind": "ledger"}).status_code == 400  # no file
    assert sup.post("/imports", {"kind": "ledger"}, files={"file": ("", b"", "text/csv")}).status_code == 400
    assert count(database, Case) == 0 and imports_audited(database) == []
    # an .xlsx name is read as a workbook: a CSV under that name is a file-level error, not a crash
    assert upload(sup, path, name="台帐.xlsx").status_code == 400 and count(database, Case) == 0


def test_an_upload_over_the_limit_is_refused_with_413(console, workdir, database, monkeypatch):
    monkeypatch.setattr(imports, "UPLOAD_LIMIT", 2_000)
    sup = console("sup")
    path = write_csv(workdir / "大.csv", [case_row(f"L{n}", phone=phone_for(n)) for n in range(40)])
    assert path.stat().st_size > 2_000
    refused = upload(sup, path)
    assert refused.status_code == 413 and "文件超过" in refused.text
    # sent without a declared length (chunked), it is refused once the bytes pass the limit
    body, boundary = multipart(sup.token, path)
    streamed = sup.http.post("/imports", content=iter([body[i:i + 500] for i in range(0, len(body), 500)]),
                             headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert streamed.status_code == 413
    assert count(database, Case) == 0 and imports_audited(database) == []
    small = write_csv(workdir / "小.csv", [case_row("S1", phone=phone_for(1))])
    assert upload(sup, small).status_code == 200 and count(database, Case) == 1


def multipart(token: str, path: Path) -> tuple[bytes, str]:
    boundary = "callbackdtestboundary"
    parts = BytesIO()
    for name, value in (("csrf_token", token), ("kind", "ledger")):
        parts.write(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.write(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n'
                f"Content-Type: text/csv\r\n\r\n".encode())
    parts.write(path.read_bytes())
    parts.write(f"\r\n--{boundary}--\r\n".encode())
    return parts.getvalue(), boundary


def test_the_upload_is_kept_private_while_it_is_read_and_deleted_afterwards(console, workdir):
    before = set(Path(tempfile.gettempdir()).glob("callbackd-upload-*"))
    with imports.private_copy(BytesIO(b"a,b\n"), "台帐.csv") as path:
        assert path.read_bytes() == b"a,b\n" and path.name == "台帐.csv"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert not path.exists() and not path.parent.exists()
    assert upload(console("sup"), ledger_with_bad_rows(workdir)).status_code == 200
    assert set(Path(tempfile.gettempdir()).glob("callbackd-upload-*")) == before


def test_an_uploads_name_cannot_leave_its_folder():
    assert imports._safe_name("../../etc/passwd.csv") == "passwd.csv"
    assert imports._safe_name("C:\\Users\\x\\台帐.xlsx") == "台帐.xlsx"
    assert imports._safe_name("a\x1b[31m.csv") == "a_[31m.csv"
    assert imports._safe_name("..") == "upload"
