"""sign_in_sessions.last_seen_at: when each signed-in browser was last used

Revision ID: 0016_sign_in_last_seen
Revises: 0015_camera_snapshot_at
Create Date: 2026-11-28 01:00:00

The sign-out page listed every sign-in of the last 30 days, though a browser
idle for 12 hours holds an expired cookie. The app now stamps a session when it
refreshes the cookie (at most once a minute of use), and the page lists only
sessions used within the cookie's lifetime, with when each was last used.

That stamp changes nothing the sign-in check reads, so it must not announce a
change of the actors (every cached sign-in would be read again): the trigger
now fires on updates of the columns the check reads only.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016_sign_in_last_seen'
down_revision = '0015_camera_snapshot_at'
branch_labels = None
depends_on = None

_TRIGGER = ("CREATE TRIGGER sign_in_sessions_actors_changed AFTER {events} "
            "ON sign_in_sessions FOR EACH STATEMENT EXECUTE FUNCTION gridmap_actors_changed()")


def upgrade() -> None:
    """Add the column (existing sessions: their sign-in time) and narrow the trigger."""
    op.add_column('sign_in_sessions', sa.Column(
        'last_seen_at', sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False))
    op.execute("UPDATE sign_in_sessions SET last_seen_at = created_at")
    op.execute("DROP TRIGGER sign_in_sessions_actors_changed ON sign_in_sessions")
    op.execute(_TRIGGER.format(
        events="UPDATE OF id, user_id, secret_hash, created_at OR DELETE OR TRUNCATE"))


def downgrade() -> None:
    """Drop the column and restore the trigger on every update."""
    op.execute("DROP TRIGGER sign_in_sessions_actors_changed ON sign_in_sessions")
    op.execute(_TRIGGER.format(events="UPDATE OR DELETE OR TRUNCATE"))
    op.drop_column('sign_in_sessions', 'last_seen_at')
