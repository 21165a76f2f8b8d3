"""Importing result files: an operator's call results, on-site forms (征求意见表) and counter evaluator
(电子评价器) exports. Same rules as the ledger: bad rows reported by line and skipped, good rows kept, one
transaction, `--strict` imports nothing when a row is bad, re-importing a file changes nothing.

Cells read 满意 / 基本满意 / 不满意, or empty for unanswered; the five-level words 非常满意 / 非常不满意 count as
满意 / 不满意 and are kept raw.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.api.manager import Plugins
from callbackd.contact import answers, rectify
from callbackd.contact.conversation import open_conversation
from callbackd.core import clock
from callbackd.core.errors import LedgerFileError, StrictImportError
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import FINAL_CALLBACK, OPEN_ATTEMPT
from callbackd.intake.rows import ImportReport, RowError, RowProblem, parse_time, read_table, text
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
class _Importing:
    """What every row of one import shares."""

    session: Session
    settings: Settings
    plugins: Plugins
    now: datetime
    windows: dict[str, int]  # window name -> id
    labels: dict[str, str]  # question key -> dimension


@dataclass(frozen=True)
class _Result:
    """One row's result: when the applicant was contacted, the answers (question -> (level, raw)), the
    suggestion."""

    contacted_at: datetime
    given: dict[str, tuple[str, str]]
    suggestion: str


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
    index = {str(cell or "").strip().lstrip("\ufeff"): i for i, cell in enumerate(header)}
    named = {**wanted.fixed, **wanted.questions, "number": FORM_NUMBER, "caller_role": CALLER_ROLE}
    if wanted.suggestion:
        named["suggestion"] = "意见建议"
    required = list(wanted.fixed.values())
    missing = [h for h in required if h not in index]
    if missing:
        raise LedgerFileError(f"{path}: required column {'、'.join(missing)} missing from the header line "
                              f"of a {source} result file")
    if wanted.questions and not any(h in index for h in wanted.questions.values()):
        raise LedgerFileError(f"{path}: no question column ({'、'.join(wanted.questions.values())}) in the header")
    return {name: index[h] for name, h in named.items() if h in index}


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
    rows = read_table(path, file.encoding, file.sheet)
    header = next(iter(rows), None)
    if header is None:
        raise LedgerFileError(f"{path}: empty file, no header line")
    wanted = layout(source, survey)
    columns = _columns(header, wanted, path, source)
    labels = {q.key: q.dimension for q in survey.rating_questions()}
    roles = settings.policies.role_minimum_shares
    windows = {name: id_ for name, id_ in session.execute(select(Window.name, Window.id))}
    importing = _Importing(session, settings, plugins, clock.now(), windows, labels)
    report = ImportReport()
    # A form without a number of its own is known by the file it came in and its line there: re-importing the
    # file changes nothing, and identical forms (two all-满意 forms on one day) in other files all count.
    file_digest = hashlib.sha256(path.read_bytes()).hexdigest()[:24]

    def cell(row: list[Any], name: str) -> Any:
        i = columns.get(name)
        return row[i] if i is not None and i < len(row) else None

    for line, row in enumerate(rows, start=2):
        if not any(c not in (None, "") for c in row):
            continue
        try:
            contacted_at = parse_time(cell(row, "contacted_at"), settings.zone, wanted.fixed["contacted_at"])
            if contacted_at is None:
                raise RowProblem(f"{wanted.fixed['contacted_at']} missing")
            given = {}
            for key, header_name in wanted.questions.items():
                reading = cell_level(cell(row, key), header_name)
                if reading is not None:
                    given[key] = reading
            if source == "evaluator":
                reading = cell_level(cell(row, "rating"), "评价")
                if reading is None:
                    raise RowProblem("评价 missing")
                given["overall"] = reading
            result = _Result(contacted_at, given, text(cell(row, "suggestion")))
            if source == "operator":
                role = text(cell(row, "caller_role")) or None
                if role is not None and role not in roles:
                    raise RowProblem(f"{CALLER_ROLE} {role!r} is not one of {'、'.join(roles)} "
                                     f"([policies] role_minimum_shares)")
                outcome = _operator_row(importing, result, text(cell(row, "case_id")), role)
            else:
                number = text(cell(row, "number"))
                key = f"{source}:{number}" if number else f"{source}:{file_digest}:{line}"
                outcome = _form_row(importing, result, source, text(cell(row, "window")), key)
        except RowProblem as exc:
            case_id = text(cell(row, "case_id")) or None if source == "operator" else None
            report.errors.append(RowError(line, case_id, str(exc)))
            continue
        setattr(report, outcome, getattr(report, outcome) + 1)
    if strict and report.errors:
        first = report.errors[0]
        raise StrictImportError(f"{path}: {len(report.errors)} bad row(s), first at line {first.line}: "
                                f"{first.reason}; nothing imported (--strict)", report)
    audit.record(session, "results.import", str(path), source=source, imported=report.imported,
                 updated=report.updated, unchanged=report.unchanged, errors=len(report.errors))
    return report


def _form_row(importing: _Importing, result: _Result, source: str, window: str, key: str) -> str:
    session, now, given = importing.session, importing.now, result.given
    if not window:
        raise RowProblem("窗口 missing")
    window_id = importing.windows.get(window)
    if window_id is None:
        raise RowProblem(f"窗口 {window!r} is not a known window (see `callbackd windows list`)")
    if not given:
        raise RowProblem("no rated question: every answer cell is empty")
    key = hashlib.sha256(key.encode()).hexdigest()[:40]
    if session.scalar(select(Contact.id).where(Contact.external_key == key)) is not None:
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
    return "imported"


def _operator_row(importing: _Importing, result: _Result, case_no: str, role: str | None) -> str:
    session, settings, plugins, now = importing.session, importing.settings, importing.plugins, importing.now
    contacted_at, given, suggestion = result.contacted_at, result.given, result.suggestion
    if not case_no:
        raise RowProblem("办件编号 missing")
    callbacks = session.scalars(
        select(Callback).join(Case, Case.id == Callback.case_id).where(Case.case_no == case_no)
        .order_by(Callback.round_id.desc(), Callback.follow_up.desc())
    ).all()
    if not callbacks:
        raise RowProblem(f"办件编号 {case_no} was not selected for a callback by any round")
    # the row's own key, kept on the attempt it closes: re-importing the row finds it and changes nothing (also
    # once a follow-up callback of the case is under way: the row belongs to the callback it closed)
    row_key = "OPR-" + hashlib.sha256(f"{case_no}\x1f{contacted_at.isoformat()}".encode()).hexdigest()[:32]
    done = session.scalar(select(Attempt.callback_id).where(
        Attempt.callback_id.in_([c.id for c in callbacks]), Attempt.provider_id == row_key))
    if done is not None:
        contact = session.scalar(select(Contact).where(Contact.callback_id == done))
        if contact is None:
            return "unchanged"
        return _edit(importing, contact, result)
    # the callback still open (a follow-up waiting for the operator), else the newest
    callback = next((c for c in callbacks if c.status not in FINAL_CALLBACK), callbacks[0])
    if role is not None:
        callback.caller_role = role
    contact = session.scalar(select(Contact).where(Contact.callback_id == callback.id))
    if callback.status in FINAL_CALLBACK:
        if contact is None:
            raise RowProblem(f"callback {callback.id} for 办件编号 {case_no} is already closed ({callback.status})")
        return _edit(importing, contact, result)
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
        conversation.finish("no_answer", "operator result without answers")
        return "imported"
    conversation.pick_up()
    for question, (level, raw) in given.items():
        conversation.record(question, level, raw)
    if suggestion:
        conversation.suggest(suggestion)
    conversation.finish("completed")
    rectify.date_from_entry(session, settings, callback.id, now)
    return "imported"


def _edit(importing: _Importing, contact: Contact, result: _Result) -> str:
    """A re-imported operator row: unchanged when it says what is recorded, else the answers are corrected
    (an answer edit, kept in the audit trail)."""
    session, plugins, now = importing.session, importing.plugins, importing.now
    given, suggestion = result.given, result.suggestion
    stored = answers.answers_of(session, contact.id)
    current = {k: (a.level, a.raw) for k, a in stored.items() if a.level is not None}
    if current == given and (not suggestion or suggestion == contact.suggestion):
        return "unchanged"
    if contact.channel != OPERATOR_CHANNEL:
        raise RowProblem(f"the applicant answered this callback through {contact.channel}; operator results "
                         f"cannot overwrite those answers")
    for key, answer in stored.items():
        if answer.level is not None and key not in given:
            session.delete(answer)
    for key, (level, raw) in given.items():
        previous = stored.get(key)
        if previous is None:
            answers.add_answer(session, plugins, contact, key, level, raw, now)
        elif (previous.level, previous.raw) != (level, raw):
            previous.level, previous.raw, previous.recorded_at = level, raw, now
            answers.announce(session, plugins, contact, (key, level, raw), now)
    if suggestion:
        contact.suggestion = suggestion[:2000]
    audit.record(session, "answer.edit", f"contact {contact.id}", before=current, after=given)
    session.flush()
    rectify.answers_corrected(session, importing.settings, contact, now)
    return "updated"
