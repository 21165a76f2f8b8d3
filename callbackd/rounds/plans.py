"""Callback plans (回访计划): a population called back on a schedule, beside the weekly sample of cases.

A property office calls every household of its area once a month; a customer-service team calls its key customers
once a quarter. A plan names its population (a 客户/业主名单 imported like a ledger), its frequency (monthly,
quarterly, yearly or once), who calls (a console account, or each member's own 负责人), its channel plan and its
survey, and the window (the office or team) that runs it.

Design: the plan's callbacks live in the same queue and result model as the sample's, so the dispatcher, the
operator queue, `results import --source operator` and the conversations handle them unchanged.
- Each member is kept with a case of its own (type 回访计划, case number JH<plan>-<member>, never resolved, so the
  weekly draw never sees it), made when the member is first imported and updated on re-import.
- Each period of a plan becomes a round of kind `plan` (`Round.kind`), in force without a week (`active_week`
  NULL: sampling, indicators and policies only read the week's rounds). `plan_periods` holds one row per plan and
  period, unique: the period's round is made once, whatever the ticks, processes or restarts; and a member gets one
  callback per round (the callbacks' unique round, case and follow-up): so exactly one callback per plan, member
  and period. A member imported later in the period is added to the period's round at the next tick.
- Only the current period is generated (a missed month is not called back afterwards); a plan starts generating on
  its `starts_on` day. `once` is one period, generated on the first tick on or after that day.
- A plan callback's contact has source `plan`, no score source: plan callbacks never enter a window's score,
  ranking or indicators (they are not its sampled cases). A 不满意 still opens a rectification for the window, as
  every 不满意 does.

The report counts, per assignee and area, the callbacks planned (every member's callback of the plan periods that
start in the period asked for) and done (completed): 回访处理率 = done / planned, against a target of 100%.
"""

from __future__ import annotations

import csv
import hashlib
import io
import secrets
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from callbackd.api.formats import LedgerReader
from callbackd.core.errors import CallbackdError, LedgerFileError
from callbackd.core.periods import add_months, parse_period
from callbackd.core.phones import PhoneError, normalise
from callbackd.core.settings import Settings
from callbackd.core.vocabulary import PLAN_CASE_TYPE
from callbackd.intake.rows import ImportReport, RowError, RowProblem, TitleRows, text
from callbackd.intake.tables import HEADER_ROWS, locate_header, read_table
from callbackd.rounds.surveys import load_surveys
from callbackd.store import audit
from callbackd.store.files import spreadsheet_text
from callbackd.store.models import Callback, Case, Plan, PlanMember, PlanPeriod, Round, User, Window

FREQUENCIES = {"monthly": "每月", "quarterly": "每季度", "yearly": "每年", "once": "一次"}
ONCE = "once"
PLAN_STATUS = "计划"  # the status of a member's case: nothing handled, nothing to resolve
TARGET = 1.0  # 回访处理率 is held against 100%
# The population's columns: field -> the headers a 名单 may use (the first is the one shown in messages)
MEMBER_HEADERS: dict[str, tuple[str, ...]] = {
    "name": ("姓名", "客户姓名", "业主姓名", "客户", "业主", "name"),
    "phone": ("联系电话", "电话", "手机", "手机号", "phone"),
    "area": ("区域/楼栋", "区域", "楼栋", "小区", "area"),
    "assignee": ("负责人", "回访人", "assignee"),
}
REQUIRED = ("name", "phone")


class PlanError(CallbackdError):
    """A plan that cannot be made, found or run as asked; the message says what to fix."""


# ---- plans -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPlan:
    """What `create_plan` needs: the console form and `callbackd plans create` give these."""

    name: str
    window: str
    frequency: str
    assignee: str | None = None  # a console account; None: each member's 负责人
    channels: tuple[str, ...] = ()  # default `[dispatch] plan`
    survey: str | None = None  # default `[surveys] default`
    topic: str = ""
    starts_on: date | None = None  # default: today


