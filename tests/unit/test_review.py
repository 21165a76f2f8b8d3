"""Record review and archive (审核/归档): a reviewed record waits for a supervisor, is approved (archived: its answers
refuse any change from a result file or the console) or sent back with a comment and corrected, and an archived
record is corrected only as a new, audited version."""

from __future__ import annotations

from sqlalchemy import select

from callbackd.store.models import Answer, AuditEvent, Contact, ContactReview, ContactVersion
from tests.conftest import write_csv
from tests.unit.test_signatures import HAPPY, SIGNED_HEADER, UNHAPPY, windows

REVIEWED = "[review]\nrequired = true\n"


def setup(cli, workdir, monkeypatch, rows) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(REVIEWED, encoding="utf-8")
    windows(cli, workdir)
    run = cli("results", "import", write_csv(workdir / "forms.csv", rows, header=SIGNED_HEADER), "--source",
              "onsite")
    assert run.code == 0, run.err


def form(number: str, answers: list[str], suggestion: str = "") -> list[str]:
    return ["社保窗口", "2026-11-20", *answers, suggestion, number, "", ""]


def contact_of(database, number_index: int = 0) -> int:
    with database.session() as session:
        return sorted(session.scalars(select(ContactReview.contact_id)))[number_index]


def levels(database, contact_id: int) -> dict[str, str | None]:
    with database.session() as session:
        return {a.question: a.level for a in session.scalars(select(Answer).where(Answer.contact_id == contact_id))}


def actions(database) -> list[tuple[str, str]]:
    with database.session() as session:
        return [(e.actor, e.action) for e in session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("review.%")).order_by(AuditEvent.id))]


def test_an_approved_record_is_archived_and_refuses_edits(console, cli, workdir, monkeypatch, database):
    setup(cli, workdir, monkeypatch, [form("F-1", HAPPY)])
    contact = contact_of(database)
    sup = console("sup")
    listed = sup.get("/reviews")
    assert listed.status_code == 200 and f'href="/reviews/{contact}"' in listed.text
    sup.get(f"/reviews/{contact}")
    assert sup.post(f"/reviews/{contact}/approve", {"comment": "记录完整"}).status_code == 303
    with database.session() as session:
        review = session.get(ContactReview, contact)
        assert review is not None and review.status == "archived" and review.reviewed_by == "console:sup"

    # the same form with other answers: a bad row with a clear line, nothing changed
    changed = write_csv(workdir / "changed.csv", [form("F-1", UNHAPPY)], header=SIGNED_HEADER)
    run = cli("results", "import", changed, "--source", "onsite", "--json")
    assert "已审核归档" in run.json()["errors"][0]["reason"] and run.json()["updated"] == 0
    assert set(levels(database, contact).values()) == {"满意"}
    # re-importing it unchanged still changes nothing, without an error
    same = cli("results", "import", workdir / "forms.csv", "--source", "onsite", "--json")
    assert same.code == 0 and same.json()["unchanged"] == 1
    # nor may the console's correction of a returned record touch it
    sup.get(f"/reviews/{contact}")
    refused = sup.post(f"/reviews/{contact}/resubmit", {"q_attitude": "不满意"})
    assert refused.status_code == 400 and "只能更正已退回的记录" in refused.text
    assert set(levels(database, contact).values()) == {"满意"}


def test_send_back_correct_and_review_again_then_correct_as_a_new_version(console, cli, workdir, monkeypatch,
                                                                          database):
    setup(cli, workdir, monkeypatch, [form("F-2", HAPPY, "很好")])
    contact = contact_of(database)
    sup = console("sup")
    sup.get(f"/reviews/{contact}")
    no_comment = sup.post(f"/reviews/{contact}/return", {"comment": " "})
    assert no_comment.status_code == 400 and "请填写审核意见" in no_comment.text
    assert sup.post(f"/reviews/{contact}/return", {"comment": "总体评价漏填"}).status_code == 303
    returned = sup.get("/reviews?status=returned")
    assert "总体评价漏填" in returned.text

    # corrected through the results functions: 服务态度 基本满意 now; it waits for review again
    answers = {f"q_{key}": "满意" for key in ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")}
    assert sup.post(f"/reviews/{contact}/resubmit", {**answers, "q_attitude": "基本满意"}).status_code == 303
    assert levels(database, contact)["attitude"] == "基本满意"
    with database.session() as session:
        review = session.get(ContactReview, contact)
        assert review is not None and review.status == "pending"
    sup.get(f"/reviews/{contact}")
    assert sup.post(f"/reviews/{contact}/approve").status_code == 303

    # 更正 of the archived record: a reason is required; version 2 keeps version 1's answers
    sup.get(f"/reviews/{contact}")
    no_reason = sup.post(f"/reviews/{contact}/correct", {**answers, "reason": ""})
    assert no_reason.status_code == 400 and "更正原因" in no_reason.text
    assert sup.post(f"/reviews/{contact}/correct", {**answers, "reason": "申请人来电更正"}).status_code == 303
    assert set(levels(database, contact).values()) == {"满意"}
    with database.session() as session:
        review = session.get(ContactReview, contact)
        versions = session.scalars(select(ContactVersion).where(ContactVersion.contact_id == contact)).all()
        assert review is not None and review.version == 2 and review.status == "archived"
        assert [(v.version, v.answers["attitude"], v.reason) for v in versions] == [
            (1, ["基本满意", "基本满意"], "申请人来电更正")]
    page = sup.get(f"/reviews/{contact}")
    assert "第 2 版" in page.text and "申请人来电更正" in page.text
    assert actions(database) == [("console:sup", "review.return"), ("console:sup", "review.resubmit"),
                                 ("console:sup", "review.approve"), ("console:sup", "review.correct")]


def test_who_may_review(console, cli, workdir, monkeypatch, database):
    setup(cli, workdir, monkeypatch, [form("F-3", HAPPY)])
    contact = contact_of(database)
    assert {name: console(name).get("/reviews").status_code for name in ("sup", "op", "win", "lead", "adm")} == {
        "sup": 200, "op": 200, "win": 403, "lead": 403, "adm": 403}
    op = console("op")
    # an operator sees only the records they made: another's is missing, and they cannot approve
    assert op.get(f"/reviews/{contact}").status_code == 404
    assert op.post(f"/reviews/{contact}/approve").status_code == 403
    sup = console("sup")
    sup.get("/reviews")
    assert sup.post(f"/reviews/{contact}/approve", csrf=False).status_code == 403  # no CSRF token
    assert sup.get("/reviews/99999").status_code == 404
    with database.session() as session:
        assert session.scalar(select(Contact.unsigned).where(Contact.id == contact)) is False


def test_review_is_off_by_default(cli, workdir, monkeypatch, database):
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T10:00:00+08:00")
    windows(cli, workdir)
    rows = [form("F-4", HAPPY)]
    assert cli("results", "import", write_csv(workdir / "f.csv", rows, header=SIGNED_HEADER), "--source",
               "onsite").code == 0
    with database.session() as session:
        assert session.scalars(select(ContactReview)).all() == []
