"""Rounds (回访批次): drawing each week's sample, auditably, and verifying a draw afterwards.

The draw is reproducible by anyone from the round's record. Every candidate gets a key,
HMAC-SHA256(seed, 办件编号); candidates are taken in ascending key order, which is a uniform random order that
depends only on the seed and the case numbers, never on the Python version or the database's row order.

Two policies feed a round:
- the quota (`fixed`): N cases per window from its cases resolved in the calendar month of the week's Monday, up
  to the end of that week or the opening time, whichever is earlier; not selected in an earlier round of that
  month; whose phone no round selected in the last `phone_cooldown_days`; not opted out. Optionally stratified by
  case type with proportional allocation (largest remainder).
- rate rules: a share of a category's cases (say every complaint) resolved since the month's previous round,
  each due for its callback within a number of days of resolution. Cases a rule covers leave the quota pool.
A phone is selected at most once per round by the quota; windows are drawn in name order so this is repeatable.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callbackd.core import clock
from callbackd.core.errors import ConfigError, NotFoundError, RoundError
from callbackd.core.periods import add_months, parse_week
from callbackd.core.settings import SamplingRule, Settings
from callbackd.core.workdays import Calendar
from callbackd.rounds.surveys import Survey, load_surveys
from callbackd.store import audit
from callbackd.store.db import insert_rows
from callbackd.store.models import Attempt, Callback, Case, OptOut, Round, RoundWindow, Window

QUOTA = ""  # the pool name of the fixed quota; rate rules use their own names


# ---- policy and period ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Policy:
    """What a round draws by; recorded in the round so verification uses the policy in force at the time."""

    per_window: int
    stratify_by: str
    phone_cooldown_days: int
    rules: tuple[SamplingRule, ...]

    @classmethod
    def from_settings(cls, settings: Settings) -> Policy:
        sampling = settings.sampling
        return cls(sampling.per_window, sampling.stratify_by, sampling.phone_cooldown_days, tuple(sampling.rules))

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Policy:
        rules = tuple(SamplingRule(**rule) for rule in record.get("rules", []))
        return cls(record["per_window"], record["stratify_by"], record["phone_cooldown_days"], rules)

    def as_record(self) -> dict[str, Any]:
        return {
            "policy": "fixed",
            "per_window": self.per_window,
            "stratify_by": self.stratify_by,
            "phone_cooldown_days": self.phone_cooldown_days,
            "rules": [rule.model_dump() for rule in self.rules],
        }

    def rule_for(self, case_type: str, matter: str) -> SamplingRule | None:
        for rule in self.rules:
            if case_type in rule.case_types and (
                not rule.matter_keywords or any(word in matter for word in rule.matter_keywords)
            ):
                return rule
        return None


@dataclass(frozen=True)
class Period:
    """The slice of the ledger a round draws from, in UTC."""

    week: str
    month_start: datetime
    cutoff: datetime

    @classmethod
    def for_week(cls, week: str, zone: ZoneInfo, now: datetime) -> Period:
        """Cases resolved in the month of the week's Monday, up to the end of the week, the end of that month
        or `now`, whichever comes first. A week that has not begun cannot be drawn."""
        canonical, monday = parse_week(week)
        week_start = datetime.combine(monday, datetime.min.time(), zone)
        if now < week_start:
            raise RoundError(f"week {canonical} starts on {monday:%Y-%m-%d}, still ahead: open it from its Monday on")
        week_end = week_start + timedelta(days=7)
        month_start = datetime(monday.year, monday.month, 1, tzinfo=zone)
        month_end = datetime.combine(add_months(monday, 1), datetime.min.time(), zone)
        return cls(canonical, month_start.astimezone(now.tzinfo), min(week_end, month_end, now).astimezone(now.tzinfo))


# ---- the draw --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    case_id: int
    case_no: str
    window_id: int
    case_type: str
    phone: str
    resolved_at: datetime
    pool: str  # QUOTA, or the name of the rate rule that covers it


@dataclass(frozen=True)
class Pick:
    candidate: Candidate
    draw_key: str
    stratum: str
    due_at: datetime | None


@dataclass
class WindowDraw:
    window_id: int
    name: str
    candidates: list[Candidate]
    quota: int
    picks: list[Pick] = field(default_factory=list)

    @property
    def quota_picks(self) -> int:
        return sum(1 for pick in self.picks if pick.candidate.pool == QUOTA)

    @property
    def shortfall(self) -> int:
        return max(self.quota - self.quota_picks, 0)

    @property
    def candidate_hash(self) -> str:
        return candidate_hash(self.candidates)


def draw_key(seed: str, case_no: str) -> str:
    """The candidate's place in the seeded order: HMAC-SHA256(seed, 办件编号) in hex."""
    return hmac.new(seed.encode(), case_no.encode(), hashlib.sha256).hexdigest()


