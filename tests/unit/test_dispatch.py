"""The callback state machine through real channels: the simulator, retries, fallback to operators, the call
sheet and operator results, opt-outs, duplicate deliveries and atomic claims."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from openpyxl import load_workbook
from sqlalchemy import event, func, select, update

from callbackd.api.manager import load_plugins
from callbackd.contact import dispatch
from callbackd.contact.conversation import open_conversation
from callbackd.core.settings import load_settings
from callbackd.store.db import Database
from callbackd.store.models import Answer, Attempt, AuditEvent, Callback, Contact, OptOut, Rectification
from tests.conftest import case_row, phone_for, write_csv

NOW = "2026-11-23T10:00:00+08:00"


def simulator(workdir: Path, **table: object) -> None:
    lines = [f"{key} = {value!r}".replace("'", '"') for key, value in table.items()]
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text("[channels.simulator]\n" + "\n".join(lines) + "\n",
                                                       encoding="utf-8")


def start_round(cli, workdir: Path, monkeypatch, cases: int = 6, *channels: str) -> None:
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row(f"K{i}", "社保窗口", phone=phone_for(i)) for i in range(cases)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    args = [a for c in channels for a in ("--channel", c)]
    opened = cli("round", "open", "--week", "2026-W48", "--seed", "t", *args)
    assert opened.code == 0, opened.err


def dispatch_at(cli, monkeypatch, when: str) -> dict:
    monkeypatch.setenv("CALLBACKD_NOW", when)
    run = cli("dispatch", "--once", "--json")
    assert run.code == 0, run.err
    return run.json()


def states(cli) -> dict[str, str]:
    return {c["case_id"]: c["status"] for c in cli("callbacks", "list", "--json").json()}


def db() -> Database:
    return Database(load_settings().database_url)


def test_simulated_applicants_answer_and_are_labelled_as_simulation(cli, workdir, monkeypatch):
    simulator(workdir, no_answer_rate=0.0, refuse_rate=0.0, hang_up_rate=0.0)
    start_round(cli, workdir, monkeypatch)
    report = dispatch_at(cli, monkeypatch, NOW)
    assert report["scheduled"] == 6 and report["outcomes"] == {"completed": 6}
    assert set(states(cli).values()) == {"completed"}
    database = db()
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Answer).where(Answer.level.is_not(None))) == 36
        assert set(s.scalars(select(Contact.simulated))) == {True}
    database.dispose()
    scored = cli("score", "--period", "2026-W48", "--json").json()
    assert scored["simulated"] is True and scored["windows"][0]["contacts"] == 6
    assert dispatch_at(cli, monkeypatch, NOW)["placed"] == 0  # nothing twice


def test_the_embedded_dispatcher_closes_a_round_once_every_callback_is_final(cli, workdir, monkeypatch):
    simulator(workdir, no_answer_rate=1.0)
    start_round(cli, workdir, monkeypatch, 2)
    first = dispatch_at(cli, monkeypatch, NOW)
    assert first["outcomes"] == {"no_answer": 2} and first["rounds_closed"] == []
    assert [r["status"] for r in cli("round", "list", "--json").json()] == ["open"]
    later = datetime.fromisoformat(NOW)
    closed: list[int] = []
    for _ in range(10):  # retried until unreachable
        later += timedelta(hours=3)
        closed += dispatch_at(cli, monkeypatch, later.isoformat())["rounds_closed"]
        if set(states(cli).values()) <= {"unreachable"}:
            break
    assert set(states(cli).values()) == {"unreachable"}
    rounds = cli("round", "list", "--json").json()
    assert [r["status"] for r in rounds] == ["closed"] and closed == [rounds[0]["round"]]
    assert dispatch_at(cli, monkeypatch, later.isoformat())["rounds_closed"] == []  # closed once


def test_no_answer_is_retried_then_unreachable_with_its_reason(cli, workdir, monkeypatch):
    simulator(workdir, no_answer_rate=1.0)
    start_round(cli, workdir, monkeypatch, 2)
    assert dispatch_at(cli, monkeypatch, NOW)["outcomes"] == {"no_answer": 2}
    assert dispatch_at(cli, monkeypatch, "2026-11-23T11:00:00+08:00")["placed"] == 0  # not due before 2 h
    # 12:00 falls in the lunch break: the retry waits for the 14:00 calling hour
    assert dispatch_at(cli, monkeypatch, "2026-11-23T13:00:00+08:00")["placed"] == 0
    assert dispatch_at(cli, monkeypatch, "2026-11-23T14:00:00+08:00")["outcomes"] == {"no_answer": 2}
    assert dispatch_at(cli, monkeypatch, "2026-11-23T16:00:00+08:00")["outcomes"] == {"no_answer": 2}
    listed = cli("callbacks", "list", "--json").json()
    assert {(c["status"]) for c in listed} == {"unreachable"}
    database = db()
    with database.session() as s:
        assert set(s.scalars(select(Callback.reason))) == {"no_answer"}
        assert s.scalar(select(func.count()).select_from(Attempt)) == 6
    database.dispose()


def test_the_same_seed_gives_the_same_simulated_answers(cli, workdir, monkeypatch):
    # by callback: contact ids differ between databases (PostgreSQL takes one for each attempt when it is taken)
    answers_by_callback = select(Contact.callback_id, Answer.question, Answer.raw).join(
        Contact, Contact.id == Answer.contact_id)
    simulator(workdir, hang_up_rate=0.2, no_answer_rate=0.3)
    start_round(cli, workdir, monkeypatch, 12)
    dispatch_at(cli, monkeypatch, NOW)
    database = db()
    with database.session() as s:
        first = sorted(s.execute(answers_by_callback).all())
    database.dispose()
    assert first
    second_db = Database(f"sqlite:///{workdir / 'again.db'}")
    monkeypatch.setenv("CALLBACKD_DATABASE_URL", f"sqlite:///{workdir / 'again.db'}")
    start_round(cli, workdir, monkeypatch, 12)
    dispatch_at(cli, monkeypatch, NOW)
    with second_db.session() as s:
        assert sorted(s.execute(answers_by_callback).all()) == first
    second_db.dispose()


def test_fallback_to_operators_call_sheet_and_results(cli, workdir, monkeypatch):
    simulator(workdir, no_answer_rate=1.0)
    start_round(cli, workdir, monkeypatch, 3, "simulator", "operator")
    for hour in ("10:00", "14:00", "16:00"):
        dispatch_at(cli, monkeypatch, f"2026-11-23T{hour}:00+08:00")
    # three calls today reached each number's daily limit: the operators call on the next working day
    assert dispatch_at(cli, monkeypatch, "2026-11-23T16:00:00+08:00")["held"] == 3
    assert dispatch_at(cli, monkeypatch, "2026-11-24T09:00:00+08:00")["outcomes"] == {"in_progress": 3}
    assert set(states(cli).values()) == {"in_progress"}

    run = cli("callsheet", "--round", "1", "--format", "xlsx", "--out", "sheet.xlsx")
    assert run.code == 0, run.err
    sheet = load_workbook(workdir / "sheet.xlsx").active
    header = [c.value for c in sheet[2]]
    assert header[:6] == ["窗口", "办件编号", "事项名称", "申请人", "联系电话", "回访话术"]
    rows = list(sheet.iter_rows(min_row=3, values_only=True))
    assert {r[4] for r in rows} == {phone_for(i) for i in range(3)}  # the operator's view: full numbers, as dialled
    assert "社保卡补办" in rows[0][5]

    # the operators fill in the sheet's answer columns and import it as it is
    filled = [header[1:2] + header[6:]]
    filled.append(["K0", "2026-11-24 10:10", "满意", "满意", "基本满意", "满意", "满意", "非常满意", "态度很好"])
    filled.append(["K1", "2026-11-24 10:20", "满意", "不满意", "", "", "", "", ""])
    filled.append(["K2", "2026-11-24 10:30", "", "", "", "", "", "", ""])
    filled.append(["K9", "2026-11-24 10:40", "满意", "", "", "", "", "", ""])
    path = write_csv(workdir / "results.csv", filled[1:], header=filled[0])
    report = cli("results", "import", path, "--source", "operator", "--json").json()
    assert (report["imported"], report["unchanged"]) == (3, 0)
    assert [(e["line"], e["case_id"]) for e in report["errors"]] == [(5, "K9")]
    # K2 was not reached: like any channel, the operator gets another try later
    assert states(cli) == {"K0": "completed", "K1": "partial", "K2": "in_progress"}
    database = db()
    with database.session() as s:
        retry = s.scalars(select(Attempt).order_by(Attempt.id.desc())).first()
        assert (retry.channel, retry.status) == ("operator", "due")
    database.dispose()

    again = cli("results", "import", path, "--source", "operator", "--json").json()
    assert (again["imported"], again["updated"], again["unchanged"]) == (0, 0, 3)

    filled[1][3] = "不满意"
    changed = cli("results", "import", write_csv(workdir / "r2.csv", filled[1:], header=filled[0]),
                  "--source", "operator", "--json").json()
    assert changed["updated"] == 1
    database = db()
    with database.session() as s:
        raws = list(s.execute(select(Answer.level, Answer.raw).join(Contact).where(Contact.channel == "operator",
                                                                                   Answer.question == "overall")))
        assert [tuple(r) for r in raws] == [("满意", "非常满意")]  # the five-level word kept raw
        edits = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "answer.edit")))
        reveals = list(s.scalars(select(AuditEvent).where(AuditEvent.action == "phone.reveal")))
        assert len(edits) == 1 and len(reveals) == 1
    database.dispose()


def test_an_opt_out_closes_every_open_callback_of_the_number(cli, workdir, monkeypatch):
    start_round(cli, workdir, monkeypatch, 3)
    database = db()
    with database.session() as s:
        s.add(OptOut(phone="+86" + phone_for(1), source="sms", created_at=datetime(2026, 11, 23, tzinfo=UTC)))
    database.dispose()
    dispatch_at(cli, monkeypatch, NOW)
    assert states(cli)["K1"] == "opted_out"


def test_claims_are_atomic_and_repeated_digits_change_nothing(cli, workdir, monkeypatch):
    start_round(cli, workdir, monkeypatch, 1, "operator")
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    (attempt_id,) = dispatch.tick(database, settings, plugins, now).claimed
    assert dispatch.place_queued(database, settings, plugins, attempt_id, now) == dispatch.Placement("in_progress")
    assert dispatch.place_queued(database, settings, plugins, attempt_id, now) is None  # taken already
    for _ in range(2):
        with database.session() as s:
            conversation = open_conversation(s, settings, plugins, attempt_id, now + timedelta(minutes=1))
            assert conversation.press("1", "attitude") is not None
            assert conversation.press("9", "efficiency") is None
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 1
        conversation = open_conversation(s, settings, plugins, attempt_id, now)
        conversation.finish("hung_up")
        conversation.finish("no_answer")  # a late duplicate status changes nothing
    with database.session() as s:
        assert s.get(Callback, 1).status == "partial"
        assert s.get(Attempt, attempt_id).status == "partial"
    database.dispose()


SPY = """
from callbackd.api.hookspecs import hookimpl

