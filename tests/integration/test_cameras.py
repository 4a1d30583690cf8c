"""The camera registry on the real PostGIS, through the JSON API."""

from __future__ import annotations

import base64
import io
import json
from urllib.parse import quote, quote_plus

import pytest
from pyproj import Geod
from sqlalchemy import text

from geodata.coords import wgs84_to_gcj02
from gridmap import db
from video import registry
from video.registry import KNN_SPHERE_RADIUS_M

GEOD = Geod(ellps="WGS84")
SECRET = "s3cr@t:P/w%d#1"


def grid_interior_point(session, offset: int = 0) -> tuple[str, float, float]:
    """Return (grid code, lon, lat) of a point well inside some urban grid."""
    return session.execute(
        text(
            "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p "
            "FROM grids WHERE kind = 'urban' ORDER BY code OFFSET :o LIMIT 1) x"
        ),
        {"o": offset},
    ).one()


def new_camera(lon: float, lat: float, serial: int = 1, **extra) -> dict:
    body = {
        "gb_id": f"37081200001310{serial:06d}",
        "name": f"测试摄像头{serial}",
        "lon": lon,
        "lat": lat,
        "source": "skynet",
        "department": "公安局",
        "main_url": "rtsp://192.0.2.10:554/Streaming/Channels/101",
    }
    body.update(extra)
    return body


def test_has_credentials_flag_follows_the_credentials_table(session):
    """The trigger keeps cameras.has_credentials in step with camera_credentials."""
    a, b = session.execute(text(
        "SELECT id FROM cameras c WHERE NOT EXISTS (SELECT 1 FROM camera_credentials k "
        "WHERE k.camera_id = c.id) ORDER BY id LIMIT 2")).scalars().all()

    def flags() -> tuple[bool, bool]:
        rows = dict(session.execute(text(
            "SELECT id, has_credentials FROM cameras WHERE id IN (:a, :b)"), {"a": a, "b": b}).all())
        return rows[a], rows[b]

    assert flags() == (False, False)
    session.execute(text("INSERT INTO camera_credentials VALUES (:a, 'u', 'p')"), {"a": a})
    assert flags() == (True, False)
    session.execute(text("UPDATE camera_credentials SET camera_id = :b WHERE camera_id = :a"),
                    {"a": a, "b": b})
    assert flags() == (False, True)
    session.execute(text("DELETE FROM camera_credentials WHERE camera_id = :b"), {"b": b})
    assert flags() == (False, False)
    session.execute(text("INSERT INTO camera_credentials VALUES (:a, 'u', 'p')"), {"a": a})
    session.execute(text("TRUNCATE camera_credentials"))
    assert flags() == (False, False)
    assert session.scalar(text("SELECT count(*) FROM cameras WHERE has_credentials")) == 0


def all_text_forms(secret: str) -> list[str]:
    forms = [secret, quote(secret, safe=""), quote_plus(secret), quote(secret, safe="").lower()]
    forms.append(base64.b64encode(f"admin:{secret}".encode()).decode())
    forms.append(base64.b64encode(secret.encode()).decode())
    return forms