def create_plan(session: Session, settings: Settings, new: NewPlan, today: date, now: datetime) -> Plan:
    """Record a plan after checking every part of it; audited. Raises `PlanError`."""
    name = new.name.strip()
    if not 0 < len(name) <= 100:
        raise PlanError("plan name must be 1 to 100 characters")
    if session.scalar(select(Plan.id).where(Plan.name == name)) is not None:
        raise PlanError(f"a plan named {name!r} exists already (see `callbackd plans list`)")
    window_id = session.scalar(select(Window.id).where(Window.name == new.window.strip()))
    if window_id is None:
        raise PlanError(f"window {new.window.strip()!r} is not a known window (see `callbackd windows list`)")
    if new.frequency not in FREQUENCIES:
        raise PlanError(f"frequency must be one of {', '.join(FREQUENCIES)}, not {new.frequency!r}")
    assignee = (new.assignee or "").strip() or None
    if assignee is not None and session.scalar(
            select(User.id).where(User.name == assignee, User.disabled.is_(False))) is None:
        raise PlanError(f"assignee {assignee!r} is not an active console account (see `callbackd users list`)")
    channels = [c.strip() for c in new.channels if c.strip()] or list(settings.dispatch.plan)
    survey = (new.survey or "").strip() or settings.surveys.default
    surveys = load_surveys(settings.config_file(settings.surveys.folder))
    if survey not in surveys:
        raise PlanError(f"survey {survey!r} is not one of {', '.join(sorted(surveys))}")
    topic = new.topic.strip()[:200]
    plan = Plan(name=name, window_id=window_id, frequency=new.frequency, assignee=assignee, channel_plan=channels,
                survey=survey, topic=topic, starts_on=new.starts_on or today, active=True, created_at=now,
                created_by=audit.actor())
    session.add(plan)
    session.flush()
    audit.record(session, "plan.create", f"plan {plan.id}", name=name, window=new.window.strip(),
                 frequency=new.frequency, assignee=assignee, channels=channels, survey=survey,
                 starts_on=plan.starts_on.isoformat())
    return plan


def get_plan(session: Session, name: str) -> Plan:
    """The plan named `name`; `PlanError` when there is none."""
    plan = session.scalar(select(Plan).where(Plan.name == name.strip()))
    if plan is None:
        raise PlanError(f"no plan named {name.strip()!r} (see `callbackd plans list`)")
    return plan


def list_plans(session: Session) -> list[dict[str, Any]]:
    """Every plan with its window, schedule, members and periods generated, by name."""
    members = dict(session.execute(select(PlanMember.plan_id, func.count()).group_by(PlanMember.plan_id)).all())
    periods: dict[int, list[str]] = defaultdict(list)
    for plan_id, period in session.execute(select(PlanPeriod.plan_id, PlanPeriod.period).order_by(PlanPeriod.id)):
        periods[plan_id].append(period)
    rows = session.execute(select(Plan, Window.name).join(Window, Window.id == Plan.window_id).order_by(Plan.name))
    return [
        {"id": plan.id, "name": plan.name, "window": window, "frequency": plan.frequency,
         "frequency_label": FREQUENCIES[plan.frequency], "assignee": plan.assignee or "负责人",
         "channels": plan.channel_plan, "survey": plan.survey, "topic": plan.topic,
         "starts_on": plan.starts_on.isoformat(), "active": plan.active, "members": members.get(plan.id, 0),
         "periods": periods.get(plan.id, [])}
        for plan, window in rows
    ]


# ---- the population --------------------------------------------------------------------------------------


def _header_index(header: list[Any]) -> dict[str, int]:
    names = {alias.lower(): name for name, aliases in MEMBER_HEADERS.items() for alias in aliases}
    index: dict[str, int] = {}
    for i, cell in enumerate(header):
        name = names.get(str(cell or "").strip().lstrip("\ufeff").strip("*＊ \u3000").lower())
        if name is not None:
            index.setdefault(name, i)
    return index


def _known(row: list[Any]) -> tuple[int, bool]:
    found = _header_index(row)
    return len(found), all(name in found for name in REQUIRED)


