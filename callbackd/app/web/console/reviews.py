"""Record review (审核/归档) and signatures (签名确认): `/reviews` (the supervisor's review queue by state, an
operator's records sent back to them, and every record still unsigned), `/reviews/{contact}` (one record, its answers,
history and former versions), the supervisor's approve / send back / 更正 and the maker's correction
(`POST .../approve|return|correct|resubmit`), and the signature of a visit or on-site record
(`POST /signatures/{contact}`, a signer and a scanned image or PDF, or the paper form's word), whose scan only a
supervisor may open (`/signatures/{contact}/scan`).

Supervisors see every record; an operator sees the records they made (another's is 404) and corrects them only
once sent back. Window heads and leaders have no part here (403). No page shows an applicant's name or number.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from sqlalchemy.orm import Session
from starlette.datastructures import FormData, UploadFile
from starlette.responses import FileResponse, Response

from callbackd.app.web.console.access import OPERATOR, SUPERVISOR, Missing, Viewer, check_csrf
from callbackd.app.web.console.pages import (
    allow,
    console_of,
    form_text,
    page_number,
    posted,
    render,
    see_other,
)
from callbackd.contact import results, review, signatures
from callbackd.core import clock
from callbackd.core.errors import CallbackdError
from callbackd.core.vocabulary import LEVEL_NAMES
from callbackd.intake.rows import RowProblem
from callbackd.rounds.sampling import survey_in_force
from callbackd.rounds.surveys import Survey
from callbackd.store.models import Contact, ContactReview

router = APIRouter()
PER_PAGE = 30
ContactId = Annotated[int, Path(ge=1, le=2**31 - 1)]
SCAN_FORM_SLACK = 64 * 1024  # the form's other fields beside the scan


def _own(viewer: Viewer) -> str | None:
    # whose records the viewer reviews or corrects: an operator only their own
    return viewer.name if viewer.is_(OPERATOR) else None


@router.get("/reviews")
def review_list(request: Request, status: str = "", page: str = "",
                viewer: Viewer = Depends(allow(SUPERVISOR, OPERATOR))) -> Response:
    console = console_of(request)
    chosen = status if status in review.STATES else ("pending" if viewer.is_(SUPERVISOR) else "returned")
    number = page_number(page)
    with console.session(viewer) as session:
        rows, total = review.queue(session, console.settings, review.QueueFilter(chosen, _own(viewer)),
                                   offset=(number - 1) * PER_PAGE, limit=PER_PAGE)
        unsigned = signatures.unsigned_records(session, console.settings, limit=200)
    return render(request, viewer, "reviews.html", rows=rows, total=total, page=number,
                  pages=max(1, -(-total // PER_PAGE)), pager_base=f"/reviews?status={chosen}&", chosen=chosen,
                  states=review.STATE_LABELS, unsigned=unsigned)


@router.get("/reviews/{contact_id}")
def review_page(request: Request, contact_id: ContactId,
                viewer: Viewer = Depends(allow(SUPERVISOR, OPERATOR))) -> Response:
    return _detail(request, viewer, contact_id)


@router.post("/reviews/{contact_id}/approve")
def approve(request: Request, contact_id: ContactId, form: FormData = Depends(posted),
            viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    return _step(request, viewer, contact_id, lambda session: review.approve(
        session, contact_id, clock.now(), form_text(form, "comment")))


@router.post("/reviews/{contact_id}/return")
def send_back(request: Request, contact_id: ContactId, form: FormData = Depends(posted),
              viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    return _step(request, viewer, contact_id, lambda session: review.send_back(
        session, contact_id, form_text(form, "comment"), clock.now()))


@router.post("/reviews/{contact_id}/correct")
def correct(request: Request, contact_id: ContactId, form: FormData = Depends(posted),
            viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    """更正 of an archived record: a new version with a reason, the former answers kept."""
    console = console_of(request)

    def corrected(session: Session) -> None:
        given = _answers(form, survey_in_force(console.settings))
        review.correct(session, console.settings, console.plugins, contact_id, review.Correction(
            given, form_text(form, "reason"), form_text(form, "suggestion")[:2000] or None), clock.now())

    return _step(request, viewer, contact_id, corrected)


@router.post("/reviews/{contact_id}/resubmit")
def resubmit(request: Request, contact_id: ContactId, form: FormData = Depends(posted),
             viewer: Viewer = Depends(allow(SUPERVISOR, OPERATOR))) -> Response:
    """The maker's correction of a record sent back, through the functions that record results; then it waits for
    review again."""
    console = console_of(request)

    def corrected(session: Session) -> None:
        found = session.get(ContactReview, contact_id)
        if found is None or found.status != "returned":
            raise review.ReviewError("只能更正已退回的记录")
        contact = session.get(Contact, contact_id)
        assert contact is not None
        survey = survey_in_force(console.settings)
        recording = results.recording(session, console.settings, console.plugins, survey, clock.now())
        result = results.Result(contact.contacted_at, _answers(form, survey), form_text(form, "suggestion")[:2000])
        if not result.given:
            raise review.ReviewError("请至少选择一项评价")
        if results.correct_record(recording, contact, result) == "unchanged":
            review.edited(session, contact_id, recording.now)  # resubmitted as it stood: the reviewer decides

    return _step(request, viewer, contact_id, corrected)


@router.post("/signatures/{contact_id}")
async def sign(request: Request, contact_id: ContactId,
               viewer: Viewer = Depends(allow(SUPERVISOR, OPERATOR))) -> Response:
    """签名确认 of a visit or on-site record: the signer, and a scan (image or PDF) or the paper form's word."""
    console = console_of(request)
    limit = console.settings.signatures.max_bytes + SCAN_FORM_SLACK
    declared = request.headers.get("content-length", "")
    if not declared.isdigit() or int(declared) > limit:
        return _detail(request, viewer, contact_id, status=413,
                       error=f"签名文件过大：不超过 {console.settings.signatures.max_bytes // 1024} KB")
    form = await request.form(max_files=1, max_fields=10)
    try:
        check_csrf(form, viewer.csrf)
        upload = form.get("scan")
        scan = await upload.read(limit + 1) if isinstance(upload, UploadFile) and upload.filename else None
        paper = form.get("paper") == "1"
        if scan is None and not paper:
            return _detail(request, viewer, contact_id, status=400,
                           error="请上传签名扫描件，或确认申请人已在纸质表上签名")
        with console.session(viewer) as session:
            contact = _contact(session, viewer, contact_id)
            signatures.sign(session, console.settings, contact, form_text(form, "signer"), scan)
    except CallbackdError as exc:
        return _detail(request, viewer, contact_id, status=400, error=str(exc))
    finally:
        await form.close()
    return see_other(f"/reviews/{contact_id}?done=signed")


