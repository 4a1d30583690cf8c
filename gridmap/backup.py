"""Back up a gridmap database to one file, and restore it into an empty database.

Backups are PostgreSQL's own custom-format dumps (``pg_dump -Fc``): compressed,
restorable table by table with the standard tools, and independent of this app's
version. They hold everything in the database, the cameras' stream credentials
included (encrypted with the credential key, which lives outside the database and
is not in the backup), so the file is created readable by its owner only. The password reaches ``pg_dump`` and
``pg_restore`` through their environment, never their command line (which any
local user can read with ``ps``) or the log.

A restore goes into a new or empty database in one transaction: it either
completes or leaves the database empty. Nothing is ever restored over live data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from psycopg import conninfo

from gridmap.errors import Conflict, DatabaseUnavailable, InvalidInput

DUMP_MAGIC = b"PGDMP"
# Tables whose row counts a restore reports (and the tests compare).
CHECKED_TABLES = ("grids", "grid_workers", "houses", "cameras", "camera_credentials", "matters",
                  "users", "audit_log")


class BackupFailed(InvalidInput):
    """pg_dump or pg_restore refused; the reason is their own message, without secrets."""


@dataclass(frozen=True)
class Backup:
    """A written backup: where, how big, and which database it came from."""

    path: Path
    size: int
    database: str


def _tool(name: str) -> str:
    """Return the newest pg_dump/pg_restore: newer ones read older servers, not the reverse."""
    from gridmap.pgcluster import pg_bindir

    try:
        candidate = pg_bindir() / name
        if candidate.exists():
            return str(candidate)
    except DatabaseUnavailable:  # no local PostgreSQL with PostGIS: the client tools on PATH
        pass
    found = shutil.which(name)
    if found is None:
        raise BackupFailed(f"{name} is not installed (package postgresql-client)")
    return found


def _split(url: str) -> tuple[str, dict[str, str]]:
    """Return a conninfo without the password, and the environment that carries it."""
    params = conninfo.conninfo_to_dict(url)
    password = params.pop("password", None)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGPASSWORD", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return conninfo.make_conninfo(**params), env


def _run(cmd: list[str], env: dict[str, str], secret: str | None) -> None:
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        message = (done.stderr or done.stdout or "").strip().splitlines()
        reason = message[-1] if message else f"exit status {done.returncode}"
        if secret:
            reason = reason.replace(secret, "***")
        raise BackupFailed(f"{Path(cmd[0]).name}: {reason}")


def backup(url: str, path: Path) -> Backup:
    """Write a custom-format dump of the database at ``url`` to ``path`` (mode 0600)."""
    path = Path(path)
    if path.exists():
        raise Conflict(f"{path} exists; backups never overwrite one another", path=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    target, env = _split(url)
    # Create it private first: pg_dump would create it with the umask's mode.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        _run([_tool("pg_dump"), "--format=custom", "--no-password", f"--file={path}",
              f"--dbname={target}"], env, env.get("PGPASSWORD"))
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return Backup(path=path, size=path.stat().st_size,
                  database=conninfo.conninfo_to_dict(url).get("dbname", ""))


def restore(url: str, path: Path) -> dict[str, int]:
    """Restore a backup into the empty database at ``url``; return its row counts.

    Refuses a database that already has gridmap tables, and a file that is not a
    custom-format dump. One transaction: on any error the database stays empty.
    """
    import psycopg

    path = Path(path)
    try:
        with path.open("rb") as f:
            head = f.read(len(DUMP_MAGIC))
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}") from None
    if head != DUMP_MAGIC:
        raise InvalidInput(f"{path} is not a backup made by `gridmap db backup` (pg_dump -Fc)")
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'spatial_ref_sys'").fetchone()[0]
    if tables:
        raise Conflict("the target database is not empty; restore into a new database and "
                       "point GRIDMAP_DATABASE or DATABASE_URL at it", tables=tables)
    target, env = _split(url)
    _run([_tool("pg_restore"), "--no-password", "--no-owner", "--no-privileges",
          "--exit-on-error", "--single-transaction", f"--dbname={target}", str(path)],
         env, env.get("PGPASSWORD"))
    with psycopg.connect(url) as conn:
        return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in CHECKED_TABLES}
