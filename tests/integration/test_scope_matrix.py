"""Scoping everywhere, as a matrix: tiers × object kinds × operations.

Four callers (district center, a town, a department, a community) look at the same
sample objects (cameras and grids inside and outside each jurisdiction) through
every read path: list, get, bbox, nearby, export, count, snapshot, health, layers,
coverage and search. Each path must show exactly the objects in the caller's
scope, and answer 404 (never 403, never a leak) for the others. The dispatch
variant adds one camera from elsewhere, dispatched to the caller's unit, which must
then appear on every camera path, and nowhere on the area paths.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from sqlalchemy import text

TOWN = "370812001"  # 鼓楼街道
COMMUNITY = "370812001001"
DEPARTMENT = "兖州区公安分局"
USERS = {
    "district": "district-operator",
    "town": "gulou-operator",
    "department": "police-operator",
    "community": "community-operator",
}
CAMERA_KEYS = ("in_community", "in_town", "police_elsewhere", "elsewhere")
GRID_KEYS = ("grid_community", "grid_town", "grid_elsewhere")


@dataclass
class World:
    """The sample objects and their facts, read from the demo data."""

    cameras: dict[str, dict]
    grids: dict[str, dict]


def _camera(session, where: str, **params) -> dict:
    row = session.execute(
        text(
            "SELECT gb_id, ST_X(geom) AS lon, ST_Y(geom) AS lat, grid_code FROM cameras "
            f"WHERE heading IS NOT NULL AND fov IS NOT NULL AND {where} ORDER BY gb_id LIMIT 1"
        ),
        params,
    ).mappings().one()
    return dict(row)


def _grid(session, where: str, **params) -> dict:
    row = session.execute(
        text(
            "SELECT code, ST_X(ST_PointOnSurface(geom)) AS lon, "
            "ST_Y(ST_PointOnSurface(geom)) AS lat FROM grids "
            f"WHERE {where} ORDER BY code LIMIT 1"
        ),
        params,
    ).mappings().one()
    return dict(row)


@pytest.fixture
def world(session, tmp_path, monkeypatch) -> World:
    """Pick the sample objects and give every sample camera a snapshot on disk."""
    from video.sampler import SamplerConfig, snapshot_paths

    monkeypatch.setenv("GRIDMAP_VAR_DIR", str(tmp_path))
    cameras = {
        "in_community": _camera(session, "grid_code LIKE :c || '%' AND department <> :d",
                                c=COMMUNITY, d=DEPARTMENT),
        "in_town": _camera(session, "grid_code LIKE :t || '%' AND grid_code NOT LIKE :c || '%' "
                           "AND department <> :d", t=TOWN, c=COMMUNITY, d=DEPARTMENT),
        "police_elsewhere": _camera(session, "grid_code NOT LIKE :t || '%' AND department = :d",
                                    t=TOWN, d=DEPARTMENT),
        "elsewhere": _camera(session, "grid_code NOT LIKE :t || '%' AND department <> :d",
                             t=TOWN, d=DEPARTMENT),
    }
    grids = {
        "grid_community": _grid(session, "code LIKE :c || '%'", c=COMMUNITY),
        "grid_town": _grid(session, "code LIKE :t || '%' AND code NOT LIKE :c || '%'",
                           t=TOWN, c=COMMUNITY),
        "grid_elsewhere": _grid(session, "code NOT LIKE :t || '%'", t=TOWN),
    }
    root = SamplerConfig().snapshots()
    for cam in cameras.values():
        latest, thumb = snapshot_paths(root, cam["gb_id"])
        latest.parent.mkdir(parents=True, exist_ok=True)
        latest.write_bytes(b"\xff\xd8\xff\xe0 fake jpeg")
        thumb.write_bytes(b"\xff\xd8\xff\xe0 fake thumb")
    return World(cameras, grids)


def dispatch_elsewhere_to(session, tier: str, gb_id: str) -> None:
    """Put the 'elsewhere' camera into an open order addressed to the tier's unit."""
    from gridmap import accounts, dispatch

    unit_ref = {"town": TOWN, "department": DEPARTMENT, "community": COMMUNITY}[tier]
    target = accounts.unit_by_ref(session, unit_ref)
    district = accounts.unit_by_ref(session, accounts.DISTRICT_UNIT)
    dispatch.create_order(session, accounts.system_actor(district),
                          {"targets": [target.id], "cameras": {"gb_ids": [gb_id]}})
    session.flush()


def expected_cameras(tier: str, dispatched: bool) -> set[str]:
    visible = {
        "district": set(CAMERA_KEYS),
        "town": {"in_community", "in_town"},
        "department": {"police_elsewhere"},
        "community": {"in_community"},
    }[tier]
    return visible | ({"elsewhere"} if dispatched else set())


