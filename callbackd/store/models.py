"""SQLAlchemy 2.x typed models. Times are stored in UTC and come back aware; relationships never load lazily."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime stored as UTC; SQLite keeps it naive, PostgreSQL as timestamptz."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the database; times must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Window(Base):
    """A service counter or team that handles cases and is ranked (窗口)."""

    __tablename__ = "windows"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime]


class User(Base):
    """A console account: a name, a role and an argon2 hash of its password. A window head's windows are in
    `user_windows`. Accounts are disabled, never deleted, so the audit trail's names keep their meaning."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))  # admin, supervisor, operator, window, leader
    password_hash: Mapped[str] = mapped_column(String(200))
    disabled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime]
    password_changed_at: Mapped[datetime]
    # where notifications reach this person: routes such as "email:li@example.gov.cn" or "wecom:窗口一组"
    notify_routes: Mapped[list[Any]] = mapped_column(default=list)


class UserWindow(Base):
    """A window a window head (role `window`) answers for."""

    __tablename__ = "user_windows"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"), primary_key=True)


class Case(Base):
    """One handled matter from a window's ledger (办件). `case_no` is the ledger's own 办件编号."""

    __tablename__ = "cases"
    __table_args__ = (Index("ix_cases_window_resolved", "window_id", "resolved", "resolved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    case_no: Mapped[str] = mapped_column(String(64), unique=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"))
    matter: Mapped[str] = mapped_column(String(200))
    case_type: Mapped[str] = mapped_column(String(20))
    applicant: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str] = mapped_column(String(20))  # E.164; never searched by: callbacks carry the number
    phone_sms: Mapped[bool]  # a mobile number that can receive SMS; landlines cannot
    accepted_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(20))
    resolved: Mapped[bool]  # has 办结时间 and a status that is not an unresolved one
    # the time limits the ledger gave, in working days (承诺时限, 法定时限); NULL when it gave none. Kept before
    # `digest`: the ledger writer binds a case's columns in the model's order (see `intake.ledger`)
    promised_days: Mapped[int | None]
    statutory_days: Mapped[int | None]
    digest: Mapped[str] = mapped_column(String(32))  # of the normalised row, for idempotent re-import
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]

    window: Mapped[Window] = relationship(lazy="raise")


class OptOut(Base):
    """An applicant who asked not to be contacted (退订); no survey ever contacts the number again."""

    __tablename__ = "opt_outs"

    id: Mapped[int] = mapped_column(primary_key=True)
    phone: Mapped[str] = mapped_column(String(20), unique=True)
    source: Mapped[str] = mapped_column(String(20))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]


class Round(Base):
    """One sampling of one ISO week (回访批次), with everything needed to re-draw it."""

    __tablename__ = "rounds"

    id: Mapped[int] = mapped_column(primary_key=True)
    week: Mapped[str] = mapped_column(String(8), index=True)
    # equals `week` while the round is in force, NULL once replaced: one round in force per week, enforced
    # by the database itself
    active_week: Mapped[str | None] = mapped_column(String(8), unique=True)
    status: Mapped[str] = mapped_column(String(12))  # open, closed (every callback final), replaced
    seed: Mapped[str] = mapped_column(String(128))
    policy: Mapped[dict[str, Any]]
    candidate_hash: Mapped[str] = mapped_column(String(64))
    # the highest case, window and opt-out ids the draw saw: later imports do not change what it drew from
    watermarks: Mapped[dict[str, Any]]
    month_start: Mapped[datetime]
    cutoff_at: Mapped[datetime]
    opened_at: Mapped[datetime]
    opened_by: Mapped[str] = mapped_column(String(100))
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"))
    # channels in the order they are tried, and the survey as it stood when the round opened: later edits to
    # config/surveys never change how this round's answers read
    channel_plan: Mapped[list[Any]] = mapped_column(default=list)
    survey: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # "sample" for a week's draw; "plan" for one period of a callback plan (回访计划), in force without a week
    # (`active_week` NULL) and kept out of sampling, indicators and rankings (see callbackd.rounds.plans)
    kind: Mapped[str] = mapped_column(String(8), default="sample", server_default="sample")


