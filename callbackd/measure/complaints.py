"""投诉率: complaints over the cases a window handled, per period, against a target (the property rule: under 1%).

- A case counts in the period of its 受理时间 (accepted): a complaint rate asks how often the people a window
  served complained, and a complaint is a complaint from the day it was lodged, resolved or not.
- Complaints are the window's cases of the case types `[indicators] complaint_case_types` names (投诉 by default;
  the ledger's aliases such as 投诉件 already map onto it); the denominator is every case the window accepted in
  the period, complaints included, resolved or not; the members of a callback plan (case type 回访计划) are no
  cases a window handled and count in neither.
- 投诉率 = complaints / cases; a window over `[indicators] complaint_rate_target` (strictly) is flagged.
"""

from __future__ import annotations

from sqlalchemy import Integer, case, func, select
from sqlalchemy.orm import Session

from callbackd.core.periods import Period
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import PLAN_CASE_TYPE
from callbackd.store.models import Case


def complaint_counts(session: Session, settings: Settings, period: Period) -> dict[int, tuple[int, int]]:
    """Per window id, (complaints, cases) accepted in the period; windows without a case are absent."""
    complaint = case((Case.case_type.in_(settings.indicators.complaint_case_types), 1), else_=0)
    return {
        window_id: (int(complaints or 0), int(cases))
        for window_id, complaints, cases in session.execute(
            select(Case.window_id, func.sum(complaint, type_=Integer), func.count())
            .where(Case.accepted_at >= period.start, Case.accepted_at < period.end,
                   Case.case_type != PLAN_CASE_TYPE)
            .group_by(Case.window_id)
        )
    }


def over_target(rate: float | None, settings: Settings) -> bool:
    """Whether a complaint rate is over the target (an empty rate never is)."""
    return rate is not None and rate > settings.indicators.complaint_rate_target


def percent_text(value: float) -> str:
    """1.25% for 0.0125, 1% for 0.01: as few decimals as the value needs, at most two."""
    return f"{value * 100:.2f}".rstrip("0").rstrip(".") + "%"


def alert_text(rate: float, settings: Settings) -> str:
    return f"投诉率{percent_text(rate)}超过目标{percent_text(settings.indicators.complaint_rate_target)}"