def candidate_hash(candidates: list[Candidate]) -> str:
    """SHA-256 of the ordered candidate set (pool and 办件编号, one a line)."""
    digest = hashlib.sha256()
    for candidate in sorted(candidates, key=lambda c: (c.pool, c.case_no)):
        digest.update(f"{candidate.pool}\t{candidate.case_no}\n".encode())
    return digest.hexdigest()


def overall_hash(windows: list[WindowDraw]) -> str:
    digest = hashlib.sha256()
    for window in sorted(windows, key=lambda w: w.name):
        digest.update(f"{window.name}\t{window.candidate_hash}\n".encode())
    return digest.hexdigest()


def allocate(quota: int, sizes: dict[str, int]) -> dict[str, int]:
    """Proportional allocation of `quota` over strata by largest remainder (ties by stratum name)."""
    total = sum(sizes.values())
    if total == 0 or quota <= 0:
        return {name: 0 for name in sizes}
    if quota >= total:
        return dict(sizes)
    exact = {name: quota * size / total for name, size in sizes.items()}
    shares = {name: math.floor(value) for name, value in exact.items()}
    left = quota - sum(shares.values())
    for name in sorted(exact, key=lambda n: (-(exact[n] - shares[n]), n))[:left]:
        shares[name] += 1
    return shares


def due_for(rule: SamplingRule, resolved_at: datetime, calendar: Calendar | None) -> datetime | None:
    """When a rule's callback falls due: `within_days` after resolution, in working days (the calendar's
    holidays skipped, make-up days counted) when the rule says so, at the same time of day."""
    if rule.within_days is None:
        return None
    if not rule.working_days:
        return resolved_at + timedelta(days=rule.within_days)
    if calendar is None:
        raise RoundError(f"rate rule {rule.name!r} counts working days and needs the working-day calendar")
    local = resolved_at.astimezone(calendar.zone)
    day = calendar.add_workdays(local.date(), rule.within_days)
    return datetime.combine(day, local.time(), calendar.zone).astimezone(resolved_at.tzinfo)


def draw(windows: list[WindowDraw], policy: Policy, seed: str, calendar: Calendar | None = None) -> None:
    """Fill each window's picks from its candidates: rate rules first, then the quota. `calendar` dates the
    callbacks of rules that count working days."""
    rules = {rule.name: rule for rule in policy.rules}
    taken_phones: set[str] = set()
    for window in sorted(windows, key=lambda w: w.name):
        keyed = sorted(((draw_key(seed, c.case_no), c) for c in window.candidates), key=lambda kc: kc[0])
        pools: dict[str, list[tuple[str, Candidate]]] = defaultdict(list)
        for key, candidate in keyed:
            pools[candidate.pool].append((key, candidate))
        for name in sorted(name for name in pools if name != QUOTA):
            rule = rules[name]
            members = pools[name]
            # round first: 0.07 * 100 is 7.000000000000001 in floating point, and must take 7, not 8
            for key, candidate in members[: math.ceil(round(rule.share * len(members), 9))]:
                window.picks.append(Pick(candidate, key, name, due_for(rule, candidate.resolved_at, calendar)))
                taken_phones.add(candidate.phone)
        _draw_quota(window, pools.get(QUOTA, []), policy, taken_phones)


