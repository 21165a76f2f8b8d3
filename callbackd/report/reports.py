"""Ranking reports written on a schedule: beat's `scores` task writes last week's and the current month's ranking
so the supervisory unit finds them ready on Monday morning."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from callbackd.api.manager import Plugins
from callbackd.core.settings import Settings
from callbackd.measure import evaluation, publication, rankings
from callbackd.measure.scoring import Ranking
from callbackd.report.exports import ExportContext, default_filename
from callbackd.rounds import sampling
from callbackd.store import audit

FORMATS = ("json", "html")


def recent_periods(now: datetime, settings: Settings) -> list[str]:
    """The week before `now`'s week, and the month of yesterday (both in the settings' zone)."""
    local = now.astimezone(settings.zone)
    last_week = (local - timedelta(days=7)).isocalendar()
    yesterday = local - timedelta(days=1)
    return [f"{last_week.year}-W{last_week.week:02d}", f"{yesterday.year}-{yesterday.month:02d}"]


def export_context(session: Session, settings: Settings, ranking: Ranking, now: datetime) -> ExportContext:
    """What every export of `ranking` shows beside it: the organisation, the question labels of the survey in
    force, the time, the period's evaluation sheets, and whether it is frozen as published or live."""
    survey = sampling.survey_in_force(settings)
    return ExportContext(settings.organisation, {q.key: q.dimension for q in survey.rating_questions()}, now,
                         evaluation.build(session, settings, ranking, now),
                         publication.standing(session, settings, ranking.period.text))


def write_recent(session: Session, settings: Settings, plugins: Plugins, now: datetime) -> list[Path]:
    """Write the recent periods' rankings in each of `FORMATS` to `[workers] reports_folder`; returns the files."""
    folder = Path(settings.workers.reports_folder).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for period in recent_periods(now, settings):
        # a published period as published: a scheduled report never contradicts an announced ranking
        ranking = rankings.ranking_for(session, settings, period, with_questions=True)
        context = export_context(session, settings, ranking, now)
        for name in FORMATS:
            exporter = plugins.exporter(name)
            path = folder / default_filename(ranking, exporter)
            exporter.write(ranking, path, context)
            written.append(path)
        audit.record(session, "export", str(folder), period=period, formats=list(FORMATS), scheduled=True)
    return written