class RoundWindow(Base):
    """A window's tally in one round: candidates, quota, shortfall and the hash of its ordered candidates."""

    __tablename__ = "round_windows"
    __table_args__ = (UniqueConstraint("round_id", "window_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"))
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"))
    candidates: Mapped[int]
    quota: Mapped[int]
    selected: Mapped[int]
    shortfall: Mapped[int]
    candidate_hash: Mapped[str] = mapped_column(String(64))

    window: Mapped[Window] = relationship(lazy="raise")


class Callback(Base):
    """One applicant to survey for one case (回访), selected by a round."""

    __tablename__ = "callbacks"
    __table_args__ = (
        # a case once per round, and once per follow-up of its rectification
        UniqueConstraint("round_id", "case_id", "follow_up", name="uq_callbacks_round_case_follow_up"),
        Index("ix_callbacks_phone_round", "phone", "round_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"))
    phone: Mapped[str] = mapped_column(String(20))
    rule: Mapped[str | None] = mapped_column(String(50))  # the rate rule that chose it; NULL for the quota
    stratum: Mapped[str] = mapped_column(String(50), default="")
    draw_key: Mapped[str] = mapped_column(String(64))  # its place in the seeded draw order
    due_at: Mapped[datetime | None]
    # pending, in_progress, completed, partial, unreachable, refused, opted_out, invalid
    status: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    reason: Mapped[str | None] = mapped_column(String(40))  # why it could not be completed (无法联系原因)
    created_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    # 0 for a callback a round drew; n for the n-th follow-up callback (整改回访) verifying the rectification that
    # the round's callback of the same case opened
    follow_up: Mapped[int] = mapped_column(default=0, server_default="0")
    # who called back (经理, 主管, 维修组长, ...), when the operator's result says so: per-role shares are tracked
    caller_role: Mapped[str | None] = mapped_column(String(20))

    case: Mapped[Case] = relationship(lazy="raise")
    window: Mapped[Window] = relationship(lazy="raise")


class Attempt(Base):
    """One try on one channel to reach the applicant of a callback."""

    __tablename__ = "attempts"
    __table_args__ = (
        Index("ix_attempts_status_due", "status", "due_at"),
        UniqueConstraint("callback_id", "number"),  # a callback's n-th try exists once, however many dispatchers
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    callback_id: Mapped[int] = mapped_column(ForeignKey("callbacks.id"), index=True)
    channel: Mapped[str] = mapped_column(String(40))
    number: Mapped[int]  # 1 for the first try of the callback, counting every channel
    # due, placing, in_progress, then an outcome: completed, partial, no_answer, busy, failed, machine,
    # invalid_number, refused, opted_out, hung_up, cancelled
    status: Mapped[str] = mapped_column(String(16))
    due_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(64), index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    # the console account (an operator) that took this attempt from the operator queue, and when: one holder at a
    # time; kept once the attempt ends, as who made the call
    assigned_to: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    assigned_at: Mapped[datetime | None]


class Contact(Base):
    """One rated contact with an applicant, the unit of scoring: a callback conversation, an on-site form
    (征求意见表) or a counter evaluator (电子评价器) rating."""

    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_simulated", "simulated", "contacted_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(12))  # callback, onsite, evaluator
    channel: Mapped[str] = mapped_column(String(40))
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"), index=True)
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callbacks.id"), unique=True)
    contacted_at: Mapped[datetime]
    simulated: Mapped[bool] = mapped_column(default=False)
    survey_version: Mapped[str] = mapped_column(String(32), default="")
    suggestion: Mapped[str] = mapped_column(Text, default="")
    # identifies an imported row so re-importing the same file changes nothing
    external_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    # signed visits (签名确认): a visit or on-site record that must carry the applicant's signature, and whether
    # it still lacks one. An unsigned contact is not scored (neither tallied nor read by raw scoring) until signed.
    signature_required: Mapped[bool] = mapped_column(default=False, server_default=false())
    unsigned: Mapped[bool] = mapped_column(default=False, server_default=false(), index=True)
    signer: Mapped[str | None] = mapped_column(String(100))
    signature_file: Mapped[str | None] = mapped_column(String(200))  # under [signatures] folder


