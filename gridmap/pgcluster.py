"""The embedded PostGIS cluster: a private PostgreSQL under ``var/`` built from the
system's binaries, used whenever ``DATABASE_URL`` is not set.

``initdb`` refuses to run as root, so as root the cluster runs as the ``postgres``
system user. A fresh clone may sit in a directory that user cannot enter (for
example under ``/root``); then the data lives in ``/var/lib/gridmap/<hash>`` and
``var/pg`` is a symlink to it, so the cluster is still found under ``var/``.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from gridmap.config import pg_port, var_dir
from gridmap.errors import DatabaseUnavailable

DB_USER = "gridmap"
SERVICE_USER = "postgres"
SHARED_STATE_ROOT = Path("/var/lib/gridmap")


@dataclass(frozen=True)
class Cluster:
    """Where one embedded cluster lives and how to reach it."""

    root: Path  # var/pg (possibly a symlink)
    port: int

    @property
    def real_root(self) -> Path:
        """Return the root with symlinks resolved: the path the service user can reach."""
        return self.root.resolve()

    @property
    def data_dir(self) -> Path:
        """Return the PostgreSQL data directory."""
        return self.real_root / "data"

    @property
    def socket_dir(self) -> Path:
        """Return the directory of the unix socket."""
        return self.real_root / "run"

    @property
    def log_file(self) -> Path:
        """Return the server log file."""
        return self.real_root / "postgresql.log"

    @property
    def password_file(self) -> Path:
        """Return the file holding the generated password of the DB user."""
        # Kept beside var/pg rather than inside it: it is ours, not postgres's.
        return var_dir() / "pg-password"

    def url(self, database: str = "gridmap") -> str:
        """Return the libpq URL (loopback TCP, with the generated password)."""
        password = quote(self.password_file.read_text().strip(), safe="")
        return f"postgresql://{DB_USER}:{password}@127.0.0.1:{self.port}/{database}"


def pg_bindir() -> Path:
    """Return the newest installed PostgreSQL bin directory that has PostGIS."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for bindir in candidates:
        version = bindir.parent.name
        if Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            return bindir
    raise DatabaseUnavailable(
        "no PostgreSQL with PostGIS found; install postgresql-15-postgis-3 (./scripts/run does)"
    )


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_service_user(cmd: list[str]) -> list[str]:
    """Prefix a command so that it runs as the cluster owner."""
    if _running_as_root():
        return ["runuser", "-u", SERVICE_USER, "--", *cmd]
    return cmd


def _service_user_can_use(path: Path) -> bool:
    """Return whether the service user can create files in ``path``."""
    if not _running_as_root():
        return True
    probe = subprocess.run(
        ["runuser", "-u", SERVICE_USER, "--", "test", "-w", str(path), "-a", "-x", str(path)],
        check=False,
        cwd="/",
    )
    return probe.returncode == 0


def _prepare_root(link: Path) -> Path:
    """Create the cluster root, relocating it if the service user cannot reach var/."""
    if link.is_symlink() or link.exists():
        return link
    if not _running_as_root():
        link.mkdir(parents=True)
        return link
    pw = pwd.getpwnam(SERVICE_USER)
    link.mkdir(parents=True)
    os.chown(link, pw.pw_uid, pw.pw_gid)
    if _service_user_can_use(link):
        return link
    link.rmdir()
    digest = hashlib.sha1(str(link.resolve()).encode()).hexdigest()[:12]
    target = SHARED_STATE_ROOT / digest
    target.mkdir(parents=True, exist_ok=True)
    SHARED_STATE_ROOT.chmod(0o755)
    os.chown(target, pw.pw_uid, pw.pw_gid)
    target.chmod(0o700)
    link.symlink_to(target)
    return link


