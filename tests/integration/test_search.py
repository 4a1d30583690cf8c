"""GET /api/search on the real PostGIS: typed results, scoping and input checks."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import Point, box
from sqlalchemy import text

from gridmap.queries import DISTRICT_BBOX


def search(client, q: str, **params):
    """GET /api/search and return (status, body)."""
    resp = client.get("/api/search", query_string={"q": q, **params})
    return resp.status_code, resp.get_json()


def first_of(body: dict, kind: str) -> dict:
    """Return the first result of a type."""
    return next(item for item in body["items"] if item["type"] == kind)


def test_grid_by_exact_code_comes_first_with_its_bbox(client, session):
    code, name, lon, lat = session.execute(
        text(
            "SELECT code, name, ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) "
            "FROM grids ORDER BY code OFFSET 100 LIMIT 1"
        )
    ).one()
    status, body = search(client, code)
    assert status == 200
    top = body["items"][0]
    assert (top["type"], top["id"], top["name"], top["rank"]) == ("grid", code, name, 0)
    west, south, east, north = top["bbox"]
    assert box(*DISTRICT_BBOX).contains(box(west, south, east, north))
    assert box(west, south, east, north).contains(Point(lon, lat))
    assert box(west, south, east, north).buffer(1e-6).contains(Point(top["lon"], top["lat"]))


def test_full_width_digits_are_folded(client, session):
    code = session.execute(text("SELECT code FROM grids ORDER BY code LIMIT 1")).scalar_one()
    wide = code.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"})
    status, body = search(client, wide)
    assert status == 200 and body["query"] == code
    assert body["items"][0]["id"] == code


def test_grid_community_and_town_by_name(client, session):
    grid_name = session.execute(text("SELECT name FROM grids ORDER BY code LIMIT 1")).scalar_one()
    community = session.execute(
        text("SELECT code, name FROM communities ORDER BY code LIMIT 1")
    ).one()
    town = session.execute(text("SELECT code, name FROM towns ORDER BY code LIMIT 1")).one()
    assert first_of(search(client, grid_name)[1], "grid")["name"] == grid_name
    hit = first_of(search(client, community.name)[1], "community")
    assert (hit["id"], hit["rank"]) == (community.code, 0)
    assert len(hit["bbox"]) == 4
    hit = first_of(search(client, town.name)[1], "town")
    assert (hit["id"], hit["rank"]) == (town.code, 0)


def test_camera_by_gb_id_prefix_and_by_name(client, session):
    gb_id, name, lon, lat = session.execute(
        text("SELECT gb_id, name, ST_X(geom), ST_Y(geom) FROM cameras ORDER BY gb_id LIMIT 1")
    ).one()
    status, body = search(client, gb_id[:16])
    assert status == 200
    assert all(i["id"].startswith(gb_id[:16]) for i in body["items"] if i["type"] == "camera")
    status, body = search(client, gb_id)
    hit = first_of(body, "camera")
    assert hit["id"] == gb_id and hit["bbox"] is None
    assert hit["lon"] == pytest.approx(lon, abs=1e-6) and hit["lat"] == pytest.approx(lat, abs=1e-6)
    assert hit["detail"] and hit["kind"]  # source and status, for the result line
    status, body = search(client, name)
    assert first_of(body, "camera")["name"] == name


def test_a_road_camera_is_found_by_its_stake_number(client, session):
    # Road cameras are named by stake number (兖大公路K9+837): "+" must be searchable.
    gb_id, name = session.execute(text(
        "SELECT gb_id, name FROM cameras WHERE name LIKE '%+%' ORDER BY gb_id LIMIT 1")).one()
    stake = next(word for word in name.split("-") if "+" in word)
    status, body = search(client, stake)
    assert status == 200 and gb_id in {i["id"] for i in body["items"] if i["type"] == "camera"}
    assert first_of(search(client, name)[1], "camera")["id"] == gb_id


def test_key_place_by_name(client, session):
    place_id, name = session.execute(
        text("SELECT id, name FROM key_places WHERE grid_id IS NOT NULL ORDER BY id LIMIT 1")
    ).one()
    hit = first_of(search(client, name)[1], "place")
    assert hit["name"] == name and hit["id"] == str(place_id) and hit["kind"]


def test_address_like_words_must_all_match(client, session):
    town, community, grids = session.execute(
        text(
            "SELECT t.name, c.name, count(g.id) FROM communities c "
            "JOIN towns t ON t.id = c.town_id JOIN grids g ON g.community_id = c.id "
            "GROUP BY t.name, c.name, c.code ORDER BY c.code LIMIT 1"
        )
    ).one()
    status, body = search(client, f"{town} {community}", limit=50)
    assert status == 200
    assert any(i["type"] == "community" and i["name"] == community for i in body["items"])
    grid_hits = [i for i in body["items"] if i["type"] == "grid"]
    assert grid_hits and all(i["detail"] == f"{town} · {community}" for i in grid_hits)
    assert len(grid_hits) == min(grids, 8)


def test_results_are_limited_and_ranked(client):
    status, body = search(client, "3708", limit=5)
    assert status == 200 and body["count"] == 5 == len(body["items"])
    ranks = [i["rank"] for i in body["items"]]
    assert ranks == sorted(ranks)


def test_no_match_is_an_empty_list(client):
    assert search(client, "不存在的地方名称") == (
        200,
        {"query": "不存在的地方名称", "count": 0, "items": []},
    )


def test_search_is_scoped_to_the_callers_jurisdiction(client_as, session):
    gulou = client_as("gulou-operator")  # 鼓楼街道 370812001
    other_town = session.execute(
        text("SELECT name FROM towns WHERE code <> '370812001' ORDER BY code LIMIT 1")
    ).scalar_one()
    status, body = search(gulou, other_town)
    assert status == 200
    assert not [i for i in body["items"] if i["type"] in ("town", "community", "grid", "place")]
    status, body = search(gulou, "3708120", limit=50)
    areas = [i for i in body["items"] if i["type"] in ("town", "community", "grid")]
    assert areas and all(i["id"].startswith("370812001") for i in areas)
    cameras = [i["id"] for i in body["items"] if i["type"] == "camera"]
    if cameras:
        codes = (
            session.execute(
                text("SELECT DISTINCT left(grid_code, 9) FROM cameras WHERE gb_id = ANY(:ids)"),
                {"ids": cameras},
            )
            .scalars()
            .all()
        )
        assert codes == ["370812001"]


def test_signed_out_callers_are_refused(anon_client):
    assert anon_client.get("/api/search?q=鼓楼").status_code == 401


@pytest.mark.parametrize(
    "query_string, reason",
    [
        ("", "missing"),
        ("q=", "empty"),
        ("q=%20%20%20", "empty"),
        ("q=" + "网" * 41, "at most 40"),
        ("q=a%25b", "may contain only"),  # %
        ("q=a_b", "may contain only"),
        ("q=%3Cscript%3E", "may contain only"),
        ("q=x%27%20OR%201%3D1--", "may contain only"),
        ("q=a%00b", "NUL"),
        ("q=%ED%A0%80", "may contain only"),  # a lone surrogate, decoded as U+FFFD
        ("q=%F0%9F%98%80", "may contain only"),  # emoji
        ("q=a%5Cb", "may contain only"),  # backslash
        ("q=a+b+c+d+e", "at most 4 words"),
        ("q=ok&limit=0", "limit"),
        ("q=ok&limit=51", "limit"),
        ("q=ok&limit=ten", "limit"),
    ],
)
def test_bad_input_is_a_400_with_a_reason(client, query_string, reason):
    resp = client.get("/api/search?" + query_string)
    assert resp.status_code == 400
    body = resp.get_json()
    assert reason in body["reason"]
    assert "Traceback" not in resp.get_data(as_text=True)


@settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(q=st.text(max_size=50))
def test_any_text_is_answered_200_or_400_never_500(client, q):
    resp = client.get("/api/search", query_string={"q": q})
    assert resp.status_code in (200, 400)
    body = resp.get_json()
    assert ("items" in body) if resp.status_code == 200 else body["reason"]


def test_openapi_documents_search(client):
    spec = client.get("/api/openapi.json").get_json()
    assert "/api/search" in spec["paths"]
    params = {p["name"] for p in spec["paths"]["/api/search"]["get"]["parameters"]}
    assert {"q", "limit"} <= params
