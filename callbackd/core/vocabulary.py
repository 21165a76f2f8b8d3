"""The words every layer shares: ledger fields, case types, answer levels, score sources, attempt and callback
states, and the reasons a callback could not be made."""

from __future__ import annotations

# Ledger fields; `[ledger] columns` maps a hall system's own headers onto them.
FIELDS = ("case_id", "window", "matter", "case_type", "applicant", "phone", "accepted_at", "resolved_at", "status")
# Optional ledger fields: the time limit a case was accepted under, in working days (承诺时限, 法定时限); the
# promised one is used when both are given (see `callbackd.measure.time_limits`).
LIMIT_FIELDS = ("promised_days", "statutory_days")

CASE_TYPES = ("即办件", "承诺件", "联办件", "上报件", "补办件", "退回件", "投诉", "举报", "报修")

LEVEL_NAMES = ("满意", "基本满意", "不满意")
DISSATISFIED = LEVEL_NAMES[2]  # opens a rectification (整改)

# Where a scored contact came from: a callback (any channel, or an operator's result), an on-site form, a counter
# evaluator's rating.
SOURCES = ("callback", "onsite", "evaluator")

# A callback plan's (回访计划) members: each is kept as a case of this type, never resolved, so the weekly sample never
# draws it; their callbacks' contacts have source `plan`, which is no score source (see callbackd.rounds.plans).
PLAN_CASE_TYPE = "回访计划"
PLAN_SOURCE = "plan"

# An attempt still due or under way; a callback in one of its final states.
OPEN_ATTEMPT = ("due", "queued", "placing", "in_progress", "answered")
FINAL_CALLBACK = ("completed", "partial", "unreachable", "refused", "opted_out", "invalid")

# Why a callback could not be made (无法联系原因), as the supervisory unit reads it.
REASON_LABELS = {
    "no_answer": "无人接听",
    "busy": "占线",
    "failed": "呼叫失败",
    "machine": "语音信箱",
    "hung_up": "中途挂断",
    "invalid_number": "空号或号码错误",
    "refused": "拒绝回访",
    "opted_out": "已退订",
    "no_channel": "无可用回访渠道",
    "not_configured": "回访渠道未配置",
    "rate_limited": "回访渠道限流",
    "cancelled": "已取消",
}


def reason_label(reason: str | None) -> str:
    """The Chinese label of a reason a callback could not be made (the reason itself when it has none)."""
    return REASON_LABELS.get(reason or "", reason or "")