def cluster() -> Cluster:
    """Return the embedded cluster description (nothing is created)."""
    return Cluster(root=var_dir() / "pg", port=pg_port())


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    # cwd "/": the service user may not be allowed into the caller's directory.
    result = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/", **kwargs)
    if result.returncode != 0:
        raise DatabaseUnavailable(
            f"{Path(cmd[0] if cmd[0] != 'runuser' else cmd[4]).name} failed: "
            f"{(result.stderr or result.stdout).strip()[-800:]}"
        )
    return result


def init(c: Cluster) -> bool:
    """Create the cluster if it does not exist; return whether it was created."""
    root = _prepare_root(c.root)
    if (c.data_dir / "PG_VERSION").exists():
        return False
    bindir = pg_bindir()
    if not c.password_file.exists():
        c.password_file.write_text(secrets.token_urlsafe(24))
        c.password_file.chmod(0o600)
    # initdb reads the password from a file the service user can read; remove it after.
    pwfile = root.resolve() / "initpw"
    pwfile.write_text(c.password_file.read_text())
    if _running_as_root():
        pw = pwd.getpwnam(SERVICE_USER)
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    pwfile.chmod(0o600)
    try:
        _run(
            _as_service_user(
                [
                    str(bindir / "initdb"),
                    "-D", str(c.data_dir),
                    "-U", DB_USER,
                    "-E", "UTF8",
                    "--locale=C.UTF-8",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}",
                ]
            )
        )
    finally:
        pwfile.unlink(missing_ok=True)
    return True


def is_running(c: Cluster) -> bool:
    """Return whether the cluster's postmaster is up."""
    if not (c.data_dir / "PG_VERSION").exists():
        return False
    result = subprocess.run(
        _as_service_user([str(pg_bindir() / "pg_ctl"), "status", "-D", str(c.data_dir)]),
        capture_output=True,
        check=False,
        cwd="/",
    )
    return result.returncode == 0


def start(c: Cluster, timeout_s: int = 60) -> None:
    """Initialise (if needed) and start the cluster, then wait until it accepts SQL."""
    init(c)
    if is_running(c):
        return
    _prepare_socket_dir(c)
    options = (
        f"-p {c.port} -k {c.socket_dir} -c listen_addresses=127.0.0.1 "
        "-c shared_buffers=256MB -c max_connections=200 -c fsync=on"
    )
    _run(
        _as_service_user(
            [
                str(pg_bindir() / "pg_ctl"),
                "start",
                "-w",
                "-t", str(timeout_s),
                "-D", str(c.data_dir),
                "-l", str(c.log_file),
                "-o", options,
            ]
        )
    )
    _wait_for_sql(c, timeout_s)


def _prepare_socket_dir(c: Cluster) -> None:
    c.socket_dir.mkdir(exist_ok=True)
    if _running_as_root():
        pw = pwd.getpwnam(SERVICE_USER)
        os.chown(c.socket_dir, pw.pw_uid, pw.pw_gid)


def _wait_for_sql(c: Cluster, timeout_s: int) -> None:
    import psycopg

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with psycopg.connect(c.url("postgres"), connect_timeout=3):
                return
        except psycopg.OperationalError as exc:
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(f"cluster did not accept connections: {exc}") from exc
            time.sleep(0.2)


def stop(c: Cluster) -> bool:
    """Stop the cluster (fast shutdown); return whether it was running."""
    if not is_running(c):
        return False
    _run(
        _as_service_user(
            [str(pg_bindir() / "pg_ctl"), "stop", "-w", "-m", "fast", "-D", str(c.data_dir)]
        )
    )
    return True


def ensure_database(url_admin: str, name: str) -> bool:
    """Create database ``name`` with PostGIS if missing; return whether it was created."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(url_admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    target = url_admin.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    return not exists


def destroy(c: Cluster) -> None:
    """Stop and delete the cluster's files (used by tests of this module only)."""
    stop(c)
    target = c.root.resolve()
    shutil.rmtree(target, ignore_errors=True)
    if c.root.is_symlink():
        c.root.unlink()
