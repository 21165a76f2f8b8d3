"""Importing result files: an operator's call results, on-site forms (征求意见表) and counter evaluator
(电子评价器) exports. Same rules as the ledger: the header found in the first rows (title rows above it skipped),
bad rows reported by line and skipped, good rows kept, one transaction, `--strict` imports nothing when a row is
bad, re-importing a file changes nothing (and writes no audit entry).

A column twice in the header refuses the file. A contact time after today, or an operator's 回访时间 before the
case's 受理时间, is a bad row; so is a second row with answers for one case in an operator file. A form or rating
without a 编号 is known by its content and its rank among identical rows of its file, never by its line: a file
re-saved with more lines counts nothing twice.

Cells read 满意 / 基本满意 / 不满意, or empty for unanswered; the five-level words 非常满意 / 非常不满意 count as
满意 / 不满意 and are kept raw.

One row is recorded by `record_operator` or `record_form`; the console's operator form calls the same functions for
what an operator enters, so a result typed into the console and the same row in a file are stored alike.

Optional columns 回访方式 (电话/上门), 签名人 and 签名 (是/否) say whether a visit or an on-site form carries the
applicant's signature (`callbackd.contact.signatures`); with `[review] required`, a new record waits for a
supervisor's review, and an archived one refuses any change to its answers (`callbackd.contact.review`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.api.manager import Plugins
from callbackd.contact import answers, rectify, review, signatures
from callbackd.contact.conversation import open_conversation
from callbackd.core import clock
from callbackd.core.errors import LedgerFileError, StrictImportError
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT
from callbackd.intake.rows import ImportReport, RowError, RowProblem, TitleRows, parse_time, text
from callbackd.intake.tables import HEADER_ROWS, locate_header, read_table
from callbackd.rounds.surveys import Survey
from callbackd.store import audit
from callbackd.store.models import Attempt, Callback, Case, Contact, Window

SOURCES = ("operator", "onsite", "evaluator")
CELL_LEVELS = {"满意": "满意", "基本满意": "基本满意", "不满意": "不满意", "非常满意": "满意", "非常不满意": "不满意"}
OPERATOR_CHANNEL = "operator"


@dataclass(frozen=True)
class Layout:
    """The columns of one result file: fixed ones, then the survey's rating questions by dimension."""

    fixed: dict[str, str]  # field -> header
    questions: dict[str, str]  # question key -> header (its dimension)
    suggestion: bool


@dataclass(frozen=True)
class ResultFile:
    """A result file to import: its path, its source (operator, onsite or evaluator), and for reading it, a CSV
    file's text encoding or an XLSX file's worksheet."""

    path: Path
    source: str
    encoding: str | None = None
    sheet: str | None = None


@dataclass(frozen=True)
class Recording:
    """What every result recorded in one transaction shares (the rows of one import, or one console entry)."""

    session: Session
    settings: Settings
    plugins: Plugins
    now: datetime
    windows: dict[str, int]  # window name -> id
    labels: dict[str, str]  # question key -> dimension


def recording(session: Session, settings: Settings, plugins: Plugins, survey: Survey,
              now: datetime | None = None) -> Recording:
    """What recording results needs, for `survey`'s questions, at `now` (default: the clock)."""
    labels = {q.key: q.dimension for q in survey.rating_questions()}
    windows = {name: id_ for name, id_ in session.execute(select(Window.name, Window.id))}
    return Recording(session, settings, plugins, now or clock.now(), windows, labels)


@dataclass(frozen=True)
class Result:
    """One row's result: when the applicant was contacted, the answers (question -> (level, raw)), the
    suggestion."""

    contacted_at: datetime
    given: dict[str, tuple[str, str]]
    suggestion: str


# What an operator may report instead of answers (the console's buttons): each ends the attempt as the state
# machine decides for that outcome (a retry, the plan's next channel, or the callback's final state).
OPERATOR_OUTCOMES = ("no_answer", "busy", "invalid_number", "refused")


FORM_NUMBER = "编号"  # an optional column: the form's or the evaluator record's own number
CALLER_ROLE = "回访人角色"  # an optional operator column: who called back (经理, 主管, 维修组长, ...)


def layout(source: str, survey: Survey) -> Layout:
    questions = {q.key: q.dimension for q in survey.rating_questions()}
    if source == "operator":
        return Layout({"case_id": "办件编号", "contacted_at": "回访时间"}, questions, True)
    if source == "onsite":
        return Layout({"window": "窗口", "contacted_at": "日期"}, questions, True)
    return Layout({"window": "窗口", "contacted_at": "评价时间", "rating": "评价"}, {}, False)


