"""Signed visits (签名确认): an on-site form or a visit that must carry the applicant's signature and does not is
flagged and not scored (the tallies and raw scoring alike) until it is signed; a scanned signature is kept 0600 and
shown to supervisors only."""

from __future__ import annotations

import stat
from pathlib import Path

from sqlalchemy import select

from callbackd.app.synthetic import FORM_HEADER
from callbackd.core.settings import load_settings
from callbackd.measure.scoring import score_period
from callbackd.store.db import Database
from callbackd.store.models import AuditEvent, Contact
from tests.conftest import case_row, write_csv
from tests.unit.test_rectify import one_round

SIGNED_HEADER = [*FORM_HEADER, "编号", "签名人", "签名"]
CONFIG = ('[signatures]\nrequired_for = ["visit", "onsite"]\n'
          "[scoring]\nminimum_contacts = { week = 1, month = 1, quarter = 1, year = 1 }\n")
HAPPY, UNHAPPY = ["满意"] * 6, ["不满意"] * 6


def configure(workdir: Path, extra: str = "") -> None:
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(CONFIG + extra, encoding="utf-8")


def windows(cli, workdir: Path) -> None:
    rows = [case_row("W1"), case_row("W2", "医保窗口")]
    assert cli("ledger", "import", write_csv(workdir / "ledger.csv", rows)).code == 0


def forms(cli, workdir: Path, signed_b: str) -> dict:
    """Form A (all 满意, signed) and form B (all 不满意, 签名 `signed_b`) for 社保窗口."""
    rows = [["社保窗口", "2026-11-20", *HAPPY, "", "F-A", "李四", "是"],
            ["社保窗口", "2026-11-20", *UNHAPPY, "太慢", "F-B", "", signed_b]]
    run = cli("results", "import", write_csv(workdir / "forms.csv", rows, header=SIGNED_HEADER), "--source",
              "onsite", "--json")
    assert run.code == 0, run.err
    return run.json()


def scores(period: str = "2026-11") -> tuple[dict, dict]:
    """社保窗口 as the tallies and as the answers score it."""
    settings = load_settings()
    database = Database(settings.database_url)
    with database.session() as session:
        tallied, raw = (next(w for w in score_period(session, settings, period, raw=r).windows
                             if w.window == "社保窗口").as_dict() for r in (False, True))
    database.dispose()
    return tallied, raw


def test_an_unsigned_onsite_form_is_flagged_and_not_scored_until_signed(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    configure(workdir)
    windows(cli, workdir)
    assert forms(cli, workdir, "否")["imported"] == 2
    tallied, raw = scores()
    # only form A counts: the on-site share is its 100, one contact; B's 不满意 is not in the levels either
    assert tallied == raw
    assert tallied["by_source"]["onsite"] == 100.0 and tallied["contacts_by_source"]["onsite"] == 1
    assert tallied["levels"] == {"满意": 6, "基本满意": 0, "不满意": 0}
    listed = cli("results", "unsigned", "--json")
    assert listed.code == 0 and [(r["window"], r["kind"]) for r in listed.json()] == [("社保窗口", "现场征求意见表")]
    assert "13800138000" not in listed.out

    # the same file with B's 签名 now 是 signs it: (100 + 0) / 2 = 50, two contacts, exact in both readings
    again = forms(cli, workdir, "是")
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 1, 1)
    tallied, raw = scores()
    assert tallied == raw
    assert tallied["by_source"]["onsite"] == 50.0 and tallied["contacts_by_source"]["onsite"] == 2
    assert tallied["levels"] == {"满意": 6, "基本满意": 0, "不满意": 6}
    assert cli("results", "unsigned", "--json").json() == []
    # the year's tallies agree too, and `init` (a rebuild under other rules is the same code) keeps them
    year_tallied, year_raw = scores("2026")
    assert year_tallied == year_raw