def expected_grids(tier: str) -> set[str]:
    return {
        "district": set(GRID_KEYS),
        "town": {"grid_community", "grid_town"},
        "department": set(),
        "community": {"grid_community"},
    }[tier]


def expected_camera_count(session, tier: str, dispatched: bool) -> int:
    where = {
        "district": "TRUE",
        "town": f"grid_code LIKE '{TOWN}%'",
        "department": f"department = '{DEPARTMENT}'",
        "community": f"grid_code LIKE '{COMMUNITY}%'",
    }[tier]
    count = session.execute(text(f"SELECT count(*) FROM cameras WHERE {where}")).scalar()
    return count + (1 if dispatched else 0)


def expected_grid_count(session, tier: str) -> int:
    prefix = {"district": "", "town": TOWN, "department": None, "community": COMMUNITY}[tier]
    if prefix is None:
        return 0
    return session.execute(
        text("SELECT count(*) FROM grids WHERE code LIKE :p || '%'"), {"p": prefix}
    ).scalar()


def tiny_bbox(lon: float, lat: float, d: float = 0.0003) -> str:
    return f"{lon - d},{lat - d},{lon + d},{lat + d}"


def status_of(client, path: str) -> int:
    with client.get(path) as resp:
        return resp.status_code


# --------------------------------------------------------------------------- camera paths
# Each returns {sample key: visible?} for the sample cameras.

CameraCase = Callable[[object, World], dict[str, bool]]


def cam_list(client, w):
    out = {}
    for key, cam in w.cameras.items():
        body = client.get(f"/api/cameras?q={cam['gb_id']}").get_json()
        out[key] = body["total"] == 1 and body["items"][0]["gb_id"] == cam["gb_id"]
    return out


def cam_get(client, w):
    out = {}
    for key, cam in w.cameras.items():
        code = status_of(client, f"/api/cameras/{cam['gb_id']}")
        assert code in (200, 404)
        out[key] = code == 200
    return out


def cam_bbox(client, w):
    out = {}
    for key, cam in w.cameras.items():
        body = client.get(f"/api/cameras/bbox?bbox={tiny_bbox(cam['lon'], cam['lat'])}").get_json()
        out[key] = cam["gb_id"] in {i["gb_id"] for i in body["items"]}
    return out


def cam_nearby(client, w):
    out = {}
    for key, cam in w.cameras.items():
        body = client.get(f"/api/cameras/nearby?lon={cam['lon']}&lat={cam['lat']}"
                          "&radius=50&limit=50").get_json()
        out[key] = cam["gb_id"] in {i["gb_id"] for i in body["items"]}
    return out


def cam_area(client, w):
    out = {}
    for key, cam in w.cameras.items():
        resp = client.get(f"/api/areas/{cam['grid_code']}/cameras")
        items = resp.get_json().get("items", []) if resp.status_code == 200 else []
        assert resp.status_code in (200, 404)
        out[key] = cam["gb_id"] in {i["gb_id"] for i in items}
    return out


def cam_export(client, w):
    with client.get("/api/cameras/export.csv") as resp:
        rows = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True).lstrip("\ufeff"))))
    ids = {r["gb_id"] for r in rows}
    return {key: cam["gb_id"] in ids for key, cam in w.cameras.items()}


def cam_layer(client, w):
    rows = client.get("/api/cameras/layer.json").get_json()["rows"]
    ids = {r[0] for r in rows}
    return {key: cam["gb_id"] in ids for key, cam in w.cameras.items()}


def cam_sectors(client, w):
    out = {}
    for key, cam in w.cameras.items():
        body = client.get("/api/cameras/sectors.geojson?bbox="
                          + tiny_bbox(cam["lon"], cam["lat"], 0.002)).get_json()
        out[key] = cam["gb_id"] in {f["id"] for f in body["features"]}
    return out


def cam_status_feed(client, w):
    ids = {r[0] for r in client.get("/api/cameras/status.json").get_json()["rows"]}
    return {key: cam["gb_id"] in ids for key, cam in w.cameras.items()}


def snapshot_get(client, w):
    return {key: status_of(client, f"/api/cameras/{cam['gb_id']}/snapshot.jpg") == 200
            for key, cam in w.cameras.items()}


def snapshot_thumb(client, w):
    return {key: status_of(client, f"/api/cameras/{cam['gb_id']}/snapshot.jpg?thumb=1") == 200
            for key, cam in w.cameras.items()}


