"""Commands of the supervisory unit's follow-through: rectifications (整改), indicators, category policies,
publication of a period and the audit trail. Thin adapters over `rectify`, `indicators`, `policies`,
`publication` and `audit`, registered on the `callbackd` application by `callbackd.app.cli`."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from callbackd.app.cli.common import JsonFlag, OverwriteFlag, app, checked_output, emit_json, out, session_scope, table

policies_app = typer.Typer(help="Category policies: deadlines, reasons, who called back.", no_args_is_help=True)
audit_app = typer.Typer(help="The audit trail: who did what.", no_args_is_help=True)
rectifications_app = typer.Typer(help="Rectifications (整改) after 不满意 answers and unreachable complaints.",
                                 no_args_is_help=True)
app.add_typer(rectifications_app, name="rectifications")
app.add_typer(policies_app, name="policies")
app.add_typer(audit_app, name="audit")


# ---- rectifications --------------------------------------------------------------------------------------


@rectifications_app.command("list")
def rectifications_list(
    overdue: Annotated[bool, typer.Option("--overdue", help="Only open ones past their due time.")] = False,
    window: Annotated[str | None, typer.Option("--window", help="Only this window's.")] = None,
    status: Annotated[
        str | None, typer.Option("--status", help="open, responded, closed, escalated or withdrawn.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Rectifications, oldest first, overdue ones flagged; never an applicant's name or number."""
    from callbackd.contact import rectify
    from callbackd.core import clock

    with session_scope() as (settings, session):
        rows = rectify.list_rectifications(session, settings, clock.now(), rectify.Filter(overdue, window, status))
    if as_json:
        emit_json(rows)
        return
    table(None, ["整改", "窗口", "办件编号", "类型", "原因", "状态", "期限", "逾期", "回访验证", "轮次"],
          [[r["id"], r["window"], r["case_id"] or "", r["case_type"], r["reason"], r["state"],
            f"{datetime.fromisoformat(r['due_at']).astimezone(settings.zone):%Y-%m-%d %H:%M}",
            "逾期" if r["overdue"] else "", r["follow_up"] or "", r["loops"]] for r in rows])


@rectifications_app.command("respond")
def rectifications_respond(
    rectification_id: Annotated[int, typer.Argument(metavar="ID")],
    text: Annotated[str, typer.Option("--text", help="The window's explanation and measures (整改情况).")],
    as_json: JsonFlag = False,
) -> None:
    """Record the window's response; a follow-up callback to the applicant then verifies it."""
    from callbackd.contact import rectify
    from callbackd.core import clock

    with session_scope() as (settings, session):
        now = clock.now()
        rectification, follow_up = rectify.respond(session, settings, rectification_id, text, now)
        document: dict[str, Any] = {"id": rectification.id, "status": rectification.status,
                                    "on_time": rectification.on_time,
                                    "follow_up_callback": follow_up.id if follow_up else None}
    if as_json:
        emit_json(document)
        return
    late = "" if document["on_time"] else "（逾期反馈）"
    then = (f"follow-up callback {document['follow_up_callback']} will verify it" if document["follow_up_callback"]
            else "no applicant to call back: verify it with `callbackd rectifications verify`")
    out.print(f"rectification {document['id']}: response recorded{late}; {then}")