def test_signatures_are_not_required_unless_configured(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(CONFIG.split("[scoring]")[0].replace(
        '["visit", "onsite"]', "[]") + "[scoring]" + CONFIG.split("[scoring]")[1], encoding="utf-8")
    windows(cli, workdir)
    forms(cli, workdir, "否")
    tallied, _ = scores()
    assert tallied["contacts_by_source"]["onsite"] == 2


def test_an_unsigned_visit_does_not_count_toward_the_callback_share(cli, workdir, monkeypatch):
    configure(workdir, "[dispatch]\nplan = [\"operator\"]\n")
    one_round(cli, workdir, monkeypatch, [case_row("V1"), case_row("V2", phone="13800138001")])
    header = ["办件编号", "回访时间", "服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价",
              "意见建议", "回访方式", "签名人", "签名"]
    rows = [["V1", "2026-11-23 11:00", *HAPPY, "", "上门", "张三", "是"],
            ["V2", "2026-11-23 11:30", *(["基本满意"] * 6), "", "上门", "", ""]]
    run = cli("results", "import", write_csv(workdir / "ops.csv", rows, header=header), "--source", "operator")
    assert run.code == 0, run.err
    tallied, raw = scores("2026-W48")
    assert tallied == raw
    # V2, a visit without a signature, is left out: the callback share is V1's 100 alone
    assert tallied["by_source"]["callback"] == 100.0 and tallied["contacts_by_source"]["callback"] == 1
    rows[1][-1] = "是"
    assert cli("results", "import", write_csv(workdir / "ops.csv", rows, header=header), "--source",
               "operator").code == 0
    tallied, raw = scores("2026-W48")
    assert tallied == raw and tallied["by_source"]["callback"] == 90.0  # (100 + 80) / 2


def test_a_bad_signature_cell_is_a_bad_row(cli, workdir, monkeypatch):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    configure(workdir)
    windows(cli, workdir)
    rows = [["社保窗口", "2026-11-20", *HAPPY, "", "F-C", "李四", "也许"]]
    run = cli("results", "import", write_csv(workdir / "bad.csv", rows, header=SIGNED_HEADER), "--source", "onsite",
              "--json")
    assert run.json()["errors"][0]["reason"] == "签名: '也许' is not 是 or 否"


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def test_the_console_signs_with_a_scan_kept_private_and_shown_to_supervisors(console, cli, workdir, monkeypatch,
                                                                             database):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    configure(workdir)
    forms(cli, workdir, "否")
    with database.session() as session:
        unsigned = session.scalar(select(Contact.id).where(Contact.unsigned.is_(True)))
    sup, op, win = console("sup"), console("op"), console("win")
    assert win.get("/reviews").status_code == 403 and console("lead").get(f"/reviews/{unsigned}").status_code == 403
    page = op.get("/reviews")
    assert page.status_code == 200 and f'href="/reviews/{unsigned}"' in page.text
    # not an image: refused with a clear line, nothing signed
    op.get(f"/reviews/{unsigned}")
    refused = op.http.post(f"/signatures/{unsigned}", data={"csrf_token": op.token, "signer": "王五"},
                           files={"scan": ("s.txt", b"hello", "text/plain")})
    assert refused.status_code == 400 and "PNG、JPEG" in refused.text
    no_token = op.http.post(f"/signatures/{unsigned}", data={"signer": "王五"}, files={"scan": ("s.png", PNG)})
    assert no_token.status_code == 403
    done = op.http.post(f"/signatures/{unsigned}", data={"csrf_token": op.token, "signer": "王五"},
                        files={"scan": ("s.png", PNG, "image/png")})
    assert done.status_code == 303
    with database.session() as session:
        contact = session.get(Contact, unsigned)
        assert contact is not None and not contact.unsigned and contact.signer == "王五"
        kept = Path(load_settings().signatures.folder) / str(contact.signature_file)
        actions = list(session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "signature.record")))
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600 and kept.read_bytes() == PNG
    assert actions == ["console:op"]
    assert sup.get(f"/signatures/{unsigned}/scan").content == PNG
    assert op.get(f"/signatures/{unsigned}/scan").status_code == 403
    tallied, raw = scores()
    assert tallied == raw and tallied["contacts_by_source"]["onsite"] == 2


def test_an_unsigned_repair_visit_counts_toward_no_role_share(cli, workdir, monkeypatch):
    configure(workdir, "[dispatch]\nplan = [\"operator\"]\n")
    rows = [case_row(f"R{i}", "物业服务中心", case_type="报修", matter="楼道灯不亮报修", phone=f"1380013800{i}",
                     resolved="2026-11-20 10:00:00") for i in range(3)]
    one_round(cli, workdir, monkeypatch, rows)
    header = ["办件编号", "回访时间", "回访人角色", "服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律",
              "总体评价", "意见建议", "回访方式", "签名人", "签名"]
    results = [["R0", "2026-11-23 11:00", "经理", *HAPPY, "", "上门", "张三", "是"],
               ["R1", "2026-11-23 11:10", "维修组长", *HAPPY, "", "电话", "", ""],
               ["R2", "2026-11-23 11:20", "经理", *HAPPY, "", "上门", "", "否"]]  # a visit not signed
    run = cli("results", "import", write_csv(workdir / "r.csv", results, header=header), "--source", "operator")
    assert run.code == 0, run.err
    document = cli("policies", "report", "--period", "2026-11", "--json").json()["roles"]
    shares = {r["role"]: (r["callbacks"], r["share"]) for r in document["overall"]["roles"]}
    assert shares["经理"] == (1, 0.5) and shares["维修组长"] == (1, 0.5)  # R2 is in neither
    assert document["unsigned"] == 1 and document["unsigned_by_window"] == {"物业服务中心": 1}
