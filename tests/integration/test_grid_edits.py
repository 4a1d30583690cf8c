"""Grid editing on the real PostGIS: every API operation, history, export as of a date,
re-derivation, stale and concurrent edits, scope, and bad input (nothing changes)."""

from __future__ import annotations

import io
import json
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import geopandas as gpd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely import wkb
from shapely.geometry import LineString, mapping, shape
from sqlalchemy import text

from gridmap import editing, grid_edits
from gridmap.editing import GridEditConflict, as_multi
from tests.conftest import blocked_attempt

GRID = "370812001001002"  # 东永安社区第二网格: two same-community neighbours, others around
REASON = {"reason": "道路改线后调整边界"}


# --------------------------------------------------------------------------- helpers


def geom_of(conn, code: str):
    raw = conn.execute(text("SELECT ST_AsBinary(geom) FROM grids WHERE code = :c"), {"c": code}).scalar()
    return None if raw is None else wkb.loads(bytes(raw))


def version_of(conn, code: str) -> int | None:
    return conn.execute(text("SELECT version FROM grids WHERE code = :c"), {"c": code}).scalar()


def same_community_neighbour(session, code: str = GRID) -> str:
    adj = grid_edits.adjacent(session, code)
    return next(g["code"] for g in adj["grids"] if g["same_community"])


def grown(session, code: str, other: str, radius: float = 0.0005):
    """Return ``code``'s geometry plus the part of ``other`` within ``radius`` degrees."""
    g, n = geom_of(session, code), geom_of(session, other)
    return as_multi(shapely.union(g, shapely.intersection(n, g.buffer(radius))))


def totals(conn) -> dict[str, int]:
    row = conn.execute(
        text(
            """
            SELECT count(*) AS grids, sum(houses) AS houses, sum(residents) AS residents,
                   sum(key_persons) AS key_persons, sum(key_places) AS key_places,
                   sum(components) AS components,
                   (SELECT sum(count) FROM key_person_counts) AS kp_rows,
                   (SELECT count(*) FROM houses WHERE grid_id IS NULL) AS loose_houses,
                   (SELECT count(*) FROM cameras WHERE grid_id IS NULL) AS loose_cameras
            FROM grids
            """
        )
    ).mappings().one()
    return {k: int(v) for k, v in row.items()}


def cached_counts_are_true(conn) -> bool:
    """Return whether every grid's cached counts equal the counts of its rows."""
    return not conn.execute(
        text(
            """
            SELECT 1 FROM grids g WHERE
              g.houses <> (SELECT count(*) FROM houses h WHERE h.grid_id = g.id)
              OR g.residents <> (SELECT COALESCE(sum(residents), 0) FROM houses h WHERE h.grid_id = g.id)
              OR g.key_persons <> (SELECT COALESCE(sum(count), 0) FROM key_person_counts k WHERE k.grid_id = g.id)
              OR g.key_places <> (SELECT count(*) FROM key_places p WHERE p.grid_id = g.id)
              OR g.components <> (SELECT count(*) FROM city_components c WHERE c.grid_id = g.id)
            LIMIT 1
            """
        )
    ).first()


def points_agree_with_grids(conn) -> bool:
    """Return whether every house, place, component and camera lies in its grid."""
    for table in ("houses", "key_places", "city_components", "cameras"):
        bad = conn.execute(
            text(
                f"SELECT 1 FROM {table} p JOIN grids g ON g.id = p.grid_id "
                "WHERE NOT ST_Intersects(g.geom, p.geom) LIMIT 1"
            )
        ).first()
        if bad:
            return False
    return True


def fingerprint(conn) -> tuple:
    """Return a digest of everything an edit may change."""
    return conn.execute(
        text(
            """
            SELECT (SELECT md5(string_agg(code || ':' || version || ':' || md5(ST_AsBinary(geom)),
                                          ',' ORDER BY code)) FROM grids),
                   (SELECT count(*) FROM grid_versions), (SELECT count(*) FROM grid_edits),
                   (SELECT md5(string_agg(id || ':' || grid_id, ',' ORDER BY id)) FROM houses
                     WHERE grid_id IN (SELECT id FROM grids WHERE code LIKE '370812001001%')),
                   (SELECT md5(string_agg(grid_id || category || count, ',' ORDER BY grid_id, category))
                      FROM key_person_counts)
            """
        )
    ).one()


def coverage_is_valid(conn) -> bool:
    """Return whether the stored grids form a valid coverage of the district."""
    rows = conn.execute(text("SELECT code, ST_AsBinary(geom) FROM grids")).all()
    grids = {c: wkb.loads(bytes(g)) for c, g in rows}
    return editing.validate_coverage(grids, grid_edits.district(conn)).ok


def add_camera(conn, gb_id: str, lon: float, lat: float) -> None:
    conn.execute(
        text(
            "INSERT INTO cameras (gb_id, name, geom, source, department, main_url) "
            "VALUES (:g, 'test camera', ST_SetSRID(ST_MakePoint(:x, :y), 4326), 'other', 'test', "
            "'rtsp://127.0.0.1/test')"
        ),
        {"g": gb_id, "x": lon, "y": lat},
    )


def camera_grid(conn, gb_id: str) -> tuple[str | None, str | None]:
    return tuple(
        conn.execute(
            text(
                "SELECT g.code, c.grid_code FROM cameras c LEFT JOIN grids g ON g.id = c.grid_id "
                "WHERE c.gb_id = :g"
            ),
            {"g": gb_id},
        ).one()
    )


def put(client, code, geometry, version, **body):
    return client.put(
        f"/api/grids/{code}/geometry",
        json={"geometry": geometry, **REASON, **body},
        headers={"If-Match": f'"{version}"'},
    )