def test_create_derives_grid_and_hides_credentials(client, session):
    code, lon, lat = grid_interior_point(session)
    url = f"rtsp://admin:{quote(SECRET, safe='')}@192.0.2.10:554/Streaming/Channels/101"
    resp = client.post("/api/cameras", json=new_camera(lon, lat, main_url=url, heading=90, fov=60))
    assert resp.status_code == 201, resp.get_json()
    cam = resp.get_json()
    assert cam["grid_code"] == code
    assert cam["community_code"] == code[:12] and cam["town_code"] == code[:9]
    assert cam["has_credentials"] is True
    assert cam["main_url"] == "rtsp://192.0.2.10:554/Streaming/Channels/101"
    # Every field a nearby item can carry, the stream URLs among them.
    fields = ",".join(registry.NEARBY_FIELDS)
    near = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=50&limit=200&fields={fields}")
    mine = [i for i in near.get_json()["items"] if i["gb_id"] == cam["gb_id"]]
    assert mine and mine[0]["has_credentials"] is True and mine[0]["distance_m"] < 1
    assert mine[0]["main_url"] == cam["main_url"]
    with_secret = set(session.scalars(text(
        "SELECT c.gb_id FROM cameras c JOIN camera_credentials k ON k.camera_id = c.id")))
    assert all(i["has_credentials"] is (i["gb_id"] in with_secret)
               for i in near.get_json()["items"])
    body = resp.get_data(as_text=True) + client.get(f"/api/cameras/{cam['gb_id']}").get_data(
        as_text=True
    ) + near.get_data(as_text=True)
    for form in all_text_forms(SECRET):
        assert form not in body
    stored = session.execute(
        text("SELECT main_url, sub_url FROM cameras WHERE gb_id = :g"), {"g": cam["gb_id"]}
    ).one()
    assert all(SECRET not in (u or "") and "admin" not in (u or "") for u in stored)
    from video.registry import stream_credentials

    assert stream_credentials(session, cam["gb_id"]) == ("admin", SECRET)


def test_move_rederives_grid(client, session):
    code_a, lon_a, lat_a = grid_interior_point(session, 0)
    code_b, lon_b, lat_b = grid_interior_point(session, 40)
    gb_id = client.post("/api/cameras", json=new_camera(lon_a, lat_a, 2)).get_json()["gb_id"]
    moved = client.patch(f"/api/cameras/{gb_id}", json={"lon": lon_b, "lat": lat_b})
    assert moved.status_code == 200
    assert moved.get_json()["grid_code"] == code_b != code_a


def test_tags_given_by_name_are_stored_and_found_by_code(client, session):
    _, lon, lat = grid_interior_point(session, 3)
    gb_id = client.post("/api/cameras", json=new_camera(lon, lat, 7, tags="道路、路口")
                        ).get_json()["gb_id"]
    assert client.get(f"/api/cameras/{gb_id}").get_json()["tags"] == ["intersection", "road"]
    patched = client.patch(f"/api/cameras/{gb_id}", json={"tags": ["Key place", "夜景"]})
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["tags"] == ["key_place", "夜景"]
    for tag in ("key_place", "重点场所"):
        near = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=50&tag={tag}"
                          "&fields=gb_id").get_json()["items"]
        assert {"gb_id": gb_id} in near


@pytest.mark.parametrize(
    "change, field",
    [
        ({"gb_id": "3708120000131000001"}, "gb_id"),  # 19 digits
        ({"gb_id": "3708120000131000000A"}, "gb_id"),
        ({"lon": "east"}, "lon"),
        ({"lon": 121.47, "lat": 31.23}, "lon/lat"),  # Shanghai
        ({"main_url": "file:///etc/passwd"}, "main_url"),
        ({"main_url": "exec:rm -rf /"}, "main_url"),
        ({"main_url": "ffmpeg:-i x"}, "main_url"),
        ({"main_url": "rtsp://h/a;reboot"}, "main_url"),
        ({"source": "martians"}, "source"),
        ({"heading": 400}, "heading"),
    ],
)
def test_bad_camera_gets_400_and_nothing_stored(client, session, change, field):
    _, lon, lat = grid_interior_point(session)
    before = session.execute(text("SELECT count(*) FROM cameras")).scalar()
    resp = client.post("/api/cameras", json={**new_camera(lon, lat, 3), **change})
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert body["reason"] and body.get("details", {}).get("field") == field
    assert session.execute(text("SELECT count(*) FROM cameras")).scalar() == before


def test_duplicate_gb_id_is_a_conflict(client, session):
    _, lon, lat = grid_interior_point(session)
    assert client.post("/api/cameras", json=new_camera(lon, lat, 4)).status_code == 201
    assert client.post("/api/cameras", json=new_camera(lon, lat, 4)).status_code == 409