def _columns(header: list[Any], wanted: Layout, path: Path, source: str) -> dict[str, int]:
    named = {**wanted.fixed, **wanted.questions, "number": FORM_NUMBER, "caller_role": CALLER_ROLE,
             "method": signatures.METHOD_COLUMN, "signer": signatures.SIGNER_COLUMN,
             "signed": signatures.SIGNED_COLUMN}
    if wanted.suggestion:
        named["suggestion"] = "意见建议"
    index: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = _clean(cell)
        if name in index and name in named.values():
            # keeping either would drop what the other holds (a 不满意 and its rectification)
            raise LedgerFileError(f"{path}: column {name} appears twice in the header line (columns "
                                  f"{index[name] + 1} and {i + 1}); keep one")
        index.setdefault(name, i)
    required = list(wanted.fixed.values())
    missing = [h for h in required if h not in index]
    if missing:
        raise LedgerFileError(f"{path}: required column {'、'.join(missing)} missing from the header line "
                              f"of a {source} result file")
    if wanted.questions and not any(h in index for h in wanted.questions.values()):
        raise LedgerFileError(f"{path}: no question column ({'、'.join(wanted.questions.values())}) in the header")
    return {name: index[h] for name, h in named.items() if h in index}


def _clean(cell: Any) -> str:
    return str(cell or "").strip().lstrip("\ufeff")


def _result_header(wanted: Layout) -> Callable[[list[Any]], tuple[int, bool]]:
    """For `locate_header`: how many of a row's cells are the file's fixed columns, and whether all are."""
    fixed = set(wanted.fixed.values())

    def known(row: list[Any]) -> tuple[int, bool]:
        found = fixed.intersection(map(_clean, row))
        return len(found), found == fixed

    return known


def cell_level(value: Any, column: str) -> tuple[str, str] | None:
    """(level, raw) of a cell, None when empty; an unknown word is a `RowProblem`."""
    raw = text(value)
    if not raw:
        return None
    level = CELL_LEVELS.get(raw)
    if level is None:
        raise RowProblem(f"{column}: {raw!r} is not 满意, 基本满意 or 不满意")
    return level, raw


def import_results(
    session: Session, settings: Settings, plugins: Plugins, survey: Survey, file: ResultFile, *, strict: bool = False,
) -> ImportReport:
    """Import one result file (operator, onsite or evaluator) into the session's transaction."""
    path, source = file.path, file.source
    if source not in SOURCES:
        raise LedgerFileError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    wanted = layout(source, survey)
    located = locate_header(read_table(path, file.encoding, file.sheet), _result_header(wanted))
    if located is None:
        raise LedgerFileError(f"{path}: no header line in its first {HEADER_ROWS} rows (required column "
                              f"{'、'.join(wanted.fixed.values())} of a {source} result file)")
    columns = _columns(located.header, wanted, path, source)
    importing = recording(session, settings, plugins, survey)
    report = ImportReport()
    if located.line > 1:
        report.titles.append(TitleRows(file.sheet, located.line - 1))
    file_rows = _FileRows(source)

    def cell(row: list[Any], name: str) -> Any:
        i = columns.get(name)
        return row[i] if i is not None and i < len(row) else None

    for line, row in enumerate(located.rows, start=located.line + 1):
        if not any(map(text, row)):  # a row of no text (spaces at most) is a blank line, not a form
            continue
        try:
            result = _read_result(row, cell, wanted, settings.zone)
            signing = signatures.read_cells(text(cell(row, "method")), text(cell(row, "signer")),
                                            text(cell(row, "signed")))
            if source == "operator":
                case_no = text(cell(row, "case_id"))
                file_rows.check_case(case_no)
                outcome = record_operator(importing, result, case_no, text(cell(row, "caller_role")) or None,
                                          signing=signing)
                if result.given or result.suggestion:
                    file_rows.note_answers(case_no, line)
            else:
                key = file_rows.form_key(text(cell(row, "number")), text(cell(row, "window")), result)
                outcome = record_form(importing, result, source, text(cell(row, "window")), key, signing)
        except RowProblem as exc:
            case_id = text(cell(row, "case_id")) or None if source == "operator" else None
            report.errors.append(RowError(line, case_id, str(exc)))
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
    if strict and report.errors:
        first = report.errors[0]
        raise StrictImportError(f"{path}: {len(report.errors)} bad row(s), first at line {first.line}: "
                                f"{first.reason}; nothing imported (--strict)", report)
    if report.imported or report.updated:  # a file that changes nothing leaves no trace in the trail
        audit.record(session, "results.import", str(path), source=source, imported=report.imported,
                     updated=report.updated, unchanged=report.unchanged, errors=len(report.errors))
    return report


