"""Channel plans and frozen surveys on rounds; attempts, contacts and answers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 18:12:51.151191
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('attempts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('callback_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=40), nullable=False),
    sa.Column('number', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('provider_id', sa.String(length=64), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['callback_id'], ['callbacks.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('callback_id', 'number')
    )
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attempts_callback_id'), ['callback_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attempts_provider_id'), ['provider_id'], unique=False)
        batch_op.create_index('ix_attempts_status_due', ['status', 'due_at'], unique=False)

    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('channel', sa.String(length=40), nullable=False),
    sa.Column('window_id', sa.Integer(), nullable=False),
    sa.Column('callback_id', sa.Integer(), nullable=True),
    sa.Column('contacted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('simulated', sa.Boolean(), nullable=False),
    sa.Column('survey_version', sa.String(length=32), nullable=False),
    sa.Column('suggestion', sa.Text(), nullable=False),
    sa.Column('external_key', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['callback_id'], ['callbacks.id'], ),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('callback_id'),
    sa.UniqueConstraint('external_key')
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_window_id'), ['window_id'], unique=False)
        batch_op.create_index('ix_contacts_simulated', ['simulated', 'contacted_at'], unique=False)

    op.create_table('answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('question', sa.String(length=40), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=True),
    sa.Column('raw', sa.String(length=20), nullable=False),
    sa.Column('window_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('contacted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], ),
    sa.ForeignKeyConstraint(['window_id'], ['windows.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('contact_id', 'question')
    )
    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.create_index('ix_answers_period', ['contacted_at', 'window_id'], unique=False)

    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('channel_plan', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('survey', sa.JSON(), nullable=False, server_default='{}'))



def downgrade() -> None:
    with op.batch_alter_table('rounds', schema=None) as batch_op:
        batch_op.drop_column('survey')
        batch_op.drop_column('channel_plan')

    with op.batch_alter_table('callbacks', schema=None) as batch_op:
        batch_op.drop_column('closed_at')
        batch_op.drop_column('reason')

    with op.batch_alter_table('answers', schema=None) as batch_op:
        batch_op.drop_index('ix_answers_period')

    op.drop_table('answers')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index('ix_contacts_simulated')
        batch_op.drop_index(batch_op.f('ix_contacts_window_id'))

    op.drop_table('contacts')
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_attempts_status_due')
        batch_op.drop_index(batch_op.f('ix_attempts_provider_id'))
        batch_op.drop_index(batch_op.f('ix_attempts_callback_id'))

    op.drop_table('attempts')
