"""Score tallies: per window, source and local day (and month and year), the scored contacts, the sum of their
scores and their rated answers by level, and per question the answers by level, kept up to date in the transaction
that records, corrects or withdraws answers, so that scoring a period sums a few thousand rows instead of a year
of answers.

- A contact's score is the (weighted) mean of its rated questions' points, held as an integer in millionths of a
  point so that sums are exact in any order: the tallies and the answers give the same figures to the last digit.
  A contact counts once it has a rated answer. When a contact's answers change, its old contribution is taken out
  and its new one put in.
- Days are the contacts' local dates in the zone the tallies were built under; month and year rows hold the sums
  of their days, so a period reads at most a few dozen rows per window and source whatever its length.
- Follow-up callbacks (整改回访) are not a score source and are not tallied; neither is an unsigned visit or on-site
  record (`Contact.unsigned`, 签名确认) until it is signed: `callbackd.contact.signatures` moves its contribution in
  and out in the transaction that signs it, and raw scoring and `rebuild` leave unsigned contacts out alike.
- `TallyState` records the zone and the rules (points, question weights) the tallies follow. Scoring under other
  rules reads the answers; `rebuild` makes the tallies again from the answers under given rules (the migration
  that made these tables, `callbackd init` when the configured rules differ, the benchmark).

Callers: `callbackd.contact.answers` (writers) and `callbackd.measure.scoring` (readers).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, cached_property
from typing import Any, Protocol, cast
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Date,
    String,
    Table,
    and_,
    case,
    delete,
    func,
    insert,
    inspect,
    literal,
    or_,
    select,
    type_coerce,
)
from sqlalchemy import cast as cast_
from sqlalchemy.orm import Session

from callbackd.core.settings import ScoringSettings, Settings
from callbackd.core.vocabulary import LEVEL_NAMES, SOURCES
from callbackd.store.models import Answer, Contact, QuestionTally, ScoreTally, TallyState

MILLIONTHS = 1_000_000
LEVEL_COLUMNS = ("satisfied", "fairly_satisfied", "dissatisfied")  # LEVEL_NAMES, in order
DAY, MONTH, YEAR = "day", "month", "year"

_scores, _questions, _state = (cast(Table, m.__table__) for m in (ScoreTally, QuestionTally, TallyState))
_answers, _contacts = cast(Table, Answer.__table__), cast(Table, Contact.__table__)


class TalliedContact(Protocol):
    """What tallying needs to know of a contact (a `Contact` row, or the plain values a webhook holds)."""

    @property
    def window_id(self) -> int: ...

    @property
    def source(self) -> str: ...

    @property
    def contacted_at(self) -> datetime: ...

    @property
    def simulated(self) -> bool: ...


@dataclass(frozen=True)
class TallyRules:
    """What the tallies depend on: the zone that cuts days, the level points and the question weights (source
    weights, grades and minimums apply when reading, so changing them needs no rebuild)."""

    zone: str
    points: tuple[tuple[str, float], ...]
    question_weights: tuple[tuple[str, float], ...]

    @classmethod
    def of(cls, settings: Settings) -> TallyRules:
        """The rules that `settings` score under."""
        return cls.from_scoring(settings.scoring, settings.timezone)

    @classmethod
    def from_scoring(cls, scoring: ScoringSettings, zone: str) -> TallyRules:
        return cls(zone, tuple(sorted((k, float(v)) for k, v in scoring.points.items())),
                   tuple(sorted((k, float(v)) for k, v in scoring.question_weights.items())))

    @classmethod
    def defaults(cls) -> TallyRules:
        """The rules of the default settings (what the migration builds under)."""
        return cls.from_scoring(ScoringSettings(), str(Settings.model_fields["timezone"].default))

    @cached_property
    def _points(self) -> dict[str, float]:
        return dict(self.points)

    @cached_property
    def _weights(self) -> dict[str, float]:
        return dict(self.question_weights)

    def text(self) -> str:
        """The points and question weights as the JSON that `TallyState.rules` holds."""
        return json.dumps({"points": dict(self.points), "question_weights": dict(self.question_weights)},
                          sort_keys=True, ensure_ascii=False)

    def contribution(self, levels: Mapping[str, str | None]) -> tuple[int, int, list[int]]:
        """A contact's part in its tally from its answers (question -> level): (1 when it has a rated answer
        else 0, its score in millionths, its rated answers by level). The same arithmetic as `contact_score`."""
        points, weights = self._points, self._weights
        rated = [(question, level) for question, level in levels.items() if level in points]
        counts = [0] * len(LEVEL_NAMES)
        if not rated:
            return 0, 0, counts
        for _, level in rated:
            counts[LEVEL_NAMES.index(level)] += 1
        if weights:
            total = sum(points[level] * weights.get(q, 1.0) for q, level in rated)
            score = total / sum(weights.get(q, 1.0) for q, _ in rated)
        else:
            score = sum(points[level] for _, level in rated) / len(rated)
        return 1, round(score * MILLIONTHS), counts


@cache
def _parse(zone: str, text: str) -> TallyRules:
    document = json.loads(text)
    return TallyRules(zone, tuple(sorted(document["points"].items())),
                      tuple(sorted(document["question_weights"].items())))


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def contact_score(rules: TallyRules, level: Any, question: Any) -> ColumnElement[Any]:
    """SQL for one contact's score in millionths of a point, as an aggregate over its rated answers' `level` and
    `question` columns: the arithmetic of `TallyRules.contribution`, for the answers-based scoring and `rebuild`.
    (Only a score lying exactly halfway between two millionths could round apart, SQLite rounding halves away from
    zero where Python rounds them to even: with whole level points and equal weights, no contact of fewer than 128
    rated answers has such a score.)"""
    points = case(*((level == name, literal(value)) for name, value in rules.points), else_=None)
    if rules.question_weights:
        weight: Any = case(*((question == key, literal(w)) for key, w in rules.question_weights),
                           else_=literal(1.0))
        score: Any = func.sum(points * weight) / func.sum(weight)
    else:
        score = func.avg(points)  # equal weights: the plain mean
    return cast_(func.round(score * MILLIONTHS), BigInteger)


def mean(score_sum: int, contacts: int) -> float:
    """The mean contact score (points) of a tally's `score_sum` (millionths) over `contacts`."""
    return score_sum / (contacts * MILLIONTHS)