def _read_result(row: list[Any], cell: Any, wanted: Layout, zone: ZoneInfo) -> Result:
    """A row's contact time, answers and suggestion; raises `RowProblem`."""
    contacted_at = parse_time(cell(row, "contacted_at"), zone, wanted.fixed["contacted_at"])
    if contacted_at is None:
        raise RowProblem(f"{wanted.fixed['contacted_at']} missing")
    given = {}
    for key, header_name in wanted.questions.items():
        reading = cell_level(cell(row, key), header_name)
        if reading is not None:
            given[key] = reading
    if "rating" in wanted.fixed:
        reading = cell_level(cell(row, "rating"), "评价")
        if reading is None:
            raise RowProblem("评价 missing")
        given["overall"] = reading
    return Result(contacted_at, given, text(cell(row, "suggestion")))


class _FileRows:
    """What one file's rows have said so far: the operator rows with answers, by case id, and how many times each
    unnumbered form's content came."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.answered: dict[str, int] = {}  # case id -> line of its row with answers
        self.forms: dict[str, int] = {}  # an unnumbered form's content -> rows of it so far

    def check_case(self, case_no: str) -> None:
        """A case's rows after its row with answers are repeats (rows without answers before it are calls that
        reached nobody): keeping either would silently drop the other."""
        first = self.answered.get(case_no)
        if first is not None:
            raise RowProblem(f"办件编号 {case_no} repeats line {first}, which already holds its answers; keep one "
                             f"row with answers per case")

    def note_answers(self, case_no: str, line: int) -> None:
        """The case's row with answers was imported, at this line."""
        self.answered.setdefault(case_no, line)

    def form_key(self, number: str, window: str, result: Result) -> str:
        """A form's key: its 编号, else its content (read, so a date re-saved as 2026/11/20 is the same) and how
        many identical rows came before it in the file. A re-saved file with one more line finds its old forms
        again; two identical forms of one file both count."""
        if number:
            return f"{self.source}:{number}"
        answers = (f"{key}={raw}" for key, (_, raw) in sorted(result.given.items()))
        content = "\x1f".join([window, result.contacted_at.isoformat(), *answers, result.suggestion])
        seen = self.forms[content] = self.forms.get(content, 0) + 1
        return f"{self.source}:content:{content}\x1f#{seen}"


def check_contact_time(importing: Recording, contacted_at: datetime, column: str) -> None:
    """A contact time later than today (in the zone) is a typing error, never a result: a `RowProblem`."""
    zone, now = importing.settings.zone, importing.now
    tomorrow = datetime.combine(now.astimezone(zone).date() + timedelta(days=1), time(0), zone)
    if contacted_at >= tomorrow:
        raise RowProblem(f"{column} {contacted_at.astimezone(zone):%Y-%m-%d %H:%M} is in the future (today is "
                         f"{now.astimezone(zone):%Y-%m-%d}); correct the date")


def record_form(importing: Recording, result: Result, source: str, window: str, key: str,
                signing: signatures.Signing | None = None) -> str:
    """Record one on-site form (征求意见表) or evaluator rating, known by `key` (its 编号, or its content and rank in
    its file; a console entry's own token): "imported", or "unchanged" when a form of that key is recorded
    already ("updated" when its row now says more of its signature). A bad form raises `RowProblem`; a 不满意
    answer opens its rectification; an on-site form's signature is kept and, under review, it waits for it."""
    session, now, given = importing.session, importing.now, result.given
    check_contact_time(importing, result.contacted_at, "评价时间" if source == "evaluator" else "日期")
    if not window:
        raise RowProblem("窗口 missing")
    window_id = importing.windows.get(window)
    if window_id is None:
        raise RowProblem(f"窗口 {window!r} is not a known window (see `callbackd windows list`)")
    if not given:
        raise RowProblem("no rated question: every answer cell is empty")
    key = hashlib.sha256(key.encode()).hexdigest()[:40]
    signing = signing or signatures.Signing()
    known = session.scalar(select(Contact).where(Contact.external_key == key))
    if known is not None:
        if given != {k: (a.level, a.raw) for k, a in answers.answers_of(session, known.id).items() if a.level}:
            try:  # a form's answers are never edited by a re-import; an archived one says so
                review.check_editable(session, known.id)
            except review.ArchivedError as exc:
                raise RowProblem(str(exc)) from None
        if source != "evaluator" and signatures.apply(session, importing.settings, known, source, signing):
            audit.record(session, "signature.record", f"contact {known.id}", signed=not known.unsigned)
            return "updated"
        return "unchanged"
    contact = answers.new_contact(session, answers.NewContact(
        source=source, channel=source, window_id=window_id, contacted_at=result.contacted_at, external_key=key,
    ), now)
    contact.suggestion = result.suggestion[:2000]
    for question, (level, raw) in given.items():
        answers.add_answer(session, importing.plugins, contact, question, level, raw, now)
    labels = importing.labels
    rectify.review_contact(session, importing.settings, contact, now,
                           {**labels, "overall": "评价"} if source == "evaluator" else labels)
    if source != "evaluator":
        signatures.apply(session, importing.settings, contact, source, signing)
        review.submit(session, importing.settings, contact, source, now)
    return "imported"


