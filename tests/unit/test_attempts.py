"""The attempt state machine's transitions, with plain values and no database: how an attempt's end is settled,
what follows it (a retry, the plan's next channel, a final state), a new callback's first step, an opt-out."""

from __future__ import annotations

import pytest

from callbackd.contact import transitions
from callbackd.contact.transitions import (
    NOT_A_TRY,
    OPTED_OUT,
    OUTCOMES,
    RETRYABLE,
    Close,
    Ended,
    NextChannel,
    Retry,
)

pytestmark = pytest.mark.no_database

RATINGS = ("q1", "q2", "q3")
KINDS = {"ivr": "voice", "sms": "sms", "operator": "operator"}
PLAN = ["ivr", "sms", "operator"]


def ended(reported: str, answered: tuple[str, ...] = (), *, attempt_status: str = "answered",
          callback_status: str = "in_progress") -> Ended | None:
    return transitions.end(reported, attempt_status=attempt_status, callback_status=callback_status,
                           ratings=RATINGS, answered=answered)


# every outcome, reported once every rating question was answered, and once none was
ALL_ANSWERED = {
    "completed": Ended("completed", then=Close("completed", None)),
    "invalid_number": Ended("invalid_number", then=Close("invalid", "invalid_number")),
    "refused": Ended("refused", then=Close("refused", "refused")),
    "hung_up": Ended("partial", then=Close("partial", None)),
    **{outcome: Ended(outcome, retryable=True) for outcome in RETRYABLE if outcome != "hung_up"},
}
NONE_ANSWERED = {
    **ALL_ANSWERED,
    "completed": Ended("hung_up", retryable=True),
    "hung_up": Ended("hung_up", retryable=True),
}


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_every_outcome_ends_its_attempt_and_says_what_follows(outcome):
    assert ended(outcome, RATINGS) == ALL_ANSWERED[outcome]
    assert ended(outcome) == NONE_ANSWERED[outcome]


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown attempt outcome 'picked_up'"):
        ended("picked_up")


def test_completed_with_a_rating_unanswered_is_a_hang_up_and_with_some_answered_partial():
    assert ended("completed", ()) == Ended("hung_up", retryable=True)
    assert ended("completed", ("q1", "q2")) == Ended("partial", then=Close("partial", None))
    # a text question (a suggestion) is no rating: it makes nothing partial
    assert ended("hung_up", ("suggestion",)) == Ended("hung_up", retryable=True)


def test_a_hang_up_with_answers_is_partial_and_closes_the_callback():
    assert ended("hung_up", ("q2",)) == Ended("partial", then=Close("partial", None))


@pytest.mark.parametrize("attempt_status", ["completed", "no_answer", "cancelled", "opted_out", "partial"])
def test_a_second_report_for_an_ended_attempt_changes_nothing(attempt_status):
    assert ended("completed", RATINGS, attempt_status=attempt_status) is None
    assert ended("busy", attempt_status=attempt_status) is None


@pytest.mark.parametrize("callback_status", ["completed", "opted_out", "unreachable", "refused", "invalid"])
def test_a_late_report_for_a_closed_callback_records_the_outcome_and_reopens_nothing(callback_status):
    for outcome in OUTCOMES:
        late = ended(outcome, callback_status=callback_status)
        assert late is not None and late.then is None and not late.retryable


def test_a_channel_is_retried_while_it_has_tries_left():
    assert transitions.after_failure("no_answer", "ivr", tries=1, per_channel=2, plan=PLAN) == Retry("ivr")
    assert transitions.after_failure("busy", "sms", tries=2, per_channel=3, plan=PLAN) == Retry("sms")


def test_a_spent_channel_falls_back_to_the_plans_next_channel():
    assert transitions.after_failure("no_answer", "ivr", tries=2, per_channel=2, plan=PLAN) == NextChannel("sms")
    assert transitions.after_failure("busy", "sms", tries=2, per_channel=2, plan=PLAN) == NextChannel("operator")


