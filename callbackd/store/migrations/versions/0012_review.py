"""Record review and archive (审核/归档), visit signatures (签名确认) and rectification notices (整改通知单).

Revision ID: 0012
Revises: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # contacts is a big table: NOT NULL columns come with a server default, nullable ones without (SQLite and
    # PostgreSQL add both in place, without copying the table)
    op.add_column("contacts", sa.Column("signature_required", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("contacts", sa.Column("unsigned", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column("contacts", sa.Column("signer", sa.String(100), nullable=True))
    op.add_column("contacts", sa.Column("signature_file", sa.String(200), nullable=True))
    op.create_index("ix_contacts_unsigned", "contacts", ["unsigned"])
    op.create_table(
        "contact_reviews",
        sa.Column("contact_id", sa.Integer(), sa.ForeignKey("contacts.id"), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("submitted_by", sa.String(100), nullable=False),
        sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reviewed_by", sa.String(100), nullable=True),
        sa.Column("history", sa.JSON(), nullable=False),
    )
    op.create_index("ix_contact_reviews_status", "contact_reviews", ["status", "submitted_at"])
    op.create_table(
        "contact_versions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("contact_id", sa.Integer(), sa.ForeignKey("contacts.id"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("answers", sa.JSON(), nullable=False),
        sa.Column("suggestion", sa.Text(), nullable=False),
        sa.Column("replaced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("replaced_by", sa.String(100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.UniqueConstraint("contact_id", "version"),
    )
    op.create_index("ix_contact_versions_contact_id", "contact_versions", ["contact_id"])
    op.create_table(
        "rectification_notices",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("rectification_id", sa.Integer(), sa.ForeignKey("rectifications.id"), nullable=False, unique=True),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(20), nullable=False, unique=True),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("issued_by", sa.String(100), nullable=False),
        sa.UniqueConstraint("year", "sequence"),
    )


def downgrade() -> None:
    op.drop_table("rectification_notices")
    op.drop_index("ix_contact_versions_contact_id", table_name="contact_versions")
    op.drop_table("contact_versions")
    op.drop_index("ix_contact_reviews_status", table_name="contact_reviews")
    op.drop_table("contact_reviews")
    op.drop_index("ix_contacts_unsigned", table_name="contacts")
    with op.batch_alter_table("contacts") as batch:
        batch.drop_column("signature_file")
        batch.drop_column("signer")
        batch.drop_column("unsigned")
        batch.drop_column("signature_required")