# ---- the state ------------------------------------------------------------------------------------------------

_STATE = "SELECT zone, rules FROM tally_state WHERE id = 1"
_CACHED = "callbackd.tallies"


def rules_in_force(session: Session) -> TallyRules | None:
    """The rules the tallies were built under, None when they never were; read once per transaction."""
    transaction = session.get_transaction()
    cached = session.info.get(_CACHED)
    if cached is not None and transaction is not None and cached[0] is transaction:
        return cast(TallyRules | None, cached[1])
    # on the driver's own cursor: a read of one row, which SQLAlchemy's execution would cost several times over
    cursor = session.connection().connection.cursor()
    try:
        cursor.execute(_STATE)
        row = cursor.fetchone()
    finally:
        cursor.close()
    rules = None if row is None else _parse(row[0], row[1])
    session.info[_CACHED] = (transaction, rules)
    return rules


def ensure(session: Session, rules: TallyRules) -> bool:
    """Rebuild the tallies under `rules` unless they follow them already; whether they were rebuilt."""
    if rules_in_force(session) == rules:
        return False
    rebuild(session.connection(), rules)
    session.info.pop(_CACHED, None)
    return True


# ---- keeping them up to date --------------------------------------------------------------------------------


_LEVEL_INDEX = {name: i for i, name in enumerate(LEVEL_NAMES)}