def health_get(client, w):
    return {key: status_of(client, f"/api/cameras/{cam['gb_id']}/health") == 200
            for key, cam in w.cameras.items()}


def live_info(client, w):
    return {key: status_of(client, f"/api/cameras/{cam['gb_id']}/live.json") == 200
            for key, cam in w.cameras.items()}


def live_page(client, w):
    return {key: status_of(client, f"/cameras/{cam['gb_id']}/live") == 200
            for key, cam in w.cameras.items()}


CAMERA_CASES: dict[str, CameraCase] = {
    "camera-list": cam_list,
    "camera-get": cam_get,
    "camera-bbox": cam_bbox,
    "camera-nearby": cam_nearby,
    "camera-area": cam_area,
    "camera-export": cam_export,
    "layer-cameras": cam_layer,
    "layer-sectors": cam_sectors,
    "health-status-feed": cam_status_feed,
    "snapshot-get": snapshot_get,
    "snapshot-thumb": snapshot_thumb,
    "health-get": health_get,
    "live-info": live_info,
    "live-page": live_page,
}

# --------------------------------------------------------------------------- area paths


def grid_list(client, w):
    codes = {f["id"] for f in client.get("/api/grids.geojson").get_json()["features"]}
    return {key: g["code"] in codes for key, g in w.grids.items()}


def grid_list_with_prefix(client, w):
    # Asking for a wider prefix than one's own never widens the answer.
    codes = {f["id"] for f in client.get("/api/grids.geojson?prefix=370812").get_json()["features"]}
    return {key: g["code"] in codes for key, g in w.grids.items()}


def grid_get(client, w):
    out = {}
    for key, g in w.grids.items():
        code = status_of(client, f"/api/grids/{g['code']}")
        assert code in (200, 404)
        out[key] = code == 200
    return out


def grid_bbox(client, w):
    out = {}
    for key, g in w.grids.items():
        body = client.get(f"/api/grids?bbox={tiny_bbox(g['lon'], g['lat'], 0.00005)}").get_json()
        out[key] = g["code"] in {i["code"] for i in body["items"]}
    return out


def grid_at_point(client, w):
    out = {}
    for key, g in w.grids.items():
        resp = client.get(f"/api/grids/at?lon={g['lon']}&lat={g['lat']}")
        out[key] = resp.status_code == 200 and resp.get_json()["code"] == g["code"]
    return out


def grid_hierarchy(client, w):
    return {key: status_of(client, f"/api/areas/{g['code']}/hierarchy") == 200
            for key, g in w.grids.items()}


def grid_export(client, w):
    with client.get("/api/grids/export.geojson") as resp:
        codes = {f["properties"].get("code") for f in resp.get_json()["features"]}
    return {key: g["code"] in codes for key, g in w.grids.items()}


def grid_search(client, w):
    out = {}
    for key, g in w.grids.items():
        items = client.get(f"/api/search?q={g['code']}").get_json()["items"]
        out[key] = g["code"] in {i["id"] for i in items if i["type"] == "grid"}
    return out


def coverage_grids(client, w):
    codes = {f["id"] for f in client.get("/api/coverage/grids.geojson").get_json()["features"]}
    return {key: g["code"] in codes for key, g in w.grids.items()}


def coverage_blind(client, w):
    out = {}
    for key, g in w.grids.items():
        body = client.get("/api/coverage/blind.geojson?bbox="
                          + tiny_bbox(g["lon"], g["lat"], 0.01)).get_json()
        out[key] = g["code"] in {f["id"] for f in body["features"]}
    return out


GRID_CASES = {
    "grid-list": grid_list,
    "grid-list-wider-prefix": grid_list_with_prefix,
    "grid-get": grid_get,
    "grid-bbox": grid_bbox,
    "grid-nearby-at-point": grid_at_point,
    "grid-hierarchy": grid_hierarchy,
    "grid-export": grid_export,
    "grid-search": grid_search,
    "coverage-grids": coverage_grids,
    "coverage-blind": coverage_blind,
}

TIERS = tuple(USERS)


@pytest.mark.parametrize("case", list(CAMERA_CASES))
@pytest.mark.parametrize("tier", TIERS)
def test_camera_paths_show_exactly_the_scope(client_as, world, session, tier, case):
    client = client_as(USERS[tier])
    seen = CAMERA_CASES[case](client, world)
    assert {k for k, v in seen.items() if v} == expected_cameras(tier, dispatched=False)


