"""Scores, grades and ranks per window and period (计分、评级、排名), as DESIGN.md documents them.

- level points (满意 100, 基本满意 80, 不满意 0); a contact's score is the weighted mean of its rated questions
  (equal weights by default); a contact with no rated question is 未评 and not a contact for scoring;
- a window's source score is the mean of its contacts' scores in the period (by contact time, in the
  organisation's zone); source scores combine by weight (callback 0.6, onsite 0.2, evaluator 0.2),
  renormalised over the sources that have at least one contact;
- satisfaction rate = (满意 + 基本满意) / rated answers over all sources, with a Wilson interval;
- grade by bound (≥95 优秀, ≥85 良好, ≥70 合格, else 不合格); rank by score rounded to 2 decimals, descending,
  equal scores sharing a rank (1, 2, 2, 4); fewer contacts than the period's minimum is 样本不足: no rank, no grade.
Every number comes from `[scoring]` in the settings.

A period is scored from the tallies kept with the answers (`callbackd.store.tallies`) when they follow the
settings' zone and rules, else from the answers themselves; `raw=True` always reads the answers (the check).
An unsigned visit or on-site record (签名确认) is not scored either way until it is signed; a record awaiting review
(审核) is scored as any other: review is about the record's quality, not its weight.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from statistics import NormalDist
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from callbackd.core.periods import Period, PeriodError, parse_period
from callbackd.core.settings import ScoringSettings, Settings
from callbackd.core.vocabulary import LEVEL_NAMES, SOURCES
from callbackd.store import tallies
from callbackd.store.models import Answer, Contact, Window
from callbackd.store.tallies import TallyRules

__all__ = ["Period", "PeriodError", "Ranking", "WindowScore", "parse_period", "score_period"]

RANKED = "ranked"
TOO_FEW = "样本不足"


@dataclass
class WindowScore:
    window: str
    score: float | None
    grade: str | None
    rank: int | None
    contacts: int
    satisfaction_rate: float | None
    ci_low: float | None
    ci_high: float | None
    by_source: dict[str, float | None]
    levels: dict[str, int]
    status: str
    contacts_by_source: dict[str, int] = field(default_factory=dict)
    simulated: bool = False

    def as_dict(self) -> dict[str, Any]:
        # the fields with copies of the three small dicts: `asdict`'s deep copy costs a year's JSON a tenth of a
        # second over 2,000 windows
        document = dict(vars(self))
        for name in ("by_source", "levels", "contacts_by_source"):
            document[name] = dict(document[name])
        return document


@dataclass
class Ranking:
    """A period's scores for every window, ranked windows first in rank order."""

    period: Period
    windows: list[WindowScore]
    minimum_contacts: int
    rules: ScoringSettings
    simulated: bool = False
    # window -> question key -> level -> count, filled by `by_question`
    questions: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)
    # when read from a publication (a frozen period): which one, when, by whom, and why it was republished
    published: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        document = {
            "period": self.period.text,
            "label": self.period.label,
            "minimum_contacts": self.minimum_contacts,
            "simulated": self.simulated,
            "windows": [w.as_dict() for w in self.windows],
        }
        if self.published is not None:
            document["published"] = self.published
        return document


def wilson(successes: int, total: int, confidence: float) -> tuple[float | None, float | None]:
    """The Wilson score interval of a proportion; (None, None) with no observations."""
    if total == 0:
        return None, None
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def grade_for(score: float, rules: ScoringSettings) -> str:
    for bound, grade in rules.grades:
        if score >= bound:
            return grade
    return rules.failing_grade


def assign_ranks(scores: list[WindowScore]) -> None:
    """Rank by score rounded to 2 decimals, descending; equal scores share a rank (1, 2, 2, 4)."""
    ranked = sorted((w for w in scores if w.status == RANKED and w.score is not None),
                    key=lambda w: -round(w.score or 0.0, 2))
    previous: float | None = None
    rank = 0
    for position, window in enumerate(ranked, start=1):
        rounded = round(window.score or 0.0, 2)
        if rounded != previous:
            rank, previous = position, rounded
        window.rank = rank