SEEN = []


@hookimpl
def answer_recorded(answer):
    SEEN.append(("answer", answer.question, answer.level))


@hookimpl
def callback_closed(callback):
    SEEN.append(("closed", callback.case_no, callback.status))
"""

FLAKY = """
from callbackd.api.channels import StartResult
from callbackd.api.hookspecs import hookimpl


class Flaky:
    name = "flaky"
    kind = "voice"

    def start(self, conversation):
        if conversation.case_no == "K0":
            raise ConnectionError("provider unreachable")
        return StartResult.placed("F-1")


@hookimpl
def register_channels(register):
    register(Flaky())
"""


def test_a_channel_that_raises_fails_its_attempt_and_the_others_still_go_out(cli, workdir, monkeypatch):
    from tests.unit.test_plugins import install_plugin

    install_plugin(workdir / "site", "flaky_plugin", FLAKY, monkeypatch)
    start_round(cli, workdir, monkeypatch, 3, "flaky")
    run = cli("dispatch", "--once")
    assert run.code == 1
    assert "flaky_plugin" in run.err and "provider unreachable" in run.err and "attempt" in run.err
    database = db()
    with database.session() as s:
        attempts = {a.callback_id: a for a in s.scalars(select(Attempt).where(Attempt.number == 1))}
        retry = s.scalars(select(Attempt).where(Attempt.number == 2)).all()
    database.dispose()
    assert sorted(a.status for a in attempts.values()) == ["failed", "in_progress", "in_progress"]
    assert len(retry) == 1 and retry[0].status == "due"  # the failed one is tried again later


def test_plugins_hear_only_about_committed_work(cli, workdir, monkeypatch):
    from tests.unit.test_plugins import install_plugin

    install_plugin(workdir / "site", "spy_plugin", SPY, monkeypatch)
    start_round(cli, workdir, monkeypatch, 2, "operator")
    dispatch_at(cli, monkeypatch, NOW)
    import spy_plugin

    header = ["办件编号", "回访时间", "服务态度", "办事效率", "按章办事", "体外循环", "廉洁自律", "总体评价",
              "意见建议"]
    rows = [["K0", "2026-11-23 15:00", *["满意"] * 6, ""], ["K9", "2026-11-23 15:00", "满意", "", "", "", "", "", ""]]
    strict = cli("results", "import", write_csv(workdir / "r.csv", rows, header=header), "--source", "operator",
                 "--strict")
    assert strict.code == 1 and spy_plugin.SEEN == []  # rolled back: nothing to tell
    assert cli("results", "import", workdir / "r.csv", "--source", "operator").code == 0
    assert spy_plugin.SEEN.count(("closed", "K0", "completed")) == 1
    assert len([e for e in spy_plugin.SEEN if e[0] == "answer"]) == 6


def test_nothing_is_recorded_through_a_closed_callback(cli, workdir, monkeypatch):
    start_round(cli, workdir, monkeypatch, 1, "operator")
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    dispatch_at(cli, monkeypatch, NOW)
    with database.session() as s:
        attempt_id = s.scalar(select(Attempt.id))
        dispatch.record_opt_out(s, plugins, "+86" + phone_for(0), "sms", now, settings=settings)
    with database.session() as s:
        late = open_conversation(s, settings, plugins, attempt_id, now)
        assert late.press("1", "attitude") is None and late.record("efficiency", "满意", "满意") is False
        late.finish("no_answer")
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Answer)) == 0
        assert s.get(Callback, 1).status == "opted_out"
        assert s.scalar(select(func.count()).select_from(Attempt)) == 1  # no retry reopened it
    database.dispose()


def test_operator_results_cannot_overwrite_an_applicants_own_answers(cli, workdir, monkeypatch):
    simulator(workdir, no_answer_rate=0.0, refuse_rate=0.0, hang_up_rate=0.0)
    start_round(cli, workdir, monkeypatch, 1)
    dispatch_at(cli, monkeypatch, NOW)
    header = ["办件编号", "回访时间", "服务态度"]
    path = write_csv(workdir / "r.csv", [["K0", "2026-11-23 16:00", "不满意"]], header=header)
    run = cli("results", "import", path, "--source", "operator", "--json").json()
    assert run["updated"] == 0 and "through simulator" in run["errors"][0]["reason"]


METERED = """
import time

