"""The audit trail's real time and rehearsals: an entry made while CALLBACKD_NOW or CALLBACKD_CLOCK_OFFSET moved
callbackd's clock is marked `rehearsal` and keeps that clock in `clock_at`; `at` is the real time from now on.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rehearsal", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("clock_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("clock_at")
        batch_op.drop_column("rehearsal")
