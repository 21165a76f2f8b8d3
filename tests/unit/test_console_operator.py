"""The operator's console: the queue (one callback at a time, never the same one to two operators), the number shown
only on 显示号码 to the operator holding the callback (audited), the result form that saves exactly what an operator
result file's row saves, the outcomes of calls that got no answers, 要求改期, on-site forms, and the callback page."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update

from callbackd.app.synthetic import FORM_HEADER
from callbackd.contact import queue
from callbackd.store.accounts import NewUser, add_user
from callbackd.store.models import Answer, Attempt, AuditEvent, Callback, Case, Contact, Rectification
from tests.conftest import case_row, phone_for, write_csv
from tests.unit.conftest import PASSWORD

NOW = "2026-11-23T10:00:00+08:00"  # a Monday, inside calling hours
ROW_TIME = "2026-11-23 10:00:00"  # the same moment as an operator file writes it
OPERATOR_HEADER = ["办件编号", "回访时间", "服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价",
                   "意见建议"]
QUESTIONS = ("attitude", "efficiency", "rules", "off_book", "integrity", "overall")
DIGITS = {"满意": "1", "基本满意": "2", "不满意": "3"}


# ---- builders ------------------------------------------------------------------------------------------------


def operator_round(cli, workdir, monkeypatch, cases: int = 3, channel: str = "operator", week: str = "2026-W48"):
    """Cases K0.. of 社保窗口 (phones phone_for(i)), drawn by a round on `channel` and dispatched: on the operator
    channel each callback waits on the queue."""
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row(f"K{i}", "社保窗口", phone=phone_for(i)) for i in range(cases)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", week, "--seed", "t", "--channel", channel).code == 0
    assert cli("dispatch", "--once").code == 0


def import_operator_rows(cli, workdir, rows: list[list[str]]) -> dict:
    run = cli("results", "import", write_csv(workdir / "r.csv", rows, header=OPERATOR_HEADER), "--source",
              "operator", "--json")
    assert run.code == 0, run.err
    return run.json()


def held_case(database, name: str = "op") -> tuple[int, str, int]:
    """(attempt id, case number, callback id) of the callback the account holds."""
    with database.session() as session:
        user_id = user(session, name)
        attempt_id = queue.held_attempt(session, user_id)
        assert attempt_id is not None
        held = queue.held(session, attempt_id, user_id)
        assert held is not None
        return attempt_id, held.case_no, held.callback_id


def user(session, name: str) -> int:
    from callbackd.store.models import User

    found = session.scalar(select(User.id).where(User.name == name))
    assert found is not None
    return found


def answers_form(levels: list[str], suggestion: str = "", role: str = "") -> dict[str, str]:
    form = {f"q_{key}": DIGITS[level] for key, level in zip(QUESTIONS, levels, strict=True) if level}
    form["suggestion"] = suggestion
    if role:
        form["caller_role"] = role
    return form


def stored(database, case_no: str) -> dict[str, Any]:
    """Everything a result stores for a case's callback, without ids, keys and the case's own values."""
    with database.session() as session:
        callback = session.scalar(select(Callback).join(Case, Case.id == Callback.case_id)
                                  .where(Case.case_no == case_no))
        assert callback is not None
        contact = session.scalar(select(Contact).where(Contact.callback_id == callback.id))
        answers = [] if contact is None else sorted(
            (a.question, a.level, a.raw, a.source, a.contacted_at, a.recorded_at)
            for a in session.scalars(select(Answer).where(Answer.contact_id == contact.id)))
        attempts = [(a.number, a.channel, a.status, a.due_at, a.started_at, a.ended_at, a.detail)
                    for a in session.scalars(select(Attempt).where(Attempt.callback_id == callback.id)
                                             .order_by(Attempt.number))]
        rectifications = [(r.trigger, r.reason, r.answers, r.status, r.opened_at, r.due_at, r.case_type)
                          for r in session.scalars(select(Rectification)
                                                   .where(Rectification.callback_id == callback.id))]
        return {
            "callback": (callback.status, callback.reason, callback.closed_at, callback.caller_role),
            "contact": None if contact is None else (contact.source, contact.channel, contact.contacted_at,
                                                     contact.suggestion, contact.simulated, contact.survey_version),
            "answers": answers, "attempts": attempts, "rectifications": rectifications,
        }


def count(database, model: type, *where: Any) -> int:
    with database.session() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def reveals(database) -> list[tuple[str, str]]:
    with database.session() as session:
        return [(actor, subject) for actor, subject in session.execute(
            select(AuditEvent.actor, AuditEvent.subject).where(AuditEvent.action == "phone.reveal"))]


@pytest.fixture
def second_operator(database, people):
    with database.session() as session:
        add_user(session, NewUser("op2", "operator", (), PASSWORD), datetime(2026, 11, 2, tzinfo=UTC))
    return "op2"


def take(client) -> None:
    response = client.post("/operator/take")
    assert response.status_code == 303 and response.headers["location"] == "/operator"


# ---- the result form saves what a result file saves ------------------------------------------------------------


def test_a_result_entered_by_the_operator_is_stored_as_the_same_row_of_a_result_file(
    cli, workdir, monkeypatch, console, database,
):
    operator_round(cli, workdir, monkeypatch, cases=3)
    client = console("op")
    take(client)
    attempt_id, case_no, _ = held_case(database)
    page = client.get("/operator")
    # the keyboard-first form: a fieldset of radios keyed 1/2/3 per question, then the save button
    assert "data-keyboard-survey" in page.text and page.text.count('<fieldset class="question">') == 6 + 6
    assert 'data-key="1"' in page.text and "data-after-questions" in page.text

    levels = ["满意", "基本满意", "不满意", "满意", "", "满意"]
    saved = client.post(f"/operator/{attempt_id}/result", answers_form(levels, "窗口太少", "主管"))
    assert saved.status_code == 303 and saved.headers["location"] == "/operator?done=saved"
    # and the operator now holds the next callback of the queue
    next_attempt, next_case, _ = held_case(database)
    assert next_attempt != attempt_id and next_case != case_no
    assert next_case in client.get("/operator?done=saved").text
    # the same row, for the third case of the round, through `results import --source operator`
    other = next(f"K{i}" for i in range(3) if f"K{i}" not in (case_no, next_case))
    report = import_operator_rows(cli, workdir, [[other, ROW_TIME, *levels, "窗口太少"]])
    assert report["imported"] == 1
    ours, theirs = stored(database, case_no), stored(database, other)
    # caller_role is the one column a file needs its optional 回访人角色 for
    assert ours["callback"][:3] == theirs["callback"][:3] and ours["callback"][3] == "主管"
    assert ours["callback"][0] == "partial"  # one question unanswered, as a file's empty cell
    assert ours["contact"] == theirs["contact"] and ours["contact"][:2] == ("callback", "operator")
    assert ours["answers"] == theirs["answers"] and len(ours["answers"]) == 6  # five rated and the suggestion
    assert ours["attempts"] == theirs["attempts"]
    assert ours["rectifications"] == theirs["rectifications"] and len(ours["rectifications"]) == 1  # the 不满意

    # a later file row for the operator's case at the same moment is that very result: nothing changes
    again = import_operator_rows(cli, workdir, [[case_no, ROW_TIME, *levels, "窗口太少"]])
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 1)


def test_the_form_refuses_an_empty_survey_or_a_digit_off_the_scale_and_changes_nothing(
    cli, workdir, monkeypatch, console, database,
):
    operator_round(cli, workdir, monkeypatch, cases=1)
    client = console("op")
    take(client)
    attempt_id, case_no, _ = held_case(database)
    before = stored(database, case_no)
    empty = client.post(f"/operator/{attempt_id}/result", {"suggestion": ""})
    assert empty.status_code == 400 and "请至少选择一项评价" in empty.text
    off = client.post(f"/operator/{attempt_id}/result", {"q_attitude": "7"})
    assert off.status_code == 400 and "服务态度" in off.text
    assert stored(database, case_no) == before and count(database, Contact) == 0


# ---- outcomes ----------------------------------------------------------------------------------------------------


def test_no_answer_ends_the_attempt_and_schedules_the_retry_as_an_unanswered_file_row_does(
    cli, workdir, monkeypatch, console, database,
):
    operator_round(cli, workdir, monkeypatch, cases=2)
    client = console("op")
    take(client)
    attempt_id, case_no, _ = held_case(database)
    other = "K1" if case_no == "K0" else "K0"
    response = client.post(f"/operator/{attempt_id}/outcome", {"outcome": "no_answer"})
    assert response.status_code == 303 and response.headers["location"] == "/operator?done=outcome"
    assert import_operator_rows(cli, workdir, [[other, ROW_TIME, *[""] * 6, ""]])["imported"] == 1
    ours, theirs = stored(database, case_no), stored(database, other)
    assert ours == theirs
    assert [a[2] for a in ours["attempts"]] == ["no_answer", "due"]  # the retry, spaced by the calling policy
    # two hours later is 12:00, the end of the morning's calling hours: the first calling hour after it, 14:00
    assert ours["attempts"][1][3] == datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert ours["callback"][0] == "in_progress"


@pytest.mark.parametrize(("outcome", "attempt", "callback", "reason"), [
    ("busy", "busy", "in_progress", None),
    ("invalid_number", "invalid_number", "invalid", "invalid_number"),
    ("refused", "refused", "refused", "refused"),
])
def test_an_outcome_ends_the_attempt_as_the_state_machine_decides(
    cli, workdir, monkeypatch, console, database, outcome, attempt, callback, reason,
):
    operator_round(cli, workdir, monkeypatch, cases=1)
    client = console("op")
    take(client)
    attempt_id, case_no, _ = held_case(database)
    assert client.post(f"/operator/{attempt_id}/outcome", {"outcome": outcome}).status_code == 303
    found = stored(database, case_no)
    assert found["attempts"][0][2] == attempt and found["callback"][:2] == (callback, reason)
    assert found["contact"] is None
    retried = [a[2] for a in found["attempts"][1:]]
    assert retried == (["due"] if callback == "in_progress" else [])


def test_an_unknown_outcome_is_refused(cli, workdir, monkeypatch, console, database):
    operator_round(cli, workdir, monkeypatch, cases=1)
    client = console("op")
    take(client)
    attempt_id, case_no, _ = held_case(database)
    before = stored(database, case_no)
    assert client.post(f"/operator/{attempt_id}/outcome", {"outcome": "completed"}).status_code == 400
    assert stored(database, case_no) == before


def test_a_reschedule_asked_for_sets_the_due_time_of_a_new_operator_attempt(
    cli, workdir, monkeypatch, console, database,
):
    operator_round(cli, workdir, monkeypatch, cases=2)
    client = console("op")
    take(client)
    attempt_id, case_no, callback_id = held_case(database)
    with database.session() as session:
        deadline = session.get(Callback, callback_id).due_at
    response = client.post(f"/operator/{attempt_id}/reschedule", {"when": "2026-11-24T15:30"})
    assert response.status_code == 303 and response.headers["location"] == "/operator?done=rescheduled"
    attempts = stored(database, case_no)["attempts"]
    assert [(a[1], a[2]) for a in attempts] == [("operator", "cancelled"), ("operator", "due")]
    assert attempts[1][3] == datetime(2026, 11, 24, 7, 30, tzinfo=UTC)  # 15:30 in Asia/Shanghai
    with database.session() as session:
        found = session.get(Callback, callback_id)
        assert found.status == "in_progress" and found.due_at == deadline  # its own deadline does not move
    # the next one: a time at lunch goes to the first calling hour after it; one in the past is refused
    second, second_case, _ = held_case(database)
    assert second != attempt_id
    past = client.post(f"/operator/{second}/reschedule", {"when": "2026-11-23T09:00"})
    assert past.status_code == 400 and "晚于当前时间" in past.text
    assert client.post(f"/operator/{second}/reschedule", {"when": "not a time"}).status_code == 400
    assert [a[2] for a in stored(database, second_case)["attempts"]] == ["in_progress"]
    assert client.post(f"/operator/{second}/reschedule", {"when": "2026-11-24T12:30"}).status_code == 303
    assert stored(database, second_case)["attempts"][1][3] == datetime(2026, 11, 24, 6, 0, tzinfo=UTC)  # 14:00


# ---- the queue -------------------------------------------------------------------------------------------------


def test_two_operators_never_hold_the_same_callback_and_a_lapsed_hold_can_be_taken(
    cli, workdir, monkeypatch, console, database, second_operator,
):
    operator_round(cli, workdir, monkeypatch, cases=2)
    first, second = console("op"), console("op2")
    take(first)
    take(second)
    mine, theirs = held_case(database, "op"), held_case(database, "op2")
    assert mine[0] != theirs[0]
    third = console("sup")  # the supervisory unit may call too; nothing is left
    assert third.post("/operator/take").headers["location"] == "/operator?done=empty"
    # taking again keeps the one held
    take(first)
    assert held_case(database, "op") == mine
    # released, it goes back to the queue for anyone
    assert first.post(f"/operator/{mine[0]}/release").headers["location"] == "/operator?done=released"
    assert third.post("/operator/take").headers["location"] == "/operator"
    assert held_case(database, "sup")[0] == mine[0]
    # a hold left alone past its time may be taken by another operator, and is no longer the first holder's
    with database.session() as session:
        session.execute(update(Attempt).where(Attempt.id == theirs[0])
                        .values(assigned_at=datetime(2026, 11, 23, 1, 0, tzinfo=UTC) - queue.HOLD))
    assert first.post("/operator/take").headers["location"] == "/operator"
    assert held_case(database, "op")[0] == theirs[0]
    lost = second.post(f"/operator/{theirs[0]}/result", answers_form(["满意"] * 6))
    assert lost.status_code == 404 and stored(database, theirs[1])["contact"] is None


def test_operators_taking_at_the_same_moment_each_get_their_own_callback(
    cli, workdir, monkeypatch, database, people,
):
    operator_round(cli, workdir, monkeypatch, cases=3)
    names = [f"op{i}" for i in range(5)]
    with database.session() as session:
        for name in names:
            add_user(session, NewUser(name, "operator", (), PASSWORD), datetime(2026, 11, 2, tzinfo=UTC))
    from callbackd.core.settings import load_settings

    settings, now = load_settings(), datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    taken: dict[str, int | None] = {}
    start = threading.Barrier(len(names))

    def take_one(name: str) -> None:
        start.wait()
        with database.session() as session:
            taken[name] = queue.take_next(session, settings, user(session, name), now)

    threads = [threading.Thread(target=take_one, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = [attempt for attempt in taken.values() if attempt is not None]
    assert len(got) == 3 and len(set(got)) == 3  # three callbacks, three operators, two left without


def test_outside_calling_hours_nothing_is_taken(cli, workdir, monkeypatch, console, database):
    operator_round(cli, workdir, monkeypatch, cases=1)
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-23T12:30:00+08:00")  # lunch
    client = console("op")
    page = client.get("/operator")
    assert "当前不在回访时段" in page.text and 'action="/operator/take"' not in page.text
    assert client.post("/operator/take").headers["location"] == "/operator?done=empty"
    assert count(database, Attempt, Attempt.assigned_to.is_not(None)) == 0


def test_a_callback_of_another_channel_is_never_on_the_queue(cli, workdir, monkeypatch, console, database):
    operator_round(cli, workdir, monkeypatch, cases=2, channel="simulator")
    client = console("op")
    assert "（0）" in client.get("/operator").text
    assert client.post("/operator/take").headers["location"] == "/operator?done=empty"


# ---- the number: masked, but to the holder who asks --------------------------------------------------------------


def test_a_reveal_is_audited_with_the_operators_name_and_the_number_is_masked_everywhere_else(
    cli, workdir, monkeypatch, console, database, second_operator,
):
    operator_round(cli, workdir, monkeypatch, cases=2)
    client = console("op")
    take(client)
    attempt_id, case_no, callback_id = held_case(database)
    phone = phone_for(int(case_no[1:]))
    masked = client.get("/operator")
    assert phone not in masked.text and phone[-4:] in masked.text and "显示号码" in masked.text
    assert reveals(database) == []

    shown = client.post(f"/operator/{attempt_id}/reveal")
    assert shown.status_code == 200 and phone in shown.text
    assert reveals(database) == [("console:op", f"callback {callback_id}")]
    # nowhere else: the operator's page again, the callback page, the supervisor's pages
    assert phone not in client.get("/operator").text
    assert phone not in client.get(f"/callbacks/{callback_id}").text
    supervisor = console("sup")
    page = supervisor.get(f"/callbacks/{callback_id}")
    assert page.status_code == 200 and phone not in page.text and phone[-4:] in page.text
    with database.session() as session:
        round_id = session.get(Callback, callback_id).round_id
    assert phone not in supervisor.get(f"/rounds/{round_id}").text
    # another operator (or the supervisor) cannot reveal a callback they do not hold: 404, nothing audited
    other = console("op2")
    assert other.post(f"/operator/{attempt_id}/reveal").status_code == 404
    assert supervisor.post(f"/operator/{attempt_id}/reveal").status_code == 404
    assert len(reveals(database)) == 1


# ---- the callback page ---------------------------------------------------------------------------------------------


def test_the_callback_page_shows_attempts_answers_and_the_rectification(
    cli, workdir, monkeypatch, console, database,
):
    operator_round(cli, workdir, monkeypatch, cases=1)
    client = console("op")
    take(client)
    attempt_id, case_no, callback_id = held_case(database)
    assert client.post(f"/operator/{attempt_id}/result",
                       answers_form(["不满意", *["满意"] * 5], "等了很久")).status_code == 303
    page = console("sup").get(f"/callbacks/{callback_id}")
    assert page.status_code == 200
    text = page.text
    assert case_no in text and "社保窗口" in text and "等了很久" in text and "服务态度" in text
    assert "operator" in text and "op" in text  # the channel and who made the call
    assert "整改 #" in text and "开启整改" in text  # the 不满意 opened a rectification
    # the operator who made the call may still read it
    assert client.get(f"/callbacks/{callback_id}").status_code == 200


def test_an_operator_gets_404_for_a_callback_not_theirs(cli, workdir, monkeypatch, console, database,
                                                       second_operator):
    operator_round(cli, workdir, monkeypatch, cases=2)
    holder, other = console("op"), console("op2")
    take(holder)
    attempt_id, _, callback_id = held_case(database)
    assert other.get(f"/callbacks/{callback_id}").status_code == 404  # held by someone else
    with database.session() as session:
        waiting = session.scalar(select(Attempt.callback_id).where(Attempt.assigned_to.is_(None)))
    assert other.get(f"/callbacks/{waiting}").status_code == 404  # on the queue: theirs to read once taken
    for action in ("result", "outcome", "reschedule", "release", "reveal"):
        assert other.post(f"/operator/{attempt_id}/{action}", {"outcome": "busy", "when": "2026-11-24T15:00",
                                                               "q_attitude": "1"}).status_code == 404
    assert stored(database, "K0")["contact"] is None and stored(database, "K1")["contact"] is None
    # a callback of another channel's round is never an operator's
    monkeypatch.setenv("CALLBACKD_NOW", "2026-11-30T10:00:00+08:00")
    assert cli("ledger", "import", write_csv(workdir / "m.csv", [case_row("S0", "医保窗口", phone=phone_for(50),
                                                                         resolved="2026-11-27 10:00:00")])).code == 0
    assert cli("round", "open", "--week", "2026-W49", "--channel", "simulator").code == 0
    with database.session() as session:
        simulated = session.scalar(select(Callback.id).join(Case, Case.id == Callback.case_id)
                                   .where(Case.case_no == "S0"))
    assert other.get(f"/callbacks/{simulated}").status_code == 404
    assert console("sup").get(f"/callbacks/{simulated}").status_code == 200


# ---- on-site forms ---------------------------------------------------------------------------------------------------


def onsite_token(client) -> str:
    found = re.search(r'name="form_token" value="([^"]+)"', client.get("/operator").text)
    assert found
    return found.group(1)


def test_an_onsite_form_is_stored_as_the_same_form_in_a_file_and_counts_once(
    cli, workdir, monkeypatch, console, database,
):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    client = console("op")
    levels = ["满意", "不满意", "基本满意", "满意", "满意", ""]
    form = {"window": "社保窗口", "date": "2026-11-20", **answers_form(levels, "叫号太慢"),
            "form_token": onsite_token(client)}
    saved = client.post("/operator/onsite", form)
    assert saved.status_code == 303 and saved.headers["location"] == "/operator?done=onsite"
    again = client.post("/operator/onsite", form)  # a second click on the same form
    assert again.headers["location"] == "/operator?done=onsite-again"
    path = write_csv(workdir / "f.csv", [["医保窗口", "2026-11-20", *levels, "叫号太慢"]], header=FORM_HEADER)
    assert cli("results", "import", path, "--source", "onsite", "--json").json()["imported"] == 1
    with database.session() as session:
        contacts = session.scalars(select(Contact).order_by(Contact.id)).all()
        assert len(contacts) == 2
        shapes = [(c.source, c.channel, c.contacted_at, c.suggestion, c.callback_id) for c in contacts]
        assert shapes[0] == shapes[1] and shapes[0][:2] == ("onsite", "onsite")
        answers = [sorted((a.question, a.level, a.raw, a.source, a.contacted_at)
                          for a in session.scalars(select(Answer).where(Answer.contact_id == c.id)))
                   for c in contacts]
        assert answers[0] == answers[1] and len(answers[0]) == 5
        rectified = [(r.trigger, r.reason, r.answers) for r in session.scalars(select(Rectification)
                                                                                .order_by(Rectification.id))]
        assert len(rectified) == 2 and rectified[0] == rectified[1]  # the 不满意 of each form


@pytest.mark.parametrize(("change", "message"), [
    ({"date": "2026-11-24"}, "in the future"),
    ({"window": "无此窗口"}, "无此窗口"),
    ({"form_token": ""}, "表单已失效"),
    ({"q_attitude": "", "q_efficiency": "", "q_rules": "", "q_off_book": "", "q_integrity": ""}, "no rated"),
])
def test_a_bad_onsite_form_is_refused_saying_what_to_fix(monkeypatch, console, database, change, message):
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    client = console("op")
    form = {"window": "社保窗口", "date": "2026-11-20", **answers_form(["满意"] * 5 + [""]),
            "form_token": onsite_token(client), **change}
    refused = client.post("/operator/onsite", form)
    assert refused.status_code == 400 and message in refused.text
    assert count(database, Contact) == 0


# ---- who may ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["win", "lead", "adm"])
def test_window_heads_leaders_and_admins_are_refused_every_operator_route(
    cli, workdir, monkeypatch, console, database, name,
):
    operator_round(cli, workdir, monkeypatch, cases=1)
    with database.session() as session:
        attempt_id, callback_id = session.execute(select(Attempt.id, Attempt.callback_id)).one()
    client = console(name)
    assert client.get("/operator").status_code == 403
    assert client.get(f"/callbacks/{callback_id}").status_code == 403
    for path in ("/operator/take", "/operator/onsite", f"/operator/{attempt_id}/reveal",
                 f"/operator/{attempt_id}/result", f"/operator/{attempt_id}/outcome",
                 f"/operator/{attempt_id}/reschedule", f"/operator/{attempt_id}/release"):
        assert client.post(path, {"outcome": "busy"}).status_code == 403, path
    assert count(database, Attempt, Attempt.assigned_to.is_not(None)) == 0 and reveals(database) == []


def test_posts_without_the_csrf_token_are_refused_and_change_nothing(cli, workdir, monkeypatch, console, database):
    operator_round(cli, workdir, monkeypatch, cases=2)
    client = console("op")
    assert client.post("/operator/take", csrf=False).status_code == 403
    assert count(database, Attempt, Attempt.assigned_to.is_not(None)) == 0
    take(client)
    attempt_id, case_no, _ = held_case(database)
    before = stored(database, case_no)
    for action, data in (("reveal", {}), ("result", answers_form(["满意"] * 6)), ("outcome", {"outcome": "busy"}),
                         ("reschedule", {"when": "2026-11-24T15:00"}), ("release", {})):
        assert client.post(f"/operator/{attempt_id}/{action}", data, csrf=False).status_code == 403, action
    assert client.post("/operator/onsite", {"window": "社保窗口", "date": "2026-11-20", "q_attitude": "1",
                                            "form_token": onsite_token(client)}, csrf=False).status_code == 403
    assert stored(database, case_no) == before and reveals(database) == [] and count(database, Contact) == 0
    assert held_case(database)[0] == attempt_id


def test_bad_ids_are_4xx(cli, workdir, monkeypatch, console, database):
    operator_round(cli, workdir, monkeypatch, cases=1)
    client = console("op")
    supervisor = console("sup")
    for path in ("/callbacks/abc", "/callbacks/0", "/callbacks/-3", "/callbacks/99999999999"):
        assert supervisor.get(path).status_code == 400, path
    assert supervisor.get("/callbacks/987654").status_code == 404
    for path in ("/operator/abc/result", "/operator/0/reveal", "/operator/99999999999/outcome"):
        assert client.post(path, {"outcome": "busy"}).status_code == 400, path
    for action in ("result", "outcome", "reveal", "reschedule", "release"):
        assert client.post(f"/operator/987654/{action}", {"outcome": "busy", "q_attitude": "1",
                                                          "when": "2026-11-24T15:00"}).status_code == 404, action
    assert client.get("/operator?done=<script>").status_code == 200


def test_a_supervisor_opens_the_queue_page_and_its_menu_links_there(console):
    page = console("sup").get("/operator")
    assert page.status_code == 200 and 'href="/operator"' in page.text and "录入现场征求意见表" in page.text



def test_one_operator_taking_from_two_tabs_at_once_holds_one_callback(cli, workdir, monkeypatch, database, people):
    operator_round(cli, workdir, monkeypatch, cases=3)
    from callbackd.core.settings import load_settings

    settings, now = load_settings(), datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
    taken: list[int | None] = []
    start = threading.Barrier(6)

    def take_one() -> None:
        start.wait()
        with database.session() as session:
            taken.append(queue.take_next(session, settings, user(session, "op"), now))

    threads = [threading.Thread(target=take_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert count(database, Attempt, Attempt.assigned_to.is_not(None)) == 1  # the others stay on the queue
    assert len({attempt for attempt in taken if attempt is not None}) == 1