@rectifications_app.command("verify")
def rectifications_verify(
    rectification_id: Annotated[int, typer.Argument(metavar="ID")],
    level: Annotated[str, typer.Option("--level", help="满意, 基本满意 or 不满意: the applicant's verdict.")],
    note: Annotated[str, typer.Option("--note", help="How it was verified.")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Verify a responded rectification by hand (no applicant to call back, or the follow-up could not be made)."""
    from callbackd.contact import rectify
    from callbackd.core import clock

    with session_scope() as (settings, session):
        rectification = rectify.verify(session, settings, rectification_id, level, clock.now(), note)
        document: dict[str, Any] = {"id": rectification.id, "status": rectification.status,
                                    "loops": rectification.loops}
    if as_json:
        emit_json(document)
        return
    out.print(f"rectification {document['id']}: {rectify.STATE_LABELS[document['status']]} ({document['status']})")


# ---- indicators, category policies, publication, audit --------------------------------------------------


def rate_text(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"


@app.command("indicators")
def indicators_command(
    period: Annotated[str, typer.Option("--period", help="2026-W48, 2026-11, 2026-Q4 or 2026.")],
    as_json: JsonFlag = False,
) -> None:
    """Indicators per window beside the score: 回访率, 未评率, 满意率, 不满意率, 整改按时率, 回访整改满意率, 按时办结率,
    现场征求完成率, 投诉率, alerts."""
    from callbackd.core import clock
    from callbackd.measure import indicators, publication, rankings

    with session_scope() as (settings, session):
        ranking = rankings.ranking_for(session, settings, period)
        figures = publication.indicators_for(session, settings, ranking, clock.now())
    if as_json:
        emit_json({"period": ranking.period.text, "label": ranking.period.label, "published": ranking.published,
                   "formulas": indicators.FORMULAS, "windows": [i.as_dict() for i in figures]})
        return
    table(f"{ranking.period.label} 回访考核指标", ["窗口", *(label for _, label in indicators.RATES), "预警"],
          [[i.window, *(rate_text(getattr(i, key)) for key, _ in indicators.RATES), "；".join(i.alerts)]
           for i in figures])


@policies_app.command("report")
def policies_report(
    period: Annotated[str, typer.Option("--period", help="2026-W48, 2026-11, 2026-Q4 or 2026.")],
    as_json: JsonFlag = False,
) -> None:
    """Per category (投诉, 举报, 报修...): selected, made, made in time, overdue, not made and why; role shares."""
    from callbackd.core import clock
    from callbackd.measure import policies

    with session_scope() as (settings, session):
        document = policies.report(session, settings, period, clock.now())
    if as_json:
        emit_json(document)
        return
    table(f"{document['label']} 分类回访", ["类别", "时限", "抽取", "已回访", "按时", "按时率", "逾期", "进行中",
                                         "未能回访原因"],
          [[c["category"], "" if c["within_days"] is None else
            f"{c['within_days']}{'个工作日' if c['working_days'] else '天'}", c["selected"], c["made"],
            c["made_on_time"], rate_text(c["on_time_rate"]), c["overdue"], c["open"],
            "，".join(f"{k} {v}" for k, v in c["not_made"].items())] for c in document["categories"]])
    roles = document["roles"]
    table(f"{'、'.join(roles['case_types'])}回访人角色占比（共{roles['overall']['callbacks']}次）",
          ["角色", "次数", "占比", "最低要求", "达标"],
          [[r["role"], r["callbacks"], rate_text(r["share"]), rate_text(r["minimum"]),
            {True: "是", False: "否", None: ""}[r["met"]]] for r in roles["overall"]["roles"]])


@app.command()
def publish(
    period: Annotated[str, typer.Option("--period", help="2026-W48, 2026-11, 2026-Q4 or 2026.")],
    republish: Annotated[bool, typer.Option("--republish", help="Publish a published period again.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why it is published again (required then).")] = "",
    as_json: JsonFlag = False,
) -> None:
    """Freeze a period's ranking and indicators: later imports no longer move it unless it is republished."""
    from callbackd.core import clock
    from callbackd.measure import publication, rankings

    with session_scope() as (settings, session):
        published, changed = publication.publish(session, settings, period, clock.now(), republish=republish,
                                                  reason=reason)
        document = {"period": published.period, **rankings.describe(published), "changed": changed,
                    "standing": publication.standing(session, settings, published.period).as_dict(),
                    "containing": [s.as_dict() for s in publication.containing(session, settings, published.period)]}
    if as_json:
        emit_json(document)
        return
    again = f"republished (was publication {document['republish_of']}); " if document["republish_of"] else ""
    moved = f"changed: {'、'.join(changed)}" if changed else "no window's score or rank changed" if again else ""
    out.print(f"period {document['period']}: {again}publication {document['publication']} in force. {moved}".strip())
    for standing in [document["standing"], *document["containing"]]:  # frozen, and what stays live around it
        out.print(standing["note"])


@audit_app.command("list")
def audit_list(
    action: Annotated[str | None, typer.Option("--action", help="Only this action (phone.reveal, publish...).")]
    = None,
    since: Annotated[str | None, typer.Option("--since", help="From this day (YYYY-MM-DD), in the zone.")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Only the newest this many.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """The audit trail, oldest first: the real time and the operating-system account of each entry; a rehearsal's
    entry (CALLBACKD_NOW or CALLBACKD_CLOCK_OFFSET set) is marked 演练 with callbackd's clock."""
    from callbackd.store import audit

    with session_scope() as (settings, session):
        rows = audit.list_events(session, settings.zone, action=action, since=since, limit=limit)
    if as_json:
        emit_json(rows)
        return
    table(None, ["#", "时间", "操作人", "操作", "对象", "详情", "演练时钟"],
          [[r["id"], r["at"][:19], r["actor"], r["action"], r["subject"],
            json.dumps(r["detail"], ensure_ascii=False)[:80],
            f"{audit.REHEARSAL} {r['clock_at'][:19]}" if r["rehearsal"] else ""] for r in rows])


@audit_app.command("export")
def audit_export(
    out_path: Annotated[Path, typer.Option("--out", help="File to write (.csv or .json).")],
    action: Annotated[str | None, typer.Option("--action", help="Only this action.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="From this day (YYYY-MM-DD), in the zone.")] = None,
    overwrite: OverwriteFlag = False,
) -> None:
    """Write the audit trail to CSV (UTF-8 with BOM, for Excel) or JSON; the export itself is recorded."""
    from callbackd.store import audit

    with session_scope() as (settings, session):
        checked_output(out_path, settings, overwrite=overwrite)
        rows = audit.list_events(session, settings.zone, action=action, since=since)
        audit.write(rows, out_path)
        audit.record(session, "audit.export", str(out_path), events=len(rows), only=action, since=since)
    out.print(f"{len(rows)} audit event(s) written to {out_path}")
