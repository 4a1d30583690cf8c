"""The nearby answer's field plans: which columns the query reads and how rows become items."""

from __future__ import annotations

import pytest

from gridmap.errors import InvalidInput
from video import registry


@pytest.mark.parametrize("fields", [registry.NEARBY_SUMMARY, registry.NEARBY_FIELDS, ("gb_id",),
                                    ("tags", "bearing", "tags"), ("distance_m",)])
def test_an_item_carries_exactly_the_asked_fields_from_their_own_columns(fields):
    plan = registry.nearby_plan(fields)
    # A row whose every value names its column: a value under the wrong key shows.
    row = tuple(f"<{name}>" for name in plan.row)
    item = plan.item(row, 12.5, 271.0)
    assert list(item) == sorted(set(fields))
    for key, value in item.items():
        expected = {"distance_m": 12.5, "bearing": 271.0}.get(key, f"<{key}>")
        assert value == expected
    # The ranking's columns are read whatever the item shows.
    assert {"lat", "lon", "sees_point"} <= set(plan.row) and plan.row[-1] == "sphere_m"
    assert (plan.row[plan.lat], plan.row[plan.lon], plan.row[plan.sees],
            plan.row[plan.sphere]) == ("lat", "lon", "sees_point", "sphere_m")


def test_the_summary_is_the_default_and_a_subset_of_the_fields():
    assert set(registry.NEARBY_SUMMARY) < set(registry.NEARBY_FIELDS)
    assert registry.nearby_plan() == registry.nearby_plan(registry.NEARBY_SUMMARY)
    assert "main_url" not in registry.nearby_plan().columns


@pytest.mark.parametrize("fields", [(), ("gb_id", "password"), ("sphere_m",), ("c.geom",)])
def test_unknown_or_no_fields_are_refused(fields):
    with pytest.raises(InvalidInput, match="fields must name some of"):
        registry.nearby_plan(fields)