from callbackd.api.channels import StartResult
from callbackd.api.hookspecs import hookimpl

STARTS = []


class Metered:
    name = "metered"
    kind = "voice"

    def rate_limit(self, settings):
        return "test-account:calls", 4.0

    def start(self, conversation):
        STARTS.append(time.monotonic())
        return StartResult.placed(f"M-{conversation.attempt_id}")


@hookimpl
def register_channels(register):
    register(Metered())
"""


def test_the_dispatcher_keeps_a_channel_under_its_provider_rate(cli, workdir, monkeypatch):
    from tests.unit.test_plugins import install_plugin

    install_plugin(workdir / "site", "metered_plugin", METERED, monkeypatch)
    start_round(cli, workdir, monkeypatch, 10, "metered")
    assert dispatch_at(cli, monkeypatch, NOW)["outcomes"] == {"in_progress": 10}
    import metered_plugin

    starts = metered_plugin.STARTS
    assert len(starts) == 10
    # never more than 4 placed within any one second (the starts lag their admissions by a little database work,
    # so the window checked is a little shorter than the limiter's)
    assert all(sum(1 for t in starts if first <= t < first + 0.8) <= 4 for first in starts)
    assert starts[-1] - starts[0] >= 1.8  # ten at four a second need at least two more windows


# ---- ticks, leases and repeated deliveries: what the Celery tasks rely on ---------------------------------


def test_a_tick_claims_what_is_due_once_and_a_second_tick_finds_nothing(cli, workdir, monkeypatch):
    simulator(workdir, no_answer_rate=0.0, refuse_rate=0.0, hang_up_rate=0.0)
    start_round(cli, workdir, monkeypatch, 4)
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    first = dispatch.tick(database, settings, plugins, now)
    second = dispatch.tick(database, settings, plugins, now)
    assert first.scheduled == 4 and len(first.claimed) == 4
    assert second.scheduled == 0 and second.claimed == []
    with database.session() as s:
        assert set(s.scalars(select(Attempt.status))) == {"queued"}
    # the same message delivered twice: the second delivery places nothing
    placements = [dispatch.place_queued(database, settings, plugins, first.claimed[0], now) for _ in range(2)]
    assert placements[0] == dispatch.Placement("completed") and placements[1] is None
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 1
    database.dispose()


def test_a_lapsed_lease_puts_the_attempt_back_and_a_provider_known_one_stays(cli, workdir, monkeypatch):
    start_round(cli, workdir, monkeypatch, 3)
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    claimed = dispatch.tick(database, settings, plugins, now).claimed
    with database.session() as s:  # a worker took the second, asked its provider, and was killed
        s.execute(update(Attempt).where(Attempt.id == claimed[1]).values(status="placing"))
        s.execute(update(Attempt).where(Attempt.id == claimed[2]).values(status="placing", provider_id="CA1"))
    lease = timedelta(seconds=settings.dispatch.lease_seconds)
    assert dispatch.tick(database, settings, plugins, now + lease).reclaimed == 0  # not yet
    later = dispatch.tick(database, settings, plugins, now + lease + timedelta(seconds=1))
    # the queued one is claimed again; the one taken is in doubt, and a simulator without a journal cannot tell
    # whether it placed it: it ends failed, never placed again blindly, and its retry waits its turn
    assert later.reclaimed == 2 and later.reconciled == 1 and later.claimed == [claimed[0]]
    with database.session() as s:
        assert s.scalar(select(Attempt.status).where(Attempt.id == claimed[2])) == "placing"
        status, detail = s.execute(select(Attempt.status, Attempt.detail).where(Attempt.id == claimed[1])).one()
        assert status == "failed" and detail.startswith("placing outcome unknown: the simulator keeps no journal")
        assert s.scalar(select(func.count()).select_from(Attempt)) == 4  # the same ones, and that one's retry
    database.dispose()


def test_a_tick_takes_a_round_of_thousands_with_statements_of_a_few_parameters(cli, workdir, monkeypatch):
    """Past one IN list's slice (500), every pending callback gets one first attempt and the due ones are claimed;
    an opted-out number closes without one. On PostgreSQL each id list is one array parameter, so no statement
    carries a placeholder a value (its driver would parse thousands of them on every tick)."""
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text("[dispatch]\nbatch = 1100\n", encoding="utf-8")
    monkeypatch.setenv("CALLBACKD_NOW", NOW)
    rows = [case_row(f"K{i}", f"窗口{i // 20:02d}", phone=phone_for(i)) for i in range(1210)]
    assert cli("ledger", "import", write_csv(workdir / "l.csv", rows)).code == 0
    assert cli("round", "open", "--week", "2026-W48", "--seed", "t").code == 0, "round open"
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    with database.session() as s:
        s.add(OptOut(phone="+86" + phone_for(613), source="operator", note="", created_at=now))
    parameters: list[int] = []
    event.listen(database.engine, "before_cursor_execute",
                 lambda conn, cursor, statement, params, context, many: parameters.append(len(params or ())))
    report = dispatch.tick(database, settings, plugins, now)
    assert report.scheduled == 1209 and len(report.claimed) == 1100 and len(set(report.claimed)) == 1100
    with database.session() as s:
        assert s.scalar(select(func.count(func.distinct(Attempt.callback_id)))) == 1209
        assert s.scalar(select(func.count()).select_from(Attempt)) == 1209
        assert s.scalar(select(func.count()).select_from(Attempt).where(Attempt.status == "queued")) == 1100
        assert s.scalar(select(Callback.status).where(Callback.phone == "+86" + phone_for(613))) == "opted_out"
        assert s.scalar(select(func.count()).select_from(Callback).where(Callback.status == "in_progress")) == 1209
    if database.engine.dialect.name == "postgresql":
        assert max(parameters) <= 10
    assert dispatch.tick(database, settings, plugins, now).scheduled == 0  # nothing twice
    database.dispose()


def test_a_tick_outside_calling_hours_holds_everything_to_the_next_slot(cli, workdir, monkeypatch):
    start_round(cli, workdir, monkeypatch, 3)
    settings, plugins, database = load_settings(), load_plugins(), db()
    with database.session() as s:  # due at 10:00, and nobody ticked until the evening
        assert dispatch.schedule_new(s, settings, plugins, datetime(2026, 11, 23, 2, tzinfo=UTC)) == 3
    evening = datetime(2026, 11, 23, 13, tzinfo=UTC)  # 21:00 local
    report = dispatch.tick(database, settings, plugins, evening)
    assert report.claimed == [] and report.held == 3
    with database.session() as s:
        due = set(s.scalars(select(Attempt.due_at)))
    assert due == {datetime(2026, 11, 24, 1, tzinfo=UTC)}  # 09:00 local the next working day
    database.dispose()


def test_placing_that_raises_ends_the_attempt_failed_and_reports_it(cli, workdir, monkeypatch):
    simulator(workdir, no_answer_rate="often")  # a bad table makes the channel raise when it is used
    start_round(cli, workdir, monkeypatch, 1)
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    (attempt_id,) = dispatch.tick(database, settings, plugins, now).claimed
    placement = dispatch.place_queued(database, settings, plugins, attempt_id, now)
    assert placement is not None and placement.state == "failed"
    assert placement.error is not None and "no_answer_rate" in placement.error
    with database.session() as s:
        statuses = list(s.scalars(select(Attempt.status).order_by(Attempt.number)))
    assert statuses == ["failed", "due"]  # its retry follows
    database.dispose()


LEAKY = """
from callbackd.api.hookspecs import hookimpl

