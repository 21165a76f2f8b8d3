"""Indicators per window and period beside the score (考核指标), and the alerts on them (预警).

Formulas (every count in the period, per window; a rate with nothing to count is None, shown empty):
- 回访率 = completed callbacks / callbacks selected. Callbacks count in the period of their round's week (its
  Monday); a follow-up callback (整改回访) is not a selected callback.
- 未评率 = selected callbacks without a single rated answer / callbacks selected.
- 满意率 = (满意 + 基本满意) / rated answers, and 不满意率 = 不满意 / rated answers, over every score source
  (the ranking's level counts, so they sum to 100%).
- 整改按时率 = responses given by their due time / responses due in the period. Each time a rectification is
  opened (or reopened) it owes one response; that response counts in the period of its due time once it is
  given or its due time has passed. One withdrawn (its 不满意 corrected away) owed nothing.
- 回访整改满意率 = follow-up callbacks that found no 不满意 / follow-up callbacks with a rated answer, closed in
  the period.
- 按时办结率 = cases resolved within their time limit / cases resolved with a limit (承诺时限, else 法定时限), by
  办结时间, counted in working days; with the period's 超期件 (`callbackd.measure.time_limits`).
- 现场征求完成率 = on-site forms / (`[onsite] per_window_weekly` × the period's weeks)
  (`callbackd.measure.onsite_quota`).
- 投诉率 = complaints / cases accepted in the period, against `[indicators] complaint_rate_target`
  (`callbackd.measure.complaints`).
Alerts: a window ranked last (of at least two ranked windows), or graded 不合格, in each of the last
`[indicators] alert_periods` periods of the same kind (this one included); short of the on-site form quota two
complete weeks running; over the complaint rate target.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.core.periods import Period, parse_week, shift
from callbackd.core.settings import Settings
from callbackd.measure import complaints, onsite_quota, time_limits
from callbackd.measure.scoring import Ranking
from callbackd.store.models import Answer, Callback, Contact, Rectification, Round, Window

# (key, Chinese header) in the order every output shows them
RATES = (
    ("callback_rate", "回访率"),
    ("unrated_rate", "未评率"),
    ("satisfied_rate", "满意率"),
    ("dissatisfied_rate", "不满意率"),
    ("rectification_on_time_rate", "整改按时率"),
    ("follow_up_satisfied_rate", "回访整改满意率"),
    ("on_time_resolution_rate", "按时办结率"),
    ("onsite_completion_rate", "现场征求完成率"),
    ("complaint_rate", "投诉率"),
)
FORMULAS = {
    "回访率": "已完成回访 ÷ 抽取回访（按批次所在周计入期间，不含整改回访）",
    "未评率": "未获得任何有效评价的抽取回访 ÷ 抽取回访",
    "满意率": "（满意 + 基本满意）÷ 有效评价数（全部计分来源）",
    "不满意率": "不满意 ÷ 有效评价数（全部计分来源）",
    "整改按时率": "按期反馈的整改 ÷ 期内到期的整改（每次开启或重新开启各计一次，已反馈或已过期才计入）",
    "回访整改满意率": "未再出现不满意的整改回访 ÷ 期内结束且有有效评价的整改回访",
    "按时办结率": "时限内办结的办件 ÷ 期内办结且有时限的办件（按办结时间计入期间；时限取承诺时限，无则法定时限，"
                  "按工作日自受理次日起算，节假日不计、调休上班日计入）",
    "现场征求完成率": "现场征求意见表份数 ÷（每窗口每周份数 × 期内周数：周一在期内且已到的ISO周）",
    "投诉率": "投诉件 ÷ 期内受理的全部办件（按受理时间计入期间），超过目标值预警",
}


@dataclass
class WindowIndicators:
    window: str
    selected: int = 0
    completed: int = 0
    unrated: int = 0
    rated_answers: int = 0
    satisfied_answers: int = 0
    dissatisfied_answers: int = 0
    rectifications_due: int = 0
    rectifications_on_time: int = 0
    follow_ups: int = 0
    follow_ups_satisfied: int = 0
    limited_resolved: int = 0  # resolved in the period with a time limit
    resolved_on_time: int = 0
    overdue_cases: int = 0  # 超期件: resolved late in the period, or open past the limit at its end
    onsite_forms: int = 0
    onsite_quota: int = 0  # 0: no quota
    cases_accepted: int = 0
    complaints: int = 0
    complaint_rate_target: float | None = None
    callback_rate: float | None = None
    unrated_rate: float | None = None
    satisfied_rate: float | None = None
    dissatisfied_rate: float | None = None
    rectification_on_time_rate: float | None = None
    follow_up_satisfied_rate: float | None = None
    on_time_resolution_rate: float | None = None
    onsite_completion_rate: float | None = None
    complaint_rate: float | None = None
    alerts: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fill_rates(self) -> None:
        self.callback_rate = rate(self.completed, self.selected)
        self.unrated_rate = rate(self.unrated, self.selected)
        self.satisfied_rate = rate(self.satisfied_answers, self.rated_answers)
        self.dissatisfied_rate = rate(self.dissatisfied_answers, self.rated_answers)
        self.rectification_on_time_rate = rate(self.rectifications_on_time, self.rectifications_due)
        self.follow_up_satisfied_rate = rate(self.follow_ups_satisfied, self.follow_ups)
        self.on_time_resolution_rate = rate(self.resolved_on_time, self.limited_resolved)
        self.onsite_completion_rate = rate(self.onsite_forms, self.onsite_quota)
        self.complaint_rate = rate(self.complaints, self.cases_accepted)


def rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def in_period(week: str, period: Period) -> bool:
    """A round's week belongs to the period holding its Monday."""
    _, monday = parse_week(week)
    start = datetime.combine(monday, datetime.min.time(), period.start.tzinfo)
    return period.start <= start < period.end