def contact_changed(
    session: Session, contact: TalliedContact, before: Mapping[str, str | None], after: Mapping[str, str | None],
) -> None:
    """A contact's answers went from `before` to `after` (question -> level; text answers may be given with
    level None): its tallies follow, with two statements at most."""
    if contact.source not in SOURCES:  # follow-up callbacks are not scored
        return
    # an unsigned visit or on-site record is not scored until signed (a webhook's plain contact never is unsigned)
    if getattr(contact, "unsigned", False):
        return
    rules = rules_in_force(session)
    if rules is None:
        return
    old_contacts, old_score, old_levels = rules.contribution(before)
    new_contacts, new_score, new_levels = rules.contribution(after)
    contacts = new_contacts - old_contacts
    scored = (contacts, new_score - old_score, contacts if contact.simulated else 0,
              *(new - old for new, old in zip(new_levels, old_levels, strict=True)))
    questions = []
    for question in sorted(before.keys() | after.keys()):  # in one order, as the spans below
        was, now = before.get(question), after.get(question)
        if was == now:
            continue
        change = [0] * len(LEVEL_NAMES)
        if was in _LEVEL_INDEX:
            change[_LEVEL_INDEX[was]] -= 1
        if now in _LEVEL_INDEX:
            change[_LEVEL_INDEX[now]] += 1
        if any(change):
            questions.append((question, change))
    if not any(scored) and not questions:
        return
    connection = session.connection()
    sqlite = connection.dialect.name == "sqlite"
    day = contact.contacted_at.astimezone(_zone(rules.zone)).date()
    # the year, then the month, then the day: every transaction takes a window's rows in the same order, so none
    # waits for one that waits for it
    spans = [(span, starts.isoformat() if sqlite else starts)  # SQLite keeps a date as its ISO text
             for span, starts in ((YEAR, day.replace(month=1, day=1)), (MONTH, day.replace(day=1)), (DAY, day))]
    # the driver's own statement, written once: a webhook records one answer a request, and building the statement
    # through SQLAlchemy's compiled cache each time would cost more than running it
    marker = "?" if sqlite else "%s"
    if any(scored):
        connection.exec_driver_sql(_upsert(_scores, marker), [
            (span, starts, contact.window_id, contact.source, *scored) for span, starts in spans])
    if questions:
        connection.exec_driver_sql(_upsert(_questions, marker), [
            (span, starts, contact.window_id, contact.source, question, *change)
            for span, starts in spans for question, change in questions])


@cache
def _upsert(table: Table, marker: str) -> str:
    """INSERT ... ON CONFLICT DO UPDATE adding the row's counts to those held, taking the columns in the table's
    order (SQLite and PostgreSQL write it alike; `marker` is the driver's placeholder)."""
    columns = [c.name for c in table.columns]
    key = [c.name for c in table.primary_key.columns]
    assert columns[:len(key)] == key  # the rows are given key first
    return (f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([marker] * len(columns))}) "
            f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET "
            + ", ".join(f"{name} = {table.name}.{name} + excluded.{name}" for name in columns[len(key):]))


# ---- reading them -------------------------------------------------------------------------------------------


def _covering(table: Table, first: date, end: date) -> ColumnElement[bool]:
    """Rows of `table` that together cover the local days [first, end) once: the whole years inside as year rows,
    the whole months left as month rows, the days left as day rows."""
    return or_(*(and_(table.c.span == span, table.c.starts >= low, table.c.starts < high)
                 for span, low, high in _pieces(first, end)))


def _pieces(first: date, end: date) -> list[tuple[str, date, date]]:
    """(span, low, high): the rows of `span` starting in [low, high), together covering [first, end) once."""
    for span, floor, following in ((YEAR, _year_of, _next_year), (MONTH, _month_of, _next_month)):
        low = first if floor(first) == first else following(floor(first))
        high = floor(end)
        if low < high:
            return [*_pieces(first, low), (span, low, high), *_pieces(high, end)]
    return [(DAY, first, end)] if first < end else []


def _year_of(day: date) -> date:
    return day.replace(month=1, day=1)


def _month_of(day: date) -> date:
    return day.replace(day=1)


