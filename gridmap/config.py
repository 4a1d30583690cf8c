"""Settings: defaults in code, overridden by ``GRIDMAP_*`` environment variables."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "GRIDMAP_"


def env(name: str, default: str | None = None) -> str | None:
    """Return the ``GRIDMAP_<name>`` environment variable, or ``default``."""
    return os.environ.get(ENV_PREFIX + name, default)


def var_dir() -> Path:
    """Return the directory for runtime state (cluster, snapshots, logs)."""
    path = Path(env("VAR_DIR") or REPO_ROOT / "var")
    path.mkdir(parents=True, exist_ok=True)
    return path


def pg_port() -> int:
    """Return the loopback port of the embedded PostgreSQL cluster."""
    return int(env("PG_PORT", "55432"))