def _draw_quota(
    window: WindowDraw, keyed: list[tuple[str, Candidate]], policy: Policy, taken_phones: set[str]
) -> None:
    chosen: set[int] = set()

    def take(key: str, candidate: Candidate, stratum: str) -> None:
        window.picks.append(Pick(candidate, key, stratum, None))
        chosen.add(candidate.case_id)
        taken_phones.add(candidate.phone)

    if policy.stratify_by == "case_type":
        strata: dict[str, list[tuple[str, Candidate]]] = defaultdict(list)
        for key, candidate in keyed:
            strata[candidate.case_type].append((key, candidate))
        shares = allocate(window.quota, {name: len(members) for name, members in strata.items()})
        for name in sorted(strata):
            wanted = shares[name]
            for key, candidate in strata[name]:
                if wanted == 0:
                    break
                if candidate.phone not in taken_phones:
                    take(key, candidate, name)
                    wanted -= 1
    # Fill what is left (all of it when unstratified; phone clashes when stratified) in key order.
    for key, candidate in keyed:
        if len(chosen) >= window.quota:
            break
        if candidate.case_id not in chosen and candidate.phone not in taken_phones:
            take(key, candidate, candidate.case_type if policy.stratify_by == "case_type" else "")


# ---- candidates from the database ------------------------------------------------------------------------


def watermarks(session: Session) -> dict[str, int]:
    """The highest ids of cases, windows and opt-outs: what a draw made now can see."""
    return {
        "case": session.scalar(select(func.coalesce(func.max(Case.id), 0))) or 0,
        "window": session.scalar(select(func.coalesce(func.max(Window.id), 0))) or 0,
        "opt_out": session.scalar(select(func.coalesce(func.max(OptOut.id), 0))) or 0,
    }


def gather(
    session: Session,
    policy: Policy,
    period: Period,
    opened_at: datetime,
    seen: dict[str, int],
    before_round: int | None,
) -> list[WindowDraw]:
    """Every window's candidates as they stood when a round opened at `opened_at` having seen the rows up to
    the `seen` watermarks.

    `before_round` limits "earlier rounds" to rounds with a smaller id (for verification); None means every
    round in force.
    """
    earlier = select(Round.id, Round.month_start, Round.cutoff_at, Round.opened_at, Round.watermarks).where(
        Round.active_week.is_not(None)
    )
    if before_round is not None:
        earlier = earlier.where(Round.id < before_round)
    earlier_rounds = session.execute(earlier).all()
    same_month = [r for r in earlier_rounds if r.month_start == period.month_start]
    # A rate rule's cases resolved after the previous month's last round drew (or imported after it) are carried
    # into this month's first draws: a complaint resolved on the 30th is still called back.
    before = [r.month_start for r in earlier_rounds if r.month_start < period.month_start]
    carry_start = max(before) if before else period.month_start
    last_month = [r for r in earlier_rounds if r.month_start == carry_start] if before else []
    month_rounds = [r.id for r in same_month + last_month]
    cooldown_start = opened_at - timedelta(days=policy.phone_cooldown_days)
    cooldown_rounds = [r.id for r in earlier_rounds if cooldown_start <= r.opened_at <= opened_at]
    # A rate rule takes its share of the cases no earlier round of the month could see: resolved after that
    # round's cutoff, or imported after it drew (a complaint entered late is still called back).
    earlier_views = [(r.cutoff_at, r.watermarks["case"]) for r in same_month + last_month]

    selected_this_month = _ids(session, select(Callback.case_id).where(Callback.round_id.in_(month_rounds)))
    cooled_phones = _ids(session, select(Callback.phone).where(Callback.round_id.in_(cooldown_rounds)))
    opted_out = _ids(session, select(OptOut.phone).where(OptOut.id <= seen["opt_out"]))

    windows = {
        window_id: WindowDraw(window_id, name, [], policy.per_window)
        for window_id, name in session.execute(select(Window.id, Window.name).where(Window.id <= seen["window"]))
    }
    rows = session.execute(
        select(Case.id, Case.case_no, Case.window_id, Case.case_type, Case.matter, Case.phone, Case.resolved_at)
        .where(
            Case.resolved.is_(True),
            Case.resolved_at >= carry_start,
            Case.resolved_at < period.cutoff,
            Case.id <= seen["case"],
        )
        .order_by(Case.case_no)
    )
    cooldown_by_rule = {rule.name: rule.phone_cooldown for rule in policy.rules}
    for case_id, case_no, window_id, case_type, matter, phone, resolved_at in rows:
        if case_id in selected_this_month or phone in opted_out or window_id not in windows or resolved_at is None:
            continue
        rule = policy.rule_for(case_type, matter)
        pool = rule.name if rule is not None else QUOTA
        if rule is None and resolved_at < period.month_start:
            continue  # the quota draws from its own month only
        if rule is not None and any(resolved_at < cutoff and case_id <= seen_id for cutoff, seen_id in earlier_views):
            continue
        if phone in cooled_phones and (rule is None or cooldown_by_rule[pool]):
            continue
        windows[window_id].candidates.append(
            Candidate(case_id, case_no, window_id, case_type, phone, resolved_at, pool)
        )
    return sorted(windows.values(), key=lambda w: w.name)