def import_members(
    session: Session, settings: Settings, plan: Plan, path: Path, now: datetime, *,
    encoding: str | None = None, sheet: str | None = None, readers: Mapping[str, LedgerReader] | None = None,
) -> ImportReport:
    """Import a plan's population (姓名, 联系电话, 区域/楼栋, 负责人) from a CSV or XLSX file: bad rows reported by
    their line, good ones kept; a member is keyed by plan and phone, so a re-import updates, never duplicates."""
    located = locate_header(read_table(path, encoding, sheet, readers), _known)
    wanted = "、".join(MEMBER_HEADERS[name][0] for name in REQUIRED)
    if located is None:
        raise LedgerFileError(f"{path}: no header line in its first {HEADER_ROWS} rows (required columns {wanted})")
    columns = _header_index(located.header)
    missing = [MEMBER_HEADERS[name][0] for name in REQUIRED if name not in columns]
    if missing:
        raise LedgerFileError(f"{path}: required column {'、'.join(missing)} missing from the header line")
    report = ImportReport()
    if located.line > 1:
        report.titles.append(TitleRows(sheet, located.line - 1))
    existing = {m.phone: m for m in session.scalars(select(PlanMember).where(PlanMember.plan_id == plan.id))}
    seen: dict[str, int] = {}
    regions = tuple(settings.phones.regions)

    def cell(row: list[Any], name: str) -> str:
        i = columns.get(name)
        return text(row[i]) if i is not None and i < len(row) else ""

    for line, row in enumerate(located.rows, start=located.line + 1):
        if not any(map(text, row)):
            continue
        try:
            name, area, assignee = cell(row, "name")[:100], cell(row, "area")[:100], cell(row, "assignee")[:64]
            if not name:
                raise RowProblem("姓名 missing")
            try:
                phone = normalise(cell(row, "phone") or None, regions)
            except PhoneError as exc:
                raise RowProblem(f"联系电话: {exc}") from None
            if phone.e164 in seen:
                raise RowProblem(f"联系电话 repeats line {seen[phone.e164]}'s; one member per number")
        except RowProblem as exc:
            report.errors.append(RowError(line, None, str(exc)))
            continue
        seen[phone.e164] = line
        member = existing.get(phone.e164)
        if member is None:
            existing[phone.e164] = _add_member(session, plan, name, phone.e164, phone.sms, area, assignee, now)
            report.imported += 1
        elif (member.name, member.area, member.assignee) == (name, area, assignee):
            report.unchanged += 1
        else:
            member.name, member.area, member.assignee, member.updated_at = name, area, assignee, now
            session.execute(update(Case).where(Case.id == member.case_id)
                            .values(applicant=name, updated_at=now).execution_options(synchronize_session=False))
            report.updated += 1
    if report.imported or report.updated:
        audit.record(session, "plan.import", f"plan {plan.id}", file=str(path), imported=report.imported,
                     updated=report.updated, unchanged=report.unchanged, errors=len(report.errors))
    return report


def _add_member(session: Session, plan: Plan, name: str, phone: str, sms: bool, area: str, assignee: str,
                now: datetime) -> PlanMember:
    """A new member and its case (numbered once the member has its id)."""
    case = Case(case_no=f"JH{plan.id}-new-{secrets.token_hex(8)}", window_id=plan.window_id,
                matter=(plan.topic or plan.name)[:200], case_type=PLAN_CASE_TYPE, applicant=name, phone=phone,
                phone_sms=sms, accepted_at=now, resolved_at=None, status=PLAN_STATUS, resolved=False,
                digest=hashlib.sha256(f"plan\x1f{plan.id}\x1f{phone}".encode()).hexdigest()[:32],
                created_at=now, updated_at=now)
    session.add(case)
    session.flush()
    member = PlanMember(plan_id=plan.id, phone=phone, name=name, area=area, assignee=assignee, case_id=case.id,
                        created_at=now, updated_at=now)
    session.add(member)
    session.flush()
    case.case_no = f"JH{plan.id}-{member.id:06d}"
    return member


# ---- periods and generation ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanSpan:
    """One period of a plan: its key (2026-11, 2026-Q4, 2026 or once) and its local first and last-plus-one days."""

    key: str
    first: date
    end: date


def period_for(frequency: str, day: date) -> PlanSpan:
    """The period of a plan of `frequency` that `day` falls in. A monthly plan's is the calendar month, a quarterly
    one's the calendar quarter, a yearly one's the calendar year; a plan run once has one period, `once`, dated
    the day it is generated."""
    if frequency == "monthly":
        first = day.replace(day=1)
        return PlanSpan(f"{first:%Y-%m}", first, add_months(first, 1))
    if frequency == "quarterly":
        first = date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)
        return PlanSpan(f"{day.year}-Q{(day.month - 1) // 3 + 1}", first, add_months(first, 3))
    if frequency == "yearly":
        return PlanSpan(f"{day.year}", date(day.year, 1, 1), date(day.year + 1, 1, 1))
    if frequency == ONCE:
        return PlanSpan(ONCE, day, day + timedelta(days=1))
    raise PlanError(f"unknown frequency {frequency!r}")


