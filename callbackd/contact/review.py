"""Record review and archive (审核/归档): with `[review] required`, an operator's record (the console's operator form,
or `results import --source operator`) and an on-site form (of the sources `[review] sources` lists) go to a
supervisor before they are final.

    pending --approve--> archived --correct (更正, a reason)--> archived, version n+1
       |--send back (审核意见)--> returned --the operator corrects it--> pending

A record sent back is corrected through the same functions that record results (`results.record_operator`,
`results.correct_record`), so a correction typed into the console and a corrected row in a file are stored alike;
it then waits for review again. An archived record is immutable: any change to its answers through a result file,
the console or the API is refused (`ArchivedError`); a supervisor's 更正 keeps the answers it replaces as a version
row (`ContactVersion`) with the reason, and audits it. Every step is in the review's history and the audit trail.

Scores count unreviewed records as they always did: review is about the record's quality, not its weight, and a
week's ranking must not wait for the review queue to empty.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from callbackd.api.manager import Plugins
from callbackd.contact import answers, rectify
from callbackd.core.errors import CallbackdError
from callbackd.core.phones import without_numbers
from callbackd.core.settings import Settings
from callbackd.store import audit
from callbackd.store.models import Callback, Case, Contact, ContactReview, ContactVersion, Window

STATES = ("pending", "returned", "archived")
STATE_LABELS = {"pending": "待审核", "returned": "已退回", "archived": "已归档"}
STEP_LABELS = {"submitted": "提交审核", "returned": "退回", "resubmitted": "更正后重新提交",
               "approved": "审核通过并归档", "corrected": "更正（新版本）"}


class ReviewError(CallbackdError):
    """A review step asked of a record in the wrong state, or without what it needs (a comment, a reason)."""


class ArchivedError(ReviewError):
    """A change to an archived record's answers, which only a supervisor's 更正 (a new version) may make."""


def needs_review(settings: Settings, source: str) -> bool:
    """Whether a record of `source` (operator, onsite, evaluator) goes to review."""
    return settings.review.required and source in settings.review.sources


def submit(session: Session, settings: Settings, contact: Contact, source: str, now: datetime) -> None:
    """Put a newly recorded record in the review queue, when its source needs review."""
    if not needs_review(settings, source) or session.get(ContactReview, contact.id) is not None:
        return
    by = audit.actor()
    session.add(ContactReview(contact_id=contact.id, status="pending", version=1, comment="", submitted_at=now,
                              submitted_by=by, history=[_step("submitted", now, by)]))
    session.flush()


def check_editable(session: Session, contact_id: int) -> None:
    """Raise `ArchivedError` when the record is archived: its answers change only through `correct`."""
    review = session.get(ContactReview, contact_id)
    if review is not None and review.status == "archived":
        raise ArchivedError(f"记录 {contact_id} 已审核归档，不能修改；如需更正，"
                            f"请督查科在审核页面执行「更正」生成新版本")


def edited(session: Session, contact_id: int, now: datetime) -> None:
    """The record's answers were corrected by whoever made it: a record sent back waits for review again."""
    review = session.get(ContactReview, contact_id)
    if review is None or review.status != "returned":
        return
    review.status, review.submitted_at = "pending", now
    review.history = [*review.history, _step("resubmitted", now, audit.actor())]
    audit.record(session, "review.resubmit", f"contact {contact_id}")


def approve(session: Session, contact_id: int, now: datetime, comment: str = "") -> None:
    """Approve a pending record: archived (归档) from now on."""
    review = _review(session, contact_id, "pending", "只能审核待审核的记录")
    review.status, review.reviewed_at, review.reviewed_by = "archived", now, audit.actor()
    review.comment = comment.strip()[:1000]
    review.history = [*review.history, _step("approved", now, review.reviewed_by, text=review.comment)]
    audit.record(session, "review.approve", f"contact {contact_id}", comment=review.comment)


def send_back(session: Session, contact_id: int, comment: str, now: datetime) -> None:
    """Send a pending record back to whoever made it, with the supervisor's 审核意见 (required)."""
    comment = comment.strip()[:1000]
    if not comment:
        raise ReviewError("退回时请填写审核意见，说明需要更正的内容")
    review = _review(session, contact_id, "pending", "只能退回待审核的记录")
    review.status, review.comment = "returned", comment
    review.reviewed_at, review.reviewed_by = now, audit.actor()
    review.history = [*review.history, _step("returned", now, review.reviewed_by, text=comment)]
    audit.record(session, "review.return", f"contact {contact_id}", comment=comment)


@dataclass(frozen=True)
class Correction:
    """A supervisor's 更正 of an archived record: the answers it should read (question -> (level, raw)), its
    suggestion (None: unchanged) and why."""

    given: Mapping[str, tuple[str, str]]
    reason: str
    suggestion: str | None = None


