"""Publishing a period (公示、通报): its ranking and indicators frozen as announced.

A published period's score, indicators and exports read the publication, so later imports (a late operator
result, a corrected form) never move a ranking that has been announced. Publishing it again takes an explicit
republish with a reason; the new publication supersedes the old one, which is kept, and both steps are in the
audit trail with the windows whose score or rank changed.

A publication freezes its own period only: the month, quarter and year that contain a published week (or month)
stay live until they are published themselves. `standing` says which a period is, in the one sentence the command
line, the console and the exports all show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callbackd.core.errors import CallbackdError
from callbackd.core.periods import Period, parse_period
from callbackd.core.settings import Settings
from callbackd.measure import indicators
from callbackd.measure.rankings import current, describe
from callbackd.measure.scoring import Ranking, score_period
from callbackd.store import audit
from callbackd.store.models import Publication


class PublicationError(CallbackdError):
    """A period published, or republished, in a way that would lose track of what was announced."""


def indicators_for(
    session: Session, settings: Settings, ranking: Ranking, now: datetime
) -> list[indicators.WindowIndicators]:
    """The indicators beside a ranking: frozen with it when it was published, else computed now."""
    if ranking.published is not None:
        publication = session.get(Publication, ranking.published["publication"])
        if publication is not None:
            return [indicators.WindowIndicators(**item) for item in publication.snapshot.get("indicators", [])]
    return indicators.compute(session, settings, ranking, now)


def publish(
    session: Session, settings: Settings, period_text: str, now: datetime, *, republish: bool = False,
    reason: str = "",
) -> tuple[Publication, list[str]]:
    """Freeze a period's ranking and indicators as they stand now. A period already published needs
    `republish` and a `reason`. Returns the publication and the windows whose score, grade or rank it changed."""
    period = parse_period(period_text, settings.zone)
    existing = current(session, period.text)
    reason = reason.strip()
    if existing is not None and not republish:
        raise PublicationError(
            f"period {period.text} was published on {existing.published_at.astimezone(settings.zone):%Y-%m-%d %H:%M} "
            f"(publication {existing.id}); to change it give --republish --reason '...'"
        )
    if republish and existing is None:
        raise PublicationError(f"period {period.text} has not been published; publish it without --republish")
    if republish and not reason:
        raise PublicationError("--republish needs --reason saying why the published ranking changes")
    if period.start > now:
        raise PublicationError(f"period {period.text} has not begun: there is nothing to publish yet")
    ranking = score_period(session, settings, period.text, with_questions=True)
    figures = indicators.compute(session, settings, ranking, now)
    changed: list[str] = []
    if existing is not None:
        before = {w["window"]: (w["score"], w["grade"], w["rank"]) for w in existing.snapshot["ranking"]["windows"]}
        changed = [w.window for w in ranking.windows if before.get(w.window) != (w.score, w.grade, w.rank)]
        existing.active_period = None
        session.flush()
    publication = Publication(
        period=period.text, active_period=period.text, published_at=now, published_by=audit.actor(),
        reason=reason, supersedes_id=existing.id if existing else None,
        snapshot={"ranking": ranking.as_dict(), "questions": ranking.questions,
                  "rules": ranking.rules.model_dump(mode="json"), "indicators": [i.as_dict() for i in figures]},
    )
    session.add(publication)
    session.flush()
    audit.record(session, "republish" if existing else "publish", f"period {period.text}",
                 publication=publication.id, supersedes=existing.id if existing else None, reason=reason,
                 changed=changed)
    return publication, changed


def history(session: Session, period_text: str, settings: Settings) -> list[dict[str, Any]]:
    """Every publication of a period, oldest first."""
    period = parse_period(period_text, settings.zone)
    return [
        {**describe(p), "in_force": p.active_period is not None}
        for p in session.scalars(select(Publication).where(Publication.period == period.text).order_by(Publication.id))
    ]


def publications(
    session: Session, settings: Settings, *, offset: int = 0, limit: int | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Every period's publications, newest first (a page of them, with `offset` and `limit`), each as `history`
    gives it with its period and the period's label; and how many there are in all."""
    total = session.scalar(select(func.count(Publication.id))) or 0
    query = select(Publication).order_by(Publication.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [
        {**describe(p), "period": p.period, "label": parse_period(p.period, settings.zone).label,
         "in_force": p.active_period is not None}
        for p in session.scalars(query)
    ], total


# ---- frozen or live --------------------------------------------------------------------------------------

KINDS = ("week", "month", "quarter", "year")  # shortest first
NAMED_PARTS = 3  # published parts named one by one; more are counted


@dataclass(frozen=True)
class Standing:
    """Whether a period's ranking is frozen as published or live, with the shorter periods within it that are
    published (frozen themselves, while it is not), and the sentence that says so."""

    period: Period
    publication: dict[str, Any] | None  # the publication in force (`rankings.describe`), None while live
    parts: list[dict[str, Any]]  # published shorter periods overlapping it, in time order: period, label, when, by
    note: str  # the sentence in Chinese

    @property
    def frozen(self) -> bool:
        return self.publication is not None

    def as_dict(self) -> dict[str, Any]:
        return {"period": self.period.text, "label": self.period.label, "state": "frozen" if self.frozen else "live",
                "publication": self.publication, "published_parts": self.parts, "note": self.note}


def standing(session: Session, settings: Settings, period_text: str) -> Standing:
    """A period's standing: frozen as published (when, by whom), or live, naming the published weeks, months or
    quarters within it."""
    period = parse_period(period_text, settings.zone)
    publication = current(session, period.text)
    if publication is not None:
        described = describe(publication)
        again = f"（重新公示，原因：{publication.reason}）" if publication.supersedes_id else ""
        note = (f"{period.label}排名已于{_when(publication, settings)}由{publication.published_by}公示并冻结{again}，"
                f"此后补录的数据不再改变公示结果。")
        return Standing(period, described, [], note)
    parts = _published_parts(session, settings, period)
    note = f"{period.label}排名随回访结果实时更新，尚未公示"
    if len(parts) > NAMED_PARTS:
        latest = max(parts, key=lambda part: part["published_at"])
        note += (f"；其中{'、'.join(p['label'] for p in parts[:NAMED_PARTS])}等{len(parts)}个期间已公示并冻结"
                 f"（最近为{latest['label']}，{latest['published_local']}由{latest['published_by']}公示）")
    elif parts:
        note += "；其中" + "、".join(f"{p['label']}已于{p['published_local']}由{p['published_by']}公示并冻结"
                                    for p in parts)
    return Standing(period, None, parts, note + "。")


def containing(session: Session, settings: Settings, period_text: str) -> list[Standing]:
    """The standing of each longer period that contains (or overlaps) this one: a week's month (two, when the
    week straddles them), quarter and year; a month's quarter and year; a quarter's year. Shortest first."""
    period = parse_period(period_text, settings.zone)
    first, last = period.start.date(), (period.end - timedelta(days=1)).date()
    texts: list[str] = []
    for kind in KINDS[KINDS.index(period.kind) + 1:]:
        for day in (first, last):
            text = _period_of(day, kind)
            if text not in texts:
                texts.append(text)
    return [standing(session, settings, text) for text in texts]


def _period_of(day: date, kind: str) -> str:
    if kind == "month":
        return f"{day:%Y-%m}"
    if kind == "quarter":
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}"


def _published_parts(session: Session, settings: Settings, period: Period) -> list[dict[str, Any]]:
    # publications in force are few (one per published period), so they are read whole and matched here
    shorter = KINDS[:KINDS.index(period.kind)]
    parts = []
    for publication in session.scalars(select(Publication).where(Publication.active_period.is_not(None))):
        part = parse_period(publication.period, settings.zone)
        if part.kind in shorter and part.start < period.end and period.start < part.end:
            parts.append((part.start, -KINDS.index(part.kind), part, publication))
    parts.sort(key=lambda found: found[:2])  # in time order; a month before the weeks that begin with it
    return [{"period": part.text, "label": part.label, "published_at": publication.published_at.isoformat(),
             "published_local": _when(publication, settings), "published_by": publication.published_by}
            for _, _, part, publication in parts]


def _when(publication: Publication, settings: Settings) -> str:
    return f"{publication.published_at.astimezone(settings.zone):%Y-%m-%d %H:%M}"