def contact_scores_query(rules: ScoringSettings, zone: str, start: datetime, end: datetime) -> Any:
    """From the answers: per window and source, the scored contacts, the sum of their scores (millionths of a point,
    as the tallies keep it) and the rated answers by level, in one pass over the answers."""
    rated = TallyRules.from_scoring(rules, zone)
    counts = [func.sum(case((Answer.level == level, 1), else_=0)).label(f"n{i}") for i, level in enumerate(LEVEL_NAMES)]
    per_contact = (
        select(Answer.window_id, Answer.source, tallies.contact_score(rated, Answer.level, Answer.question)
               .label("score"), *counts)
        # follow-up callbacks (整改回访) verify rectifications; they are not a score source
        .where(Answer.contacted_at >= start, Answer.contacted_at < end, Answer.level.in_(LEVEL_NAMES),
               Answer.source.in_(SOURCES), Answer.contact_id.not_in(tallies.unsigned_contacts()))
        .group_by(Answer.contact_id, Answer.window_id, Answer.source)
        .subquery()
    )
    return select(
        per_contact.c.window_id,
        per_contact.c.source,
        func.count(),
        func.sum(per_contact.c.score),
        *(func.sum(per_contact.c[f"n{i}"]) for i in range(len(LEVEL_NAMES))),
    ).group_by(per_contact.c.window_id, per_contact.c.source)


# window id -> source -> (contacts, score sum in millionths, rated answers by level)
Tallied = dict[int, dict[str, tuple[int, int, list[int]]]]


def _from_answers(session: Session, settings: Settings, period: Period) -> tuple[Tallied, set[int]]:
    """The period's figures per window and source from the answers, and the windows with a simulated contact
    among those scored."""
    figures: Tallied = defaultdict(dict)
    for window_id, source, contacts, score_sum, *levels in session.execute(
        contact_scores_query(settings.scoring, settings.timezone, period.start, period.end)
    ):
        figures[window_id][source] = (int(contacts), int(score_sum), [int(n or 0) for n in levels])
    rated = select(Answer.id).where(Answer.contact_id == Contact.id, Answer.level.in_(LEVEL_NAMES)).exists()
    simulated = set(session.scalars(
        select(Contact.window_id).distinct()
        .where(Contact.simulated.is_(True), Contact.contacted_at >= period.start, Contact.contacted_at < period.end,
               Contact.source.in_(SOURCES), Contact.unsigned.is_(False), rated)
    ))
    return figures, simulated


def _from_tallies(session: Session, settings: Settings, period: Period) -> tuple[Tallied, set[int]] | None:
    """The same from the tallies; None when they do not follow the settings' zone and rules."""
    rows = tallies.scores(session, TallyRules.of(settings), period.start.date(), period.end.date())
    if rows is None:
        return None
    figures: Tallied = defaultdict(dict)
    simulated = set()
    for window_id, source, contacts, score_sum, simulated_contacts, *levels in rows:
        figures[window_id][source] = (contacts, score_sum, levels)
        if simulated_contacts:
            simulated.add(window_id)
    return figures, simulated


