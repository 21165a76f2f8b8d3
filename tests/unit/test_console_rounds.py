"""The rounds pages: opening a week's round as `round open` does (week, seed, channel plan), verifying it as
`round verify` does, its callbacks a page at a time by window and state; the supervisory unit's alone."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select, update

from callbackd.store.models import AuditEvent, Callback, Round, Window
from tests.conftest import case_row, phone_for, write_csv

NOW = "2026-11-23T10:00:00+08:00"


def ledger(cli, workdir, monkeypatch, per_window: int = 3) -> None:
    """Cases resolved in November: `per_window` of 社保窗口 (S...) and of 医保窗口 (Y...)."""
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row(f"S{i:03d}", "社保窗口", phone=phone_for(i)) for i in range(per_window)]
    rows += [case_row(f"Y{i:03d}", "医保窗口", phone=phone_for(500 + i)) for i in range(per_window)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0


def rounds(database) -> list[Round]:
    with database.session() as session:
        return list(session.scalars(select(Round).order_by(Round.id)))


def audited(database, action: str) -> list[tuple[str, str]]:
    with database.session() as session:
        return [(actor, subject) for actor, subject in session.execute(
            select(AuditEvent.actor, AuditEvent.subject).where(AuditEvent.action == action))]


def test_a_supervisor_opens_a_round_as_round_open_does(cli, workdir, monkeypatch, console, database):
    ledger(cli, workdir, monkeypatch)
    client = console("sup")
    form = client.get("/rounds")
    assert form.status_code == 200 and 'name="week"' in form.text and 'value="2026-W48"' in form.text
    opened = client.post("/rounds", {"week": "2026-W48", "seed": "周一抽样", "channel": ["operator", "simulator", ""]})
    assert opened.status_code == 303
    (round_,) = rounds(database)
    assert opened.headers["location"] == f"/rounds/{round_.id}"
    assert (round_.week, round_.seed, round_.channel_plan) == ("2026-W48", "周一抽样", ["operator", "simulator"])
    assert round_.opened_by == "console:sup" and audited(database, "round.open") == [("console:sup",
                                                                                      f"round {round_.id}")]
    # the CLI reads the same round, and its own verification of the draw passes
    shown = cli("round", "show", str(round_.id), "--json").json()
    assert shown["seed"] == "周一抽样" and shown["channels"] == ["operator", "simulator"]
    assert sum(len(w["selected"]) for w in shown["windows"]) == 6
    assert cli("round", "verify", str(round_.id)).code == 0
    page = client.get(opened.headers["location"])
    assert page.status_code == 200 and "周一抽样" in page.text and "operator → simulator" in page.text
    assert "S000" in page.text and "Y000" in page.text and "共 6 条" in page.text
    listed = client.get("/rounds")
    assert f'href="/rounds/{round_.id}"' in listed.text and "周一抽样" in listed.text


@pytest.mark.parametrize(("form", "message"), [
    ({"week": "", "channel": ["operator"]}, "请填写回访周"),
    ({"week": "2026-W99", "channel": ["operator"]}, "2026-W99"),
    ({"week": "2026-W50", "channel": ["operator"]}, "still ahead"),
    ({"week": "2026-W48", "channel": ["no-such-channel"]}, "no-such-channel"),
    ({"week": "2026-W48", "channel": ["operator", "operator"]}, "只能选择一次"),
    ({"week": "2026-W48", "seed": "x" * 200, "channel": ["operator"]}, "seed"),
])
def test_a_round_that_cannot_open_is_refused_saying_why_and_nothing_is_drawn(
    cli, workdir, monkeypatch, console, database, form, message,
):
    ledger(cli, workdir, monkeypatch)
    refused = console("sup").post("/rounds", form)
    assert refused.status_code == 400 and message in refused.text
    assert rounds(database) == [] and audited(database, "round.open") == []
    assert 'name="week"' in refused.text  # the form again


def test_a_week_with_a_round_opens_again_only_when_replaced(cli, workdir, monkeypatch, console, database):
    ledger(cli, workdir, monkeypatch)
    client = console("sup")
    assert client.post("/rounds", {"week": "2026-W48", "seed": "a", "channel": ["simulator"]}).status_code == 303
    again = client.post("/rounds", {"week": "2026-W48", "seed": "b", "channel": ["simulator"]})
    assert again.status_code == 400 and "already has round" in again.text
    replaced = client.post("/rounds", {"week": "2026-W48", "seed": "b", "channel": ["simulator"], "replace": "1"})
    assert replaced.status_code == 303
    assert [(r.seed, r.status) for r in rounds(database)] == [("a", "replaced"), ("b", "open")]


def test_verifying_shows_the_verification_and_audits_it(cli, workdir, monkeypatch, console, database):
    ledger(cli, workdir, monkeypatch)
    assert cli("round", "open", "--week", "2026-W48", "--seed", "v", "--channel", "simulator").code == 0
    (round_,) = rounds(database)
    client = console("sup")
    verified = client.post(f"/rounds/{round_.id}/verify")
    assert verified.status_code == 200 and "复核通过" in verified.text
    assert audited(database, "round.verify") == [("console:sup", f"round {round_.id}")]
    with database.session() as session:  # a recorded pick altered after the draw
        session.execute(update(Callback).where(Callback.id == session.scalar(select(func.min(Callback.id))))
                        .values(draw_key="0" * 64))
    failed = client.post(f"/rounds/{round_.id}/verify")
    assert failed.status_code == 200 and "复核未通过" in failed.text and "recorded with other details" in failed.text


def test_a_large_round_is_paged_and_filtered_by_window_and_state(cli, workdir, monkeypatch, console, database):
    ledger(cli, workdir, monkeypatch, per_window=40)
    monkeypatch.setenv("CALLBACKD_SAMPLING__PER_WINDOW", "40")
    assert cli("round", "open", "--week", "2026-W48", "--seed", "p", "--channel", "simulator").code == 0
    (round_,) = rounds(database)
    with database.session() as session:
        social = session.scalar(select(Window.id).where(Window.name == "社保窗口"))
        session.execute(update(Callback).where(Callback.window_id == social, Callback.id % 4 == 0)
                        .values(status="completed"))
        completed = session.scalar(select(func.count()).select_from(Callback).where(Callback.status == "completed"))
    client = console("sup")
    first = client.get(f"/rounds/{round_.id}")
    rows = lambda page: len(re.findall(r'href="/callbacks/\d+"', page.text))  # noqa: E731
    assert "共 80 条" in first.text and rows(first) == 50 and "第 1 / 2 页" in first.text
    second = client.get(f"/rounds/{round_.id}?page=2")
    assert rows(second) == 30
    assert not set(re.findall(r"/callbacks/(\d+)", first.text)) & set(re.findall(r"/callbacks/(\d+)", second.text))
    by_window = client.get(f"/rounds/{round_.id}?window={social}")
    assert "共 40 条" in by_window.text and "Y0" not in by_window.text
    done = client.get(f"/rounds/{round_.id}?window={social}&status=completed")
    assert f"共 {completed} 条" in done.text and rows(done) == completed
    assert f'href="/rounds/{round_.id}?page=2"' in first.text
    pending = client.get(f"/rounds/{round_.id}?window=&status=pending")  # the filter form's "every window"
    assert f"共 {80 - completed} 条" in pending.text
    assert f'href="/rounds/{round_.id}?status=pending&amp;page=2"' in pending.text  # the pager keeps the filter
    assert client.get(f"/rounds/{round_.id}?window=&status=").status_code == 200
    assert client.get(f"/rounds/{round_.id}?page=-2").status_code == 200
    # phones are masked in the listing
    assert phone_for(0) not in first.text + second.text


@pytest.mark.parametrize("name", ["op", "win", "lead", "adm"])
def test_only_the_supervisory_unit_may_use_the_rounds_pages(cli, workdir, monkeypatch, console, database, name):
    ledger(cli, workdir, monkeypatch)
    assert cli("round", "open", "--week", "2026-W48", "--seed", "r", "--channel", "simulator").code == 0
    (round_,) = rounds(database)
    client = console(name)
    assert client.get("/rounds").status_code == 403
    assert client.get(f"/rounds/{round_.id}").status_code == 403
    assert client.post("/rounds", {"week": "2026-W48", "channel": ["simulator"], "replace": "1"}).status_code == 403
    assert client.post(f"/rounds/{round_.id}/verify").status_code == 403
    assert len(rounds(database)) == 1 and audited(database, "round.verify") == []


def test_rounds_posts_without_the_csrf_token_are_refused_and_change_nothing(
    cli, workdir, monkeypatch, console, database,
):
    ledger(cli, workdir, monkeypatch)
    client = console("sup")
    assert client.post("/rounds", {"week": "2026-W48", "channel": ["simulator"]}, csrf=False).status_code == 403
    assert rounds(database) == []
    assert cli("round", "open", "--week", "2026-W48", "--seed", "c", "--channel", "simulator").code == 0
    (round_,) = rounds(database)
    assert client.post(f"/rounds/{round_.id}/verify", csrf=False).status_code == 403
    assert audited(database, "round.verify") == []
    assert client.post(f"/rounds/{round_.id}/verify", {"csrf_token": "forged"}, csrf=False).status_code == 403


def test_bad_round_ids_and_filters_are_4xx(cli, workdir, monkeypatch, console, database):
    ledger(cli, workdir, monkeypatch)
    assert cli("round", "open", "--week", "2026-W48", "--seed", "b", "--channel", "simulator").code == 0
    (round_,) = rounds(database)
    client = console("sup")
    for path in ("/rounds/abc", "/rounds/0", "/rounds/-1", "/rounds/99999999999",
                 f"/rounds/{round_.id}?window=abc", f"/rounds/{round_.id}?window=99999999999",
                 f"/rounds/{round_.id}?status=bogus"):
        assert client.get(path).status_code == 400, path
    assert client.get("/rounds/424242").status_code == 404
    assert client.post("/rounds/424242/verify").status_code == 404
    assert client.post("/rounds/abc/verify").status_code == 400
    assert client.get("/rounds?page=abc").status_code == 200
