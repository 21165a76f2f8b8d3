"""Signed visits (签名确认): a callback made by visit (上门回访) or on site (现场征求意见表) must carry the applicant's
signature, as `[signatures] required_for` says (visit, onsite).

A record says what it knows of the signature in three cells of its result file (or the console's form): 回访方式
(上门 marks an operator's result as a visit), 签名人 (the signer's name) and 签名 (是/否, the signed flag); the console
can also attach a scanned signature (an image or PDF, size-limited, kept 0600 under `[signatures] folder`, shown to
supervisors only). A record that must be signed and is not is *unsigned*: flagged (`unsigned_records`, the console's
review page, `callbackd results unsigned`) and not scored — its contact is left out of the tallies and of raw
scoring until it is signed, so it counts toward no source share (the on-site weight, or the callback weight of a
visit). Signing it later puts its contribution in, in the same transaction (`set_unsigned`), so the tallies stay
exact and `score_period(raw=True)` agrees with them.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callbackd.contact.answers import answers_of
from callbackd.core.errors import CallbackdError
from callbackd.core.settings import Settings
from callbackd.intake.rows import RowProblem
from callbackd.store import audit, tallies
from callbackd.store.files import write_atomically
from callbackd.store.models import Callback, Case, Contact, Window

METHOD_COLUMN, SIGNER_COLUMN, SIGNED_COLUMN = "回访方式", "签名人", "签名"
VISIT_WORDS = ("上门", "上门回访")
PHONE_WORDS = ("电话", "电话回访", "")
SIGNED_WORDS = {"是": True, "已签名": True, "否": False, "未签名": False}
# a scanned signature: what its first bytes say it is -> the suffix it is kept under
FILE_KINDS = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"%PDF-", ".pdf"))
MEDIA_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".pdf": "application/pdf"}


class SignatureError(CallbackdError):
    """A scanned signature that cannot be kept (not an image or PDF, too large, empty) or a signer missing."""


@dataclass(frozen=True)
class Signing:
    """What a record says of the applicant's signature: whether it was a visit, the signer, the 签名 flag (None when
    the record does not say)."""

    visit: bool = False
    signer: str = ""
    signed: bool | None = None


def read_cells(method: str, signer: str, signed: str) -> Signing:
    """A result row's 回访方式, 签名人 and 签名 cells; an unknown word is a `RowProblem`."""
    if method not in VISIT_WORDS and method not in PHONE_WORDS:
        raise RowProblem(f"{METHOD_COLUMN}: {method!r} is not 电话 or 上门")
    if signed and signed not in SIGNED_WORDS:
        raise RowProblem(f"{SIGNED_COLUMN}: {signed!r} is not 是 or 否")
    if len(signer) > 100:
        raise RowProblem(f"{SIGNER_COLUMN}: longer than 100 characters")
    return Signing(method in VISIT_WORDS, signer, SIGNED_WORDS.get(signed) if signed else None)


def required(settings: Settings, source: str, signing: Signing) -> bool:
    """Whether a record of `source` (operator, onsite, evaluator) described by `signing` must be signed."""
    kinds = settings.signatures.required_for
    return (source == "onsite" and "onsite" in kinds) or (source == "operator" and signing.visit and "visit" in kinds)


def apply(session: Session, settings: Settings, contact: Contact, source: str, signing: Signing) -> bool:
    """Keep what a record says of its signature on its contact, and leave it out of scoring while it must be signed
    and is not. Whether the contact's signing changed."""
    before = (contact.signature_required, contact.unsigned, contact.signer)
    needs = contact.signature_required or required(settings, source, signing)
    if signing.signer:
        contact.signer = signing.signer
    # signed by the flag, by a scan, or (the record saying nothing of it now) as it was signed before
    signed = (bool(signing.signed) or contact.signature_file is not None
              or (signing.signed is None and contact.signature_required and not contact.unsigned))
    contact.signature_required = needs
    set_unsigned(session, contact, needs and not signed)
    return before != (contact.signature_required, contact.unsigned, contact.signer)


def set_unsigned(session: Session, contact: Contact, unsigned: bool) -> None:
    """Flag the contact unsigned (its contribution taken out of the tallies) or signed (put back in)."""
    if contact.unsigned == unsigned:
        return
    levels = {question: answer.level for question, answer in answers_of(session, contact.id).items()}
    if unsigned:
        tallies.contact_changed(session, contact, levels, {})  # while it still counts
        contact.unsigned = True
    else:
        contact.unsigned = False
        tallies.contact_changed(session, contact, {}, levels)
    session.flush()


def sign(session: Session, settings: Settings, contact: Contact, signer: str, scan: bytes | None = None) -> None:
    """The console's 签名确认: the signer's name, and a scanned signature or (none given) the word of whoever enters
    it that the applicant signed the paper form. Audited."""
    signer = signer.strip()
    if not signer or len(signer) > 100:
        raise SignatureError("请填写签名人姓名（100 字以内）")
    if scan is not None:
        contact.signature_file = keep_scan(settings, contact.id, scan)
    contact.signer = signer
    contact.signature_required = True
    set_unsigned(session, contact, False)
    audit.record(session, "signature.record", f"contact {contact.id}", scan=scan is not None)


def keep_scan(settings: Settings, contact_id: int, scan: bytes) -> str:
    """Keep a scanned signature as a 0600 file under `[signatures] folder`; its name there."""
    if not scan:
        raise SignatureError("签名文件为空")
    if len(scan) > settings.signatures.max_bytes:
        raise SignatureError(f"签名文件过大：不超过 {settings.signatures.max_bytes // 1024} KB")
    suffix = next((kind for magic, kind in FILE_KINDS if scan.startswith(magic)), None)
    if suffix is None:
        raise SignatureError("签名文件须为 PNG、JPEG 图片或 PDF 文件")
    name = f"{contact_id}-{hashlib.sha256(scan).hexdigest()[:16]}{suffix}"
    folder = Path(settings.signatures.folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomically(folder / name, lambda path: path.write_bytes(scan), private=True)
    return name


def scan_of(settings: Settings, contact: Contact) -> tuple[Path, str] | None:
    """The stored scan of a contact's signature and its media type, None when it has none (or it is gone)."""
    name = contact.signature_file
    if not name or os.sep in name or name.startswith("."):
        return None
    path = Path(settings.signatures.folder) / name
    media = MEDIA_TYPES.get(path.suffix)
    return (path, media) if media is not None and path.is_file() else None


def unsigned_records(session: Session, settings: Settings, limit: int = 500) -> list[dict[str, Any]]:
    """The records that must be signed and are not, newest first: never an applicant's name or number."""
    rows = session.execute(
        select(Contact.id, Contact.source, Contact.channel, Contact.contacted_at, Window.name, Case.case_no,
               Contact.signer)
        .join(Window, Window.id == Contact.window_id)
        .outerjoin(Callback, Callback.id == Contact.callback_id)
        .outerjoin(Case, Case.id == Callback.case_id)
        .where(Contact.unsigned.is_(True))
        .order_by(Contact.contacted_at.desc(), Contact.id.desc())
        .limit(limit)
    )
    return [{"contact": id_, "kind": "现场征求意见表" if source == "onsite" else "上门回访", "window": window,
             "case_id": case_no, "contacted_at": _local(settings, at), "signer": signer or ""}
            for id_, source, _, at, window, case_no, signer in rows]


def _local(settings: Settings, moment: datetime) -> str:
    return moment.astimezone(settings.zone).strftime("%Y-%m-%d %H:%M")
