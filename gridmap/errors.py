"""Domain exceptions. ``web`` maps each family to one HTTP status in one place."""

from __future__ import annotations

from typing import Any


class GridmapError(Exception):
    """Base of every domain error; carries a human-readable reason and details."""

    def __init__(self, reason: str, **details: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details


class NotFound(GridmapError):
    """The object does not exist, or lies outside the caller's jurisdiction."""


class InvalidInput(GridmapError):
    """The request is well-formed but its values are unacceptable."""


class Conflict(GridmapError):
    """The request conflicts with the current state (stale version, duplicate key)."""


class PayloadTooLarge(GridmapError):
    """The upload or payload exceeds a configured limit."""


class Forbidden(GridmapError):
    """The caller may not perform this action."""


class DatabaseUnavailable(GridmapError):
    """The database cannot be reached or started."""