def test_nearby_matches_geodesic_brute_force_across_borders(client, session):
    # A point on a town border: the answer must ignore grid and town boundaries.
    lon, lat = session.execute(
        text(
            "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointN(ST_ExteriorRing(ST_GeometryN(geom, 1)),"
            " 3) p FROM towns WHERE kind = 'street' ORDER BY code LIMIT 1) x"
        )
    ).one()
    resp = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=1500&limit=30")
    assert resp.status_code == 200
    items = resp.get_json()["items"]
    rows = session.execute(text("SELECT gb_id, ST_X(geom), ST_Y(geom) FROM cameras")).all()
    truth = sorted(
        (GEOD.inv(lon, lat, x, y)[2], g) for g, x, y in rows if GEOD.inv(lon, lat, x, y)[2] <= 1500
    )[:30]
    assert [i["gb_id"] for i in items] == [g for _, g in truth]
    for item, (dist, _) in zip(items, truth, strict=True):
        assert item["distance_m"] == pytest.approx(dist, abs=1.0)
    assert len({i["grid_code"][:9] for i in items}) >= 2  # towns
    fwd = GEOD.inv(lon, lat, items[0]["lon"], items[0]["lat"])[0] % 360
    assert items[0]["bearing"] == pytest.approx(fwd, abs=0.5)


def test_nearby_widens_the_knn_when_sphere_and_ellipsoid_disagree(client, session):
    # The KNN ranks on a sphere; at 35.5 N the ellipsoid is 0.22 % shorter north-
    # south and 0.22 % longer east-west. Five cameras 99.9 m north are the true
    # nearest, but on the sphere 31 cameras about 100 m east come first, more
    # than the KNN's first batch holds: the answer needs the wider second query.
    lon, lat = session.execute(text(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids) g "
        "WHERE NOT EXISTS (SELECT 1 FROM cameras c WHERE ST_DWithin(c.geom::geography, "
        "g.p::geography, 400)) ORDER BY ST_X(p) LIMIT 1")).one()
    placed = []
    for k in range(31):  # east: 100.00 m to 100.30 m
        x, y, _ = GEOD.fwd(lon, lat, 90, 100.0 + k * 0.01)
        placed.append((x, y))
    for k in range(5):  # north: 99.90 m to 99.94 m
        x, y, _ = GEOD.fwd(lon, lat, 0, 99.90 + k * 0.01)
        placed.append((x, y))
    for serial, (x, y) in enumerate(placed, start=300):
        assert client.post("/api/cameras", json=new_camera(x, y, serial)).status_code == 201
    items = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=200&limit=5"
                       ).get_json()["items"]
    assert [i["gb_id"][-3:] for i in items] == ["331", "332", "333", "334", "335"]
    assert [i["bearing"] for i in items] == [0.0] * 5


@pytest.mark.parametrize("azimuth", [0.0, 45.0, 90.0])
def test_knn_sphere_is_the_one_the_bound_assumes(session, azimuth):
    # sphere_floor compares ellipsoidal distances with PostGIS's KNN distance on a
    # sphere of KNN_SPHERE_RADIUS_M; a different sphere would void the bound.
    lon, lat = 116.83, 35.55
    lon2, lat2, _ = GEOD.fwd(lon, lat, azimuth, 5000.0)
    knn = session.execute(text(
        "SELECT ST_SetSRID(ST_MakePoint(:a, :b), 4326)::geography "
        "<-> ST_SetSRID(ST_MakePoint(:c, :d), 4326)::geography"),
        {"a": lon, "b": lat, "c": lon2, "d": lat2}).scalar_one()
    sphere = Geod(a=KNN_SPHERE_RADIUS_M, b=KNN_SPHERE_RADIUS_M)
    assert knn == pytest.approx(sphere.inv(lon, lat, lon2, lat2)[2], rel=1e-9)