def compute(session: Session, settings: Settings, ranking: Ranking, now: datetime) -> list[WindowIndicators]:
    """Every window's indicators for the ranking's period, in the ranking's window order, with alerts."""
    period = ranking.period
    names: dict[int, str] = {window_id: name for window_id, name in session.execute(select(Window.id, Window.name))}
    by_window = {w.window: WindowIndicators(w.window) for w in ranking.windows}
    for name in names.values():
        by_window.setdefault(name, WindowIndicators(name))

    rated_callbacks = (
        select(Contact.callback_id).join(Answer, Answer.contact_id == Contact.id)
        .where(Answer.level.is_not(None), Contact.callback_id.is_not(None))
    )
    for window_id, week, status, rated in session.execute(
        select(Callback.window_id, Round.week, Callback.status, Callback.id.in_(rated_callbacks))
        .join(Round, Round.id == Callback.round_id)
        .where(Callback.follow_up == 0, Round.active_week.is_not(None))
    ):
        if not in_period(week, period):
            continue
        item = by_window[names[window_id]]
        item.selected += 1
        item.completed += status == "completed"
        item.unrated += not rated

    for score in ranking.windows:
        item = by_window[score.window]
        item.rated_answers = sum(score.levels.values())
        item.satisfied_answers = score.levels.get("满意", 0) + score.levels.get("基本满意", 0)
        item.dissatisfied_answers = score.levels.get("不满意", 0)

    for window_id, history in session.execute(
        select(Rectification.window_id, Rectification.history).where(Rectification.opened_at < period.end)
    ):
        item = by_window[names[window_id]]
        for due, on_time in response_cycles(history):
            if period.start <= due < period.end and (on_time is not None or due < now):
                item.rectifications_due += 1
                item.rectifications_on_time += bool(on_time)

    follow_ups: dict[int, tuple[int, bool]] = {}
    for callback_id, window_id, level in session.execute(
        select(Callback.id, Callback.window_id, Answer.level)
        .join(Contact, Contact.callback_id == Callback.id)
        .join(Answer, Answer.contact_id == Contact.id)
        .where(Callback.follow_up > 0, Callback.closed_at >= period.start, Callback.closed_at < period.end,
               Answer.level.is_not(None))
    ):
        _, satisfied = follow_ups.get(callback_id, (window_id, True))
        follow_ups[callback_id] = (window_id, satisfied and level != "不满意")
    for window_id, satisfied in follow_ups.values():
        item = by_window[names[window_id]]
        item.follow_ups += 1
        item.follow_ups_satisfied += satisfied

    count_service_rules(session, settings, period, now, names, by_window)

    for name, alerts in alerts_for(session, settings, ranking).items():
        by_window[name].alerts = alerts
    for item in by_window.values():
        item.fill_rates()
        item.complaint_rate_target = settings.indicators.complaint_rate_target
        if complaints.over_target(item.complaint_rate, settings):
            assert item.complaint_rate is not None
            item.alerts.append(complaints.alert_text(item.complaint_rate, settings))
    for window_id in onsite_quota.short_windows(session, settings, period, now, created_of(session)):
        by_window[names[window_id]].alerts.append(onsite_quota.alert_text(settings))
    order = {w.window: i for i, w in enumerate(ranking.windows)}
    return sorted(by_window.values(), key=lambda i: (order.get(i.window, len(order)), i.window))