class Leaky:
    name = "leaky"
    kind = "voice"

    def start(self, conversation):
        raise RuntimeError(f"gateway refused {conversation.phone} (national {conversation.phone[3:]})")

@hookimpl
def register_channels(register):
    register(Leaky())
"""


def test_a_plugins_error_naming_the_number_is_kept_and_reported_masked(cli, workdir, monkeypatch):
    from tests.unit.test_plugins import install_plugin

    install_plugin(workdir / "site", "leaky_channel", LEAKY, monkeypatch)
    start_round(cli, workdir, monkeypatch, 1, "leaky")
    run = cli("dispatch", "--once", "--json")
    number = phone_for(0)
    assert run.code == 1 and "gateway refused" in run.err and number not in run.err + run.out
    assert "139****0000" in run.err
    database = db()
    with database.session() as s:
        detail = s.scalar(select(Attempt.detail).where(Attempt.number == 1))
    database.dispose()
    assert detail is not None and "gateway refused" in detail and number not in detail


def test_a_worker_whose_lease_ran_out_leaves_the_attempt_to_the_worker_that_took_it_since(cli, workdir, monkeypatch):
    simulator(workdir, no_answer_rate=0.0, refuse_rate=0.0, hang_up_rate=0.0)
    start_round(cli, workdir, monkeypatch, 1)
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    (attempt_id,) = dispatch.tick(database, settings, plugins, now).claimed
    first_take, second_take = now + timedelta(seconds=1), now + timedelta(seconds=400)
    with database.session() as s:  # taken at first_take, reclaimed after its lease, taken again at second_take
        s.execute(update(Attempt).where(Attempt.id == attempt_id).values(status="placing", started_at=second_take))
    with database.session() as s:
        assert dispatch.start_claimed(s, settings, plugins, attempt_id, now, first_take) == ("placing", None)
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 0  # the first worker placed nothing
        # the simulated survey happened inside start: its outcome and the channel's word are in this transaction
        assert dispatch.start_claimed(s, settings, plugins, attempt_id, now, second_take) == ("completed", None)
    with database.session() as s:
        assert s.scalar(select(Attempt.provider_id).where(Attempt.id == attempt_id)) == f"SIM-{attempt_id}"
    database.dispose()


def claimed_by_a_tick(cli, workdir: Path, monkeypatch, cases: int, **simulated: object) -> tuple:
    """A round of `cases` simulated callbacks whose first attempts a tick has claimed, every applicant answering
    (unless `simulated` says otherwise): (settings, plugins, database, the claimed ids, now)."""
    simulator(workdir, **{"no_answer_rate": 0.0, "refuse_rate": 0.0, "hang_up_rate": 0.0, **simulated})
    start_round(cli, workdir, monkeypatch, cases)
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    return settings, plugins, database, dispatch.tick(database, settings, plugins, now).claimed, now


def test_a_chunk_is_taken_at_once_and_a_repeated_delivery_places_none_of_it(cli, workdir, monkeypatch):
    settings, plugins, database, claimed, now = claimed_by_a_tick(cli, workdir, monkeypatch, 4)
    with database.session() as s:  # another delivery took the second already
        s.execute(update(Attempt).where(Attempt.id == claimed[1]).values(status="placing", started_at=now))
    first = dispatch.place_many(database, settings, plugins, claimed, now)
    assert [p and p.state for p in first] == ["completed", None, "completed", "completed"]  # in the given order
    assert dispatch.place_many(database, settings, plugins, claimed, now) == [None] * 4
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Contact)) == 3
        provider_ids = dict(s.execute(select(Attempt.id, Attempt.provider_id)).all())
    assert provider_ids == {i: None if i == claimed[1] else f"SIM-{i}" for i in claimed}  # recorded with the outcome
    database.dispose()


def operator_call_under_way(cli, workdir: Path, monkeypatch) -> tuple:
    """One callback whose first attempt an operator has under way: (settings, plugins, database, its id, now)."""
    start_round(cli, workdir, monkeypatch, 1, "operator")
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    (attempt_id,) = dispatch.tick(database, settings, plugins, now).claimed
    dispatch.place_queued(database, settings, plugins, attempt_id, now)
    return settings, plugins, database, attempt_id, now


def test_digits_pressed_together_read_as_one_after_the_other(cli, workdir, monkeypatch):
    settings, plugins, database, attempt_id, now = operator_call_under_way(cli, workdir, monkeypatch)
    with database.session() as s:
        conversation = open_conversation(s, settings, plugins, attempt_id, now)
        first, *rest = conversation.survey.rating_questions()
        choices = conversation.press_all([
            ("", "1"),  # the current question: the first
            (first.key, "1"),  # the same digit again: its stored choice
            (first.key, "3"),  # another digit for an answered question: nothing
            ("", "9"),  # not a key of the scale: nothing, and the question stays open
            ("", "3"),  # the current question: the second
        ])
        assert [c and c.level for c in choices] == ["满意", "满意", None, None, "不满意"]
        assert conversation.answered_keys() == {first.key, rest[0].key}
        assert conversation.known_answers().rated == [(first.key, "满意", "满意"), (rest[0].key, "不满意", "不满意")]
    with database.session() as s:
        stored = dict(s.execute(select(Answer.question, Answer.level)).all())
        assert stored == {first.key: "满意", rest[0].key: "不满意"}
        again = open_conversation(s, settings, plugins, attempt_id, now)  # what a later webhook finds
        assert again.known_answers().rated == conversation.known_answers().rated
        assert again.press("1", rest[0].key) is None  # answered already
    database.dispose()


def test_closing_a_callback_ends_its_other_open_attempts(cli, workdir, monkeypatch):
    settings, plugins, database, attempt_id, now = operator_call_under_way(cli, workdir, monkeypatch)
    with database.session() as s:  # a second attempt of the same callback still waiting
        s.add(Attempt(callback_id=1, channel="operator", number=2, status="due", due_at=now, detail=""))
    with database.session() as s:
        conversation = open_conversation(s, settings, plugins, attempt_id, now, placing=True)
        conversation.press_all([(q.key, "1") for q in conversation.survey.rating_questions()])
        conversation.finish("completed")
    with database.session() as s:
        assert dict(s.execute(select(Attempt.number, Attempt.status)).all()) == {1: "completed",
                                                                                          2: "cancelled"}
    database.dispose()


def test_a_call_that_hangs_up_while_placed_is_recorded_and_its_retry_spaced(cli, workdir, monkeypatch):
    # the applicant hangs up at the first question while the simulator places the attempt: picking up, the
    # outcome and the provider's id are recorded, and the retry's spacing counts the attempt
    simulator(workdir, hang_up_rate=1.0, no_answer_rate=0.0, refuse_rate=0.0)
    start_round(cli, workdir, monkeypatch, 2)
    assert dispatch_at(cli, monkeypatch, NOW)["outcomes"] == {"hung_up": 2}
    database = db()
    with database.session() as s:
        tried = s.scalars(select(Attempt).where(Attempt.number == 1)).all()
        assert {(a.status, a.detail, a.provider_id == f"SIM-{a.id}", a.ended_at is not None) for a in tried} == {
            ("hung_up", "simulated applicant hung up", True, True)}
        assert set(s.scalars(select(Attempt.status).where(Attempt.number == 2))) == {"due"}
    database.dispose()
    assert dispatch_at(cli, monkeypatch, "2026-11-23T11:00:00+08:00")["placed"] == 0  # spaced from the first try
    assert dispatch_at(cli, monkeypatch, "2026-11-23T14:00:00+08:00")["outcomes"] == {"hung_up": 2}


def test_an_attempt_whose_turn_comes_late_finds_what_changed_since_the_take(cli, workdir, monkeypatch):
    # one call every two seconds: the second attempt's turn comes long after the message's attempts were taken,
    # and meanwhile its applicant's number opts out (an SMS reply to another survey, say)
    settings, plugins, database, (first, second), now = claimed_by_a_tick(cli, workdir, monkeypatch, 2,
                                                                          per_second=0.5)
    with database.session() as s:
        callback_of = dict(s.execute(select(Attempt.id, Attempt.callback_id)).tuples().all())
        phone = s.scalar(select(Callback.phone).where(Callback.id == callback_of[second]))
    placements: list = []
    placing = threading.Thread(target=lambda: placements.extend(
        dispatch.place_many(database, settings, plugins, [first, second], now)))
    placing.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with database.session() as s:
            if s.scalar(select(Callback.status).where(Callback.id == callback_of[first])) == "completed":
                s.add(OptOut(phone=phone, source="sms", created_at=now))
                break
        time.sleep(0.02)
    placing.join()
    assert [p.state for p in placements] == ["completed", "opted_out"]
    with database.session() as s:
        assert s.scalar(select(Callback.status).where(Callback.id == callback_of[second])) == "opted_out"
        assert s.scalar(select(func.count()).select_from(Contact)) == 1  # the second applicant was never called
    database.dispose()


def test_a_call_that_ends_while_placing_records_its_attempt_and_closes_its_callback(cli, workdir, monkeypatch):
    settings, plugins, database, (attempt_id,), now = claimed_by_a_tick(cli, workdir, monkeypatch, 1)
    assert dispatch.place_queued(database, settings, plugins, attempt_id, now).state == "completed"
    with database.session() as s:
        attempt = s.get(Attempt, attempt_id)
        callback = s.get(Callback, attempt.callback_id)
        assert (attempt.status, attempt.provider_id, attempt.ended_at) == ("completed", f"SIM-{attempt_id}", now)
        assert (callback.status, callback.reason, callback.closed_at) == ("completed", None, now)
        assert s.scalar(select(func.count()).select_from(Attempt)) == 1  # nothing follows a completed call
    assert dispatch.place_queued(database, settings, plugins, attempt_id, now) is None  # never placed twice
    database.dispose()


def answering_with(cli, workdir: Path, monkeypatch, cases: int, shares: str) -> tuple:
    """As `claimed_by_a_tick`, every applicant answering with the window's `shares` of 满意, 基本满意, 不满意 and
    leaving a suggestion."""
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(
        "[channels.simulator]\nno_answer_rate = 0.0\nrefuse_rate = 0.0\nhang_up_rate = 0.0\nsuggestion_rate = 1.0\n"
        f'profiles = {{ "社保窗口" = [{shares}] }}\n', encoding="utf-8")
    start_round(cli, workdir, monkeypatch, cases)
    settings, plugins, database = load_settings(), load_plugins(), db()
    now = datetime(2026, 11, 23, 2, tzinfo=UTC)
    return settings, plugins, database, dispatch.tick(database, settings, plugins, now).claimed, now


def test_a_placing_whose_survey_completes_records_the_whole_call(cli, workdir, monkeypatch):
    """The contact, its answers and suggestion, the attempt and the closed callback, whatever the database."""
    settings, plugins, database, claimed, now = answering_with(cli, workdir, monkeypatch, 4, "1.0, 0.0, 0.0")
    assert dispatch.place_queued(database, settings, plugins, claimed[0], now).state == "completed"
    assert [p and p.state for p in dispatch.place_many(database, settings, plugins, claimed[1:], now)] == [
        "completed"] * 3
    with database.session() as s:
        for attempt_id in claimed:
            attempt = s.get(Attempt, attempt_id)
            contact = s.scalar(select(Contact).where(Contact.callback_id == attempt.callback_id))
            assert contact is not None and contact.suggestion and contact.contacted_at == now
            assert contact.simulated and contact.channel == "simulator" and contact.source == "callback"
            answered = s.scalars(select(Answer).where(Answer.contact_id == contact.id)).all()
            assert len(answered) == 7 and sum(a.level is None for a in answered) == 1  # six ratings, the text
            assert (attempt.status, s.get(Callback, attempt.callback_id).status) == ("completed", "completed")
    database.dispose()


def test_a_dissatisfied_answer_while_placing_opens_a_rectification_naming_the_call(cli, workdir, monkeypatch):
    """Every applicant 不满意: each callback's rectification names its contact and is audited with its id."""
    settings, plugins, database, claimed, now = answering_with(cli, workdir, monkeypatch, 4, "0.0, 0.0, 1.0")
    assert dispatch.place_queued(database, settings, plugins, claimed[0], now).state == "completed"
    assert [p and p.state for p in dispatch.place_many(database, settings, plugins, claimed[1:], now)] == [
        "completed"] * 3
    with database.session() as s:
        rectifications = s.scalars(select(Rectification)).all()
        made = {(c.callback_id, c.id) for c in s.scalars(select(Contact))}
        assert len(rectifications) == 4 and {(r.callback_id, r.contact_id) for r in rectifications} == made
        assert {(r.trigger, r.status, r.opened_at) for r in rectifications} == {("dissatisfied", "open", now)}
        opened = {e.subject: e.detail for e in s.scalars(select(AuditEvent).where(
            AuditEvent.action == "rectification.open"))}
        assert opened == {f"rectification {r.id}": {"window_id": r.window_id, "trigger": "dissatisfied",
                                                     "case_type": r.case_type, "due": r.due_at.isoformat()}
                          for r in rectifications}
        assert s.scalar(select(func.count()).select_from(Answer).where(Answer.level == "不满意")) == 24
        assert all(c.suggestion for c in s.scalars(select(Contact)))
    database.dispose()