def score_period(
    session: Session, settings: Settings, period_text: str, *, with_questions: bool = False, raw: bool = False,
) -> Ranking:
    """Score every window for a period: from the tallies when they follow the settings' zone and rules, else (or
    with `raw`) from the answers. Both give the same figures."""
    rules = settings.scoring
    period = parse_period(period_text, settings.zone)
    minimum = rules.minimum_contacts.get(period.kind, 0)
    names = {window_id: name for window_id, name in session.execute(select(Window.id, Window.name))}
    found = None if raw else _from_tallies(session, settings, period)
    figures, simulated_windows = found if found is not None else _from_answers(session, settings, period)

    windows = []
    for window_id, name in names.items():
        by_source: dict[str, float | None] = dict.fromkeys(SOURCES)
        contacts_by_source = dict.fromkeys(SOURCES, 0)
        means: dict[str, float] = {}
        levels = [0] * len(LEVEL_NAMES)
        for source, (contacts, score_sum, counts) in figures.get(window_id, {}).items():
            means[source] = tallies.mean(score_sum, contacts)
            by_source[source] = round(means[source], 2)
            contacts_by_source[source] = contacts
            levels = [a + b for a, b in zip(levels, counts, strict=True)]
        present = {s: v for s, v in means.items() if rules.weights.get(s, 0) > 0}
        total_weight = sum(rules.weights[s] for s in present)
        score = sum(rules.weights[s] * v for s, v in present.items()) / total_weight if total_weight else None
        contacts = sum(contacts_by_source.values())
        rated = sum(levels)
        satisfied = levels[0] + levels[1]
        low, high = wilson(satisfied, rated, rules.confidence)
        enough = contacts >= minimum and score is not None
        windows.append(WindowScore(
            window=name,
            score=round(score, 2) if score is not None else None,
            grade=grade_for(round(score, 2), rules) if enough and score is not None else None,
            rank=None,
            contacts=contacts,
            satisfaction_rate=round(satisfied / rated, 4) if rated else None,
            ci_low=round(low, 4) if low is not None else None,
            ci_high=round(high, 4) if high is not None else None,
            by_source=by_source,
            levels=dict(zip(LEVEL_NAMES, levels, strict=True)),
            status=RANKED if enough else TOO_FEW,
            contacts_by_source=contacts_by_source,
            simulated=window_id in simulated_windows,
        ))
    assign_ranks(windows)
    windows.sort(key=lambda w: (w.rank is None, w.rank or 0, w.window))
    ranking = Ranking(period, windows, minimum, rules, simulated=bool(simulated_windows))
    if with_questions:
        ranking.questions = by_question(session, period, names, raw=raw)
    return ranking


def by_question(
    session: Session, period: Period, names: dict[int, str], *, raw: bool = False,
) -> dict[str, dict[str, dict[str, int]]]:
    """Level counts per window and question for the period (the per-question sheet of an export): from the tallies
    when they were built in the period's zone, else (or with `raw`) from the answers.

    A province's ranking holds tens of thousands of these counts, most of them alike (a window's few contacts give
    few distinct counts): equal counts are one shared dict, and each question's key one string. Read them; never
    change them in place."""
    zone = getattr(period.start.tzinfo, "key", None)
    rows = None if raw or zone is None else tallies.questions(session, zone, period.start.date(), period.end.date())
    shared: dict[tuple[int, ...], dict[str, int]] = {}
    keys: dict[str, str] = {}
    out: dict[str, dict[str, dict[str, int]]] = {}
    for window_id, question, *counts in rows if rows is not None else _question_rows(session, period):
        levels = shared.get(tuple(counts))
        if levels is None:
            levels = shared[tuple(counts)] = dict(zip(LEVEL_NAMES, counts, strict=True))
        out.setdefault(names[window_id], {})[keys.setdefault(question, question)] = levels
    return out


def _question_rows(session: Session, period: Period) -> list[tuple[Any, ...]]:
    """Per window and question, from the answers: (window id, question, rated answers by level...)."""
    counted: dict[tuple[int, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(LEVEL_NAMES, 0))
    for window_id, question, level, count in session.execute(
        select(Answer.window_id, Answer.question, Answer.level, func.count())
        .where(Answer.contacted_at >= period.start, Answer.contacted_at < period.end, Answer.level.in_(LEVEL_NAMES),
               Answer.source.in_(SOURCES), Answer.contact_id.not_in(tallies.unsigned_contacts()))
        .group_by(Answer.window_id, Answer.question, Answer.level)
    ):
        if level is not None:
            counted[window_id, question][level] = count
    return [(window_id, question, *levels.values()) for (window_id, question), levels in counted.items()]