def correct(
    session: Session, settings: Settings, plugins: Plugins, contact_id: int, correction: Correction, now: datetime,
) -> int:
    """Correct an archived record as a new version: the answers it replaces are kept as a version row with the
    reason, the tallies and rectifications follow, the step is audited. The new version's number."""
    reason = correction.reason.strip()[:1000]
    if not reason:
        raise ReviewError("更正时请填写更正原因")
    if not correction.given:
        raise ReviewError("更正后的记录至少要有一项评价")
    review = _review(session, contact_id, "archived", "只能更正已归档的记录；未归档的记录请退回后由回访员更正")
    contact = session.get(Contact, contact_id)
    assert contact is not None  # a review names its contact
    stored = answers.answers_of(session, contact_id)
    before = {key: [a.level, a.raw] for key, a in stored.items() if a.level is not None}
    session.add(ContactVersion(contact_id=contact_id, version=review.version, answers=before,
                               suggestion=contact.suggestion, replaced_at=now, replaced_by=audit.actor(),
                               reason=reason))
    answers.correct_answers(session, plugins, contact, dict(correction.given), now)
    if correction.suggestion is not None:
        contact.suggestion = correction.suggestion[:2000]
    review.version += 1
    review.history = [*review.history, _step("corrected", now, audit.actor(), text=reason, version=review.version)]
    audit.record(session, "review.correct", f"contact {contact_id}", version=review.version, reason=reason,
                 before=before, after={k: list(v) for k, v in correction.given.items()})
    session.flush()
    rectify.answers_corrected(session, settings, contact, now)
    return review.version


def _review(session: Session, contact_id: int, state: str, wrong_state: str) -> ContactReview:
    review = session.get(ContactReview, contact_id, with_for_update=True)
    if review is None:
        raise ReviewError(f"记录 {contact_id} 不需要审核")
    if review.status != state:
        raise ReviewError(f"{wrong_state}（当前：{STATE_LABELS.get(review.status, review.status)}）")
    return review


def _step(step: str, at: datetime, by: str, **detail: Any) -> dict[str, Any]:
    return {"step": step, "at": at.isoformat(), "by": by, **detail}


# ---- reading ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueFilter:
    """Which reviews to list: by state, and (an operator's list) those made by one account."""

    status: str | None = "pending"
    submitted_by: str | None = None


def _listed(wanted: QueueFilter) -> Any:  # a Select of (review, source, time, unsigned, window, case number)
    query = (select(ContactReview, Contact.source, Contact.contacted_at, Contact.unsigned, Window.name, Case.case_no)
             .join(Contact, Contact.id == ContactReview.contact_id)
             .join(Window, Window.id == Contact.window_id)
             .outerjoin(Callback, Callback.id == Contact.callback_id)
             .outerjoin(Case, Case.id == Callback.case_id))
    if wanted.status is not None:
        query = query.where(ContactReview.status == wanted.status)
    if wanted.submitted_by is not None:
        query = query.where(ContactReview.submitted_by == wanted.submitted_by)
    return query


def queue(session: Session, settings: Settings, wanted: QueueFilter, *, offset: int = 0,
          limit: int = 50) -> tuple[list[dict[str, Any]], int]:
    """A page of reviews (oldest submitted first) and how many there are: never an applicant's name or number."""
    total = session.scalar(select(func.count()).select_from(_listed(wanted).subquery())) or 0
    rows = session.execute(_listed(wanted).order_by(ContactReview.submitted_at, ContactReview.contact_id)
                           .offset(offset).limit(limit))
    return [_row(settings, *row) for row in rows], total


def _row(settings: Settings, review: ContactReview, source: str, contacted_at: datetime, unsigned: bool,
         window: str, case_no: str | None) -> dict[str, Any]:
    return {"contact": review.contact_id, "status": review.status, "state": STATE_LABELS[review.status],
            "kind": "现场征求意见表" if source == "onsite" else "回访记录", "window": window, "case_id": case_no,
            "contacted_at": contacted_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M"),
            "submitted_by": review.submitted_by, "comment": review.comment, "version": review.version,
            "unsigned": unsigned}


def view(session: Session, settings: Settings, contact_id: int) -> dict[str, Any] | None:
    """One reviewed record: its listing row, answers (question -> level as given), suggestion (numbers starred),
    signature, history and former versions; None when the record is not under review."""
    found = session.execute(_listed(QueueFilter(status=None)).where(ContactReview.contact_id == contact_id)).first()
    if found is None:
        return None
    review = found[0]
    contact = session.get(Contact, contact_id)
    assert contact is not None
    stored = answers.answers_of(session, contact_id)
    versions = session.scalars(select(ContactVersion).where(ContactVersion.contact_id == contact_id)
                               .order_by(ContactVersion.version)).all()
    return {
        **_row(settings, *found),
        "source": contact.source, "callback_id": contact.callback_id,
        "answers": {key: a.raw for key, a in stored.items() if a.level is not None},
        "levels": {key: a.level for key, a in stored.items() if a.level is not None},
        "suggestion": without_numbers(contact.suggestion),
        "signature_required": contact.signature_required, "signer": contact.signer or "",
        "has_scan": contact.signature_file is not None,
        "history": list(review.history),
        "versions": [{"version": v.version, "answers": {k: raw for k, (_, raw) in v.answers.items()},
                      "suggestion": without_numbers(v.suggestion), "reason": v.reason, "by": v.replaced_by,
                      "at": v.replaced_at.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")} for v in versions],
    }
