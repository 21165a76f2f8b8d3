"""The attempt state machine as plain transitions: what an attempt's end, an applicant's opt-out or a new callback
comes to, decided from plain values. Nothing here reads or writes the database; `attempts.py` applies what these
decide, and a conversation and the dispatcher call that.

Callback states: pending (nothing placed yet), in_progress, and the final completed, partial, unreachable,
refused, opted_out, invalid. Attempt states: due, queued (claimed by a tick, handed to a worker), placing (taken
by the worker that places it), in_progress, answered, then its outcome.

A claim is a lease. An attempt still `queued` when it runs out was never handed to a provider and is due again;
one still `placing` without a provider id is in doubt (its dispatcher may have asked the provider and died), and
`reconcile` decides from what the channel's provider says: only "never placed" places it again.

    reported outcome --settle--> the attempt's outcome --+--> Close(final status, reason)     completed, partial,
                                                         |                                      invalid_number, refused
                                                         +--> Retry(same channel)             tries left on it
                                                         +--> NextChannel(the plan's next)    that can reach the number
                                                         +--> Close("unreachable", outcome)   the plan is spent
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT

RETRYABLE = ("no_answer", "busy", "failed", "machine", "hung_up", "not_configured", "rate_limited")


# ended without ever reaching the applicant through no fault of theirs: they do not use up the applicant's tries
NOT_A_TRY = ("not_configured", "rate_limited", "cancelled")


OUTCOMES = ("completed", "invalid_number", "refused", *RETRYABLE)


@dataclass(frozen=True)
class Close:
    """The callback closes: its final status, the reason, and what its attempts still due or under way become."""

    status: str
    reason: str | None
    open_attempts: str = "cancelled"


@dataclass(frozen=True)
class Retry:
    """Another attempt on the same channel, spaced from the last by the calling policy."""

    channel: str


@dataclass(frozen=True)
class NextChannel:
    """An attempt on the plan's next channel (the first, for a new callback), at the next calling slot."""

    channel: str


Step = Close | Retry | NextChannel


# the outcomes that close the callback
FINAL_FOR: dict[str, Close] = {
    "completed": Close("completed", None), "partial": Close("partial", None),
    "invalid_number": Close("invalid", "invalid_number"), "refused": Close("refused", "refused"),
}
OPTED_OUT = Close("opted_out", "opted_out", open_attempts="opted_out")
NO_CHANNEL = Close("invalid", "no_channel")


@dataclass(frozen=True)
class Ended:
    """An attempt ended: the outcome it records, and what follows for its callback. `then` None with `retryable`
    False: nothing follows (the callback closed meanwhile); `retryable`: `after_failure` decides, once the caller
    knows the tries used."""

    outcome: str
    then: Step | None = None
    retryable: bool = False


def settle(reported: str, ratings: Collection[str], answered: Collection[str]) -> str:
    """The outcome an attempt records for the one reported: `completed` with a rating question unanswered is a
    hang-up, and a hang-up after some ratings were answered is `partial`."""
    if reported not in OUTCOMES:
        raise ValueError(f"unknown attempt outcome {reported!r} (known: {', '.join(OUTCOMES)})")
    rated = set(answered) & set(ratings)
    if reported == "completed" and rated != set(ratings):
        reported = "hung_up"
    if reported == "hung_up" and rated:
        return "partial"
    return reported


def end(
    reported: str, *, attempt_status: str, callback_status: str, ratings: Collection[str], answered: Collection[str],
    short_form_answered: bool = False,
) -> Ended | None:
    """What an attempt's reported end comes to. None for a report of an attempt already ended (providers deliver
    status callbacks more than once). An attempt of a callback closed meanwhile (an opt-out, another attempt)
    records its outcome and reopens nothing. An attempt asking the rest of a survey whose short form was answered
    before it (`short_form_answered`) closes the callback completed however it ends."""
    outcome = settle(reported, ratings, answered)
    if attempt_status not in OPEN_ATTEMPT:
        return None
    if callback_status in FINAL_CALLBACK:
        return Ended(outcome)
    if short_form_answered:
        return Ended(outcome, then=FINAL_FOR["completed"])
    final = FINAL_FOR.get(outcome)
    if final is not None:
        return Ended(outcome, then=final)
    return Ended(outcome, retryable=True)


def tries_used(outcomes: Sequence[str]) -> int:
    """How many of a channel's attempts (their statuses) used up one of the applicant's tries."""
    return sum(outcome not in NOT_A_TRY for outcome in outcomes)


def after_failure(outcome: str, channel: str, *, tries: int, per_channel: int, plan: Sequence[str]) -> Step:
    """After a failed attempt on `channel` (`tries` used there, counting it): retry it while it has tries left,
    then fall back to the next channel of `plan` (the round's plan, only the channels that can reach the number),
    else the callback is unreachable, with the last outcome as the reason."""
    if tries < per_channel:
        return Retry(channel)
    later = plan[plan.index(channel) + 1:] if channel in plan else []
    if later:
        return NextChannel(later[0])
    return Close("unreachable", outcome)


def reachable(plan: Sequence[str], kinds: Mapping[str, str], sms_capable: bool) -> list[str]:
    """The channels of `plan` (kinds: channel name -> kind) that can reach a number: an SMS channel only a mobile."""
    return [name for name in plan if sms_capable or kinds[name] != "sms"]


def begin(plan: Sequence[str], *, opted_out: bool) -> Step:
    """A new callback's first step: its plan's first channel that can reach the number, unless the number opted
    out or no channel can reach it."""
    if opted_out:
        return OPTED_OUT
    if not plan:
        return NO_CHANNEL
    return NextChannel(plan[0])


def opt_out(callbacks: Mapping[int, str]) -> dict[int, Close]:
    """An opt-out (退订): every callback of the number not yet final (id -> status) closes as opted out, its open
    attempts with it; final ones stay as they are."""
    return {callback_id: OPTED_OUT for callback_id, status in callbacks.items() if status not in FINAL_CALLBACK}


UNKNOWN_PLACING = "placing outcome unknown"


@dataclass(frozen=True)
class Reconciled:
    """What an attempt in doubt becomes: `then` is "due" (placed again: its provider never placed it),
    "in_progress" (its provider's contact is under way and ends through the channel as usual) or "ended", with the
    `outcome` it reports (settled and followed as any reported end) and the `detail` it records."""

    then: str
    outcome: str | None = None
    detail: str = ""


def reconcile(placed: bool | None, outcome: str | None, detail: str = "") -> Reconciled:
    """An attempt in doubt, by its provider's word: `placed` False (never placed) is the one case placed again;
    True takes the provider's contact, under way (`outcome` None) or ended with `outcome`; None (the channel cannot
    look it up, or looking up failed) ends it `failed`, its placing outcome unknown, and is never placed again
    blindly: the retry or the plan's next channel follows, spaced like any other, and the attempt counts as a try
    (the applicant may have been called)."""
    if placed is None:
        return Reconciled("ended", "failed", f"{UNKNOWN_PLACING}: {detail or 'the channel cannot look it up'}")
    if not placed:
        return Reconciled("due")
    if outcome is None:
        return Reconciled("in_progress", detail=detail)
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown attempt outcome {outcome!r} (known: {', '.join(OUTCOMES)})")
    return Reconciled("ended", outcome, detail)