def record_operator(
    importing: Recording, result: Result, case_no: str, role: str | None = None, *,
    callback_id: int | None = None, outcome: str | None = None, signing: signatures.Signing | None = None,
) -> str:
    """Record one operator result for the case `case_no` (one row of an operator file, or the console's form):
    "imported", "updated" (a row recorded before, its answers corrected) or "unchanged". A bad result raises
    `RowProblem`.

    The result closes the callback's open operator attempt (or one made for it): answers complete it; no answers
    and no suggestion is a call that reached nobody (`no_answer`), unless `outcome` (one of `OPERATOR_OUTCOMES`,
    given without answers) says how it ended. `callback_id` names the callback when the caller knows it (the
    console's operator holds it); a file names only the case, and its open callback, else its newest, is meant.
    `signing` says whether it was a visit and signed (签名确认). A record under review that was sent back is
    corrected this way too; an archived one refuses any change to its answers.
    """
    session, settings = importing.session, importing.settings
    contacted_at, given, suggestion = result.contacted_at, result.given, result.suggestion
    check_contact_time(importing, contacted_at, "回访时间")
    if role is not None and role not in settings.policies.role_minimum_shares:
        raise RowProblem(f"{CALLER_ROLE} {role!r} is not one of {'、'.join(settings.policies.role_minimum_shares)} "
                         f"([policies] role_minimum_shares)")
    if outcome is not None and (outcome not in OPERATOR_OUTCOMES or given or suggestion):
        raise RowProblem(f"outcome {outcome!r} must be one of {', '.join(OPERATOR_OUTCOMES)}, given without answers")
    if not case_no:
        raise RowProblem("办件编号 missing")
    query = (
        select(Callback, Case.accepted_at).join(Case, Case.id == Callback.case_id).where(Case.case_no == case_no)
        .order_by(Callback.round_id.desc(), Callback.follow_up.desc())
    )
    if callback_id is not None:
        query = query.where(Callback.id == callback_id)
    found = session.execute(query).all()
    if not found:
        raise RowProblem(f"办件编号 {case_no} was not selected for a callback by any round")
    accepted = found[0][1]  # the case's, the same in every row
    if accepted is not None and contacted_at < accepted:
        zone = settings.zone
        raise RowProblem(f"回访时间 {contacted_at.astimezone(zone):%Y-%m-%d %H:%M} is before the case's 受理时间 "
                         f"{accepted.astimezone(zone):%Y-%m-%d %H:%M}; correct the date")
    return _operator_result(importing, result, case_no, role, [callback for callback, _ in found], outcome,
                            signing or signatures.Signing())