class Answer(Base):
    """One answered question of a contact: the three-level `level` beside the `raw` answer as given.

    Window, source and contact time are copied from the contact (they never change) so scoring a year is one
    pass over one table.
    """

    __tablename__ = "answers"
    __table_args__ = (
        UniqueConstraint("contact_id", "question"),
        Index("ix_answers_period", "contacted_at", "window_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"))
    question: Mapped[str] = mapped_column(String(40))
    level: Mapped[str | None] = mapped_column(String(8))  # 满意, 基本满意, 不满意; NULL when not rated
    raw: Mapped[str] = mapped_column(String(20))
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"))
    source: Mapped[str] = mapped_column(String(12))
    contacted_at: Mapped[datetime]
    recorded_at: Mapped[datetime]


class ScoreTally(Base):
    """The scored contacts of one window from one source over one local day, month or year (`span`), kept up to
    date in the transaction that records, corrects or withdraws their answers: scoring reads these instead of a
    period's answers (see `callbackd.store.tallies`). A contact counts once it has a rated answer."""

    __tablename__ = "score_tallies"

    span: Mapped[str] = mapped_column(String(5), primary_key=True)  # day, month, year
    starts: Mapped[date] = mapped_column(primary_key=True)  # the local day, or the first day of the month or year
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(12), primary_key=True)
    contacts: Mapped[int]
    # the sum of the contacts' scores in millionths of a point: integers add up exactly, in any order
    score_sum: Mapped[int] = mapped_column(BigInteger)
    simulated: Mapped[int]  # contacts made by simulated applicants
    # rated answers by level (满意, 基本满意, 不满意)
    satisfied: Mapped[int]
    fairly_satisfied: Mapped[int]
    dissatisfied: Mapped[int]


class QuestionTally(Base):
    """Rated answers to one question by level, of one window and source over one local day, month or year: the
    per-question breakdown, kept like `ScoreTally`."""

    __tablename__ = "question_tallies"

    span: Mapped[str] = mapped_column(String(5), primary_key=True)
    starts: Mapped[date] = mapped_column(primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(12), primary_key=True)
    question: Mapped[str] = mapped_column(String(40), primary_key=True)
    satisfied: Mapped[int]
    fairly_satisfied: Mapped[int]
    dissatisfied: Mapped[int]


class TallyState(Base):
    """The zone and scoring rules (level points, question weights) the tallies were built under, one row; none
    until they are built. Scoring under other rules reads the answers instead."""

    __tablename__ = "tally_state"

    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    zone: Mapped[str] = mapped_column(String(64))
    rules: Mapped[str] = mapped_column(Text)  # JSON: points and question_weights
    built_at: Mapped[datetime]


class Rectification(Base):
    """A rectification (整改) a window owes: opened by a 不满意 answer or an unreachable complaint callback, due in
    working days, answered by the window, verified by a follow-up callback, closed or escalated.

    States: open (awaiting the window's response), responded (awaiting verification), closed, escalated,
    withdrawn (its 不满意 corrected away before the window answered).
    """

    __tablename__ = "rectifications"
    __table_args__ = (Index("ix_rectifications_status_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"), index=True)
    # what opened it: the callback (for an unreachable complaint, or a 不满意 given on a callback) and the contact
    # whose answers were 不满意 (also on-site forms and evaluator ratings, which have no callback)
    callback_id: Mapped[int | None] = mapped_column(ForeignKey("callbacks.id"), unique=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), unique=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    case_type: Mapped[str] = mapped_column(String(20), default="")
    trigger: Mapped[str] = mapped_column(String(16))  # dissatisfied, unreachable
    reason: Mapped[str] = mapped_column(Text)
    answers: Mapped[dict[str, Any]]  # question dimension -> answer as given
    status: Mapped[str] = mapped_column(String(12))
    opened_at: Mapped[datetime]
    due_at: Mapped[datetime]
    response: Mapped[str] = mapped_column(Text, default="")
    responded_at: Mapped[datetime | None]
    responded_by: Mapped[str | None] = mapped_column(String(100))
    # whether the latest response came in time: kept, since reopening sets a new due date
    on_time: Mapped[bool | None]
    loops: Mapped[int] = mapped_column(default=0)  # follow-ups that found the applicant still 不满意
    closed_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    history: Mapped[list[Any]] = mapped_column(default=list)  # every step: opened, responded, verified, ...
    # the follow-up callback could not be made: the rectification awaits verification by hand and counts as overdue
    follow_up_failed_at: Mapped[datetime | None]