# --------------------------------------------------------------------------- redraw


def test_redraw_takes_area_from_neighbour_and_rederives_everything(client, session):
    other = same_community_neighbour(session)
    before = totals(session)
    new = grown(session, GRID, other)
    taken = shapely.difference(new, geom_of(session, GRID))
    # A camera and the houses inside the area that changes hands must change grid.
    spot = taken.representative_point()
    add_camera(session, "37081200001320000999", spot.x, spot.y)
    assert camera_grid(session, "37081200001320000999")[0] == other
    moving = session.execute(
        text(
            "SELECT count(*) FROM houses h JOIN grids g ON g.id = h.grid_id "
            "WHERE g.code = :o AND ST_Intersects(ST_GeomFromWKB(:a, 4326), h.geom)"
        ),
        {"o": other, "a": shapely.to_wkb(taken)},
    ).scalar()
    assert moving > 0
    houses_before = session.execute(text("SELECT houses FROM grids WHERE code = :c"), {"c": GRID}).scalar()

    r = put(client, GRID, mapping(new), 1)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert r.headers["ETag"] == '"2"'
    assert body["versions"][GRID] == 2 and body["versions"][other] == 2
    assert set(body["changed"]) == {GRID, other}
    assert geom_of(session, GRID).equals(new)
    assert camera_grid(session, "37081200001320000999") == (GRID, GRID)
    assert session.execute(text("SELECT houses FROM grids WHERE code = :c"), {"c": GRID}).scalar() == houses_before + moving
    assert totals(session) == {**before, "loose_cameras": before["loose_cameras"]}
    assert cached_counts_are_true(session)
    assert points_agree_with_grids(session)
    assert coverage_is_valid(session)
    dirty = session.execute(
        text("SELECT count(*) FROM coverage_dirty d JOIN grids g ON g.id = d.grid_id WHERE g.code IN (:a, :b)"),
        {"a": GRID, "b": other},
    ).scalar()
    assert dirty == 2


def test_version_also_accepted_in_the_body(client, session):
    other = same_community_neighbour(session)
    r = client.put(
        f"/api/grids/{GRID}/geometry",
        json={"geometry": mapping(grown(session, GRID, other)), "version": 1, **REASON},
    )
    assert r.status_code == 200
    r = client.put(
        f"/api/grids/{GRID}/geometry",
        json={"geometry": mapping(geom_of(session, GRID)), "version": 2, **REASON},
        headers={"If-Match": '"3"'},
    )
    assert r.status_code == 400 and "disagree" in r.get_json()["reason"]


def test_shrinking_without_neighbour_is_refused_with_the_freed_area(client, session):
    other = same_community_neighbour(session)
    g = geom_of(session, GRID)
    smaller = as_multi(shapely.difference(g, shapely.intersection(g, geom_of(session, other).buffer(0.0005))))
    before = fingerprint(session)
    r = put(client, GRID, mapping(smaller), 1)
    assert r.status_code == 400
    body = r.get_json()
    assert "neighbour" in body["reason"] and other in body["details"]["candidates"]
    assert shape(body["details"]["offending"]["features"][0]["geometry"]).area > 0
    assert fingerprint(session) == before
    r = put(client, GRID, mapping(smaller), 1, neighbour=other)
    assert r.status_code == 200, r.get_json()
    assert coverage_is_valid(session)


def test_stale_version_is_409_with_current_version_and_geometry(client, session):
    other = same_community_neighbour(session)
    assert put(client, GRID, mapping(grown(session, GRID, other)), 1).status_code == 200
    before = fingerprint(session)
    r = put(client, GRID, mapping(grown(session, GRID, other)), 1)
    assert r.status_code == 409
    details = r.get_json()["details"]
    assert details["current_version"] == 2 and details["expected_version"] == 1
    assert shape(details["geometry"]).equals(geom_of(session, GRID))
    assert fingerprint(session) == before


def test_editing_a_neighbour_bumps_its_version_so_a_stale_editor_of_it_gets_409(client, session):
    other = same_community_neighbour(session)
    assert put(client, GRID, mapping(grown(session, GRID, other)), 1).status_code == 200
    r = put(client, other, mapping(geom_of(session, other).buffer(0)), 1)
    assert r.status_code == 409


# --------------------------------------------------------------------------- split, merge, edge


