"""Ledger time limits (承诺时限/法定时限), for 按时办结率 and 超期件.

Two nullable columns on cases, in working days: cases imported before them have no limit and count in neither
the numerator nor the denominator of 按时办结率.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # nullable and without a default: both dialects add such a column in place, without rewriting the table
    op.add_column("cases", sa.Column("promised_days", sa.Integer(), nullable=True))
    op.add_column("cases", sa.Column("statutory_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("statutory_days")
        batch.drop_column("promised_days")