class Publication(Base):
    """A published (frozen) period: the ranking and indicators as announced. A republish supersedes it, with
    a reason; scores and exports of a published period read the publication in force."""

    __tablename__ = "publications"

    id: Mapped[int] = mapped_column(primary_key=True)
    period: Mapped[str] = mapped_column(String(16), index=True)
    # equals `period` while in force, NULL once superseded: one publication in force per period
    active_period: Mapped[str | None] = mapped_column(String(16), unique=True)
    published_at: Mapped[datetime]
    published_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("publications.id"))
    snapshot: Mapped[dict[str, Any]]


class AuditEvent(Base):
    """Who did what: rounds opened and verified, imports, exports, publications, reveals of a phone number,
    answer edits, rectification steps."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)  # the real time (before revision 0006: callbackd's clock)
    actor: Mapped[str] = mapped_column(String(100))  # the operating-system account
    action: Mapped[str] = mapped_column(String(40), index=True)
    subject: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]]
    # a rehearsal: an entry made while CALLBACKD_NOW or CALLBACKD_CLOCK_OFFSET moved callbackd's clock, which
    # `clock_at` holds
    rehearsal: Mapped[bool] = mapped_column(default=False, server_default=false())
    clock_at: Mapped[datetime | None]


class WebhookReceipt(Base):
    """A provider delivery already handled (a message id, a call's status): a repeat changes nothing twice."""

    __tablename__ = "webhook_receipts"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    received_at: Mapped[datetime]


class ContactReview(Base):
    """A record's review (审核): pending (awaiting a supervisor), returned (sent back with a comment, awaiting the
    operator's correction) or archived (approved, 归档: its answers change only through a new version)."""

    __tablename__ = "contact_reviews"
    __table_args__ = (Index("ix_contact_reviews_status", "status", "submitted_at"),)

    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), primary_key=True)
    status: Mapped[str] = mapped_column(String(12))  # pending, returned, archived
    version: Mapped[int] = mapped_column(default=1)  # the answers' version now in force
    comment: Mapped[str] = mapped_column(Text, default="")  # the latest 审核意见
    submitted_at: Mapped[datetime]
    submitted_by: Mapped[str] = mapped_column(String(100))  # who made the record (an account, or the OS user)
    reviewed_at: Mapped[datetime | None]
    reviewed_by: Mapped[str | None] = mapped_column(String(100))
    history: Mapped[list[Any]] = mapped_column(default=list)  # every step: submitted, returned, resubmitted, ...