@router.get("/signatures/{contact_id}/scan")
def scan(request: Request, contact_id: ContactId, viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    """The scanned signature, to supervisors only."""
    console = console_of(request)
    with console.session(viewer) as session:
        contact = session.get(Contact, contact_id)
        found = signatures.scan_of(console.settings, contact) if contact is not None else None
    if found is None:
        raise Missing("未找到签名文件")
    path, media = found
    return FileResponse(path, media_type=media, headers={"Content-Disposition": "inline"})


# ---- what the routes share ---------------------------------------------------------------------------------


def _contact(session: Session, viewer: Viewer, contact_id: int) -> Contact:
    """The record, when the viewer may act on it: a supervisor any; an operator one they made under review, or one
    still unsigned. Else 404."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise Missing("未找到此记录")
    if viewer.is_(OPERATOR):
        made = session.get(ContactReview, contact_id)
        if not contact.unsigned and (made is None or made.submitted_by != viewer.name):
            raise Missing("未找到此记录")
    return contact


def _step(request: Request, viewer: Viewer, contact_id: int, act: Any) -> Response:
    console = console_of(request)
    try:
        with console.session(viewer) as session:
            _contact(session, viewer, contact_id)
            act(session)
    except (CallbackdError, RowProblem) as exc:
        return _detail(request, viewer, contact_id, status=409 if isinstance(exc, review.ArchivedError) else 400,
                       error=str(exc))
    return see_other(f"/reviews/{contact_id}")


def _answers(form: FormData, survey: Survey) -> dict[str, tuple[str, str]]:
    """The rated answers posted as `q_<key>` = 满意 / 基本满意 / 不满意 (empty: not rated)."""
    given = {}
    for question in survey.rating_questions():
        level = form_text(form, f"q_{question.key}")
        if not level:
            continue
        if level not in LEVEL_NAMES:
            raise review.ReviewError(f"{question.dimension}：请选择满意、基本满意或不满意")
        given[question.key] = (level, level)
    return given


def _detail(request: Request, viewer: Viewer, contact_id: int, *, status: int = 200, error: str = "") -> Response:
    console = console_of(request)
    survey = survey_in_force(console.settings)
    with console.session(viewer) as session:
        contact = _contact(session, viewer, contact_id)
        shown = review.view(session, console.settings, contact_id)
        facts = {"contact": contact.id, "unsigned": contact.unsigned, "signer": contact.signer or "",
                 "signature_required": contact.signature_required, "has_scan": contact.signature_file is not None}
    if shown is None and not contact.signature_required:
        raise Missing("未找到此记录")
    questions = [(q.key, q.dimension) for q in survey.rating_questions()]
    done = request.query_params.get("done", "")
    return render(request, viewer, "review.html", status=status, r=shown, facts=facts, questions=questions,
                  levels=LEVEL_NAMES, error=error, done=done, steps=review.STEP_LABELS,
                  supervisor=viewer.is_(SUPERVISOR))
