"""crowd state: room for the warm-up samples (1 MiB instead of 256 KiB)

Revision ID: 0009_crowd_state_warmup
Revises: 0008_matters
Create Date: 2026-11-27 03:30:00

A camera's crowd state now keeps its first few samples (what most of them agree
on is the starting background), ~0.1 MB each, until it is warm; then only the
~40 KB background remains. States of the old format still load.
"""

from __future__ import annotations

from alembic import op

revision = '0009_crowd_state_warmup'
down_revision = '0008_matters'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint(op.f('ck_crowd_cameras_state_small'), 'crowd_cameras', type_='check')
    op.create_check_constraint(op.f('ck_crowd_cameras_state_small'), 'crowd_cameras',
                               'octet_length(state) <= 1048576')


def downgrade() -> None:
    # Warm-up states may not fit the old limit: they are dropped (the camera
    # simply learns its background again).
    op.execute("UPDATE crowd_cameras SET state = NULL WHERE octet_length(state) > 262144")
    op.drop_constraint(op.f('ck_crowd_cameras_state_small'), 'crowd_cameras', type_='check')
    op.create_check_constraint(op.f('ck_crowd_cameras_state_small'), 'crowd_cameras',
                               'octet_length(state) <= 262144')
