"""The grid model on the real PostGIS: counts, coverage, hierarchy and spatial queries."""

from __future__ import annotations

import pytest
from shapely import wkb
from sqlalchemy import text

from geodata.boundary import district_boundary
from gridmap import queries
from gridmap.errors import InvalidInput, NotFound


def test_demo_totals(session):
    totals = queries.district_summary(session)
    assert totals["grids"] == 930
    assert totals["houses"] == 250_000
    assert totals["residents"] == 540_000
    assert totals["key_persons"] == 30_000
    assert totals["key_places"] == 3_300
    assert totals["components"] == 30_000


def test_ten_towns_with_prefix_consistent_codes(session):
    towns = session.execute(text("SELECT code, name FROM towns ORDER BY code")).all()
    assert len(towns) == 10
    assert {n for _, n in towns} >= {"鼓楼街道", "小孟镇"}
    bad = session.execute(
        text(
            """
            SELECT count(*) FROM grids g JOIN communities c ON c.id = g.community_id
            JOIN towns t ON t.id = c.town_id
            WHERE left(g.code, 12) <> c.code OR left(c.code, 9) <> t.code
               OR left(t.code, 6) <> '370812'
            """
        )
    ).scalar()
    assert bad == 0


def test_geometry_columns_have_srid_4326_and_gist_indexes(session):
    rows = session.execute(
        text("SELECT f_table_name, srid FROM geometry_columns WHERE f_table_schema = 'public'")
    ).all()
    assert rows and all(srid == 4326 for _, srid in rows)
    for table, _ in rows:
        gist = session.execute(
            text(
                "SELECT count(*) FROM pg_indexes WHERE tablename = :t AND indexdef ILIKE '%gist%'"
            ),
            {"t": table},
        ).scalar()
        assert gist >= 1, table


def test_grids_cover_the_district_without_overlaps(session):
    union_wkb, overlap_area = session.execute(
        text(
            """
            SELECT ST_AsBinary(ST_Union(geom)),
                   (SELECT COALESCE(sum(ST_Area(ST_Intersection(a.geom, b.geom))), 0)
                    FROM grids a JOIN grids b ON a.id < b.id AND a.geom && b.geom
                    AND ST_Relate(a.geom, b.geom, '2********'))
            FROM grids
            """
        )
    ).one()
    union = wkb.loads(bytes(union_wkb))
    district = district_boundary()
    assert union.symmetric_difference(district).area < 1e-6 * district.area
    assert overlap_area < 1e-9


def test_point_lookup_finds_the_containing_grid(session):
    code, lon, lat = session.execute(
        text(
            "SELECT code, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            "FROM grids ORDER BY code OFFSET 100 LIMIT 1"
        )
    ).one()
    found = queries.grid_at_point(session, lon, lat)
    assert found["code"] == code
    assert found["town_code"] == code[:9] and found["community_code"] == code[:12]


def test_point_outside_district_is_rejected(session):
    with pytest.raises(InvalidInput):
        queries.grid_at_point(session, 121.47, 31.23)  # Shanghai


def test_bbox_and_prefix(session):
    everything = queries.grids_in_bbox(session, 116.5, 35.3, 117.0, 35.8)
    assert len(everything) == 930
    town = everything[0]["code"][:9]
    in_town = queries.grids_in_bbox(session, 116.5, 35.3, 117.0, 35.8, prefix=town)
    assert 0 < len(in_town) < 930 and all(g["code"].startswith(town) for g in in_town)
    with pytest.raises(InvalidInput):
        queries.grids_in_bbox(session, 117.0, 35.3, 116.5, 35.8)


def test_grid_by_code_has_team_and_counts(session):
    code = session.execute(text("SELECT code FROM grids ORDER BY code LIMIT 1")).scalar()
    grid = queries.grid_by_code(session, code)
    roles = [w["role"] for w in grid["workers"]]
    assert roles.count("leader") == 1 and roles.count("full_time") == 1
    assert sum(grid["key_person_categories"].values()) == grid["key_persons"]
    houses = session.execute(
        text("SELECT count(*) FROM houses h JOIN grids g ON g.id = h.grid_id WHERE g.code = :c"),
        {"c": code},
    ).scalar()
    assert grid["houses"] == houses
    with pytest.raises(NotFound):
        queries.grid_by_code(session, "370812999999999")
    with pytest.raises(InvalidInput):
        queries.grid_by_code(session, "37081")


def test_hierarchy(session):
    code = session.execute(text("SELECT code FROM grids ORDER BY code DESC LIMIT 1")).scalar()
    chain = queries.hierarchy(session, code)
    assert [c["level"] for c in chain] == ["district", "town", "community", "grid"]
    assert [len(c["code"]) for c in chain] == [6, 9, 12, 15]
    with pytest.raises(NotFound):
        queries.hierarchy(session, "370812999")


def test_changes_are_rolled_back_between_tests(session):
    session.execute(text("DELETE FROM grid_workers"))
    assert session.execute(text("SELECT count(*) FROM grid_workers")).scalar() == 0


def test_previous_delete_did_not_persist(session):
    assert session.execute(text("SELECT count(*) FROM grid_workers")).scalar() > 930