def _ids(session: Session, query: Any) -> set[Any]:
    return set(session.scalars(query))


# ---- opening, showing and verifying ----------------------------------------------------------------------


def open_round(
    session: Session,
    settings: Settings,
    week: str,
    *,
    seed: str | None = None,
    replace: bool = False,
    now: datetime | None = None,
    channels: list[str] | None = None,
) -> tuple[Round, list[WindowDraw]]:
    """Draw the sample for `week` and record the round, its windows and its callbacks, with the channel plan
    (`channels`, default `[dispatch] plan`) and the survey in force frozen into it.

    Refuses a week that already has a round in force unless `replace`, which redraws and records the
    replacement (only while no callback of the old round is under way and no later round exists). `now` is the
    opening time (default: the clock).
    """
    survey = survey_in_force(settings)
    now = now or clock.now()
    period = Period.for_week(week, settings.zone, now)
    existing = session.scalar(select(Round).where(Round.active_week == period.week))
    if existing is not None:
        if not replace:
            raise RoundError(f"week {period.week} already has round {existing.id}; use --replace to redraw it")
        _retire(session, existing)
    if seed is not None and not 0 < len(seed.strip()) <= 128:
        raise RoundError("--seed must be 1 to 128 characters")
    seed = seed.strip() if seed else secrets.token_hex(16)
    policy = Policy.from_settings(settings)
    seen = watermarks(session)
    windows = gather(session, policy, period, now, seen, None)
    draw(windows, policy, seed, Calendar.from_settings(settings))

    round_ = Round(
        week=period.week, active_week=period.week, status="open", seed=seed, policy=policy.as_record(),
        candidate_hash=overall_hash(windows), watermarks=seen, month_start=period.month_start, cutoff_at=period.cutoff,
        opened_at=now, opened_by=audit.actor(), replaces_id=existing.id if existing else None,
        channel_plan=list(channels or settings.dispatch.plan), survey=survey.snapshot(),
    )
    session.add(round_)
    try:
        session.flush()
    except IntegrityError:  # another command gave the week its round between our check and this write
        raise RoundError(f"week {period.week} was given a round by another command at the same moment; "
                         f"see `callbackd round list`") from None
    tallies = [
        {"round_id": round_.id, "window_id": w.window_id, "candidates": len(w.candidates), "quota": w.quota,
         "selected": len(w.picks), "shortfall": w.shortfall, "candidate_hash": w.candidate_hash}
        for w in windows
    ]
    insert_rows(session, RoundWindow, tallies)
    callbacks = [
        {"round_id": round_.id, "case_id": p.candidate.case_id, "window_id": w.window_id, "phone": p.candidate.phone,
         "rule": p.candidate.pool or None, "stratum": p.stratum, "draw_key": p.draw_key, "due_at": p.due_at,
         "status": "pending", "created_at": now}
        for w in windows for p in w.picks
    ]
    insert_rows(session, Callback, callbacks)
    audit.record(
        session, "round.replace" if existing else "round.open", f"round {round_.id}", week=period.week,
        seed=seed, candidate_hash=round_.candidate_hash, selected=len(callbacks),
        replaces=existing.id if existing else None,
    )
    return round_, windows