def _next_year(day: date) -> date:
    return day.replace(year=day.year + 1)


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def scores(session: Session, rules: TallyRules, first: date, end: date) -> list[Sequence[Any]] | None:
    """Per window and source over the local days [first, end): (window id, source, contacts, score sum in
    millionths, simulated contacts, rated answers by level...). None when the tallies do not follow `rules`:
    read the answers instead."""
    if rules_in_force(session) != rules:
        return None
    total = [func.sum(_scores.c[name]) for name in ("contacts", "score_sum", "simulated", *LEVEL_COLUMNS)]
    rows = session.connection().execute(
        select(_scores.c.window_id, _scores.c.source, *total)
        .where(_covering(_scores, first, end))
        .group_by(_scores.c.window_id, _scores.c.source)
        .having(total[0] > 0)  # a source whose contacts were all withdrawn has none
    )
    return [(window_id, source, *(int(n) for n in numbers)) for window_id, source, *numbers in rows]


def questions(session: Session, zone: str, first: date, end: date) -> Iterator[tuple[Any, ...]] | None:
    """Per window and question over the local days [first, end): (window id, question, rated answers by
    level...), read as they are iterated. None when the tallies were not built, or not in `zone` (the per-question
    counts need no points)."""
    rules = rules_in_force(session)
    if rules is None or rules.zone != zone:
        return None
    total = [func.sum(_questions.c[name]) for name in LEVEL_COLUMNS]
    rows = session.connection().execute(
        select(_questions.c.window_id, _questions.c.question, *total)
        .where(_covering(_questions, first, end))
        .group_by(_questions.c.window_id, _questions.c.question)
        .having(or_(*(n > 0 for n in total)))
    )
    return ((window_id, question, *map(int, numbers)) for window_id, question, *numbers in rows)


# ---- rebuilding them from the answers -----------------------------------------------------------------------


def rebuild(connection: Connection, rules: TallyRules, now: datetime | None = None) -> None:
    """Make the tallies again from the answers, under `rules`, in the connection's transaction. A writer that
    read the former rules before the rebuild would count its answer under them: rebuild while nothing records
    answers (as `callbackd init` runs, before the service starts)."""
    connection.execute(delete(_questions))
    connection.execute(delete(_scores))
    connection.execute(delete(_state))
    scored = and_(_answers.c.source.in_(SOURCES), _answers.c.level.in_(LEVEL_NAMES))
    # before revision 0012 (the rebuild of revision 0008) contacts has no `unsigned` column, and none is unsigned
    if any(column["name"] == "unsigned" for column in inspect(connection).get_columns("contacts")):
        scored = and_(scored, _answers.c.contact_id.not_in(unsigned_contacts()))
    lo, hi = connection.execute(select(func.min(_answers.c.contacted_at), func.max(_answers.c.contacted_at))
                                .where(scored)).one()
    if lo is not None:
        local_day = _local_day(connection.dialect.name, rules.zone, lo, hi)
        levels = [func.sum(case((_answers.c.level == name, 1), else_=0)).label(column)
                  for name, column in zip(LEVEL_NAMES, LEVEL_COLUMNS, strict=True)]
        per_contact = (
            select(_answers.c.window_id, _answers.c.source, local_day(_answers.c.contacted_at).label("day"),
                   case((_contacts.c.simulated, 1), else_=0).label("simulated"),
                   contact_score(rules, _answers.c.level, _answers.c.question).label("score"), *levels)
            .join(_contacts, _contacts.c.id == _answers.c.contact_id)
            .where(scored)
            .group_by(_answers.c.contact_id, _answers.c.window_id, _answers.c.source, _answers.c.contacted_at,
                      _contacts.c.simulated)
            .subquery()
        )
        keys = (per_contact.c.day, per_contact.c.window_id, per_contact.c.source)
        connection.execute(insert(_scores).from_select(
            ["span", "starts", "window_id", "source", "contacts", "score_sum", "simulated", *LEVEL_COLUMNS],
            select(literal(DAY), *keys, func.count(), func.sum(per_contact.c.score),
                   func.sum(per_contact.c.simulated), *(func.sum(per_contact.c[column]) for column in LEVEL_COLUMNS))
            .group_by(*keys),
        ))
        dated = (select(_answers.c.window_id, _answers.c.source, _answers.c.question, _answers.c.level,
                        local_day(_answers.c.contacted_at).label("day"))
                 .where(scored).subquery())
        question_keys = (dated.c.day, dated.c.window_id, dated.c.source, dated.c.question)
        connection.execute(insert(_questions).from_select(
            ["span", "starts", "window_id", "source", "question", *LEVEL_COLUMNS],
            select(literal(DAY), *question_keys,
                   *(func.sum(case((dated.c.level == name, 1), else_=0)) for name in LEVEL_NAMES))
            .group_by(*question_keys),
        ))
        for table in (_scores, _questions):
            _roll_up(connection, table, DAY, MONTH)
            _roll_up(connection, table, MONTH, YEAR)
    connection.execute(insert(_state).values(id=1, zone=rules.zone, rules=rules.text(),
                                             built_at=now or datetime.now(UTC)))


