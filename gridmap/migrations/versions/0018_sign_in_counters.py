"""sign_in_counters: failed sign-ins per name and client address, for any name tried

Revision ID: 0018_sign_in_counters
Revises: 0017_audit_target_index
Create Date: 2026-11-28 09:00:00

Failed sign-ins were counted on the user row: five wrong passwords from anywhere
locked the account for everyone, and only names of accounts could be locked, so
the lock told which names exist. They are now counted per (name, address) for
every name tried, known or not (the name as an HMAC, so a password typed as a
name is not kept), plus one row per name over all addresses ('*') that delays
addresses that never signed in to the account when guessing is spread over many.
users.failed_attempts and users.locked_until are no longer written by sign-in.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0018_sign_in_counters'
down_revision = '0017_audit_target_index'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table."""
    op.create_table(
        'sign_in_counters',
        sa.Column('name_key', sa.String(64), nullable=False),
        sa.Column('address', sa.String(45), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=True),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
        sa.Column('last_failed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('succeeded_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('forget_after', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('failures >= 0', name=op.f('ck_sign_in_counters_failures')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name=op.f('fk_sign_in_counters_user_id_users')),
        sa.PrimaryKeyConstraint('name_key', 'address', name=op.f('pk_sign_in_counters')),
    )
    op.create_index(op.f('ix_sign_in_counters_user_id'), 'sign_in_counters', ['user_id'])
    op.create_index(op.f('ix_sign_in_counters_forget_after'), 'sign_in_counters',
                    ['forget_after'])


def downgrade() -> None:
    """Drop the table (the counters start afresh on the user rows)."""
    op.drop_table('sign_in_counters')