def survey_in_force(settings: Settings) -> Survey:
    """The survey `[surveys] default` names, from the surveys folder beside the settings file."""
    folder = settings.config_file(settings.surveys.folder)
    surveys = load_surveys(folder)
    if settings.surveys.default not in surveys:
        known = ", ".join(sorted(surveys)) or "none"
        raise ConfigError(f"[surveys] default names survey {settings.surveys.default!r}, not in {folder} ({known})")
    return surveys[settings.surveys.default]


def _retire(session: Session, existing: Round) -> None:
    busy = session.scalar(
        select(func.count(func.distinct(Callback.id)))
        .select_from(Callback)
        .outerjoin(Attempt, Attempt.callback_id == Callback.id)
        .where(Callback.round_id == existing.id, (Callback.status != "pending") | Attempt.id.is_not(None))
    )
    if busy:
        raise RoundError(f"round {existing.id} has {busy} callback(s) under way; it can no longer be redrawn")
    later = session.scalar(select(func.min(Round.id)).where(Round.id > existing.id, Round.active_week.is_not(None)))
    if later is not None:
        raise RoundError(f"round {existing.id} has a later round ({later}) drawn after it; it can no longer be redrawn")
    existing.active_week = None
    existing.status = "replaced"
    session.flush()


def get_round(session: Session, round_id: int) -> Round:
    round_ = session.get(Round, round_id)
    if round_ is None:
        raise NotFoundError(f"no round {round_id} (see `callbackd round list`)")
    return round_


def round_summary(session: Session, round_: Round) -> dict[str, Any]:
    """The round as `round open --json` and `round show --json` print it."""
    selected: dict[int, list[str]] = defaultdict(list)
    for window_id, case_no in session.execute(
        select(Callback.window_id, Case.case_no)
        .join(Case, Case.id == Callback.case_id)
        .where(Callback.round_id == round_.id, Callback.follow_up == 0)  # what the draw selected
        .order_by(Callback.window_id, Callback.draw_key)
    ):
        selected[window_id].append(case_no)
    windows = session.execute(
        select(RoundWindow, Window.name)
        .join(Window, Window.id == RoundWindow.window_id)
        .where(RoundWindow.round_id == round_.id)
        .order_by(Window.name)
    ).all()
    return {
        "round": round_.id,
        "week": round_.week,
        "status": round_.status,
        "seed": round_.seed,
        "candidate_hash": round_.candidate_hash,
        "opened_at": round_.opened_at.isoformat(),
        "channels": round_.channel_plan,
        "survey": round_.survey.get("name"),
        "windows": [
            {"window": name, "candidates": rw.candidates, "selected": selected.get(rw.window_id, []),
             "shortfall": rw.shortfall}
            for rw, name in windows
        ],
    }


def list_rounds(session: Session) -> list[Round]:
    """The weeks' rounds (a callback plan's periods are listed by `callbackd plans list`)."""
    return list(session.scalars(select(Round).where(Round.kind == "sample").order_by(Round.id)))