def _operator_result(importing: Recording, result: Result, case_no: str, role: str | None,
                     callbacks: list[Callback], outcome: str | None, signing: signatures.Signing) -> str:
    session, settings, plugins, now = importing.session, importing.settings, importing.plugins, importing.now
    contacted_at, given, suggestion = result.contacted_at, result.given, result.suggestion
    # the row's own key, kept on the attempt it closes: re-importing the row finds it and changes nothing (also
    # once a follow-up callback of the case is under way: the row belongs to the callback it closed)
    row_key = "OPR-" + hashlib.sha256(f"{case_no}\x1f{contacted_at.isoformat()}".encode()).hexdigest()[:32]
    done = session.scalar(select(Attempt.callback_id).where(
        Attempt.callback_id.in_([c.id for c in callbacks]), Attempt.provider_id == row_key))
    if done is not None:
        contact = session.scalar(select(Contact).where(Contact.callback_id == done))
        if contact is None:
            return "unchanged"
        return _edit(importing, contact, result, signing)
    # the callback still open (a follow-up waiting for the operator), else the newest
    callback = next((c for c in callbacks if c.status not in FINAL_CALLBACK), callbacks[0])
    if role is not None:
        callback.caller_role = role
    contact = session.scalar(select(Contact).where(Contact.callback_id == callback.id))
    if callback.status in FINAL_CALLBACK:
        if contact is None:
            raise RowProblem(f"callback {callback.id} for 办件编号 {case_no} is already closed ({callback.status})")
        return _edit(importing, contact, result, signing)
    attempt = session.scalar(
        select(Attempt).where(Attempt.callback_id == callback.id, Attempt.status.in_(OPEN_ATTEMPT))
        .order_by(Attempt.id.desc())
    )
    if attempt is None or attempt.channel != OPERATOR_CHANNEL:
        number = (session.scalar(select(Attempt.number).where(Attempt.callback_id == callback.id)
                                 .order_by(Attempt.number.desc())) or 0) + 1
        if attempt is not None:
            attempt.status, attempt.ended_at = "cancelled", now
        attempt = Attempt(callback_id=callback.id, channel=OPERATOR_CHANNEL, number=number, status="in_progress",
                          due_at=contacted_at, started_at=contacted_at, detail="results import")
        session.add(attempt)
    attempt.provider_id = row_key
    session.flush()
    conversation = open_conversation(session, settings, plugins, attempt.id, contacted_at)
    if not given and not suggestion:
        reported = outcome or "no_answer"
        conversation.finish(reported, "operator result without answers" if reported == "no_answer"
                            else f"operator result: {reported}")
        return "imported"
    conversation.pick_up()
    for question, (level, raw) in given.items():
        conversation.record(question, level, raw)
    if suggestion:
        conversation.suggest(suggestion)
    conversation.finish("completed")
    rectify.date_from_entry(session, settings, callback.id, now)
    made = session.scalar(select(Contact).where(Contact.callback_id == callback.id))
    if made is not None:
        signatures.apply(session, settings, made, "operator", signing)
        review.submit(session, settings, made, "operator", now)
    return "imported"


def correct_record(importing: Recording, contact: Contact, result: Result) -> str:
    """Correct a recorded operator result or on-site form to read `result` (a record sent back by its reviewer):
    "updated", or "unchanged" when it says what is recorded. An archived record raises `RowProblem`."""
    return _edit(importing, contact, result, signatures.Signing())


def _edit(importing: Recording, contact: Contact, result: Result, signing: signatures.Signing) -> str:
    """A re-imported operator row: unchanged when it says what is recorded, else the answers are corrected
    (an answer edit, kept in the audit trail). What it says of the signature is kept either way."""
    session, plugins, now = importing.session, importing.plugins, importing.now
    given, suggestion = result.given, result.suggestion
    source = "operator" if contact.source == "callback" else contact.source
    signed = signatures.apply(session, importing.settings, contact, source, signing)
    if signed:
        audit.record(session, "signature.record", f"contact {contact.id}", signed=not contact.unsigned)
    if not given and not suggestion:  # a call that reached nobody says nothing of the answers another call got
        return "updated" if signed else "unchanged"
    stored = answers.answers_of(session, contact.id)
    current = {k: (a.level, a.raw) for k, a in stored.items() if a.level is not None}
    if current == given and (not suggestion or suggestion[:2000] == contact.suggestion):  # 2,000 characters kept
        return "updated" if signed else "unchanged"
    if contact.source == "callback" and contact.channel != OPERATOR_CHANNEL:
        raise RowProblem(f"the applicant answered this callback through {contact.channel}; operator results "
                         f"cannot overwrite those answers")
    try:
        review.check_editable(session, contact.id)
    except review.ArchivedError as exc:
        raise RowProblem(str(exc)) from None
    answers.correct_answers(session, plugins, contact, given, now)  # its tallies with it
    if suggestion:
        contact.suggestion = suggestion[:2000]
    audit.record(session, "answer.edit", f"contact {contact.id}", before=current, after=given)
    session.flush()
    rectify.answers_corrected(session, importing.settings, contact, now)
    review.edited(session, contact.id, now)
    return "updated"