@pytest.mark.parametrize("case", list(CAMERA_CASES))
@pytest.mark.parametrize("tier", ("town", "department", "community"))
def test_dispatched_camera_appears_on_every_camera_path(client_as, world, session, tier, case):
    dispatch_elsewhere_to(session, tier, world.cameras["elsewhere"]["gb_id"])
    client = client_as(USERS[tier])
    seen = CAMERA_CASES[case](client, world)
    assert {k for k, v in seen.items() if v} == expected_cameras(tier, dispatched=True)


@pytest.mark.parametrize("case", list(GRID_CASES))
@pytest.mark.parametrize("tier", TIERS)
def test_area_paths_show_exactly_the_scope(client_as, world, session, tier, case):
    client = client_as(USERS[tier])
    seen = GRID_CASES[case](client, world)
    assert {k for k, v in seen.items() if v} == expected_grids(tier)


@pytest.mark.parametrize(
    ("tier", "dispatched"),
    [(t, False) for t in TIERS] + [(t, True) for t in TIERS if t != "district"],
    ids=lambda v: {False: "own", True: "with-dispatch"}.get(v, v) if isinstance(v, bool) else v,
)
def test_counts_match_the_scope(client_as, world, session, tier, dispatched):
    if dispatched:
        dispatch_elsewhere_to(session, tier, world.cameras["elsewhere"]["gb_id"])
    client = client_as(USERS[tier])
    cameras = expected_camera_count(session, tier, dispatched)
    assert client.get("/api/cameras?limit=1").get_json()["total"] == cameras
    assert len(client.get("/api/cameras/layer.json").get_json()["rows"]) == cameras
    rollup = client.get("/api/health/rollup?level=source").get_json()
    assert sum(r["cameras"] for r in rollup) == cameras
    grids = expected_grid_count(session, tier)
    assert client.get("/api/summary").get_json()["grids"] == grids
    assert len(client.get("/api/grids.geojson").get_json()["features"]) == grids
    towns = client.get("/api/coverage/towns").get_json()
    assert sum(1 for _ in towns) == {"district": 10, "town": 1, "department": 0,
                                     "community": 1}[tier]
    town_codes = {f["id"] for f in client.get("/api/areas/towns.geojson").get_json()["features"]}
    assert town_codes == ({TOWN} if tier == "town" else
                          set() if tier in ("department", "community") else town_codes)


@pytest.mark.parametrize("tier", ("town", "department", "community"))
def test_out_of_scope_answers_look_exactly_like_missing_ones(client_as, world, tier):
    """No enumeration by id: an object outside the scope is answered like a missing one."""
    client = client_as(USERS[tier])
    outside = world.cameras["elsewhere"]["gb_id"]
    missing = "37081200001319999999"
    for suffix in ("", "/health", "/snapshot.jpg", "/live.json"):
        a = client.get(f"/api/cameras/{outside}{suffix}")
        b = client.get(f"/api/cameras/{missing}{suffix}")
        assert a.status_code == b.status_code == 404, suffix
        assert a.get_json()["error"] == b.get_json()["error"] == 404
    assert client.get(f"/cameras/{outside}/live.mjpeg").status_code == 404
    grid = world.grids["grid_elsewhere"]["code"]
    assert client.get(f"/api/grids/{grid}").status_code == 404
    assert client.get("/api/grids/370812999999999").status_code == 404


@pytest.mark.parametrize("tier", ("town", "community", "department"))
def test_writes_outside_the_scope_are_not_found_and_change_nothing(client_as, world, session,
                                                                   tier):
    client = client_as(USERS[tier].replace("operator", "gridadmin"))
    cam = world.cameras["elsewhere"]
    resp = client.patch(f"/api/cameras/{cam['gb_id']}", json={"name": "hijacked"})
    assert resp.status_code == 404
    assert client.post(f"/api/cameras/{cam['gb_id']}/sample").status_code == 404
    name = session.execute(text("SELECT name FROM cameras WHERE gb_id = :g"),
                           {"g": cam["gb_id"]}).scalar()
    assert name != "hijacked"
    grid = world.grids["grid_elsewhere"]["code"]
    edit = client.put(f"/api/grids/{grid}/geometry", json={"geometry": None, "version": 1,
                                                           "reason": "x"})
    assert edit.status_code == 404


def test_dispatched_cameras_are_view_only(client_as, world, session):
    dispatch_elsewhere_to(session, "town", world.cameras["elsewhere"]["gb_id"])
    client = client_as("gulou-gridadmin")
    gb_id = world.cameras["elsewhere"]["gb_id"]
    assert client.get(f"/api/cameras/{gb_id}").status_code == 200
    resp = client.patch(f"/api/cameras/{gb_id}", json={"name": "changed"})
    assert resp.status_code == 403 and "view-only" in resp.get_json()["reason"]