@dataclass
class Verification:
    round_id: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_round(session: Session, round_id: int, calendar: Calendar | None = None) -> Verification:
    """Re-draw a round from its recorded seed, policy and period and compare everything it recorded (`calendar`
    dates the callbacks of rules counting working days)."""
    round_ = get_round(session, round_id)
    if round_.kind != "sample":
        raise RoundError(f"round {round_id} is a callback plan's period, not a draw: there is nothing to verify")
    policy = Policy.from_record(round_.policy)
    period = Period(round_.week, round_.month_start, round_.cutoff_at)
    windows = gather(session, policy, period, round_.opened_at, round_.watermarks, round_.id)
    draw(windows, policy, round_.seed, calendar)
    problems: list[str] = []

    if overall_hash(windows) != round_.candidate_hash:
        recorded = {
            name: hash_
            for name, hash_ in session.execute(
                select(Window.name, RoundWindow.candidate_hash)
                .join(Window, Window.id == RoundWindow.window_id)
                .where(RoundWindow.round_id == round_.id)
            )
        }
        changed = [w.name for w in windows if recorded.get(w.name) != w.candidate_hash]
        late = session.scalar(
            select(func.count())
            .select_from(Case)
            .where(Case.id <= round_.watermarks["case"], Case.updated_at > round_.opened_at)
        )
        problems.append(
            f"candidate set differs from the recorded hash for {len(changed)} window(s) ({'、'.join(changed[:5])})"
            + (f"; {late} case(s) it could draw from were changed by a later import" if late else "")
        )

    # every recorded pick with what the draw decided about it: case, rule, stratum, place and due time
    Recorded = tuple[str, str | None, str, str, datetime | None]
    stored: dict[str, set[Recorded]] = defaultdict(set)
    for name, case_no, rule, stratum, key, due in session.execute(
        select(Window.name, Case.case_no, Callback.rule, Callback.stratum, Callback.draw_key, Callback.due_at)
        .join(Case, Case.id == Callback.case_id)
        .join(Window, Window.id == Callback.window_id)
        .where(Callback.round_id == round_.id, Callback.follow_up == 0)  # follow-ups (整改回访) were not drawn
    ):
        stored[name].add((case_no, rule, stratum, key, due))
    tallies = {
        name: (rw.candidates, rw.quota, rw.selected, rw.shortfall)
        for rw, name in session.execute(
            select(RoundWindow, Window.name)
            .join(Window, Window.id == RoundWindow.window_id)
            .where(RoundWindow.round_id == round_.id)
        )
    }
    for window in windows:
        drawn = {(p.candidate.case_no, p.candidate.pool or None, p.stratum, p.draw_key, p.due_at) for p in window.picks}
        kept = stored.pop(window.name, set())
        if drawn != kept:
            extra = sorted({c[0] for c in kept - drawn} - {c[0] for c in drawn})
            missing = sorted({c[0] for c in drawn - kept} - {c[0] for c in kept})
            altered = sorted({c[0] for c in kept - drawn} & {c[0] for c in drawn})
            problems.append(
                f"window {window.name}: recorded selection differs from the draw"
                + (f"; recorded but not drawn: {', '.join(extra[:5])}" if extra else "")
                + (f"; drawn but not recorded: {', '.join(missing[:5])}" if missing else "")
                + (f"; recorded with other details: {', '.join(altered[:5])}" if altered else "")
            )
        expected = (len(window.candidates), window.quota, len(window.picks), window.shortfall)
        if tallies.pop(window.name, None) != expected:
            problems.append(f"window {window.name}: recorded tally (candidates, quota, selected, shortfall) differs "
                            f"from the draw's {expected}")
    for name, kept in stored.items():
        problems.append(f"window {name}: {len(kept)} recorded callback(s) but the draw has none")
    for name in tallies:
        problems.append(f"window {name}: a recorded tally but no such window in the draw")
    audit.record(session, "round.verify", f"round {round_.id}", ok=not problems, problems=problems)
    return Verification(round_.id, problems)