def test_sees_first_ranks_view_sectors_before_distance(client, session):
    _, lon, lat = grid_interior_point(session, 7)
    # 20 m east, looking elsewhere; 60 m south, looking north at the point.
    near = GEOD.fwd(lon, lat, 90, 20)
    far = GEOD.fwd(lon, lat, 180, 60)
    client.post("/api/cameras", json=new_camera(near[0], near[1], 11, heading=90, fov=40))
    client.post(
        "/api/cameras", json=new_camera(far[0], far[1], 12, heading=0, fov=40, range_m=100)
    )
    plain = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=200").get_json()
    ranked = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=200&sees=1").get_json()
    ids = [i["gb_id"] for i in plain["items"]]
    assert ids.index("37081200001310000011") < ids.index("37081200001310000012")
    assert ranked["items"][0]["gb_id"] == "37081200001310000012"
    assert ranked["items"][0]["sees_point"] is True


@pytest.mark.parametrize("fields", [None, ",".join(registry.NEARBY_FIELDS)])
def test_nearby_items_are_the_cameras_public_fields(client, session, fields):
    # The nearby query's rows become items by position (its columns sorted as the
    # answer's keys): a column out of place would put a value under another name.
    _, lon, lat = grid_interior_point(session, 5)
    aimed = GEOD.fwd(lon, lat, 180, 40)
    client.post("/api/cameras", json=new_camera(aimed[0], aimed[1], 21, heading=0, fov=40,
                                               range_m=100, tags=["key_place"]))
    asked = f"&fields={fields}" if fields else ""
    keys = registry.NEARBY_FIELDS if fields else registry.NEARBY_SUMMARY
    for sees in (0, 1):
        items = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=3000&limit=30"
                           f"&sees={sees}{asked}").get_json()["items"]
        assert len(items) > 5
        for item in items:
            assert list(item) == list(keys)
            camera = client.get(f"/api/cameras/{item['gb_id']}").get_json()
            assert {key: camera[key] for key in camera if key in item} == {
                key: item[key] for key in camera if key in item}
            assert item["distance_m"] == pytest.approx(
                GEOD.inv(lon, lat, item["lon"], item["lat"])[2], abs=0.06)
        mine = next(i for i in items if i["gb_id"] == "37081200001310000021")
        assert mine["sees_point"] is True and mine["bearing"] == pytest.approx(180.0, abs=0.1)
        assert mine["heading"] == 0 and mine["fov"] == 40
        if fields:
            assert mine["tags"] == ["key_place"] and mine["range_m"] == 100
            assert set(camera) <= set(item)  # every public field of the camera's record


def test_nearby_fields_choose_what_each_item_carries(client, session):
    _, lon, lat = grid_interior_point(session, 5)
    near = f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=3000&limit=10"
    default = client.get(near).get_json()["items"]
    # Order and repeats do not matter; keys come sorted; the ranking is the same.
    asked = client.get(f"{near}&fields=name,gb_id,distance_m,name&fields=tags").get_json()["items"]
    assert [list(i) for i in asked] == [["distance_m", "gb_id", "name", "tags"]] * len(default)
    assert [i["gb_id"] for i in asked] == [i["gb_id"] for i in default]
    assert [i["distance_m"] for i in asked] == [i["distance_m"] for i in default]
    # One key alone (the ranking's own columns are still read, just not returned).
    only = client.get(f"{near}&fields=gb_id&sees=1").get_json()["items"]
    assert only and all(list(i) == ["gb_id"] for i in only)


def test_the_api_description_lists_the_nearby_fields_and_the_summary(client):
    [param] = [p for p in client.get("/api/openapi.json").get_json()["paths"][
        "/api/cameras/nearby"]["get"]["parameters"] if p["name"] == "fields"]
    every, summary = param["description"].split("Default:")
    assert every.count(", ") + 1 == len(registry.NEARBY_FIELDS)
    assert all(f" {key}," in every or f" {key}." in every for key in registry.NEARBY_FIELDS)
    assert summary.split("(")[1].split(")")[0].split(", ") == list(registry.NEARBY_SUMMARY)


def test_the_api_description_names_the_known_tags(client):
    from video.models import TAG_LABELS

    create = client.get("/api/openapi.json").get_json()["paths"]["/api/cameras"]["post"]
    tags = create["requestBody"]["content"]["application/json"]["schema"]["properties"]["tags"]
    named = tags["description"].split("(")[2].split(")")[0]
    assert named.split(", ") == list(TAG_LABELS)