class ContactVersion(Base):
    """A former version of an archived record's answers, kept when a supervisor corrects it (更正)."""

    __tablename__ = "contact_versions"
    __table_args__ = (UniqueConstraint("contact_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    version: Mapped[int]
    answers: Mapped[dict[str, Any]]  # question -> [level, raw], as they were
    suggestion: Mapped[str] = mapped_column(Text, default="")
    replaced_at: Mapped[datetime]
    replaced_by: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text)  # why the next version corrects this one


class RectificationNotice(Base):
    """A written rectification notice (整改通知单) issued for a rectification: its own number, sequential per year
    (ZG-2026-000123), one per rectification."""

    __tablename__ = "rectification_notices"
    __table_args__ = (UniqueConstraint("year", "sequence"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rectification_id: Mapped[int] = mapped_column(ForeignKey("rectifications.id"), unique=True)
    year: Mapped[int]
    sequence: Mapped[int]
    number: Mapped[str] = mapped_column(String(20), unique=True)
    issued_at: Mapped[datetime]
    issued_by: Mapped[str] = mapped_column(String(100))


class Plan(Base):
    """A callback plan (回访计划): a population called back on a schedule (monthly, quarterly, yearly or once) by the
    window that runs it, through its channel plan, with its survey. Each period becomes a round of kind `plan`."""

    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("windows.id"))
    frequency: Mapped[str] = mapped_column(String(10))  # monthly, quarterly, yearly, once
    # a console account's name that calls every member; NULL: each member's own 负责人
    assignee: Mapped[str | None] = mapped_column(String(64))
    channel_plan: Mapped[list[Any]] = mapped_column(default=list)
    survey: Mapped[str] = mapped_column(String(64))  # the survey's name (config/surveys), frozen per period
    topic: Mapped[str] = mapped_column(String(200), default="")  # what the callbacks are about
    starts_on: Mapped[date]  # the first local day it generates callbacks
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(100))


class PlanMember(Base):
    """One person of a plan's population (客户/业主名单), keyed by plan and phone: a re-import updates, never
    duplicates. `case_id` is the member's case (type 回访计划) that its callbacks belong to."""

    __tablename__ = "plan_members"
    __table_args__ = (UniqueConstraint("plan_id", "phone"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    name: Mapped[str] = mapped_column(String(100))
    area: Mapped[str] = mapped_column(String(100), default="")  # 区域/楼栋
    assignee: Mapped[str] = mapped_column(String(64), default="")  # 负责人
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class PlanPeriod(Base):
    """One period of a plan that generated its round: unique per plan and period, so a period is generated once
    however many ticks, processes or restarts."""

    __tablename__ = "plan_periods"
    __table_args__ = (UniqueConstraint("plan_id", "period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"))
    period: Mapped[str] = mapped_column(String(8))  # 2026-11, 2026-Q4, 2026, or "once"
    starts: Mapped[datetime]  # the period's first instant (for "once": the local day it was generated)
    ends: Mapped[datetime]
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), unique=True)


class Notification(Base):
    """An outbox entry (see `callbackd.notify`): a message to staff, written in the transaction that caused it and
    delivered afterwards once per route (`NotificationDelivery`). `key` makes one event notify once (a
    rectification's overdue notice, once per due date)."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(primary_key=True)
    event: Mapped[str] = mapped_column(String(40), index=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    window_id: Mapped[int | None] = mapped_column(ForeignKey("windows.id"))
    title: Mapped[str] = mapped_column(String(200))
    lines: Mapped[list[Any]] = mapped_column(default=list)
    path: Mapped[str] = mapped_column(String(200), default="")  # the console page it concerns, "/rectifications/7"
    created_at: Mapped[datetime]
    announced_at: Mapped[datetime | None]  # when the `notify` hook heard of it (once)


class NotificationDelivery(Base):
    """One notification to one route ("wecom:窗口一组", "email:li@example.gov.cn"): pending until its due time,
    sending while a deliverer holds it (until `held_until`), then sent or failed (after its last try)."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "route"),
        Index("ix_notification_deliveries_status_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    notification_id: Mapped[int] = mapped_column(ForeignKey("notifications.id"))
    route: Mapped[str] = mapped_column(String(240))
    status: Mapped[str] = mapped_column(String(10))  # pending, sending, sent, failed
    digest: Mapped[bool] = mapped_column(default=False)  # goes out in the route's daily digest
    tries: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    held_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    error: Mapped[str] = mapped_column(Text, default="")


class Heartbeat(Base):
    """The last time a recurring job ran (beat's tick, a worker's task, the outbox's delivery), for
    `callbackd status` and `/metrics`."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
