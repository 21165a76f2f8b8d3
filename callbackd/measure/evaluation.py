"""The evaluation annex of an export (年终考评): monthly scores, indicators, rectifications and the methods, so
that anyone can recompute the ranking from what the workbook states."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callbackd.contact import rectify
from callbackd.core.periods import months_of
from callbackd.core.settings import Settings
from callbackd.measure.indicators import FORMULAS, WindowIndicators, in_period
from callbackd.measure.publication import indicators_for
from callbackd.measure.rankings import ranking_for
from callbackd.measure.scoring import Ranking
from callbackd.measure.time_limits import OverdueCase, overdue_cases
from callbackd.store.models import Callback, Round


@dataclass(frozen=True)
class Evaluation:
    """What an export shows beside the period's ranking."""

    months: list[Ranking] = field(default_factory=list)  # the period's months, published ones as published
    indicators: list[WindowIndicators] = field(default_factory=list)
    rectifications: list[dict[str, Any]] = field(default_factory=list)  # per window, opened in the period
    rounds: list[dict[str, Any]] = field(default_factory=list)  # the draws: week, seed, candidate hash, size
    formulas: dict[str, str] = field(default_factory=lambda: dict(FORMULAS))
    # the period's 超期件 as an export shows them (confidential case types masked), as the data stands now
    overdue: list[OverdueCase] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "months": [{"period": m.period.text, "windows": {w.window: w.score for w in m.windows}}
                       for m in self.months],
            "indicators": [i.as_dict() for i in self.indicators],
            "rectifications": self.rectifications,
            "rounds": self.rounds,
            "formulas": self.formulas,
            "overdue": [case.as_dict() for case in self.overdue],
        }


def build(session: Session, settings: Settings, ranking: Ranking, now: datetime) -> Evaluation:
    """The annex for `ranking`'s period."""
    period = ranking.period
    months = [ranking_for(session, settings, m.text) for m in months_of(period, settings.zone)]
    if period.kind == "month":
        months = [ranking]
    return Evaluation(
        months=months,
        indicators=indicators_for(session, settings, ranking, now),
        rectifications=rectify.summary(session, period.start, period.end, now),
        rounds=rounds_in(session, ranking),
        overdue=[case.masked(settings.policies.confidential_case_types)
                 for case in overdue_cases(session, settings, period, now)],
    )


def rounds_in(session: Session, ranking: Ranking) -> list[dict[str, Any]]:
    """The rounds whose week lies in the period, replaced ones included, with their seeds and sizes."""
    sizes: dict[int, int] = {
        round_id: count for round_id, count in session.execute(
            select(Callback.round_id, func.count()).where(Callback.follow_up == 0).group_by(Callback.round_id)
        )
    }
    return [
        {"round": r.id, "week": r.week, "status": r.status, "seed": r.seed, "candidate_hash": r.candidate_hash,
         "selected": sizes.get(r.id, 0), "opened_at": r.opened_at.isoformat(), "replaces": r.replaces_id}
        for r in session.scalars(select(Round).where(Round.kind == "sample").order_by(Round.week, Round.id))
        if in_period(r.week, ranking.period)
    ]
