"""Camera health read models: history, live status changes and online-rate roll-ups."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from gridmap.errors import InvalidInput, NotFound
from video.models import STATUSES
from video.registry import Filters, scope_for_prefix

ROLLUP_LEVELS = {"town": 9, "community": 12, "grid": 15, "source": None}


def camera_health(session: Session, gb_id: str, prefix: str = "", history: int = 50,
                  samples: int = 20) -> dict[str, Any]:
    """Return a camera's status, its status history and its latest samples."""
    visible, params = scope_for_prefix(prefix).sql()
    cam = session.execute(
        text(
            "SELECT c.id, c.status, c.status_since, c.last_sample_at, c.snapshot_at, c.next_due_at "
            f"FROM cameras c WHERE c.gb_id = :g {visible}"
        ),
        {**params, "g": gb_id},
    ).mappings().first()
    if cam is None:
        raise NotFound("no such camera", gb_id=gb_id)
    changes = session.execute(
        text(
            "SELECT status, error, changed_at FROM camera_status_changes WHERE camera_id = :id "
            "ORDER BY changed_at DESC LIMIT :n"
        ),
        {"id": cam["id"], "n": history},
    ).mappings()
    recent = session.execute(
        text(
            "SELECT sampled_at, health, error, open_ms, first_frame_ms, width, height, "
            "round(brightness::numeric, 1) AS brightness, sampler FROM camera_samples "
            "WHERE camera_id = :id ORDER BY sampled_at DESC LIMIT :n"
        ),
        {"id": cam["id"], "n": samples},
    ).mappings()
    return {
        "gb_id": gb_id,
        "status": cam["status"],
        "status_since": cam["status_since"],
        "last_sample_at": cam["last_sample_at"],
        "snapshot_at": cam["snapshot_at"],
        "next_due_at": cam["next_due_at"],
        "history": [dict(r) for r in changes],
        "samples": [dict(r) for r in recent],
    }


def status_changes(session: Session, since: datetime | None, filters: Filters) -> dict[str, Any]:
    """Return cameras whose status changed after ``since`` (all cameras when None)."""
    where, params = filters.sql()
    server_time = session.execute(text("SELECT now()")).scalar_one()
    cond = "" if since is None else " AND c.status_since > :since"
    rows = session.execute(
        text(
            "SELECT c.gb_id, array_position(CAST(:statuses AS text[]), c.status::text) - 1 "
            f"FROM cameras c WHERE TRUE {cond} {where} ORDER BY c.id"
        ),
        {**params, "since": since, "statuses": list(STATUSES)},
    ).all()
    return {
        "server_time": server_time.isoformat(),
        "statuses": list(STATUSES),
        "rows": [[g, int(s)] for g, s in rows],
    }


def rollup(session: Session, level: str, filters: Filters) -> list[dict[str, Any]]:
    """Return camera counts by status and the online rate per town/community/grid/source."""
    if level not in ROLLUP_LEVELS:
        raise InvalidInput("level must be town, community, grid or source", level=level)
    width = ROLLUP_LEVELS[level]
    key = "c.source" if width is None else f"left(c.grid_code, {width})"
    where, params = filters.sql()
    rows = session.execute(
        text(
            f"""
            SELECT {key} AS key, count(*) AS cameras,
                   count(*) FILTER (WHERE c.status = 'online') AS online,
                   count(*) FILTER (WHERE c.status = 'offline') AS offline,
                   count(*) FILTER (WHERE c.status = 'no_signal') AS no_signal,
                   count(*) FILTER (WHERE c.status = 'frozen') AS frozen,
                   count(*) FILTER (WHERE c.status = 'degraded') AS degraded,
                   count(*) FILTER (WHERE c.status = 'unknown') AS unknown
            FROM cameras c WHERE c.grid_code IS NOT NULL {where}
            GROUP BY 1 ORDER BY 1
            """
        ),
        params,
    ).mappings()
    out = []
    for r in rows:
        item = dict(r)
        sampled = item["cameras"] - item["unknown"]
        item["online_rate"] = round(item["online"] / sampled, 4) if sampled else None
        out.append(item)
    return out
