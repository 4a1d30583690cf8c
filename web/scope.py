"""The caller's jurisdiction: the one place that scopes queries.

The sign-in guard (``web.auth``) puts the caller's :class:`video.registry.Scope`
on ``g`` and binds it for the registry. Area data (grids, towns, communities,
coverage) is narrowed by the scope's code prefix (``current_prefix``); cameras by
the whole scope, which also covers a department's own cameras and the cameras
dispatched to the caller's unit (``camera_filters``).
"""

from __future__ import annotations

from flask import request

from video.registry import NO_AREA, Filters, Scope
from web.auth import current_scope
from web.params import list_arg


def current_prefix() -> str:
    """Return the caller's area prefix ('' is the whole district; NO_AREA is no area)."""
    return current_scope().prefix


def area_prefix(requested: str = "") -> str:
    """Return the narrower of a requested area prefix and the caller's (NO_AREA if disjoint)."""
    own = current_prefix()
    if own == NO_AREA:
        return NO_AREA
    if requested.startswith(own):
        return requested
    if own.startswith(requested):
        return own
    return NO_AREA


def camera_filters() -> Filters:
    """Return the request's camera filters, always narrowed to the caller's scope."""
    area = (request.args.get("area") or "").strip()
    if area:
        from gridmap.queries import check_code

        check_code(area)  # a town, community or grid code; else 400
    return Filters(
        sources=list_arg("source"),
        statuses=list_arg("status"),
        tags=list_arg("tag"),
        prefix=area,
        scope=current_scope(),
    )


__all__ = ["NO_AREA", "Scope", "area_prefix", "camera_filters", "current_prefix",
           "current_scope"]
