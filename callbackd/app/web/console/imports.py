"""Imports: `/imports` uploads a ledger (`callbackd ledger import FILE`) or a result file (`callbackd results import
FILE --source operator|onsite|evaluator`) and shows what the CLI's `--json` report holds: imported, updated,
unchanged, and every bad row by its line, as the CLI reports it. Supervisor only.

The upload is read at most `UPLOAD_LIMIT` bytes (413 beyond, before anything is written), kept in a private
temporary file (a 0700 folder, the file 0600) while the import reads it, and deleted afterwards whatever happened.
The import is one transaction, as the CLI's: a file that cannot be read (a missing header column, say) or a strict
import with a bad row writes nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.responses import Response
from starlette.types import Message, Receive

from callbackd.app.web.console.access import SUPERVISOR, Viewer, check_csrf
from callbackd.app.web.console.pages import Console, allow, console_of, render
from callbackd.contact import results
from callbackd.core import clock
from callbackd.core.errors import CallbackdError, DatabaseError, StrictImportError
from callbackd.intake import ledger
from callbackd.intake.rows import ImportReport
from callbackd.intake.tables import Reading
from callbackd.notify.jobs import job_failed
from callbackd.rounds import sampling

router = APIRouter()
UPLOAD_LIMIT = 50 * 1024 * 1024  # bytes: a year's ledger of a large hall is a few MB
DRAIN_LIMIT = 4 * UPLOAD_LIMIT  # what is read and dropped of a refused upload, so the browser sees the answer
SUFFIXES = (".csv", ".xlsx")  # what `ledger import` and `results import` read (plugins' formats aside)
KINDS = ("ledger", *results.SOURCES)  # the ledger, or a result file by its source
SHOWN_ERRORS = 1000  # bad rows listed on the page; the count says how many there are
_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\:]")


class UploadTooLarge(Exception):
    """The request's body passed `UPLOAD_LIMIT`."""


@router.get("/imports")
def import_form(request: Request, viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    return _page(request, viewer)


@router.post("/imports")
async def upload(request: Request, viewer: Viewer = Depends(allow(SUPERVISOR))) -> Response:
    """Read the upload (within the limit), check its CSRF token, then import it in a worker thread."""
    try:
        form = await _read_form(request)
    except UploadTooLarge:
        return _page(request, viewer, status=413, problem="too_large")
    try:
        check_csrf(form, viewer.csrf)
        kind, strict, file = form.get("kind"), form.get("strict") == "1", form.get("file")
        if kind not in KINDS:
            return _page(request, viewer, status=400, problem="kind")
        if not isinstance(file, UploadFile) or not file.filename:
            return _page(request, viewer, status=400, problem="no_file", kind=kind)
        name = _safe_name(file.filename)
        if Path(name).suffix.lower() not in SUFFIXES:
            return _page(request, viewer, status=415, problem="suffix", kind=kind, name=name)
        return await run_in_threadpool(_import, request, viewer, file.file, name, str(kind), strict)
    finally:
        await form.close()


async def _read_form(request: Request) -> FormData:
    """The request's form, its body read at most `UPLOAD_LIMIT` bytes: `UploadTooLarge` as soon as it declares or
    sends more (what it sends beyond is read and dropped, up to `DRAIN_LIMIT`, so that the browser, still sending,
    reads the refusal rather than a broken connection)."""
    declared = request.headers.get("content-length", "")
    if declared and (not declared.isdigit() or int(declared) > UPLOAD_LIMIT):
        await _drain(request.receive, 0)
        raise UploadTooLarge()
    received = 0
    receive = request.receive

    async def capped() -> Message:
        nonlocal received
        message = await receive()
        received += len(message.get("body", b""))
        if received > UPLOAD_LIMIT:
            if message.get("more_body", False):
                await _drain(receive, received)
            raise UploadTooLarge()
        return message

    # a request of its own over the capped stream: the parser spools files over 1 MB to a 0600 temporary file
    return await Request(request.scope, capped).form(max_files=1, max_fields=10)


async def _drain(receive: Receive, received: int) -> None:
    while received <= DRAIN_LIMIT:
        message = await receive()
        received += len(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


def _safe_name(filename: str) -> str:
    # the upload's own name, as the page and the import's messages show it: no folders, no control characters
    name = _UNSAFE_NAME.sub("_", filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]).strip(" .") or "upload"
    return name[-120:]


def _import(request: Request, viewer: Viewer, upload: IO[bytes], name: str, kind: str, strict: bool) -> Response:
    """Import the upload from a private copy; the page with the report, or with why nothing was imported."""
    console = console_of(request)
    with private_copy(upload, name) as path:
        try:
            with console.session(viewer) as session:
                report = _run(session, console, path, kind, strict)
        except StrictImportError as exc:
            report = exc.report if isinstance(exc.report, ImportReport) else ImportReport()
            report.imported = report.updated = report.unchanged = 0
            return _page(request, viewer, status=400, problem="strict", kind=kind, name=name, report=report)
        except CallbackdError as exc:  # the file cannot be read: nothing was written (the transaction rolled back)
            message = str(exc).replace(str(path), name)
            if not isinstance(exc, DatabaseError):  # the file failed, not the database: tell the supervisors
                job = f"{'台帐' if kind == 'ledger' else '结果'}导入 {name}"
                job_failed(console.database, console.settings, job, message, clock.now(), path="/imports")
            return _page(request, viewer, status=400, problem="file", kind=kind, name=name, message=message)
    return _page(request, viewer, kind=kind, name=name, report=report)


def _run(session: Session, console: Console, path: Path, kind: str, strict: bool) -> ImportReport:
    # the same services, with the same arguments, as `callbackd ledger import` and `callbackd results import`
    settings, plugins = console.settings, console.plugins
    if kind == "ledger":
        return ledger.import_ledger(session, settings, path, strict=strict,
                                    reading=Reading(readers=plugins.readers_by_suffix()))
    return results.import_results(session, settings, plugins, sampling.survey_in_force(settings),
                                  results.ResultFile(path, kind), strict=strict)


@contextmanager
def private_copy(upload: IO[bytes], name: str) -> Iterator[Path]:
    """The upload copied to `name` in a new private folder (0700; the file 0600), both deleted on leaving."""
    folder = Path(tempfile.mkdtemp(prefix="callbackd-upload-"))
    try:
        path = folder / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as target:
            upload.seek(0)
            shutil.copyfileobj(upload, target, 1 << 20)
        yield path
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _page(
    request: Request, viewer: Viewer, *, status: int = 200, problem: str = "", kind: Any = "ledger", name: str = "",
    report: ImportReport | None = None, message: str = "",
) -> Response:
    errors = report.errors if report is not None else []
    return render(request, viewer, "imports.html", status=status, problem=problem,
                  kind=kind if kind in KINDS else "ledger", kinds=KINDS, name=name, message=message, report=report,
                  errors=errors[:SHOWN_ERRORS], more_errors=max(0, len(errors) - SHOWN_ERRORS),
                  limit_mb=UPLOAD_LIMIT // (1024 * 1024), limit_bytes=UPLOAD_LIMIT)
