"""One callback's timeline, `/callbacks/{id}`: its case, attempts, answers and rectification steps, the number
masked. The supervisory unit sees every callback; an operator sees those waiting on the operator queue and those
they hold or held (any other is 404 to them); other roles are refused."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from callbackd.app.web.console.access import OPERATOR, SUPERVISOR, Viewer
from callbackd.app.web.console.pages import allow, console_of, render, require
from callbackd.app.web.console.rounds import STATE_LABELS
from callbackd.contact import queue, rectify
from callbackd.core.vocabulary import REASON_LABELS
from callbackd.report import listings

router = APIRouter()
ATTEMPT_LABELS = {"due": "待拨打", "queued": "排队中", "placing": "拨打中", "in_progress": "进行中",
                  "answered": "已接通", "completed": "已完成", "partial": "部分完成", "cancelled": "已取消",
                  "opted_out": "已退订", **{k: v for k, v in REASON_LABELS.items() if k not in ("cancelled",)}}
STEP_LABELS = {"opened": "开启整改", "responded": "窗口反馈", "follow_up": "安排整改回访",
               "follow_up_failed": "整改回访未成功", "closed": "整改办结", "escalated": "上报督查",
               "reopened": "重新整改", "withdrawn": "撤销", "answers_corrected": "回访结果更正"}


@router.get("/callbacks/{callback_id}")
def callback_page(request: Request, callback_id: Annotated[int, Path(ge=1, lt=2**31)],
                  viewer: Viewer = Depends(allow(SUPERVISOR, OPERATOR))) -> Response:
    console = console_of(request)
    with console.session(viewer) as session:
        allowed = viewer.is_(SUPERVISOR) or queue.operator_sees(session, callback_id, viewer.id)
        timeline = require(allowed and listings.callback_timeline(
            session, callback_id, console.settings.policies.confidential_case_types) or None)
    return render(request, viewer, "callback.html", c=timeline, state_labels=STATE_LABELS,
                  attempt_labels=ATTEMPT_LABELS, step_labels=STEP_LABELS, rectification_labels=rectify.STATE_LABELS)
