"""cameras.has_credentials: a flag kept by a trigger on camera_credentials

Revision ID: 0010_camera_has_credentials
Revises: 0009_crowd_state_warmup
Create Date: 2026-11-27 08:40:00

Every public camera read says whether the camera has stored credentials. Asking
camera_credentials once per row cost the nearby query a tenth of its time (an
index probe for each of its candidates). The flag lives on the row instead; the
trigger keeps it in step with every insert, delete, move and truncate of
credentials, whoever writes them. It says only *whether* there are credentials.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010_camera_has_credentials'
down_revision = '0009_crowd_state_warmup'
branch_labels = None
depends_on = None

FLAG_FUNCTION = """
CREATE OR REPLACE FUNCTION gridmap_camera_credentials_flag() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        UPDATE cameras SET has_credentials = FALSE WHERE has_credentials;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE cameras SET has_credentials = FALSE
         WHERE id = OLD.camera_id AND has_credentials;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE cameras SET has_credentials = TRUE
         WHERE id = NEW.camera_id AND NOT has_credentials;
    END IF;
    RETURN NULL;
END $$;
"""


def upgrade() -> None:
    """Add the flag, fill it from camera_credentials and keep it there by trigger."""
    op.add_column('cameras', sa.Column('has_credentials', sa.Boolean(),
                                       server_default=sa.false(), nullable=False))
    op.execute("UPDATE cameras c SET has_credentials = TRUE "
               "WHERE EXISTS (SELECT 1 FROM camera_credentials k WHERE k.camera_id = c.id)")
    op.execute(FLAG_FUNCTION)
    op.execute(
        "CREATE TRIGGER camera_credentials_flag AFTER INSERT OR DELETE OR UPDATE OF camera_id "
        "ON camera_credentials FOR EACH ROW EXECUTE FUNCTION gridmap_camera_credentials_flag()"
    )
    op.execute(
        "CREATE TRIGGER camera_credentials_flag_truncate AFTER TRUNCATE ON camera_credentials "
        "FOR EACH STATEMENT EXECUTE FUNCTION gridmap_camera_credentials_flag()"
    )


def downgrade() -> None:
    """Drop the flag and its triggers."""
    op.execute("DROP TRIGGER IF EXISTS camera_credentials_flag_truncate ON camera_credentials")
    op.execute("DROP TRIGGER IF EXISTS camera_credentials_flag ON camera_credentials")
    op.execute("DROP FUNCTION IF EXISTS gridmap_camera_credentials_flag()")
    op.drop_column('cameras', 'has_credentials')