@dataclass
class Generation:
    """What one pass made: per plan name, the period and the callbacks added; and the plans it could not run."""

    made: dict[str, tuple[str, int]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def callbacks(self) -> int:
        return sum(count for _, count in self.made.values())

    def as_dict(self) -> dict[str, Any]:
        return {"plans": {name: {"period": period, "callbacks": count} for name, (period, count) in self.made.items()},
                "callbacks": self.callbacks, "errors": self.errors}


def generate(session: Session, settings: Settings, now: datetime, plan_name: str | None = None) -> Generation:
    """Give every active plan's current period its round (once) and each member its callback in it (once). Safe
    to run from every tick and from two processes at once: the database's unique keys decide, and a loser's
    rows are dropped by rolling back its savepoint."""
    today = now.astimezone(settings.zone).date()
    query = select(Plan).where(Plan.active.is_(True), Plan.starts_on <= today).order_by(Plan.id)
    if plan_name is not None:
        query = select(Plan).where(Plan.id == get_plan(session, plan_name).id)
    generation = Generation()
    for plan in session.scalars(query).all():
        if plan.starts_on > today:
            generation.errors.append(f"plan {plan.name!r} starts on {plan.starts_on:%Y-%m-%d}")
            continue
        try:
            period = _period_round(session, settings, plan, period_for(plan.frequency, today), now)
            added = _add_callbacks(session, plan, period, now)
        except PlanError as exc:
            generation.errors.append(str(exc))
            continue
        if added:
            generation.made[plan.name] = (period.period, added)
    return generation


def _period_round(session: Session, settings: Settings, plan: Plan, span: PlanSpan, now: datetime) -> PlanPeriod:
    """The plan period's row, made with its round when the period has none yet."""
    found = session.scalar(select(PlanPeriod).where(PlanPeriod.plan_id == plan.id, PlanPeriod.period == span.key))
    if found is not None:
        return found
    surveys = load_surveys(settings.config_file(settings.surveys.folder))
    if plan.survey not in surveys:
        raise PlanError(f"plan {plan.name!r}: survey {plan.survey!r} is no longer in the surveys folder")
    zone = settings.zone
    starts = datetime.combine(span.first, datetime.min.time(), zone)
    ends = datetime.combine(span.end, datetime.min.time(), zone)
    iso = span.first.isocalendar()
    round_ = Round(
        week=f"{iso.year}-W{iso.week:02d}", active_week=None, kind="plan", status="open",
        seed=f"plan {plan.id} {span.key}", candidate_hash="", watermarks={}, month_start=starts, cutoff_at=ends,
        policy={"policy": "plan", "plan": plan.name, "period": span.key, "frequency": plan.frequency},
        opened_at=now, opened_by=audit.actor(), channel_plan=list(plan.channel_plan),
        survey=surveys[plan.survey].snapshot(),
    )
    try:
        with session.begin_nested():
            session.add(round_)
            session.flush()
            period = PlanPeriod(plan_id=plan.id, period=span.key, starts=starts, ends=ends, round_id=round_.id)
            session.add(period)
            session.flush()
    except IntegrityError:  # another process made the period at the same moment: its round is the one
        made = session.scalar(select(PlanPeriod).where(PlanPeriod.plan_id == plan.id, PlanPeriod.period == span.key))
        if made is None:
            raise
        return made
    audit.record(session, "plan.period", f"plan {plan.id}", plan=plan.name, period=span.key, round=round_.id)
    return period


def _add_callbacks(session: Session, plan: Plan, period: PlanPeriod, now: datetime) -> int:
    """A callback in the period's round for every member that has none yet; how many were added."""
    has = select(Callback.case_id).where(Callback.round_id == period.round_id, Callback.follow_up == 0)
    missing = session.execute(
        select(PlanMember.id, PlanMember.case_id, PlanMember.phone)
        .where(PlanMember.plan_id == plan.id, PlanMember.case_id.not_in(has)).order_by(PlanMember.id)
    ).all()
    if not missing:
        return 0
    rows = [Callback(round_id=period.round_id, case_id=case_id, window_id=plan.window_id, phone=phone, rule=None,
                     stratum="plan", draw_key=f"{member_id:012d}", due_at=period.ends, status="pending",
                     created_at=now) for member_id, case_id, phone in missing]
    try:
        with session.begin_nested():
            session.add_all(rows)
            session.flush()
            # a period's round that had closed is open again while the new members' callbacks are under way
            session.execute(update(Round).where(Round.id == period.round_id, Round.status == "closed")
                            .values(status="open").execution_options(synchronize_session=False))
    except IntegrityError:  # another process added them at the same moment
        return 0
    return len(rows)


# ---- the report ------------------------------------------------------------------------------------------


@dataclass
class Line:
    """Planned and done callbacks of one assignee and area."""

    assignee: str
    area: str
    planned: int = 0
    done: int = 0

    @property
    def rate(self) -> float | None:
        """回访处理率 = done / planned; None when nothing was planned."""
        return self.done / self.planned if self.planned else None

    def as_dict(self) -> dict[str, Any]:
        return {"assignee": self.assignee, "area": self.area, "planned": self.planned, "done": self.done,
                "rate": None if self.rate is None else round(self.rate, 4), "shortfall": self.planned - self.done}


def plan_report(session: Session, settings: Settings, period_text: str, plan_name: str | None = None) -> dict[str, Any]:
    """Plan against done per assignee (the plan's account, else the member's 负责人) and area, over the plan periods
    that start in `period_text` (2026-11 holds a monthly plan's November and a run-once plan generated in November;
    a quarterly plan's Q4 is in 2026-10, 2026-Q4 and 2026). Done = completed callbacks."""
    period = parse_period(period_text, settings.zone)
    query = (
        select(Plan.assignee, PlanMember.assignee, PlanMember.area, Callback.status)
        .join(PlanPeriod, PlanPeriod.plan_id == Plan.id)
        .join(Callback, (Callback.round_id == PlanPeriod.round_id) & (Callback.follow_up == 0))
        .join(PlanMember, (PlanMember.case_id == Callback.case_id) & (PlanMember.plan_id == Plan.id))
        .where(PlanPeriod.starts >= period.start, PlanPeriod.starts < period.end)
    )
    if plan_name is not None:
        query = query.where(Plan.id == get_plan(session, plan_name).id)
    lines: dict[tuple[str, str], Line] = {}
    total = Line("合计", "")
    for plan_assignee, member_assignee, area, status in session.execute(query):
        who = plan_assignee or member_assignee or "未指定"
        line = lines.setdefault((who, area or "未指定"), Line(who, area or "未指定"))
        for counted in (line, total):
            counted.planned += 1
            counted.done += status == "completed"
    return {"period": period.text, "label": period.label, "plan": plan_name, "target": TARGET,
            "rows": [lines[key].as_dict() for key in sorted(lines)], "total": total.as_dict()}


REPORT_COLUMNS = (("负责人", "assignee"), ("区域/楼栋", "area"), ("计划回访", "planned"), ("已回访", "done"),
                  ("回访处理率", "rate"), ("未完成", "shortfall"))


def report_table(report: dict[str, Any]) -> list[list[Any]]:
    """The report's rows and its total as table cells (the rate as a percentage against the 100% target)."""
    def cells(row: dict[str, Any]) -> list[Any]:
        return [f"{row[key] * 100:.1f}%" if key == "rate" and row[key] is not None else
                ("—" if row[key] is None else row[key]) for _, key in REPORT_COLUMNS]

    return [cells(row) for row in report["rows"]] + [cells(report["total"])]


def report_csv(report: dict[str, Any]) -> bytes:
    """The report as CSV in UTF-8 with a byte-order mark (for Excel), every text cell neutralised for spreadsheets.
    It names assignees and areas, never a member."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([header for header, _ in REPORT_COLUMNS])
    for row in report_table(report):
        writer.writerow([spreadsheet_text(cell) for cell in row])
    return buffer.getvalue().encode("utf-8-sig")
