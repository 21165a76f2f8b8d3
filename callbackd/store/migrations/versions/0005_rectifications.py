"""Rectifications, publications, follow-up callbacks and the caller's role on callbacks.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# names SQLite's unnamed unique constraint of 0001 so that batch mode can drop it
NAMING = {"uq": "uq_%(table_name)s_%(column_0_N_name)s"}


def upgrade() -> None:
    op.create_table(
        "rectifications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("window_id", sa.Integer(), nullable=False),
        sa.Column("callback_id", sa.Integer(), nullable=True),
        sa.Column("contact_id", sa.Integer(), nullable=True),
        sa.Column("case_id", sa.Integer(), nullable=True),
        sa.Column("case_type", sa.String(length=20), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("responded_by", sa.String(length=100), nullable=True),
        sa.Column("on_time", sa.Boolean(), nullable=True),
        sa.Column("loops", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("escalated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["callback_id"], ["callbacks.id"]),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"]),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"]),
        sa.ForeignKeyConstraint(["window_id"], ["windows.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("callback_id"),
        sa.UniqueConstraint("contact_id"),
    )
    with op.batch_alter_table("rectifications", schema=None) as batch_op:
        batch_op.create_index("ix_rectifications_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_rectifications_window_id"), ["window_id"], unique=False)

    op.create_table(
        "publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("active_period", sa.String(length=16), nullable=True),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_by", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("supersedes_id", sa.Integer(), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["supersedes_id"], ["publications.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("active_period"),
    )
    with op.batch_alter_table("publications", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_publications_period"), ["period"], unique=False)

    old_unique = "callbacks_round_id_case_id_key" if op.get_bind().dialect.name == "postgresql" else (
        "uq_callbacks_round_id_case_id"
    )
    with op.batch_alter_table("callbacks", schema=None, naming_convention=NAMING) as batch_op:
        batch_op.add_column(sa.Column("follow_up", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("caller_role", sa.String(length=20), nullable=True))
        batch_op.drop_constraint(old_unique, type_="unique")
        batch_op.create_unique_constraint("uq_callbacks_round_case_follow_up", ["round_id", "case_id", "follow_up"])


def downgrade() -> None:
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_callbacks_round_case_follow_up", type_="unique")
        batch_op.create_unique_constraint("uq_callbacks_round_id_case_id", ["round_id", "case_id"])
        batch_op.drop_column("caller_role")
        batch_op.drop_column("follow_up")
    op.drop_table("publications")
    op.drop_table("rectifications")
