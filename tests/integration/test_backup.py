"""Backups on the real server: a dump restores into an empty database with the same rows,
stays private, never overwrites, never lands over live data, and a damaged file leaves
the target empty. No password in what the commands print."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from urllib.parse import unquote

import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from gridmap import backup, db
from gridmap.backup import BackupFailed
from gridmap.cli import db_group
from gridmap.errors import Conflict, InvalidInput
from tests.conftest import TEST_DATABASE

SCRATCH = "gridmap_restore_check"


def _drop(name: str) -> None:
    with psycopg.connect(db.database_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def scratch(demo_loaded):
    """Yield the name of a database that does not exist yet; drop it afterwards."""
    _drop(SCRATCH)
    yield SCRATCH
    _drop(SCRATCH)


@pytest.fixture(scope="module")
def dump(tmp_path_factory, demo_loaded, demo_accounts) -> os.PathLike:
    """Back up the test database once through the CLI; return the file."""
    path = tmp_path_factory.mktemp("backup") / "gridmap.dump"
    result = CliRunner().invoke(db_group, ["backup", "--database", TEST_DATABASE,
                                           "--output", str(path)])
    assert result.exit_code == 0, result.output
    password = psycopg.conninfo.conninfo_to_dict(db.database_url(TEST_DATABASE)).get("password")
    assert password and password not in result.output and unquote(password) not in result.output
    return path


def counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in backup.CHECKED_TABLES}


def test_a_backup_is_private_and_restores_the_same_rows(dump, scratch):
    mode = stat.S_IMODE(os.stat(dump).st_mode)
    assert mode == 0o600
    with open(dump, "rb") as f:
        assert f.read(5) == backup.DUMP_MAGIC
    result = CliRunner().invoke(db_group, ["restore", str(dump), "--database", scratch])
    assert result.exit_code == 0, result.output
    restored = counts(db.database_url(scratch))
    assert restored == counts(db.database_url(TEST_DATABASE))
    assert restored["grids"] == 930 and restored["camera_credentials"] > 0
    with psycopg.connect(db.database_url(scratch)) as conn:
        assert conn.execute("SELECT postgis_version()").fetchone()[0]
        assert conn.execute("SELECT version_num FROM alembic_version").fetchone()[0]


def test_a_backup_never_overwrites_one(dump):
    before = os.stat(dump).st_size
    with pytest.raises(Conflict, match="never overwrite"):
        backup.backup(db.database_url(TEST_DATABASE), dump)
    assert os.stat(dump).st_size == before


def test_nothing_is_restored_over_live_data(dump):
    before = counts(db.database_url(TEST_DATABASE))
    with pytest.raises(Conflict, match="not empty"):
        backup.restore(db.database_url(TEST_DATABASE), dump)
    assert counts(db.database_url(TEST_DATABASE)) == before


def test_a_damaged_backup_leaves_the_target_empty(dump, scratch, tmp_path):
    from gridmap import pgcluster

    pgcluster.ensure_database(db.database_url("postgres"), scratch)
    damaged = tmp_path / "damaged.dump"
    damaged.write_bytes(Path(dump).read_bytes()[: 2 * 1024 * 1024])
    with pytest.raises(BackupFailed):
        backup.restore(db.database_url(scratch), damaged)
    with psycopg.connect(db.database_url(scratch)) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
                            "AND tablename <> 'spatial_ref_sys'").fetchone()[0] == 0
    other = tmp_path / "notes.txt"
    other.write_text("not a backup")
    with pytest.raises(InvalidInput, match="not a backup"):
        backup.restore(db.database_url(scratch), other)
    with pytest.raises(InvalidInput, match="cannot read"):
        backup.restore(db.database_url(scratch), tmp_path / "missing.dump")
