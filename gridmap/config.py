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


def deployment() -> str:
    """Return ``demo`` (the default) or ``production`` (``GRIDMAP_DEPLOYMENT``)."""
    return (env("DEPLOYMENT", "demo") or "demo").strip().lower()


def camera_networks() -> str | None:
    """Return ``GRIDMAP_CAMERA_NETWORKS``: the CIDRs camera streams may be opened in.

    Comma- or space-separated (``10.0.0.0/8, 192.168.0.0/16``); unset or empty:
    any address the deny rules of ``video.netpolicy`` leave (loopback, link-local,
    cloud metadata, multicast …). See ``video.netpolicy``.
    """
    return env("CAMERA_NETWORKS")


def allow_loopback_streams() -> str | None:
    """Return ``GRIDMAP_ALLOW_LOOPBACK_STREAMS`` as written (None when unset).

    ``1``/``true``: streams on this machine's loopback may be opened (but never
    the ports of its own database, app or metrics); ``demo``: only the demo stream
    servers' ports (``GRIDMAP_STREAMS_PORT`` … +4); ``0``/``false``: none. Unset:
    ``1`` when ``GRIDMAP_DEPLOYMENT`` is ``demo``, ``0`` otherwise.
    """
    return env("ALLOW_LOOPBACK_STREAMS")


def streams_port() -> int:
    """Return the first port of the local demo stream servers (``GRIDMAP_STREAMS_PORT``)."""
    return int(env("STREAMS_PORT", "8554"))


def app_port() -> int:
    """Return the port ``./scripts/run`` serves the app on (``GRIDMAP_PORT``)."""
    return int(env("PORT", "5000"))
