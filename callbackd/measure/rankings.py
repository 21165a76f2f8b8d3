"""A period's ranking as announced (公示), else as the data stands now."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.core.periods import parse_period
from callbackd.core.settings import ScoringSettings, Settings
from callbackd.measure.scoring import Ranking, WindowScore, score_period
from callbackd.store.models import Publication


def current(session: Session, period_text: str) -> Publication | None:
    """The publication in force for a period (its canonical spelling), if any."""
    return session.scalar(select(Publication).where(Publication.active_period == period_text))


def ranking_for(session: Session, settings: Settings, period_text: str, *, with_questions: bool = False) -> Ranking:
    """The period's ranking as published, else as the data stands now."""
    period = parse_period(period_text, settings.zone)
    publication = current(session, period.text)
    if publication is None:
        return score_period(session, settings, period.text, with_questions=with_questions)
    return from_snapshot(publication, settings)


def from_snapshot(publication: Publication, settings: Settings) -> Ranking:
    snapshot = publication.snapshot
    stored = snapshot["ranking"]
    return Ranking(
        period=parse_period(stored["period"], settings.zone),
        windows=[WindowScore(**window) for window in stored["windows"]],
        minimum_contacts=stored["minimum_contacts"],
        rules=ScoringSettings(**snapshot["rules"]),
        simulated=stored["simulated"],
        questions=snapshot.get("questions", {}),
        published=describe(publication),
    )


def describe(publication: Publication) -> dict[str, Any]:
    return {
        "publication": publication.id,
        "published_at": publication.published_at.isoformat(),
        "published_by": publication.published_by,
        "republish_of": publication.supersedes_id,
        "reason": publication.reason,
    }
