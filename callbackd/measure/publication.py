"""Publishing a period (公示、通报): its ranking and indicators frozen as announced.

A published period's score, indicators and exports read the publication, so later imports (a late operator
result, a corrected form) never move a ranking that has been announced. Publishing it again takes an explicit
republish with a reason; the new publication supersedes the old one, which is kept, and both steps are in the
audit trail with the windows whose score or rank changed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callbackd.core.errors import CallbackdError
from callbackd.core.periods import parse_period
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
