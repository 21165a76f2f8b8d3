"""The operator queue: who holds an attempt taken from it (a console account), and since when.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite adds a nullable column with its reference in place; Alembic's batch mode would copy the whole
        # attempts table to do the same
        op.execute("ALTER TABLE attempts ADD COLUMN assigned_to INTEGER REFERENCES users (id)")
    else:
        op.add_column("attempts", sa.Column("assigned_to", sa.Integer(), sa.ForeignKey("users.id"), nullable=True))
    op.add_column("attempts", sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_attempts_assigned_to", "attempts", ["assigned_to"])


def downgrade() -> None:
    op.drop_index("ix_attempts_assigned_to", table_name="attempts")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("assigned_at")
        batch.drop_column("assigned_to")
