"""Score tallies: per window, source and local day (and month and year) the scored contacts, their score sum and
their answers by level, and per question the answers by level, kept with the answers; the rules they follow. Built here
from the answers under the default zone and scoring rules; `callbackd init` rebuilds them when the configured
ones differ.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_KEY = ("span", "starts", "window_id", "source")
_LEVELS = ("satisfied", "fairly_satisfied", "dissatisfied")


def _key() -> list[sa.Column]:
    return [
        sa.Column("span", sa.String(5), nullable=False),
        sa.Column("starts", sa.Date(), nullable=False),
        sa.Column("window_id", sa.Integer(), sa.ForeignKey("windows.id"), nullable=False),
        sa.Column("source", sa.String(12), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "score_tallies",
        *_key(),
        sa.Column("contacts", sa.Integer(), nullable=False),
        sa.Column("score_sum", sa.BigInteger(), nullable=False),
        sa.Column("simulated", sa.Integer(), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _LEVELS),
        sa.PrimaryKeyConstraint(*_KEY),
    )
    op.create_table(
        "question_tallies",
        *_key(),
        sa.Column("question", sa.String(40), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _LEVELS),
        sa.PrimaryKeyConstraint(*_KEY, "question"),
    )
    op.create_table(
        "tally_state",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("zone", sa.String(64), nullable=False),
        sa.Column("rules", sa.Text(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
    )
    # the code's own rebuild, on the tables as this revision makes them (a later revision that changes them must
    # give this one a copy of its own)
    from callbackd.store import tallies

    tallies.rebuild(op.get_bind(), tallies.TallyRules.defaults())


def downgrade() -> None:
    op.drop_table("tally_state")
    op.drop_table("question_tallies")
    op.drop_table("score_tallies")
