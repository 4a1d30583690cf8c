"""sign_in_sessions: one row per signed-in browser, so signing out ends that cookie

Revision ID: 0014_sign_in_sessions
Revises: 0013_actor_change_notify
Create Date: 2026-11-27 19:00:00

Until now a session cookie named the user and the user's token only: signing out
cleared the browser's cookie, but a copy of it (a shared workstation, a proxy log)
stayed valid until the password changed. Each sign-in now has a row; the cookie
carries its id and a secret whose SHA-256 the row keeps. Cookies issued before
this revision name no row: everyone signs in once more.

Ending a session (DELETE) is announced on gridmap_actors like the other tables
the sign-in check reads; a new one (INSERT) is not cached anywhere yet.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014_sign_in_sessions'
down_revision = '0013_actor_change_notify'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the table and its notifying trigger."""
    op.create_table(
        'sign_in_sessions',
        sa.Column('id', sa.BigInteger(), primary_key=True),
        sa.Column('user_id', sa.Integer(), sa.ForeignKey('users.id', ondelete='CASCADE'),
                  nullable=False),
        sa.Column('secret_hash', sa.String(64), nullable=False),
        sa.Column('ip', sa.String(45)),
        sa.Column('user_agent', sa.String(200)),
        sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.func.now(),
                  nullable=False),
    )
    op.create_index('ix_sign_in_sessions_user_id', 'sign_in_sessions', ['user_id'])
    op.execute("CREATE TRIGGER sign_in_sessions_actors_changed "
               "AFTER UPDATE OR DELETE OR TRUNCATE ON sign_in_sessions "
               "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_actors_changed()")


def downgrade() -> None:
    """Drop the table (and with it its trigger)."""
    op.drop_table('sign_in_sessions')