@pytest.mark.parametrize("fields", ["password", "gb_id,main_url_with_credentials", "geom",
                                    "sphere_m", "gb_id,,nope", "name;DROP TABLE cameras"])
def test_nearby_refuses_unknown_fields(client, session, fields):
    _, lon, lat = grid_interior_point(session, 5)
    resp = client.get("/api/cameras/nearby",
                      query_string={"lon": lon, "lat": lat, "fields": fields})
    assert resp.status_code == 400
    assert "fields must name some of" in resp.get_json()["reason"]
    assert client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}").status_code == 200


def test_nearby_query_columns_are_the_ones_items_are_built_from(session):
    where, params = registry.Filters(scope=registry.Scope(prefix="")).sql(ordered=True)
    for fields in (registry.NEARBY_SUMMARY, registry.NEARBY_FIELDS, ("gb_id",),
                   ("tags", "bearing")):
        plan = registry.nearby_plan(fields)
        for sees_first in (False, True):
            names, _ = db.driver_rows(
                session, registry._nearby_sql(where, sees_first, 22, plan.columns),
                {**params, "lon": 116.83, "lat": 35.55, "reach": 500.0})
            assert tuple(names) == plan.row


def test_nearby_filters(client, session):
    _, lon, lat = grid_interior_point(session, 3)
    resp = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=3000&source=sharp_eyes")
    items = resp.get_json()["items"]
    assert items and all(i["source"] == "sharp_eyes" for i in items)
    resp = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&radius=3000&tag=key_place"
                      "&fields=gb_id,tags")
    items = resp.get_json()["items"]
    assert items and all("key_place" in i["tags"] for i in items)


@pytest.mark.parametrize(
    "query",
    [
        "radius=0", "radius=-5", "radius=1e9", "radius=abc", "limit=abc", "limit=0",
        "limit=5000", "source=martians", "status=sleepy", "sees=2",
    ],
)
def test_nearby_bad_parameters(client, session, query):
    _, lon, lat = grid_interior_point(session)
    resp = client.get(f"/api/cameras/nearby?lon={lon}&lat={lat}&{query}")
    assert resp.status_code == 400 and resp.get_json()["reason"]


def test_in_grid_and_town(client, session):
    code = session.execute(
        text("SELECT grid_code FROM cameras GROUP BY grid_code ORDER BY count(*) DESC LIMIT 1")
    ).scalar()
    grid = client.get(f"/api/areas/{code}/cameras").get_json()
    expected = session.execute(
        text("SELECT count(*) FROM cameras WHERE grid_code = :c"), {"c": code}
    ).scalar()
    assert grid["count"] == expected and all(c["grid_code"] == code for c in grid["items"])
    town = client.get(f"/api/areas/{code[:9]}/cameras").get_json()
    assert town["count"] > grid["count"]


def test_paging_and_validation(client):
    first = client.get("/api/cameras?limit=50").get_json()
    second = client.get("/api/cameras?limit=50&offset=50").get_json()
    assert first["total"] == second["total"] >= 8600
    assert len(first["items"]) == 50
    assert first["items"][-1]["gb_id"] < second["items"][0]["gb_id"]
    for bad in ("limit=x", "offset=-1", "limit=100000", "offset=1.5"):
        assert client.get(f"/api/cameras?{bad}").status_code == 400


def test_bbox(client):
    items = client.get("/api/cameras/bbox?bbox=116.80,35.53,116.84,35.57").get_json()["items"]
    assert items and all(116.80 <= c["lon"] <= 116.84 and 35.53 <= c["lat"] <= 35.57 for c in items)
    assert client.get("/api/cameras/bbox?bbox=1,2,3").status_code == 400


