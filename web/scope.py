"""The caller's jurisdiction as a code prefix: the one place that scopes queries."""

from __future__ import annotations

from flask import g

from video.registry import Filters
from web.params import list_arg


def current_prefix() -> str:
    """Return the caller's jurisdiction prefix ('' is the whole district)."""
    return g.get("scope_prefix", "")


def camera_filters() -> Filters:
    """Return the request's camera filters, always narrowed to the caller's scope."""
    return Filters(
        sources=list_arg("source"),
        statuses=list_arg("status"),
        tags=list_arg("tag"),
        prefix=current_prefix(),
    )
