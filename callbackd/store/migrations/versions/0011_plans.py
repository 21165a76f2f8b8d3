"""Callback plans (回访计划): populations, schedules and the callbacks they generate.

Rounds get a `kind` ("sample" for a week's draw, "plan" for a plan's period); three new tables hold the plans,
their members and the periods already generated.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # a server default fills the existing rounds without rewriting the table
    op.add_column("rounds", sa.Column("kind", sa.String(8), nullable=False, server_default="sample"))
    op.create_table(
        "plans",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(100), nullable=False, unique=True),
        sa.Column("window_id", sa.Integer(), sa.ForeignKey("windows.id"), nullable=False),
        sa.Column("frequency", sa.String(10), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=True),
        sa.Column("channel_plan", sa.JSON(), nullable=False),
        sa.Column("survey", sa.String(64), nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
    )
    op.create_table(
        "plan_members",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("plans.id"), nullable=False),
        sa.Column("phone", sa.String(20), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("area", sa.String(100), nullable=False),
        sa.Column("assignee", sa.String(64), nullable=False),
        sa.Column("case_id", sa.Integer(), sa.ForeignKey("cases.id"), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("plan_id", "phone"),
    )
    op.create_table(
        "plan_periods",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("plans.id"), nullable=False),
        sa.Column("period", sa.String(8), nullable=False),
        sa.Column("starts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends", sa.DateTime(timezone=True), nullable=False),
        sa.Column("round_id", sa.Integer(), sa.ForeignKey("rounds.id"), nullable=False, unique=True),
        sa.UniqueConstraint("plan_id", "period"),
    )


def downgrade() -> None:
    op.drop_table("plan_periods")
    op.drop_table("plan_members")
    op.drop_table("plans")
    with op.batch_alter_table("rounds") as batch:
        batch.drop_column("kind")