def test_an_sms_channel_is_in_the_plan_only_for_a_mobile():
    assert transitions.reachable(PLAN, KINDS, sms_capable=True) == PLAN
    landline = transitions.reachable(PLAN, KINDS, sms_capable=False)
    assert landline == ["ivr", "operator"]
    assert transitions.after_failure("no_answer", "ivr", tries=2, per_channel=2, plan=landline) == NextChannel(
        "operator")


def test_the_plan_spent_leaves_the_callback_unreachable_with_the_last_reason():
    assert transitions.after_failure("busy", "operator", tries=2, per_channel=2, plan=PLAN) == Close(
        "unreachable", "busy")
    assert transitions.after_failure("machine", "ivr", tries=1, per_channel=1, plan=["ivr"]) == Close(
        "unreachable", "machine")
    # a channel no longer in the plan (the round's plan changed): nothing after it
    assert transitions.after_failure("failed", "wechat", tries=1, per_channel=1, plan=PLAN) == Close(
        "unreachable", "failed")


def test_outcomes_that_never_reached_the_applicant_use_up_no_try():
    assert set(NOT_A_TRY) == {"not_configured", "rate_limited", "cancelled"}
    assert transitions.tries_used(["not_configured", "rate_limited", "cancelled", "no_answer"]) == 1
    tries = transitions.tries_used(["rate_limited", "rate_limited", "not_configured"])
    assert tries == 0
    assert transitions.after_failure("rate_limited", "ivr", tries=tries, per_channel=1, plan=PLAN) == Retry("ivr")


def test_a_new_callback_starts_on_its_first_reachable_channel_unless_blocked():
    assert transitions.begin(["sms", "operator"], opted_out=False) == NextChannel("sms")
    assert transitions.begin([], opted_out=False) == Close("invalid", "no_channel")
    assert transitions.begin(PLAN, opted_out=True) == OPTED_OUT


def test_an_opt_out_closes_every_open_callback_of_the_number_and_ends_their_attempts():
    closing = transitions.opt_out({1: "in_progress", 2: "completed", 3: "pending", 4: "unreachable"})
    assert closing == {1: OPTED_OUT, 3: OPTED_OUT}
    assert Close("opted_out", "opted_out", open_attempts="opted_out") == OPTED_OUT
    assert transitions.opt_out({}) == {}


# ---- an attempt in doubt: its dispatcher stopped while placing it, and its provider was asked ------------------


def test_only_a_provider_that_never_placed_the_attempt_has_it_placed_again():
    assert transitions.reconcile(False, None, "not in the journal") == transitions.Reconciled("due")


def test_a_contact_the_provider_placed_is_taken_under_way_or_as_it_ended():
    assert transitions.reconcile(True, None, "call ringing") == transitions.Reconciled("in_progress",
                                                                                      detail="call ringing")
    assert transitions.reconcile(True, "busy", "call busy") == transitions.Reconciled("ended", "busy", "call busy")


def test_an_attempt_nobody_can_look_up_ends_failed_as_unknown_and_its_retry_follows_as_a_try():
    decided = transitions.reconcile(None, None, "")
    assert decided.then == "ended" and decided.outcome == "failed"
    assert decided.detail == f"{transitions.UNKNOWN_PLACING}: the channel cannot look it up"
    # an outcome means nothing while nobody knows whether the attempt was placed
    because = transitions.reconcile(None, "completed", "looking it up failed: timeout")
    assert because.outcome == "failed" and because.detail.endswith("looking it up failed: timeout")
    # what follows is the usual: a retry while the channel has tries, and it used one (it may have rung)
    assert transitions.tries_used(["failed"]) == 1
    assert ended("failed", attempt_status="placing") == Ended("failed", retryable=True)


def test_a_provider_outcome_outside_the_state_machine_is_refused():
    with pytest.raises(ValueError, match="unknown attempt outcome 'lost'"):
        transitions.reconcile(True, "lost")