def unsigned_contacts() -> Any:
    """The ids of the contacts not scored for want of a signature (签名确认), as a subquery: few, and indexed."""
    return select(_contacts.c.id).where(_contacts.c.unsigned.is_(True))


def _roll_up(connection: Connection, table: Table, span: str, into: str) -> None:
    """Rows of span `into` (month, year) as the sums of their rows of `span`."""
    if connection.dialect.name == "postgresql":
        starts: Any = cast_(func.date_trunc(into, table.c.starts), Date)
    else:
        starts = func.date(table.c.starts, f"start of {into}")
    kept = [c.name for c in table.primary_key.columns if c.name not in ("span", "starts")]
    counts = [c.name for c in table.columns if not c.primary_key]
    parts = (select(starts.label("starts"), *(table.c[n] for n in kept + counts))
             .where(table.c.span == span).subquery())
    keys = (parts.c.starts, *(parts.c[n] for n in kept))
    connection.execute(insert(table).from_select(
        ["span", "starts", *kept, *counts],
        select(literal(into), *keys, *(func.sum(parts.c[n]) for n in counts)).group_by(*keys),
    ))


def _local_day(dialect: str, zone: str, lo: datetime, hi: datetime) -> Callable[[Any], Any]:
    """SQL for the local date in `zone` of a stored UTC time between `lo` and `hi`. PostgreSQL knows the zones;
    SQLite is given the zone's UTC offsets over that span, from Python's own zone data, so both agree with the
    writers' `astimezone`."""
    if dialect == "postgresql":
        return lambda column: cast_(func.timezone(zone, column), Date)
    changes = list(_offsets(_zone(zone), lo, hi))

    def day(column: Any) -> Any:
        stored = type_coerce(column, String)  # compared as SQLite keeps it: naive UTC text
        shift: Any = literal(f"{changes[-1][1]:+d} seconds")
        if len(changes) > 1:
            # before the i-th change, the offset of the one before it
            shift = case(*((stored < literal(_stamp(changes[i][0])), literal(f"{changes[i - 1][1]:+d} seconds"))
                           for i in range(1, len(changes))), else_=shift)
        return func.date(stored, shift)

    return day


def _offsets(zone: ZoneInfo, lo: datetime, hi: datetime) -> Iterator[tuple[datetime, int]]:
    """(from when, UTC offset in seconds) for each offset `zone` has between `lo` and `hi`, in order."""
    step = timedelta(hours=6)  # no zone changes its offset twice within six hours

    def offset(moment: datetime) -> int:
        return int(moment.astimezone(zone).utcoffset().total_seconds())  # type: ignore[union-attr]

    moment = lo.astimezone(UTC) - step
    current = offset(moment)
    yield moment, current
    while moment <= hi:
        following = moment + step
        if offset(following) != current:
            low, high = moment, following  # the change is in (low, high]: find its second
            while high - low > timedelta(seconds=1):
                middle = low + (high - low) / 2
                low, high = (low, middle) if offset(middle) != current else (middle, high)
            current = offset(high)
            yield high, current
        moment = following


def _stamp(moment: datetime) -> str:
    """A UTC time as SQLite keeps it (see `UTCDateTime`)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
