"""Windows, cases, opt-outs, rounds, round windows, callbacks and the audit trail.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 18:08:55.522914
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=40), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_events_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_at'), ['at'], unique=False)

    op.create_table('opt_outs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('phone')
    )
    op.create_table('rounds',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('week', sa.String(length=8), nullable=False),
    sa.Column('active_week', sa.String(length=8), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('seed', sa.String(length=128), nullable=False),
    sa.Column('policy', sa.JSON(), nullable=False),
    sa.Column('candidate_hash', sa.String(length=64), nullable=False),
    sa.Column('watermarks', sa.JSON(), nullable=False),
    sa.Column('month_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cutoff_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_by', sa.String(length=100), nullable=False),
    sa.Column('replaces_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['replaces_id'], ['rounds.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('active_week')
    )
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rounds_week'), ['week'], unique=False)

    op.create_table('windows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    op.create_table('cases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('case_no', sa.String(length=64), nullable=False),
    sa.Column('window_id', sa.Integer(), nullable=False),
    sa.Column('matter', sa.String(length=200), nullable=False),
    sa.Column('case_type', sa.String(length=20), nullable=False),
    sa.Column('applicant', sa.String(length=100), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('phone_sms', sa.Boolean(), nullable=False),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('resolved', sa.Boolean(), nullable=False),
    sa.Column('digest', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('case_no')
    )
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cases_phone'), ['phone'], unique=False)
        batch_op.create_index('ix_cases_window_resolved', ['window_id', 'resolved', 'resolved_at'], unique=False)

    op.create_table('round_windows',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('window_id', sa.Integer(), nullable=False),
    sa.Column('candidates', sa.Integer(), nullable=False),
    sa.Column('quota', sa.Integer(), nullable=False),
    sa.Column('selected', sa.Integer(), nullable=False),
    sa.Column('shortfall', sa.Integer(), nullable=False),
    sa.Column('candidate_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], ),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'window_id')
    )
    op.create_table('callbacks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('round_id', sa.Integer(), nullable=False),
    sa.Column('case_id', sa.Integer(), nullable=False),
    sa.Column('window_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('rule', sa.String(length=50), nullable=True),
    sa.Column('stratum', sa.String(length=50), nullable=False),
    sa.Column('draw_key', sa.String(length=64), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.id'], ),
    sa.ForeignKeyConstraint(['round_id'], ['rounds.id'], ),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('round_id', 'case_id')
    )
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_callbacks_case_id'), ['case_id'], unique=False)
        batch_op.create_index('ix_callbacks_phone_round', ['phone', 'round_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_callbacks_round_id'), ['round_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_callbacks_status'), ['status'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_callbacks_status'))
        batch_op.drop_index(batch_op.f('ix_callbacks_round_id'))
        batch_op.drop_index('ix_callbacks_phone_round')
        batch_op.drop_index(batch_op.f('ix_callbacks_case_id'))

    op.drop_table('callbacks')
    op.drop_table('round_windows')
    with op.batch_alter_table('cases', schema=None) as batch_op:
        batch_op.drop_index('ix_cases_window_resolved')
        batch_op.drop_index(batch_op.f('ix_cases_phone'))

    op.drop_table('cases')
    op.drop_table('windows')
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rounds_week'))

    op.drop_table('rounds')
    op.drop_table('opt_outs')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_at'))
        batch_op.drop_index(batch_op.f('ix_audit_events_action'))

    op.drop_table('audit_events')
