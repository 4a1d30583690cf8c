"""audit_log(target, at) index: a camera's change history on the ledger page

Revision ID: 0017_audit_target_index
Revises: 0016_sign_in_last_seen
Create Date: 2026-11-28 04:20:00

The camera ledger shows who registered and changed a camera, and when, from the
audit trail (target 'camera:<GB ID>'); without this index that read scans the
whole trail, which only grows.
"""

from __future__ import annotations

from alembic import op

revision = '0017_audit_target_index'
down_revision = '0016_sign_in_last_seen'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_audit_log_target_at', 'audit_log', ['target', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_audit_log_target_at', table_name='audit_log')
