"""Category policies (分类回访要求) and how a period kept them.

The sampling rate rules say which categories are called back and by when (complaints within 3 working days of
resolution, reports within 5, repairs by urgency: safety 2 days, leaks 3, others 7; `[[sampling.rules]]`). Each
selected callback carries its rule and due time; this report counts, per category, what was selected, made, made
in time, overdue, and not made with the reasons (无法联系原因). For `[policies] role_case_types` (repairs) it also
reports who called back: each role's share of the completed callbacks against its minimum
(`[policies] role_minimum_shares`), per window and overall; a visit still lacking the applicant's signature (签名确认)
counts toward no role and is reported apart (`unsigned`). Counts only: no applicant is named.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.core.periods import parse_period
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FINAL_CALLBACK, reason_label
from callbackd.measure.indicators import in_period
from callbackd.store.models import Callback, Case, Contact, Round, Window

UNRECORDED_ROLE = "未登记"
MADE = ("completed", "partial")


@dataclass
class Category:
    name: str
    within_days: int | None
    working_days: bool
    selected: int = 0
    made: int = 0
    made_on_time: int = 0
    overdue: int = 0  # made after its due time, or not made (or still open) past it
    open: int = 0
    not_made: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": self.name, "within_days": self.within_days, "working_days": self.working_days,
            "selected": self.selected, "made": self.made, "made_on_time": self.made_on_time,
            "on_time_rate": round(self.made_on_time / self.selected, 4) if self.selected else None,
            "overdue": self.overdue, "open": self.open, "not_made": dict(self.not_made),
        }


def report(session: Session, settings: Settings, period_text: str, now: datetime) -> dict[str, Any]:
    """The period's category policies: one entry per rate rule, and the role shares."""
    period = parse_period(period_text, settings.zone)
    rules = {rule.name: rule for rule in settings.sampling.rules}
    categories = {name: Category(name, rule.within_days, rule.working_days) for name, rule in rules.items()}
    role_types = set(settings.policies.role_case_types)
    roles: dict[str, Counter[str]] = defaultdict(Counter)
    unsigned: Counter[str] = Counter()
    for name, rule, status, reason, due_at, closed_at, week, case_type, role, lacks_signature in session.execute(
        select(Window.name, Callback.rule, Callback.status, Callback.reason, Callback.due_at, Callback.closed_at,
               Round.week, Case.case_type, Callback.caller_role, Contact.unsigned)
        .join(Round, Round.id == Callback.round_id)
        .join(Case, Case.id == Callback.case_id)
        .join(Window, Window.id == Callback.window_id)
        .outerjoin(Contact, Contact.callback_id == Callback.id)
        .where(Callback.follow_up == 0, Round.active_week.is_not(None))
    ):
        if not in_period(week, period):
            continue
        if case_type in role_types and status in MADE:
            if lacks_signature:  # a visit without the applicant's signature (签名确认) counts toward no role
                unsigned[name] += 1
            else:
                roles[name][role or UNRECORDED_ROLE] += 1
        if rule is None:
            continue
        category = categories.get(rule) or categories.setdefault(rule, Category(rule, None, False))
        category.selected += 1
        if status in MADE:
            category.made += 1
            on_time = due_at is None or (closed_at is not None and closed_at <= due_at)
            category.made_on_time += on_time
            category.overdue += not on_time
        elif status in FINAL_CALLBACK:
            category.not_made[reason_label(reason or status)] += 1
            category.overdue += due_at is not None
        else:
            category.open += 1
            category.overdue += due_at is not None and due_at < now
    return {
        "period": period.text,
        "label": period.label,
        "categories": [c.as_dict() for c in categories.values()],
        "roles": {**role_shares(settings, roles), "unsigned": sum(unsigned.values()),
                  "unsigned_by_window": dict(unsigned)},
    }


def role_shares(settings: Settings, counts: dict[str, Counter[str]]) -> dict[str, Any]:
    """Each role's share of the completed callbacks of the role case types, per window and overall."""
    minimums = settings.policies.role_minimum_shares

    def shares(counter: Counter[str]) -> list[dict[str, Any]]:
        total = sum(counter.values())
        named = list(minimums) + sorted(set(counter) - set(minimums))
        out = []
        for role in named:
            share = round(counter[role] / total, 4) if total else None
            minimum = minimums.get(role)
            out.append({"role": role, "callbacks": counter[role], "share": share, "minimum": minimum,
                        "met": None if minimum is None or share is None else share >= minimum})
        return out

    overall: Counter[str] = Counter()
    for counter in counts.values():
        overall.update(counter)
    return {
        "case_types": list(settings.policies.role_case_types),
        "overall": {"callbacks": sum(overall.values()), "roles": shares(overall)},
        "windows": [{"window": name, "callbacks": sum(counter.values()), "roles": shares(counter)}
                    for name, counter in sorted(counts.items())],
    }