def test_layer_is_compact_and_complete(client, session):
    resp = client.get("/api/cameras/layer.json")
    data = resp.get_json()
    total = session.execute(text("SELECT count(*) FROM cameras")).scalar()
    assert len(data["rows"]) == total
    gb_id, lon, lat, source, status, sector = data["rows"][0]
    assert len(gb_id) == 20 and data["sources"][source] and data["statuses"][status]
    assert sector in (0, 1)


CSV_HEADER = "gb_id,name,lon,lat,source,department,main_url,tags\n"


def test_csv_import_upserts_and_export_never_leaks(client, session):
    _, lon, lat = grid_interior_point(session, 9)
    url = f"rtsp://admin:{quote(SECRET, safe='')}@192.0.2.20/live"
    csv = CSV_HEADER + (
        f"37081200001310000021,导入一,{lon},{lat},skynet,公安局,{url},crowd\n"
        f"37081200001310000022,导入二,{lon + 0.001},{lat},water,水务局,rtsp://192.0.2.21/a,\n"
    )
    resp = client.post(
        "/api/cameras/import",
        data={"file": (io.BytesIO(csv.encode()), "ledger.csv")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"inserted": 2, "updated": 0, "warnings": []}
    again = client.post(
        "/api/cameras/import",
        data={"file": (io.BytesIO(csv.encode()), "ledger.csv")},
        content_type="multipart/form-data",
    )
    assert again.get_json() == {"inserted": 0, "updated": 2, "warnings": []}
    for fmt in ("csv", "geojson", "gpkg"):
        body = client.get(f"/api/cameras/export.{fmt}").get_data()
        assert body
        for form in all_text_forms(SECRET):
            assert form.encode() not in body
    exported = json.loads(client.get("/api/cameras/export.geojson").get_data())
    ids = {f["properties"]["gb_id"] for f in exported["features"]}
    assert {"37081200001310000021", "37081200001310000022"} <= ids


def test_gcj02_ledger_is_converted(client, session):
    _, lon, lat = grid_interior_point(session, 11)
    glon, glat = wgs84_to_gcj02(lon, lat)
    csv = CSV_HEADER + f"37081200001310000031,火星坐标,{glon},{glat},skynet,公安局,rtsp://192.0.2.9/a,\n"
    resp = client.post(
        "/api/cameras/import?datum=gcj02",
        data={"file": (io.BytesIO(csv.encode()), "ledger.csv")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 200, resp.get_json()
    cam = client.get("/api/cameras/37081200001310000031").get_json()
    assert GEOD.inv(lon, lat, cam["lon"], cam["lat"])[2] < 1.0


def test_bad_ledger_reports_every_row_and_imports_nothing(client, session):
    _, lon, lat = grid_interior_point(session, 12)
    before = session.execute(text("SELECT count(*) FROM cameras")).scalar()
    csv = CSV_HEADER + (
        f"37081200001310000041,好,{lon},{lat},skynet,公安局,rtsp://192.0.2.1/a,\n"
        f"12345,坏编号,{lon},{lat},skynet,公安局,rtsp://192.0.2.1/a,\n"
        f"37081200001310000043,坏地址,{lon},{lat},skynet,公安局,exec:reboot,\n"
        f"37081200001310000041,重复,{lon},{lat},skynet,公安局,rtsp://192.0.2.1/a,\n"
        f"37081200001310000045,域外,121.47,31.23,skynet,公安局,rtsp://192.0.2.1/a,\n"
    )
    resp = client.post(
        "/api/cameras/import",
        data={"file": (io.BytesIO(csv.encode()), "ledger.csv")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400
    errors = resp.get_json()["details"]["errors"]
    assert sorted({e["row"] for e in errors}) == [2, 3, 4, 5]
    assert session.execute(text("SELECT count(*) FROM cameras")).scalar() == before


@pytest.mark.parametrize(
    "payload, filename",
    [(b"", "empty.csv"), (b"\x89PNG\r\n\x1a\n....", "photo.geojson"), (b"a,b\n1,2\n", "x.txt")],
)
def test_bad_files_are_rejected(client, payload, filename):
    resp = client.post(
        "/api/cameras/import",
        data={"file": (io.BytesIO(payload), filename)},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 400 and resp.get_json()["reason"]


@pytest.mark.parametrize("megabytes", [11, 21])
def test_oversized_upload_is_413(client, session, megabytes):
    from werkzeug.datastructures import FileStorage
    from werkzeug.test import encode_multipart

    before = session.execute(text("SELECT count(*) FROM cameras")).scalar()
    # Encoded in memory: the test client would otherwise spool it to an unclosed file.
    boundary, body = encode_multipart(
        {"file": FileStorage(io.BytesIO(b"x" * (megabytes * 1024 * 1024)), "big.csv")}
    )
    resp = client.post(
        "/api/cameras/import",
        data=body,
        content_type=f"multipart/form-data; boundary={boundary}",
    )
    assert resp.status_code == 413 and resp.get_json()["reason"]
    assert session.execute(text("SELECT count(*) FROM cameras")).scalar() == before


def test_coverage_follows_camera_status(client, session):
    code = session.execute(
        text("SELECT grid_code FROM cameras WHERE heading IS NOT NULL GROUP BY grid_code "
             "ORDER BY count(*) DESC LIMIT 1")
    ).scalar()
    session.execute(text("UPDATE cameras SET status = 'offline'"))
    before = {
        f["id"]: f["properties"]
        for f in client.get("/api/coverage/grids.geojson").get_json(force=True)["features"]
    }[code]
    assert before["area_share"] == 0 and before["houses_seen"] == 0
    session.execute(
        text("UPDATE cameras SET status = 'online' WHERE grid_code = :c"), {"c": code}
    )
    after = {
        f["id"]: f["properties"]
        for f in client.get("/api/coverage/grids.geojson").get_json(force=True)["features"]
    }[code]
    assert 0 < after["area_share"] <= 1
    assert after["cameras_online"] > 0
    blind = client.get("/api/coverage/blind.geojson?bbox=116.5,35.3,117.0,35.8").get_json(
        force=True
    )
    assert any(f["id"] == code for f in blind["features"])
    towns = client.get("/api/coverage/towns").get_json()
    assert len(towns) == 10 and any(t["area_share"] > 0 for t in towns)


def test_an_import_says_what_the_reader_did_to_the_file(client, session):
    _, lon, lat = grid_interior_point(session)
    ledger = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat, 42.0]},
        "properties": {k: v for k, v in new_camera(lon, lat, serial=31).items()
                       if k not in ("lon", "lat")}}]}
    resp = client.post("/api/cameras/import",
                       data={"file": (io.BytesIO(json.dumps(ledger).encode()), "ledger.geojson")},
                       content_type="multipart/form-data")
    body = resp.get_json()
    assert resp.status_code == 200 and body["inserted"] == 1, body
    dropped = [w for w in body["warnings"] if "Z/M values were dropped" in w["reason"]]
    assert dropped and dropped[0]["field"] == "geometry"
    assert dropped[0]["message"] != dropped[0]["reason"]  # said in Chinese to the page


def test_two_registrations_of_one_gb_id_at_once_leave_one_camera_and_a_conflict(engine,
                                                                                demo_loaded):
    from gridmap.errors import Conflict
    from tests.conftest import blocked_attempt

    with engine.connect() as conn:
        _, lon, lat = grid_interior_point(conn, 5)
    first = new_camera(lon, lat, 951, name="先登记")
    holder = db.session_factory(engine)()
    try:
        pid = holder.execute(text("SELECT pg_backend_pid()")).scalar()
        registry.create(holder, first)  # holds the new GB ID in the unique index
        # The second waits on the first's insert, then registers nothing.
        with blocked_attempt(engine, pid, lambda s: registry.create(
                s, {**first, "name": "后登记"}), Conflict) as outcome:
            holder.commit()
        assert isinstance(outcome["result"], Conflict)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT name FROM cameras WHERE gb_id = :g"),
                                {"g": first["gb_id"]}).scalars().all() == ["先登记"]
    finally:
        holder.close()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM cameras WHERE gb_id = :g"), {"g": first["gb_id"]})