def count_service_rules(
    session: Session, settings: Settings, period: Period, now: datetime, names: dict[int, str],
    by_window: dict[str, WindowIndicators],
) -> None:
    """The counts of 限时办结, the on-site form quota and 投诉率 (see the modules named in this one's docstring)."""
    for window_id, limits in time_limits.evaluate(session, settings, period, now).items():
        item = by_window[names[window_id]]
        item.limited_resolved, item.resolved_on_time = limits.resolved, limits.on_time
        item.overdue_cases = len(limits.overdue)
    for window_id, quota in onsite_quota.quota_figures(session, settings, period, now, list(names)).items():
        item = by_window[names[window_id]]
        item.onsite_forms, item.onsite_quota = quota.forms, quota.quota
    for window_id, (complained, accepted) in complaints.complaint_counts(session, settings, period).items():
        item = by_window[names[window_id]]
        item.complaints, item.cases_accepted = complained, accepted


def created_of(session: Session) -> dict[int, datetime]:
    """Each window's id and when callbackd learnt of it."""
    return {window_id: created for window_id, created in session.execute(select(Window.id, Window.created_at))}


def response_cycles(history: list[dict[str, Any]]) -> list[tuple[datetime, bool | None]]:
    """Each response a rectification owed: (its due time, whether it came in time, or None while not given)."""
    cycles: list[tuple[datetime, bool | None]] = []
    for step in history:
        if step.get("step") in ("opened", "reopened") and step.get("due"):
            cycles.append((datetime.fromisoformat(step["due"]), None))
        elif step.get("step") == "responded" and cycles and cycles[-1][1] is None:
            cycles[-1] = (cycles[-1][0], bool(step.get("on_time")))
        elif step.get("step") == "withdrawn" and cycles and cycles[-1][1] is None:
            cycles.pop()  # withdrawn before the window answered: it owed nothing
    return cycles


def alerts_for(session: Session, settings: Settings, ranking: Ranking) -> dict[str, list[str]]:
    """Windows last, or failing, in each of the last `alert_periods` periods (published rankings where published)."""
    from callbackd.measure.rankings import ranking_for

    count = settings.indicators.alert_periods
    rankings = [ranking] + [
        ranking_for(session, settings, shift(ranking.period, -back, settings.zone).text)
        for back in range(1, count)
    ]
    failing = ranking.rules.failing_grade
    out: dict[str, list[str]] = defaultdict(list)
    for window in ranking.windows:
        if all(is_last(r, window.window) for r in rankings):
            out[window.window].append(f"连续{count}期排名末位")
        if all(grade_of(r, window.window) == failing for r in rankings):
            out[window.window].append(f"连续{count}期{failing}")
    return dict(out)


def is_last(ranking: Ranking, window: str) -> bool:
    ranks = [w.rank for w in ranking.windows if w.rank is not None]
    mine = next((w.rank for w in ranking.windows if w.window == window), None)
    return len(ranks) >= 2 and mine is not None and mine == max(ranks)


def grade_of(ranking: Ranking, window: str) -> str | None:
    return next((w.grade for w in ranking.windows if w.window == window), None)
