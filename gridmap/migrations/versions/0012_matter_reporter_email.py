"""matters.reporter_email: the citizen's email for the callback, kept like the phone

Revision ID: 0012_matter_reporter_email
Revises: 0011_grid_team_members
Create Date: 2026-11-27 12:00:00

Open311 clients send the reporter's email. It was dropped; a citizen who gave only
an email could then not be reached for the satisfaction callback. It is personal
data, shown only where the phone is (the handling units and the district center).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0012_matter_reporter_email'
down_revision = '0011_grid_team_members'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column (empty for existing matters)."""
    op.add_column('matters', sa.Column('reporter_email', sa.String(254), server_default='',
                                       nullable=False))


def downgrade() -> None:
    """Drop the column."""
    op.drop_column('matters', 'reporter_email')
