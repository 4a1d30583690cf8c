"""grid_workers: a version for edits without lost updates, and leaving without deletion

Revision ID: 0011_grid_team_members
Revises: 0010_camera_has_credentials
Create Date: 2026-11-27 11:40:00

Grid teams become editable. Each member row gets a version (a stale edit is
refused), its last change time, and ``left_at``: a member who leaves a team is
marked, not deleted, because their patrol records cascade from the row and the
matters they reported point at it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011_grid_team_members'
down_revision = '0010_camera_has_credentials'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add version, updated_at and left_at; index the current members per grid."""
    op.add_column('grid_workers', sa.Column('version', sa.Integer(), server_default='1',
                                            nullable=False))
    op.add_column('grid_workers', sa.Column('updated_at', sa.DateTime(timezone=True),
                                            server_default=sa.func.now(), nullable=False))
    op.add_column('grid_workers', sa.Column('left_at', sa.DateTime(timezone=True),
                                            nullable=True))
    op.create_check_constraint(op.f('ck_grid_workers_version_positive'), 'grid_workers',
                               'version >= 1')
    op.create_index('ix_grid_workers_current', 'grid_workers', ['grid_id', 'role'],
                    postgresql_where=sa.text('left_at IS NULL'))


def downgrade() -> None:
    """Drop the columns. Members who left become members again: deleting them would
    delete their patrol records too."""
    op.drop_index('ix_grid_workers_current', table_name='grid_workers')
    op.drop_constraint(op.f('ck_grid_workers_version_positive'), 'grid_workers', type_='check')
    op.drop_column('grid_workers', 'left_at')
    op.drop_column('grid_workers', 'updated_at')
    op.drop_column('grid_workers', 'version')
