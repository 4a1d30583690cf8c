"""Matters (事项): intake, smart routing, the five steps, deadlines, supervision, rating.

Visibility is one rule (``scope_clause``), used by every matter query: the district
center sees every matter; a town or community sees the matters located in its
area (grid code prefix) and those addressed to it; a department sees the matters
addressed to it, now or before. The reporter's contact is shown only to the
handling units (``may_see_contact``). Functions add and flush; the caller commits.
"""

from __future__ import annotations

from typing import Any

from gridmap.accounts import Actor

# Units a matter has been addressed to, now or before (transfers, escalations, reopenings).
_ADDRESSED_SQL = (
    "({a}.current_unit_id = :scope_unit OR {a}.handling_unit_id = :scope_unit"
    " OR EXISTS (SELECT 1 FROM matter_events se WHERE se.matter_id = {a}.id"
    " AND se.to_unit_id = :scope_unit))"
)


def scope_clause(actor: Actor, alias: str = "m") -> tuple[str, dict[str, Any]]:
    """Return the SQL condition and parameters limiting matters to the actor's jurisdiction."""
    if actor.unit_kind == "district":
        return "TRUE", {}
    addressed = _ADDRESSED_SQL.format(a=alias)
    params: dict[str, Any] = {"scope_unit": actor.unit_id}
    if actor.unit_kind == "department" or not actor.unit_code:
        return addressed, params
    params["scope_prefix"] = actor.unit_code + "%"
    return f"({alias}.grid_code LIKE :scope_prefix OR {addressed})", params
