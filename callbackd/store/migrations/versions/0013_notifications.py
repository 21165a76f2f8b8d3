"""Notifications to staff: the outbox and its deliveries, accounts' routes, follow-ups that could not be made,
and heartbeats of the recurring jobs.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("users", sa.Column("notify_routes", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column("rectifications", sa.Column("follow_up_failed_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("event", sa.String(40), nullable=False),
        sa.Column("key", sa.String(200), nullable=False, unique=True),
        sa.Column("window_id", sa.Integer(), sa.ForeignKey("windows.id"), nullable=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("path", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("announced_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_notifications_event", "notifications", ["event"])
    op.create_table(
        "notification_deliveries",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("notification_id", sa.Integer(), sa.ForeignKey("notifications.id"), nullable=False),
        sa.Column("route", sa.String(240), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("digest", sa.Boolean(), nullable=False),
        sa.Column("tries", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("held_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.UniqueConstraint("notification_id", "route"),
    )
    op.create_index("ix_notification_deliveries_status_due", "notification_deliveries", ["status", "due_at"])
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(60), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("heartbeats")
    op.drop_index("ix_notification_deliveries_status_due", "notification_deliveries")
    op.drop_table("notification_deliveries")
    op.drop_index("ix_notifications_event", "notifications")
    op.drop_table("notifications")
    op.drop_column("rectifications", "follow_up_failed_at")
    op.drop_column("users", "notify_routes")
