"""The simulator channel: synthetic applicants for the demo and load tests.

Each applicant's behaviour is drawn from a random generator seeded by (seed, 办件编号, attempt number), so the
same ledger and seed always give the same results. Windows have satisfaction profiles (configured, or derived
from the window's name); applicants may not answer, refuse, or hang up part-way. Every contact it records is
marked simulated, and scores and exports built on it say so.

Settings, all optional, in `[channels.simulator]` of the settings in force: seed, no_answer_rate, refuse_rate,
hang_up_rate, suggestion_rate, profiles = { "窗口" = [满意, 基本满意, 不满意] shares }. For load tests and
rehearsals of a deployment it can also play a provider: `per_second` (the account's rate, which dispatchers must
keep), `call_seconds` (how long each simulated call lasts) and `journal` (a file it appends every contact it
places to, one line each, like a provider's call log: placing an attempt twice shows as a repeated line). The
journal is also what `lookup` reads for an attempt whose dispatcher was killed while placing it.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable

from pydantic import Field

from callbackd.api import (
    LEVEL_NAMES,
    Channel,
    ChannelSettings,
    Conversation,
    InDoubt,
    LookupResult,
    Settings,
    StartResult,
    hookimpl,
)

SUGGESTIONS = (
    "希望增加周末服务时间。",
    "窗口工作人员很耐心，谢谢。",
    "排队时间有点长，建议多开窗口。",
    "材料清单能否在网上提前公布。",
    "希望能一次性告知需要的材料。",
)


class SimulatorSettings(ChannelSettings):
    """`[channels.simulator]`."""

    section = "simulator"

    seed: int | str = 2026
    no_answer_rate: float = Field(default=0.15, ge=0, le=1)
    refuse_rate: float = Field(default=0.02, ge=0, le=1)
    hang_up_rate: float = Field(default=0.03, ge=0, le=1)
    suggestion_rate: float = Field(default=0.1, ge=0, le=1)
    profiles: dict[str, tuple[float, float, float]] = Field(default_factory=dict)
    per_second: float | None = Field(default=None, gt=0)
    call_seconds: float = Field(default=0.0, ge=0, le=60)
    journal: str = ""


class SimulatorChannel:
    """A channel whose applicants are simulated; the whole conversation happens inside `start`."""

    name = "simulator"
    kind = "simulated"

    def profile(self, window: str, settings: SimulatorSettings) -> tuple[float, float, float]:
        """Shares of 满意 / 基本满意 / 不满意 for a window: configured, or derived from its name."""
        configured = settings.profiles.get(window)
        if configured is not None:
            return configured
        spread = int(hashlib.sha256(window.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        unsatisfied = 0.01 + 0.09 * spread
        basic = 0.05 + 0.20 * spread
        return (1 - unsatisfied - basic, basic, unsatisfied)

    def rate_limit(self, settings: Settings) -> tuple[str, float] | None:
        """The simulated provider's rate, when one is set."""
        rate = SimulatorSettings.of(settings).per_second
        return None if rate is None else ("simulator", rate)

    def lookup(self, attempt: InDoubt) -> LookupResult:
        """The simulated provider's word on an attempt whose dispatcher stopped while placing it, from its journal:
        an attempt with a line there was placed, and its call ended with the process placing it (the simulated
        applicant lived there), so it failed; one without a line was never placed. Without a journal the simulator
        keeps no record and cannot tell."""
        journal = SimulatorSettings.of(attempt.settings).journal
        if not journal:
            return LookupResult.unknown("the simulator keeps no journal ([channels.simulator] journal)")
        try:
            with open(journal, encoding="utf-8") as lines:
                placed = any(line.split(" ", 1)[0] == str(attempt.attempt_id) for line in lines)
        except FileNotFoundError:
            placed = False  # nothing was ever placed
        if not placed:
            return LookupResult.not_placed("not in the simulator's journal")
        return LookupResult.found(f"SIM-{attempt.attempt_id}", "failed",
                                  "simulated call cut off: the process placing it stopped")

    def start(self, conversation: Conversation) -> StartResult:
        # read when used, not at registration: a bad table fails the dispatch that needs it, naming the table
        settings = SimulatorSettings.of(conversation.settings)
        if settings.journal:
            # one short write with O_APPEND: lines from many worker processes never interleave
            with open(settings.journal, "a", encoding="utf-8") as journal:
                journal.write(f"{conversation.attempt_id} {conversation.case_no}\n")
        if settings.call_seconds:
            time.sleep(settings.call_seconds)
        rng = random.Random(f"{settings.seed}|{conversation.case_no}|{conversation.attempt_number}")
        provider_id = f"SIM-{conversation.attempt_id}"
        if rng.random() < settings.no_answer_rate:
            return StartResult.failed("no_answer", "simulated applicant did not answer")
        conversation.pick_up()
        if rng.random() < settings.refuse_rate:
            conversation.finish("refused", "simulated applicant declined the survey")
            return StartResult.placed(provider_id)
        weights = self.profile(conversation.window, settings)
        presses: list[tuple[str, str]] = []  # the applicant's keys, recorded together when the call ends
        for question in conversation.pending_ratings():
            if rng.random() < settings.hang_up_rate:
                conversation.press_all(presses)
                conversation.finish("hung_up", "simulated applicant hung up")
                return StartResult.placed(provider_id)
            level = rng.choices(LEVEL_NAMES, weights)[0]
            assert question.scale is not None
            choice = next(c for c in question.scale.choices if c.level == level)
            presses.append((question.key, choice.key))
        conversation.press_all(presses)
        if rng.random() < settings.suggestion_rate:
            conversation.suggest(rng.choice(SUGGESTIONS))
        conversation.finish("completed")
        return StartResult.placed(provider_id)


@hookimpl
def register_channels(register: Callable[[Channel], None]) -> None:
    """The `simulator` channel."""
    register(SimulatorChannel())
