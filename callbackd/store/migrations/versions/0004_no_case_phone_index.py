"""Drop the index on cases.phone: nothing searches cases by number (callbacks carry it), and every ledger
import paid to keep it.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.drop_index("ix_cases_phone")


def downgrade() -> None:
    with op.batch_alter_table("cases", schema=None) as batch_op:
        batch_op.create_index("ix_cases_phone", ["phone"], unique=False)
