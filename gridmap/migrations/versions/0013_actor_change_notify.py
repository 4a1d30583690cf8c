"""Announce changes of users, units and dispatch orders on the gridmap_actors channel

Revision ID: 0013_actor_change_notify
Revises: 0012_matter_reporter_email
Create Date: 2026-11-27 18:30:00

The app keeps what the sign-in check read (account, unit, whether anything is
dispatched to the unit) while none of these tables changed. Statement triggers
send a NOTIFY, delivered on commit and dropped on rollback, so every app process
forgets its entries as soon as any process commits such a change. A user's
sign-in bookkeeping (last sign-in, failure count) does not announce anything: it
changes nothing the check reads.
"""

from __future__ import annotations

from alembic import op

revision = '0013_actor_change_notify'
down_revision = '0012_matter_reporter_email'
branch_labels = None
depends_on = None

CHANNEL = 'gridmap_actors'
# What SESSION_ACTOR reads of a user (gridmap.accounts); the other columns change
# with every sign-in.
USER_COLUMNS = 'id, username, role, active, is_demo, session_token, unit_id'
TABLES = {
    'users': f'INSERT OR DELETE OR TRUNCATE OR UPDATE OF {USER_COLUMNS}',
    'units': 'INSERT OR UPDATE OR DELETE OR TRUNCATE',
    'dispatch_orders': 'INSERT OR UPDATE OR DELETE OR TRUNCATE',
    'dispatch_targets': 'INSERT OR UPDATE OR DELETE OR TRUNCATE',
}


def upgrade() -> None:
    """Add the notifying function and one statement trigger per table."""
    op.execute(f"""
        CREATE FUNCTION gridmap_actors_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', TG_TABLE_NAME);
            RETURN NULL;
        END $$
    """)
    for table, events in TABLES.items():
        op.execute(f"CREATE TRIGGER {table}_actors_changed AFTER {events} ON {table} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_actors_changed()")


def downgrade() -> None:
    """Drop the triggers and the function."""
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_actors_changed ON {table}")
    op.execute("DROP FUNCTION gridmap_actors_changed()")
