"""cameras.snapshot_at: when the camera's latest stored picture was taken

Revision ID: 0015_camera_snapshot_at
Revises: 0014_sign_in_sessions
Create Date: 2026-11-28 00:00:00

``last_sample_at`` is the last attempt to sample a camera, failed or not. Pages
labelled the latest picture with it, so an offline camera's days-old picture
read as taken minutes ago, and a camera that never delivered a picture was asked
for one. The sampler now stamps ``snapshot_at`` whenever it stores a picture.

Existing rows take the time of their latest sample that decoded a frame (every
such sample stored a picture); cameras whose sample history was already pruned
get theirs at their next good sample.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0015_camera_snapshot_at'
down_revision = '0014_sign_in_sessions'
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column and fill it from the sample history."""
    op.add_column('cameras', sa.Column('snapshot_at', sa.DateTime(timezone=True), nullable=True))
    op.execute("""
        UPDATE cameras c SET snapshot_at = s.taken
        FROM (SELECT camera_id, max(sampled_at) AS taken FROM camera_samples
              WHERE width IS NOT NULL GROUP BY camera_id) s
        WHERE s.camera_id = c.id
    """)


def downgrade() -> None:
    """Drop the column."""
    op.drop_column('cameras', 'snapshot_at')
