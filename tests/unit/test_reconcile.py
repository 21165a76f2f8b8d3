"""Attempts in doubt: a dispatcher took an attempt for placing and stopped before it recorded the provider's word.
After the lease a tick asks the channel's provider (`lookup`), and only a provider that never placed the attempt
gets it again; a channel that cannot tell ends it failed, its placing outcome unknown, and the plan goes on."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update

from callbackd.api.manager import load_plugins
from callbackd.contact import dispatch
from callbackd.core.settings import load_settings
from callbackd.store.models import Attempt
from tests.conftest import phone_for
from tests.unit.test_dispatch import db, start_round
from tests.unit.test_plugins import install_plugin

NOW = datetime(2026, 11, 23, 2, tzinfo=UTC)  # 10:00 on a working Monday


def configure(workdir: Path, dispatch_table: str = "", simulator_table: str = "") -> Path:
    """Settings with a simulator journal (every applicant answers) and `[dispatch]` as given; the journal's path."""
    journal = workdir / "provider-calls.log"
    (workdir / "config").mkdir(exist_ok=True)
    (workdir / "config" / "callbackd.toml").write_text(
        f"[dispatch]\n{dispatch_table}\n[channels.simulator]\njournal = \"{journal}\"\nno_answer_rate = 0.0\n"
        f"refuse_rate = 0.0\nhang_up_rate = 0.0\n{simulator_table}\n", encoding="utf-8")
    return journal


def taken_and_abandoned(database, ids: list[int]) -> None:
    """A worker took these claimed attempts for placing (queued to placing, as its take does) and was killed."""
    with database.session() as s:
        s.execute(update(Attempt).where(Attempt.id.in_(ids)).values(status="placing"))


def attempts(database) -> list[tuple[int, str, str, str | None, str]]:
    with database.session() as s:
        return [tuple(row) for row in s.execute(select(
            Attempt.callback_id, Attempt.channel, Attempt.status, Attempt.provider_id, Attempt.detail
        ).order_by(Attempt.callback_id, Attempt.number))]


def test_an_attempt_in_the_journal_is_not_placed_again_and_one_missing_from_it_is(cli, workdir, monkeypatch):
    journal = configure(workdir)
    start_round(cli, workdir, monkeypatch, 2)
    settings, plugins, database = load_settings(), load_plugins(), db()
    first, second = dispatch.tick(database, settings, plugins, NOW).claimed
    taken_and_abandoned(database, [first, second])
    # the killed worker had called the first applicant (the provider's log has it), not yet the second
    journal.write_text(f"{first} K0\n", encoding="utf-8")
    lease = timedelta(seconds=settings.dispatch.lease_seconds)
    assert dispatch.tick(database, settings, plugins, NOW + lease).reconciled == 0  # the lease has not run out
    later = NOW + lease + timedelta(seconds=1)
    ticked = dispatch.tick(database, settings, plugins, later)
    assert ticked.reconciled == 2 and ticked.errors == [] and ticked.claimed == [second]
    assert dispatch.place_queued(database, settings, plugins, second, later) == dispatch.Placement("completed")
    assert Counter(line.split()[0] for line in journal.read_text(encoding="utf-8").splitlines()) == {
        str(first): 1, str(second): 1}  # nobody called twice
    with database.session() as s:
        status, provider_id, detail = s.execute(select(Attempt.status, Attempt.provider_id, Attempt.detail)
                                                .where(Attempt.id == first)).one()
        retry = s.execute(select(Attempt.status, Attempt.due_at).where(Attempt.number == 2)).one()
    # the provider's word: its call was cut off with the process; the usual retry follows, two hours on at least
    assert (status, provider_id) == ("failed", f"SIM-{first}") and "cut off" in detail
    assert retry.status == "due" and retry.due_at >= later + timedelta(minutes=settings.dispatch.retry_minutes)
    database.dispose()


def test_a_channel_that_cannot_look_up_ends_the_attempt_unknown_and_the_plan_goes_on(cli, workdir, monkeypatch):
    configure(workdir, "attempts_per_channel = 1")
    start_round(cli, workdir, monkeypatch, 1, "operator", "simulator")
    settings, plugins, database = load_settings(), load_plugins(), db()
    (attempt_id,) = dispatch.tick(database, settings, plugins, NOW).claimed
    taken_and_abandoned(database, [attempt_id])
    later = NOW + timedelta(seconds=settings.dispatch.lease_seconds + 1)
    ticked = dispatch.tick(database, settings, plugins, later)
    assert ticked.reconciled == 1 and len(ticked.claimed) == 1  # the plan's next channel, claimed at once
    (operator, simulated) = attempts(database)
    assert operator[1:4] == ("operator", "failed", None)
    assert operator[4] == "placing outcome unknown: channel 'operator' cannot look up its provider's records"
    assert simulated[1:3] == ("simulator", "queued")
    database.dispose()


FAILING_LOOKUP = """
    from callbackd.api import StartResult, hookimpl

    class Gateway:
        name = "gateway"
        kind = "voice"

        def start(self, conversation):
            return StartResult.placed("GW-1")

        def lookup(self, attempt):
            raise TimeoutError(f"gateway did not answer about {attempt.phone}")

    @hookimpl
    def register_channels(register):
        register(Gateway())
"""


def test_a_lookup_that_raises_is_reported_with_its_plugin_without_the_number(cli, workdir, monkeypatch):
    install_plugin(workdir / "site", "gateway_plugin", FAILING_LOOKUP, monkeypatch)
    configure(workdir)
    start_round(cli, workdir, monkeypatch, 1, "gateway")
    settings, plugins, database = load_settings(), load_plugins(), db()
    (attempt_id,) = dispatch.tick(database, settings, plugins, NOW).claimed
    taken_and_abandoned(database, [attempt_id])
    later = NOW + timedelta(seconds=settings.dispatch.lease_seconds + 1)
    ticked = dispatch.tick(database, settings, plugins, later)
    (error,) = ticked.errors
    assert "plugin 'gateway_plugin' failed looking up attempt" in error and "TimeoutError" in error
    assert phone_for(0) not in error
    ((_, _, status, _, detail), retry) = attempts(database)
    assert status == "failed" and detail.startswith("placing outcome unknown: looking it up failed: plugin")
    assert phone_for(0) not in detail
    assert retry[2] == "due"  # the gateway's retry, spaced as any other
    database.dispose()


def test_an_attempt_whose_worker_recorded_the_providers_word_meanwhile_is_left_alone(cli, workdir, monkeypatch):
    configure(workdir)
    start_round(cli, workdir, monkeypatch, 1)
    settings, plugins, database = load_settings(), load_plugins(), db()
    (attempt_id,) = dispatch.tick(database, settings, plugins, NOW).claimed
    taken_and_abandoned(database, [attempt_id])
    later = NOW + timedelta(seconds=settings.dispatch.lease_seconds + 1)
    with database.session() as s:
        (doubt,) = dispatch.in_doubt(s, settings, later)
    found = dispatch.look_up(settings, plugins, doubt)[0]
    assert found.placed is False  # nothing in the journal
    with database.session() as s:  # the worker was only slow: it recorded the provider's id after all
        s.execute(update(Attempt).where(Attempt.id == attempt_id).values(status="in_progress", provider_id="SIM-x"))
    with database.session() as s:
        assert dispatch.settle_in_doubt(s, settings, plugins, doubt, found, later) is False
    assert [row[2:4] for row in attempts(database)] == [("in_progress", "SIM-x")]
    database.dispose()