def test_split_creates_next_code_keeps_other_codes_and_splits_key_persons(client, session):
    codes_before = set(session.execute(text("SELECT code FROM grids")).scalars())
    before = totals(session)
    kp_before = session.execute(
        text("SELECT key_persons FROM grids WHERE code = :c"), {"c": GRID}
    ).scalar()
    g = geom_of(session, GRID)
    x0, y0, x1, y1 = g.bounds
    line = LineString([(x0 - 0.001, (y0 + y1) / 2), (x1 + 0.001, (y0 + y1) / 2 + 0.0002)])
    r = client.post(f"/api/grids/{GRID}/split", json={"line": mapping(line), **REASON}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    (new,) = body["created"]
    assert new == GRID[:12] + "004"  # 东永安社区 had 001-003
    codes_after = set(session.execute(text("SELECT code FROM grids")).scalars())
    assert codes_after == codes_before | {new}
    name, kind = session.execute(text("SELECT name, kind FROM grids WHERE code = :c"), {"c": new}).one()
    assert name == "东永安社区第四网格" and kind == "urban"
    kp = dict(session.execute(text("SELECT code, key_persons FROM grids WHERE code IN (:a, :b)"), {"a": GRID, "b": new}).all())
    assert kp[GRID] + kp[new] == kp_before and kp[new] > 0
    assert totals(session)["grids"] == before["grids"] + 1
    assert {k: v for k, v in totals(session).items() if k != "grids"} == {k: v for k, v in before.items() if k != "grids"}
    assert cached_counts_are_true(session) and points_agree_with_grids(session)
    assert coverage_is_valid(session)
    versions = client.get(f"/api/grids/{new}/versions").get_json()["versions"]
    assert [v["version"] for v in versions] == [1] and versions[0]["attributes"]["split_from"] == GRID


def test_split_line_not_crossing_is_refused(client, session):
    c = geom_of(session, GRID).centroid
    before = fingerprint(session)
    r = client.post(
        f"/api/grids/{GRID}/split",
        json={"line": mapping(LineString([(c.x, c.y), (c.x + 0.0001, c.y)])), "version": 1, **REASON},
    )
    assert r.status_code == 400 and "cross" in r.get_json()["reason"]
    assert fingerprint(session) == before


def test_merge_retires_codes_moves_teams_and_sums_key_persons(client, session):
    other = same_community_neighbour(session)
    before = totals(session)
    kp = dict(session.execute(text("SELECT code, key_persons FROM grids WHERE code IN (:a, :b)"), {"a": GRID, "b": other}).all())
    workers = session.execute(
        text("SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id WHERE g.code IN (:a, :b)"),
        {"a": GRID, "b": other},
    ).scalar()
    r = client.post(
        "/api/grids/merge",
        json={"codes": [GRID, other], "versions": {GRID: 1, other: 1}, **REASON},
    )
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["retired"] == {other: GRID}
    assert session.execute(text("SELECT key_persons FROM grids WHERE code = :c"), {"c": GRID}).scalar() == kp[GRID] + kp[other]
    assert session.execute(
        text("SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id WHERE g.code = :a"), {"a": GRID}
    ).scalar() == workers
    after = totals(session)
    assert after["grids"] == before["grids"] - 1
    assert {k: v for k, v in after.items() if k != "grids"} == {k: v for k, v in before.items() if k != "grids"}
    assert client.get(f"/api/grids/{other}").status_code == 404
    history = client.get(f"/api/grids/{other}/versions").get_json()["versions"]
    assert history[-1]["retired"] and history[-1]["attributes"]["successor"] == GRID
    # An editor still holding the retired grid is told where it went.
    r = put(client, other, mapping(geom_of(session, GRID)), 1)
    assert r.status_code == 409 and r.get_json()["details"]["successor"] == GRID
    assert cached_counts_are_true(session) and coverage_is_valid(session)
    # A later split never reuses the retired code.
    g = geom_of(session, GRID)
    x0, y0, x1, y1 = g.bounds
    line = LineString([((x0 + x1) / 2, y0 - 0.001), ((x0 + x1) / 2 + 0.0001, y1 + 0.001)])
    created = grid_edits.split(session, GRID, mapping(line), version=2, ctx=grid_edits.EditContext("t", "r"))["created"]
    assert created and other not in created


def test_merge_of_non_adjacent_or_foreign_grids_is_refused(client, session):
    apart = session.execute(
        text(
            "SELECT a.code, b.code FROM grids a JOIN grids b ON a.community_id = b.community_id "
            "AND a.code < b.code WHERE NOT ST_Intersects(a.geom, b.geom) ORDER BY 1, 2 LIMIT 1"
        )
    ).one()
    foreign = session.execute(
        text(
            "SELECT a.code, b.code FROM grids a JOIN grids b ON a.community_id <> b.community_id "
            "AND ST_Length(ST_Intersection(ST_Boundary(a.geom), ST_Boundary(b.geom))) > 0 "
            "WHERE a.code = :c ORDER BY 2 LIMIT 1"
        ),
        {"c": GRID},
    ).one()
    before = fingerprint(session)
    for pair, words in ((apart, "not adjacent"), (foreign, "same community")):
        body = {"codes": list(pair), "versions": dict.fromkeys(pair, 1), **REASON}
        r = client.post("/api/grids/merge", json=body)
        assert r.status_code == 400 and words in r.get_json()["reason"]
    assert fingerprint(session) == before


def test_move_shared_edge(client, session):
    other = same_community_neighbour(session)
    shared = shapely.line_merge(shapely.intersection(geom_of(session, GRID).boundary, geom_of(session, other).boundary))
    mid = shared.interpolate(0.5, normalized=True)
    c = geom_of(session, GRID).centroid
    # Bend the edge 40% of the way towards GRID's centre: GRID shrinks.
    bend = (mid.x + 0.4 * (c.x - mid.x), mid.y + 0.4 * (c.y - mid.y))
    line = LineString([shared.coords[0], bend, shared.coords[-1]])
    area = geom_of(session, GRID).area
    r = client.post(
        "/api/grids/edge",
        json={"a": GRID, "b": other, "line": mapping(line), "versions": {GRID: 1, other: 1}, **REASON},
    )
    assert r.status_code == 200, r.get_json()
    assert geom_of(session, GRID).area < area
    assert cached_counts_are_true(session) and points_agree_with_grids(session)
    assert coverage_is_valid(session)


def test_reassign_gives_a_new_code_and_moves_community_boundaries(client, session):
    row = session.execute(
        text(
            """
            SELECT g.code, c2.code FROM grids g
            JOIN communities c ON c.id = g.community_id
            JOIN communities c2 ON c2.id <> c.id AND left(c2.code, 9) = left(c.code, 9)
             AND ST_Length(ST_Intersection(ST_Boundary(c2.geom), ST_Boundary(g.geom))) > 0
            WHERE (SELECT count(*) FROM grids x WHERE x.community_id = c.id) > 1
            ORDER BY g.code LIMIT 1
            """
        )
    ).one()
    code, community = row
    houses = session.execute(text("SELECT houses FROM grids WHERE code = :c"), {"c": code}).scalar()
    cams = session.execute(text("SELECT count(*) FROM cameras WHERE grid_code = :c"), {"c": code}).scalar()
    r = client.post(f"/api/grids/{code}/reassign", json={"community": community, **REASON}, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.get_json()
    new_code = r.get_json()["moved"][code]
    assert new_code.startswith(community) and len(new_code) == 15
    assert client.get(f"/api/grids/{code}").status_code == 404
    detail = client.get(f"/api/grids/{new_code}").get_json()
    assert detail["community_code"] == community and detail["houses"] == houses
    assert session.execute(text("SELECT count(*) FROM cameras WHERE grid_code = :c"), {"c": new_code}).scalar() == cams
    comm = dict(session.execute(text("SELECT code, ST_AsBinary(geom) FROM communities WHERE code IN (:a, :b)"), {"a": code[:12], "b": community}).all())
    moved = geom_of(session, new_code)
    assert wkb.loads(bytes(comm[community])).buffer(1e-9).contains(moved)
    assert editing.area_m2(shapely.intersection(wkb.loads(bytes(comm[code[:12]])), moved)) < 1
    assert client.get(f"/api/grids/{code}/versions").get_json()["versions"][-1]["attributes"]["successor"] == new_code
    # The communities' boundaries as of before the reassignment still come from history.
    earlier = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    for as_of, owner in ((earlier, code[:12]), (None, community)):
        query = "level=community" + (f"&as_of={quote(as_of)}" if as_of else "")
        r = client.get(f"/api/grids/export.geojson?{query}")
        assert r.status_code == 200 and 'communities-' in r.headers["Content-Disposition"]
        frame = gpd.read_file(io.BytesIO(r.data))
        shapes = dict(zip(frame["code"], frame.geometry, strict=True))
        assert editing.area_m2(shapely.difference(moved, shapes[owner])) < 1, (as_of, owner)
    assert client.get("/api/grids/export.geojson?level=town").status_code == 400


# --------------------------------------------------------------------------- upload


def _block_file(session, codes_versions, shift: float, fmt: str = "geojson") -> bytes:
    """Return a file re-partitioning GRID and its neighbour by moving the shared edge."""
    (a, va), (b, vb) = codes_versions
    ga, gb = geom_of(session, a), geom_of(session, b)
    strip = shapely.intersection(gb, ga.buffer(shift))
    new_a, new_b = shapely.union(ga, strip), shapely.difference(gb, strip)
    frame = gpd.GeoDataFrame(
        {"code": [a, b], "version": [va, vb]}, geometry=[new_a, new_b], crs="EPSG:4326"
    )
    from geodata.io import write_features

    return write_features(frame, fmt, layer="grids")


@pytest.mark.parametrize("fmt, name", [("geojson", "grids.geojson"), ("gpkg", "grids.gpkg")])
def test_upload_replaces_a_block_all_or_nothing(client, session, fmt, name):
    other = same_community_neighbour(session)
    before = totals(session)
    data = _block_file(session, [(GRID, 1), (other, 1)], 0.0004, fmt)
    r = client.post("/api/grids/upload", data={"file": (io.BytesIO(data), name), "reason": "QGIS redraw"})
    assert r.status_code == 200, r.get_json()
    assert set(r.get_json()["changed"]) == {GRID, other}
    assert r.get_json()["warnings"] == []  # a clean 2-D WGS-84 file
    assert totals(session) == before
    assert coverage_is_valid(session)


def test_upload_with_gap_or_stale_version_changes_nothing(client, session):
    other = same_community_neighbour(session)
    ga = geom_of(session, GRID)
    frame = gpd.GeoDataFrame(
        {"code": [GRID], "version": [1]}, geometry=[ga.buffer(-0.0003)], crs="EPSG:4326"
    )
    from geodata.io import write_features

    before = fingerprint(session)
    r = client.post(
        "/api/grids/upload",
        data={"file": (io.BytesIO(write_features(frame, "geojson")), "g.geojson"), "reason": "x"},
    )
    assert r.status_code == 400 and r.get_json()["details"]["offending"]["features"]
    stale = _block_file(session, [(GRID, 7), (other, 1)], 0.0004)
    r = client.post("/api/grids/upload", data={"file": (io.BytesIO(stale), "g.geojson"), "reason": "x"})
    assert r.status_code == 409
    r = client.post("/api/grids/upload", data={"file": (io.BytesIO(b"not a file"), "g.geojson"), "reason": "x"})
    assert r.status_code == 400
    assert fingerprint(session) == before


# --------------------------------------------------------------------------- history


def test_versions_compare_and_revert(client, session):
    other = same_community_neighbour(session)
    original = geom_of(session, GRID)
    assert client.get(f"/api/grids/{GRID}/versions").get_json()["versions"][0]["kind"] == "loaded"
    assert put(client, GRID, mapping(grown(session, GRID, other)), 1).status_code == 200
    history = client.get(f"/api/grids/{GRID}/versions").get_json()["versions"]
    assert [v["version"] for v in history] == [1, 2]
    assert history[1]["kind"] == "boundary" and history[1]["reason"] == REASON["reason"]
    assert history[1]["current"] and not history[0]["current"]
    v1 = client.get(f"/api/grids/{GRID}/versions/1").get_json()
    assert shape(v1["geometry"]).equals(original)
    cmp = client.get(f"/api/grids/{GRID}/compare?a=1&b=2").get_json()
    assert shape(cmp["a"]["geometry"]).equals(original)
    assert cmp["gained"]["properties"]["area_m2"] > 0 and cmp["lost"]["properties"]["area_m2"] == 0
    assert shape(cmp["difference"]["geometry"]).area == pytest.approx(
        shape(cmp["b"]["geometry"]).area - original.area, rel=1e-6
    )
    r = client.post(f"/api/grids/{GRID}/revert", json={"to": 1, **REASON}, headers={"If-Match": '"2"'})
    assert r.status_code == 200, r.get_json()
    assert geom_of(session, GRID).equals(original)
    # The neighbour gets its area back (nodes the first edit added may stay, a float apart).
    v1_other = shape(client.get(f"/api/grids/{other}/versions/1").get_json()["geometry"])
    assert editing.area_m2(shapely.symmetric_difference(v1_other, geom_of(session, other))) < 0.01
    assert client.get(f"/api/grids/{GRID}/versions").get_json()["versions"][-1]["kind"] == "revert"
    assert client.get(f"/api/grids/{GRID}/versions/9").status_code == 404
    assert client.get(f"/api/grids/{GRID}/compare?a=1").status_code == 400
    assert cached_counts_are_true(session) and coverage_is_valid(session)


def test_reverting_to_before_a_split_undoes_it(client, session):
    original = geom_of(session, GRID)
    before = totals(session)
    workers = session.execute(text(
        "SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id WHERE g.code = :c"),
        {"c": GRID}).scalar()
    x0, y0, x1, y1 = original.bounds
    line = LineString([(x0 - 0.001, (y0 + y1) / 2), (x1 + 0.001, (y0 + y1) / 2 + 0.0002)])
    r = client.post(f"/api/grids/{GRID}/split", json={"line": mapping(line), **REASON},
                    headers={"If-Match": '"1"'})
    (new,) = r.get_json()["created"]
    # A member moves to the new grid; the undo brings them back.
    member = client.get(f"/api/grids/{GRID}/team").get_json()["members"][-1]
    client.post(f"/api/grids/{GRID}/team/{member['id']}/move", json={"to": new, "version": 1})
    r = client.post(f"/api/grids/{GRID}/revert", json={"to": 1, **REASON}, headers={"If-Match": '"2"'})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["retired"] == {new: GRID} and r.get_json()["kind"] == "revert"
    assert editing.area_m2(shapely.symmetric_difference(original, geom_of(session, GRID))) < 0.01
    assert geom_of(session, new) is None
    assert totals(session) == before
    assert session.execute(text(
        "SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id WHERE g.code = :c"),
        {"c": GRID}).scalar() == workers
    history = client.get(f"/api/grids/{new}/versions").get_json()["versions"]
    assert history[-1]["retired"] and history[-1]["attributes"]["successor"] == GRID
    assert cached_counts_are_true(session) and points_agree_with_grids(session)
    assert coverage_is_valid(session)


def test_a_revert_that_would_swallow_a_grid_not_split_off_it_is_refused(client, session):
    x0, y0, x1, y1 = geom_of(session, GRID).bounds
    line = LineString([(x0 - 0.001, (y0 + y1) / 2), (x1 + 0.001, (y0 + y1) / 2 + 0.0002)])
    (new,) = client.post(f"/api/grids/{GRID}/split", json={"line": mapping(line), **REASON},
                         headers={"If-Match": '"1"'}).get_json()["created"]
    # The new grid is split again: its own offspring was never part of GRID's edits.
    x0, y0, x1, y1 = geom_of(session, new).bounds
    line = LineString([((x0 + x1) / 2, y0 - 0.001), ((x0 + x1) / 2 + 0.0001, y1 + 0.001)])
    r = client.post(f"/api/grids/{new}/split", json={"line": mapping(line), **REASON},
                    headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.get_json()
    (grandchild,) = r.get_json()["created"]
    before = fingerprint(session)
    r = client.post(f"/api/grids/{GRID}/revert", json={"to": 1, **REASON},
                    headers={"If-Match": f'"{version_of(session, GRID)}"'})
    assert r.status_code == 400, r.get_json()
    assert f"nothing of grid {grandchild}" in r.get_json()["reason"]
    assert fingerprint(session) == before


@pytest.mark.parametrize("fmt", ["geojson", "gpkg", "shp"])
def test_export_current_and_as_of_a_date(client, session, fmt):
    other = same_community_neighbour(session)
    original = geom_of(session, GRID)
    before_edit = datetime.now(UTC) - timedelta(minutes=1)
    assert put(client, GRID, mapping(grown(session, GRID, other)), 1).status_code == 200
    from geodata.io import read_features

    now = client.get(f"/api/grids/export.{fmt}")
    assert now.status_code == 200
    frame = read_features(now.data, fmt={"shp": "shapefile"}.get(fmt, fmt)).frame
    assert len(frame) == 930
    row = frame[frame["code"] == GRID].iloc[0]
    assert row.geometry.equals(geom_of(session, GRID)) and int(row["version"]) == 2
    then = client.get(f"/api/grids/export.{fmt}", query_string={"as_of": before_edit.isoformat()})
    assert then.status_code == 200
    old = read_features(then.data, fmt={"shp": "shapefile"}.get(fmt, fmt)).frame
    assert len(old) == 930
    old_row = old[old["code"] == GRID].iloc[0]
    assert old_row.geometry.equals(original) and int(old_row["version"]) == 1
    assert client.get("/api/grids/export.kml").status_code == 400
    assert client.get("/api/grids/export.geojson?as_of=yesterday").status_code == 400


def test_export_as_of_before_the_records_begin_is_refused_with_when_they_begin(client, session):
    begin = grid_edits.records_begin(session)
    assert begin is not None
    for as_of in (begin - timedelta(seconds=1), datetime(1990, 1, 1, tzinfo=UTC)):
        r = client.get("/api/grids/export.geojson", query_string={"as_of": as_of.isoformat()})
        assert r.status_code == 400
        body = r.get_json()
        assert "before the grid records begin" in body["reason"]
        assert datetime.fromisoformat(body["details"]["records_begin"]) == begin
    # From the first recorded moment on, the state is known.
    assert client.get("/api/grids/export.geojson",
                      query_string={"as_of": begin.isoformat()}).status_code == 200
    # An edit keeps the grid's first version, so the records still begin then.
    other = same_community_neighbour(session)
    assert put(client, GRID, mapping(grown(session, GRID, other)), 1).status_code == 200
    assert grid_edits.records_begin(session) == begin


def test_grid_set_as_of_a_date_before_a_split_and_after(session):
    ctx = grid_edits.EditContext("tester", "split for the new school")
    g = geom_of(session, GRID)
    x0, y0, x1, y1 = g.bounds
    line = LineString([((x0 + x1) / 2, y0 - 0.001), ((x0 + x1) / 2, y1 + 0.001)])
    earlier = datetime.now(UTC) - timedelta(minutes=1)
    created = grid_edits.split(session, GRID, mapping(line), version=1, ctx=ctx)["created"]
    then = grid_edits.grids_frame(session, as_of=earlier)
    now = grid_edits.grids_frame(session)
    assert created[0] not in set(then["code"]) and created[0] in set(now["code"])
    assert len(then) == 930 and len(now) == 931
    district = grid_edits.district(session)
    for frame in (then, now):
        assert editing.validate_coverage(dict(zip(frame["code"], frame.geometry, strict=True)), district).ok


# --------------------------------------------------------------------------- scope and bad input


def narrow_scope(app, prefix: str) -> None:
    """Make every request of ``app`` run with the jurisdiction ``prefix``."""
    from flask import g

    def narrow() -> None:
        g.scope_prefix = prefix
        try:  # with sign-in, the scope is an object on g (web.auth)
            from video.registry import Scope
        except ImportError:
            return
        g.scope = Scope(prefix=prefix)

    app.before_request(narrow)


def test_edits_outside_the_callers_jurisdiction_are_404(app, client, session):
    narrow_scope(app, "370812002")
    other = same_community_neighbour(session)
    before = fingerprint(session)
    assert put(client, GRID, mapping(grown(session, GRID, other)), 1).status_code == 404
    assert client.post(f"/api/grids/{GRID}/split", json={"line": {"type": "LineString", "coordinates": [[116.8, 35.5], [116.81, 35.51]]}, "version": 1, **REASON}).status_code == 404
    assert client.post("/api/grids/merge", json={"codes": [GRID, other], "versions": {GRID: 1, other: 1}, **REASON}).status_code == 404
    assert client.get(f"/api/grids/{GRID}/versions").status_code == 404
    assert client.post(f"/api/grids/{GRID}/revert", json={"to": 1, "version": 1}).status_code == 404
    export = json.loads(client.get("/api/grids/export.geojson").data)
    assert export["features"] and all(f["properties"]["code"].startswith("370812002") for f in export["features"])
    assert fingerprint(session) == before


def test_an_edit_taking_area_from_a_grid_outside_the_jurisdiction_is_refused(app, client, session):
    narrow_scope(app, GRID)  # a grid-level editor
    other = same_community_neighbour(session)
    before = fingerprint(session)
    r = put(client, GRID, mapping(grown(session, GRID, other)), 1)
    assert r.status_code == 400 and "jurisdiction" in r.get_json()["reason"]
    assert r.get_json()["details"]["codes"] == [other]
    assert fingerprint(session) == before


def _ring(x, y, d=0.0004):
    return [[x, y], [x + d, y], [x + d, y + d], [x, y + d], [x, y]]


def _million_vertices() -> dict:
    ring = [[116.7 + (i % 1000) * 1e-6, 35.5 + (i // 1000) * 1e-6] for i in range(1_000_000)]
    ring.append(ring[0])
    return {"type": "Polygon", "coordinates": [ring]}


def bad_geometry(case: str, x: float, y: float) -> dict:
    """Return one kind of bad geometry near (x, y)."""
    cases = {
        "self-intersecting": lambda: {"type": "Polygon", "coordinates": [[[x, y], [x + 0.001, y + 0.001], [x + 0.001, y], [x, y + 0.001], [x, y]]]},
        "three points": lambda: {"type": "Polygon", "coordinates": [[[x, y], [x + 0.001, y], [x, y]]]},
        "NaN": lambda: {"type": "Polygon", "coordinates": [[[x, y], [float("nan"), y], [x, y + 0.001], [x, y]]]},
        "Infinity": lambda: {"type": "Polygon", "coordinates": [[[x, y], [float("inf"), y], [x, y + 0.001], [x, y]]]},
        "outside the district": lambda: {"type": "Polygon", "coordinates": [_ring(118.0, 37.0)]},
        "wrong SRID": lambda: {"type": "Polygon", "coordinates": [_ring(x, y)], "crs": {"type": "name", "properties": {"name": "EPSG:3857"}}},
        "metres": lambda: {"type": "Polygon", "coordinates": [_ring(13_000_000, 4_200_000, 100)]},
        "empty collection": lambda: {"type": "GeometryCollection", "geometries": []},
        "empty multipolygon": lambda: {"type": "MultiPolygon", "coordinates": []},
        "a point": lambda: {"type": "Point", "coordinates": [x, y]},
        "million vertices": _million_vertices,
    }
    return cases[case]()


@pytest.mark.parametrize(
    "case",
    ["self-intersecting", "three points", "NaN", "Infinity", "outside the district", "wrong SRID",
     "metres", "empty collection", "empty multipolygon", "a point", "million vertices"],
)
def test_bad_geometries_are_4xx_with_a_reason_and_change_nothing(client, session, case):
    c = geom_of(session, GRID).centroid
    geometry = bad_geometry(case, c.x, c.y)
    before = fingerprint(session)
    # Flask's JSON parser accepts NaN/Infinity tokens: send them as such.
    body = json.dumps({"geometry": geometry, "version": 1, **REASON}, allow_nan=True)
    r = client.put(f"/api/grids/{GRID}/geometry", data=body, content_type="application/json")
    assert 400 <= r.status_code < 500, case
    assert r.get_json()["reason"]
    assert fingerprint(session) == before


def test_a_million_vertices_within_the_body_limit_is_rejected_by_the_vertex_cap(client, session):
    ring = [[116 + (i % 2), 35] for i in range(1_000_000)]  # short numbers: ~9 MB of JSON
    ring.append(ring[0])
    body = json.dumps({"geometry": {"type": "Polygon", "coordinates": [ring]}, "version": 1, **REASON})
    assert len(body) < 20 * 1024 * 1024
    r = client.put(f"/api/grids/{GRID}/geometry", data=body, content_type="application/json")
    assert r.status_code == 400 and "20,000 vertices" in r.get_json()["reason"]


@pytest.mark.parametrize(
    "payload, status",
    [
        ({"geometry": None, "version": 1, **REASON}, 400),
        ({"geometry": {"type": "Polygon", "coordinates": [_ring(116.8, 35.5)]}, **REASON}, 400),  # no version
        ({"geometry": {"type": "Polygon", "coordinates": [_ring(116.8, 35.5)]}, "version": 1}, 400),  # no reason
        ({"geometry": {"type": "Polygon", "coordinates": [_ring(116.8, 35.5)]}, "version": "x", **REASON}, 400),
    ],
)
def test_missing_fields_are_400(client, session, payload, status):
    before = fingerprint(session)
    r = client.put(f"/api/grids/{GRID}/geometry", json=payload)
    assert r.status_code == status and r.get_json()["reason"]
    assert fingerprint(session) == before


def test_unknown_or_malformed_codes(client):
    assert client.put("/api/grids/370812999999999/geometry", json={"geometry": {"type": "Polygon", "coordinates": [_ring(116.8, 35.5)]}, "version": 1, **REASON}).status_code == 404
    assert client.get("/api/grids/12ab/versions").status_code == 400
    assert client.get("/api/grids/370812999999999/versions").status_code == 404


def test_adjacent_lists_same_community_grids_and_bordering_communities(client):
    body = client.get(f"/api/grids/{GRID}/adjacent").get_json()
    assert body["version"] == 1 and body["geometry"]["type"] == "MultiPolygon"
    assert any(g["same_community"] for g in body["grids"])
    assert all(g["shared_m"] > 0 for g in body["grids"])


# --------------------------------------------------------------------------- property


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_random_edits_keep_totals_counts_and_coverage(session, data):
    """Random valid edits in one community never change district totals."""
    before = totals(session)
    ctx = grid_edits.EditContext("hypothesis", "random edit")
    savepoint = session.begin_nested()
    try:
        for _ in range(data.draw(st.integers(1, 3), label="steps")):
            codes = list(session.execute(text("SELECT code FROM grids WHERE code LIKE '370812001001%' ORDER BY code")).scalars())
            code = data.draw(st.sampled_from(codes), label="grid")
            adj = [g for g in grid_edits.adjacent(session, code)["grids"] if g["same_community"]]
            version = version_of(session, code)
            op = data.draw(st.sampled_from(["grow", "split", "merge"] if adj else ["split"]), label="op")
            try:
                if op == "split":
                    g = geom_of(session, code)
                    p = g.representative_point()
                    dx = data.draw(st.floats(-0.01, 0.01), label="dx")
                    line = LineString([(p.x - dx, p.y - 0.02), (p.x + dx, p.y + 0.02)])
                    grid_edits.split(session, code, mapping(line), version=version, ctx=ctx)
                elif op == "grow":
                    other = data.draw(st.sampled_from([g["code"] for g in adj]), label="other")
                    radius = data.draw(st.floats(0.0002, 0.001), label="radius")
                    grid_edits.edit_boundary(session, code, mapping(grown(session, code, other, radius)), version=version, ctx=ctx)
                else:
                    other = data.draw(st.sampled_from([g["code"] for g in adj]), label="other")
                    grid_edits.merge(session, [code, other], versions={code: version, other: version_of(session, other)}, ctx=ctx)
            except (editing.EditRefused, editing.InvalidGeometry):
                continue
            after = totals(session)
            assert {k: v for k, v in after.items() if k != "grids"} == {k: v for k, v in before.items() if k != "grids"}
            assert cached_counts_are_true(session)
        assert coverage_is_valid(session)
    finally:
        savepoint.rollback()


# --------------------------------------------------------------------------- committed edits


class CommittedGuard:
    """Snapshot the rows around a grid before committed edits; restore them afterwards.

    Used by the tests that must commit (concurrent editors, the browser): boundary
    edits only change grids within two adjacency steps of the edited grid, so those
    rows, their points and their key-person counts are put back exactly.
    """

    def __init__(self, engine, code: str) -> None:
        self.engine = engine
        with engine.begin() as conn:
            self.ids = [
                r[0]
                for r in conn.execute(
                    text(
                        """
                        WITH r1 AS (SELECT g.id, g.geom FROM grids g, grids s
                                    WHERE s.code = :c AND ST_Intersects(g.geom, s.geom))
                        SELECT DISTINCT g.id FROM grids g JOIN r1 ON ST_Intersects(g.geom, r1.geom)
                        """
                    ),
                    {"c": code},
                )
            ]
            p = {"ids": self.ids}
            self.grids = conn.execute(text("SELECT id, geom, version, updated_at, houses, residents, key_persons, key_places, components FROM grids WHERE id = ANY(:ids)"), p).all()
            self.kpc = conn.execute(text("SELECT grid_id, category, count FROM key_person_counts WHERE grid_id = ANY(:ids)"), p).all()
            self.points = {
                t: conn.execute(text(f"SELECT id, grid_id FROM {t} WHERE grid_id = ANY(:ids)"), p).all()
                for t in ("houses", "key_places", "city_components")
            }
            self.cameras = conn.execute(text("SELECT id, grid_id, grid_code FROM cameras WHERE grid_id = ANY(:ids)"), p).all()
            self.dirty = [r[0] for r in conn.execute(text("SELECT grid_id FROM coverage_dirty"))]
            self.max_edit = conn.execute(text("SELECT COALESCE(max(id), 0) FROM grid_edits")).scalar()
            self.max_version = conn.execute(text("SELECT COALESCE(max(id), 0) FROM grid_versions")).scalar()
            self.max_grid = conn.execute(text("SELECT max(id) FROM grids")).scalar()

    def restore(self) -> None:
        """Put every snapshotted row back and drop the history written since."""
        with self.engine.begin() as conn:
            conn.execute(
                text("UPDATE grids SET geom = :g, version = :v, updated_at = :u, houses = :h, residents = :r, key_persons = :k, key_places = :p, components = :c WHERE id = :id"),
                [{"id": r[0], "g": r[1], "v": r[2], "u": r[3], "h": r[4], "r": r[5], "k": r[6], "p": r[7], "c": r[8]} for r in self.grids],
            )
            for table, rows in self.points.items():
                if rows:
                    conn.execute(
                        text(f"UPDATE {table} t SET grid_id = s.g FROM unnest(CAST(:ids AS bigint[]), CAST(:gs AS integer[])) AS s(id, g) WHERE t.id = s.id"),
                        {"ids": [r[0] for r in rows], "gs": [r[1] for r in rows]},
                    )
            if self.cameras:
                conn.execute(
                    text("UPDATE cameras SET grid_id = :g, grid_code = :c WHERE id = :id"),
                    [{"id": r[0], "g": r[1], "c": r[2]} for r in self.cameras],
                )
            conn.execute(text("DELETE FROM key_person_counts WHERE grid_id = ANY(:ids)"), {"ids": self.ids})
            conn.execute(
                text("INSERT INTO key_person_counts (grid_id, category, count) VALUES (:g, :c, :n)"),
                [{"g": r[0], "c": r[1], "n": r[2]} for r in self.kpc],
            )
            conn.execute(text("DELETE FROM grids WHERE id > :m"), {"m": self.max_grid})
            conn.execute(text("DELETE FROM grid_versions WHERE id > :m"), {"m": self.max_version})
            conn.execute(text("DELETE FROM grid_edits WHERE id > :m"), {"m": self.max_edit})
            conn.execute(text("DELETE FROM coverage_dirty WHERE NOT (grid_id = ANY(:d))"), {"d": self.dirty})


@pytest.fixture
def committed(engine, demo_loaded):
    """Yield a guard for committed edits around GRID; restore the rows afterwards."""
    guard = CommittedGuard(engine, GRID)
    try:
        yield guard
    finally:
        guard.restore()


def test_concurrent_editors_one_wins_the_other_gets_409(engine, committed):
    from gridmap import db

    factory = db.session_factory(engine)
    with factory() as probe:
        other = same_community_neighbour(probe)
        version = version_of(probe, GRID)
        first = mapping(grown(probe, GRID, other, 0.0004))
        second = mapping(grown(probe, GRID, other, 0.0008))
    ctx = grid_edits.EditContext("editor", "concurrent")

    winner = factory()
    winner.execute(text("SELECT 1"))
    winner_pid = winner.execute(text("SELECT pg_backend_pid()")).scalar()
    grid_edits.edit_boundary(winner, GRID, first, version=version, ctx=ctx)  # holds the row locks
    # The second editor waits on the first one's row locks, then loses.
    with blocked_attempt(engine, winner_pid, lambda s: grid_edits.edit_boundary(
            s, GRID, second, version=version, ctx=ctx), GridEditConflict) as outcome:
        winner.commit()
        winner.close()
    assert isinstance(outcome["result"], GridEditConflict)
    assert outcome["result"].details["current_version"] == version + 1
    with engine.connect() as conn:
        assert version_of(conn, GRID) == version + 1
        assert shape(first).equals(geom_of(conn, GRID))
        assert conn.execute(text("SELECT count(*) FROM grid_versions WHERE grid_code = :c"), {"c": GRID}).scalar() == 2


def test_concurrent_http_editors_one_wins(engine, committed, database_url):
    from tests.conftest import sign_in_client
    from web import create_app

    # Signed in (issue 6); CSRF off like the shared app fixture.
    app = create_app({"TESTING": True, "DATABASE_URL": database_url, "WTF_CSRF_ENABLED": False})
    with sign_in_client(app, app.test_client(), "district-operator") as probe_client:
        adj = probe_client.get(f"/api/grids/{GRID}/adjacent").get_json()
    other = next(g["code"] for g in adj["grids"] if g["same_community"])
    with engine.connect() as conn:
        body = {"geometry": mapping(grown(conn, GRID, other, 0.0004)), **REASON}
    results: list[int] = []
    barrier = threading.Barrier(2)

    def edit() -> None:
        with sign_in_client(app, app.test_client(), "district-operator") as c:
            barrier.wait()
            results.append(c.put(f"/api/grids/{GRID}/geometry", json=body, headers={"If-Match": f'"{adj["version"]}"'}).status_code)

    threads = [threading.Thread(target=edit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [200, 409]
