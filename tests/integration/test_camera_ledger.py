"""What the camera ledger page stands on: the area filter and search on the list and
the export, the area names it shows, and the page's offers following the role policy."""

from __future__ import annotations

import csv
import io
import json
from urllib.parse import quote

import pytest
from sqlalchemy import text

from video import registry
from video.registry import Filters, Scope

TOWN = "370812001"  # 鼓楼街道, the demo town's scope


def _count(session, where: str, **params) -> int:
    return session.execute(text(f"SELECT count(*) FROM cameras c WHERE {where}"), params).scalar()


def test_the_list_narrows_to_an_area_by_its_code(client, session):
    community = session.execute(text(
        "SELECT left(grid_code, 12) FROM cameras WHERE grid_code LIKE :p GROUP BY 1 "
        "ORDER BY count(*) DESC LIMIT 1"), {"p": TOWN + "%"}).scalar()
    for code in (TOWN, community):
        page = client.get(f"/api/cameras?area={code}&limit=1000").get_json()
        assert page["total"] == _count(session, "grid_code LIKE :p", p=code + "%") > 0
        assert {item["grid_code"][:len(code)] for item in page["items"]} == {code}


@pytest.mark.parametrize("area", ["37081", "3708120011", "town", "３７０８１２００１", "370812001%"])
def test_a_malformed_area_is_refused_with_its_reason(client, area):
    resp = client.get("/api/cameras", query_string={"area": area})
    assert resp.status_code == 400
    assert resp.get_json()["reason"] == "an area code has 6, 9, 12 or 15 digits"


def test_an_area_outside_the_callers_scope_adds_nothing(client_as, session):
    other_town = session.execute(text(
        "SELECT code FROM towns WHERE code <> :t ORDER BY code LIMIT 1"), {"t": TOWN}).scalar()
    town_client = client_as("gulou-operator")
    assert town_client.get(f"/api/cameras?area={other_town}").get_json()["total"] == 0
    assert town_client.get(f"/api/cameras?area={TOWN}").get_json()["total"] == _count(
        session, "grid_code LIKE :p", p=TOWN + "%")


def test_the_export_follows_the_search_and_filters_of_the_list(client, session):
    query = {"area": TOWN, "source": "skynet", "q": "路口"}
    listed = client.get("/api/cameras", query_string={**query, "limit": 1000}).get_json()
    assert 0 < listed["total"] < _count(session, "grid_code LIKE :p", p=TOWN + "%")
    body = client.get("/api/cameras/export.csv", query_string=query).get_data(as_text=True)
    rows = list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))
    assert sorted(r["gb_id"] for r in rows) == sorted(i["gb_id"] for i in listed["items"])
    assert all("路口" in r["name"] and r["source"] == "skynet" for r in rows)


def test_area_names_cover_the_towns_and_communities_holding_cameras_in_scope(session):
    everywhere = registry.area_names(session, Filters(scope=Scope()))
    held = session.execute(text(
        "SELECT count(DISTINCT left(grid_code, 12)), count(DISTINCT left(grid_code, 9)) "
        "FROM cameras WHERE grid_code IS NOT NULL")).one()
    assert sum(len(code) == 12 for code in everywhere) == held[0]
    assert sum(len(code) == 9 for code in everywhere) == held[1]
    assert everywhere[TOWN] == session.execute(
        text("SELECT name FROM towns WHERE code = :c"), {"c": TOWN}).scalar()
    in_town = registry.area_names(session, Filters(scope=Scope(prefix=TOWN)))
    assert in_town and all(code.startswith(TOWN) for code in in_town)
    assert {code: everywhere[code] for code in in_town} == in_town


@pytest.mark.parametrize("username, can_import, can_edit", [
    ("district-operator", True, True),
    ("district-gridadmin", True, True),
    ("district-patrol", False, False),
    ("district-viewer", False, False),
    ("gulou-operator", False, True),
    ("police-operator", False, True),
])
def test_the_page_offers_what_the_guard_allows(client_as, username, can_import, can_edit):
    client = client_as(username)
    page = client.get("/cameras").get_data(as_text=True)
    assert ('id="lg-import"' in page) is can_import
    assert ('id="lg-edit"' in page) is can_edit
    # The guard agrees: an empty upload is refused for its content (400), not the role (403).
    upload = client.post("/api/cameras/import", data={}, content_type="multipart/form-data")
    assert (upload.status_code == 400) is can_import
    assert (upload.status_code == 403) is (not can_import)


def _point_in(session, prefix: str) -> tuple[float, float]:
    return session.execute(text(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids "
        "WHERE code LIKE :p ORDER BY code LIMIT 1) x"), {"p": prefix + "%"}).one()


def _camera_body(gb_id: str, lon: float, lat: float, department: str = "鼓楼街道办事处") -> dict:
    return {"gb_id": gb_id, "name": "辖区外测试", "lon": lon, "lat": lat, "source": "skynet",
            "department": department, "main_url": "rtsp://192.0.2.7/a"}


def test_a_town_may_not_register_or_move_a_camera_into_another_town(client_as, session):
    town_client = client_as("gulou-operator")
    elsewhere = _point_in(session, "370812002")
    resp = town_client.post("/api/cameras", json=_camera_body("37081200001310009901", *elsewhere))
    assert resp.status_code == 403
    assert resp.get_json()["reason"] == "the camera would lie outside your jurisdiction"
    assert resp.get_json()["message"] == "摄像头将位于您的管辖范围之外"
    assert _count(session, "gb_id = '37081200001310009901'") == 0

    home = _point_in(session, TOWN)
    made = town_client.post("/api/cameras", json=_camera_body("37081200001310009902", *home))
    assert made.status_code == 201 and made.get_json()["town_code"] == TOWN
    moved = town_client.patch("/api/cameras/37081200001310009902",
                              json={"lon": elsewhere[0], "lat": elsewhere[1]})
    assert moved.status_code == 403
    kept = session.execute(text(
        "SELECT grid_code, ST_X(geom), ST_Y(geom) FROM cameras WHERE gb_id = '37081200001310009902'")).one()
    assert kept.grid_code.startswith(TOWN) and (kept[1], kept[2]) == pytest.approx(home)


def test_a_department_registers_only_cameras_it_owns(client_as, session):
    police = client_as("police-operator")
    anywhere = _point_in(session, "370812002")
    own = police.post("/api/cameras", json=_camera_body("37081200001310009911", *anywhere,
                                                        department="兖州区公安分局"))
    assert own.status_code == 201
    other = police.post("/api/cameras", json=_camera_body("37081200001310009912", *anywhere,
                                                          department="兖州区水务局"))
    assert other.status_code == 403
    handed_over = police.patch("/api/cameras/37081200001310009911", json={"department": "兖州区水务局"})
    assert handed_over.status_code == 403
    assert session.execute(text(
        "SELECT department FROM cameras WHERE gb_id = '37081200001310009911'")).scalar() == "兖州区公安分局"
    assert _count(session, "gb_id = '37081200001310009912'") == 0


def test_only_the_district_hands_a_camera_to_another_unit(client_as, session):
    police_camera = session.execute(text(
        "SELECT gb_id FROM cameras WHERE department = '兖州区公安分局' AND grid_code LIKE :p "
        "ORDER BY gb_id LIMIT 1"), {"p": TOWN + "%"}).scalar()
    town = client_as("gulou-operator")
    handed = town.patch(f"/api/cameras/{police_camera}", json={"department": "兖州区水务局"})
    assert handed.status_code == 403 and handed.get_json()["details"]["field"] == "department"
    assert client_as("police-operator").get(f"/api/cameras/{police_camera}").status_code == 200
    # The town still corrects the rest; the district may hand it over.
    assert town.patch(f"/api/cameras/{police_camera}", json={"name": "更正名称"}).status_code == 200
    moved = client_as("district-operator").patch(f"/api/cameras/{police_camera}",
                                                 json={"department": "兖州区水务局"})
    assert moved.status_code == 200 and moved.get_json()["department"] == "兖州区水务局"


def test_the_list_and_export_pick_cameras_by_whether_their_sector_is_recorded(client, session):
    missing = _count(session, "heading IS NULL OR fov IS NULL")
    known = _count(session, "heading IS NOT NULL AND fov IS NOT NULL")
    assert missing > 0 and known > 0
    page = client.get("/api/cameras?sector=unknown&limit=1000").get_json()
    assert page["total"] == missing
    assert all(i["heading"] is None or i["fov"] is None for i in page["items"])
    assert client.get("/api/cameras?sector=known&limit=1").get_json()["total"] == known
    body = client.get("/api/cameras/export.csv?sector=unknown").get_data(as_text=True)
    assert len(list(csv.DictReader(io.StringIO(body.lstrip("\ufeff"))))) == missing


def test_the_list_orders_by_name_or_by_how_long_a_camera_has_been_silent(client, session):
    ids = session.execute(text(
        "SELECT gb_id FROM cameras WHERE grid_code LIKE :p ORDER BY gb_id LIMIT 3"),
        {"p": TOWN + "%"}).scalars().all()
    # Three pictures, an hour apart; every other camera in the town has none.
    session.execute(text("UPDATE cameras SET snapshot_at = NULL WHERE grid_code LIKE :p"),
                    {"p": TOWN + "%"})
    for hours, gb_id in zip((3, 1, 2), ids, strict=True):
        session.execute(text("UPDATE cameras SET snapshot_at = now() - make_interval(hours => :h) "
                             "WHERE gb_id = :g"), {"h": hours, "g": gb_id})
    session.flush()
    total = _count(session, "grid_code LIKE :p", p=TOWN + "%")

    def order(sort: str, offset: int = 0) -> list[str]:
        page = client.get(f"/api/cameras?area={TOWN}&sort={sort}&limit=1000&offset={offset}")
        return [i["gb_id"] for i in page.get_json()["items"]]

    assert order("-snapshot_at")[:3] == [ids[1], ids[2], ids[0]]  # the latest picture first
    assert order("snapshot_at", offset=total - 3) == [ids[0], ids[2], ids[1]]  # silent ones first
    assert order("name") == session.execute(text(
        "SELECT gb_id FROM cameras WHERE grid_code LIKE :p ORDER BY name, gb_id LIMIT 1000"),
        {"p": TOWN + "%"}).scalars().all()


@pytest.mark.parametrize("query, reason", [
    ("sort=random", "sort must be gb_id, name, snapshot_at or -snapshot_at"),
    ("sort=gb_id;drop", "sort must be gb_id, name, snapshot_at or -snapshot_at"),
    ("sector=maybe", "sector must be known or unknown"),
])
def test_an_unknown_order_or_sector_is_refused_with_its_reason(client, query, reason):
    resp = client.get(f"/api/cameras?{query}")
    assert resp.status_code == 400 and resp.get_json()["reason"] == reason
    assert resp.get_json()["message"] != reason  # said in Chinese too


def test_a_ledger_in_the_chinese_template_imports_through_the_api(client, session):
    template = client.get("/api/cameras/import-template.csv")
    assert template.status_code == 200 and template.mimetype == "text/csv"
    assert "filename*=UTF-8''" in template.headers["Content-Disposition"]
    header = template.get_data().decode("utf-8-sig").strip()
    assert header.startswith("国标编码,名称,经度,纬度,来源,权属单位,主码流")
    lon, lat = _point_in(session, TOWN)
    values = {"国标编码": "37081200001310009931", "名称": "模板导入", "经度": lon, "纬度": lat,
              "来源": "雪亮", "权属单位": "兖州区委政法委", "主码流": "rtsp://192.0.2.31/a",
              "状态": "离线", "标签": "重点场所、夜市", "朝向": "30", "视场角": "70"}
    line = ",".join(str(values.get(h, "")) for h in header.split(","))
    resp = client.post("/api/cameras/import", data={
        "file": (io.BytesIO(template.get_data() + line.encode() + b"\r\n"), "台账.csv")},
        content_type="multipart/form-data")
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["inserted"] == 1
    cam = client.get("/api/cameras/37081200001310009931").get_json()
    assert (cam["source"], cam["status"], cam["tags"]) == ("sharp_eyes", "offline", ["key_place", "夜市"])
    assert (cam["heading"], cam["fov"], cam["town_code"]) == (30, 70, TOWN)
    english = client.get("/api/cameras/import-template.csv?lang=en").get_data().decode("utf-8-sig")
    assert english.startswith("gb_id,name,lon,lat,source,department,main_url")


def test_a_cameras_history_names_who_changed_which_fields_never_the_login(client_as, session):
    from tests.integration.test_cameras import all_text_forms

    client = client_as("district-operator")
    home = _point_in(session, TOWN)
    gb_id = "37081200001310009941"
    secret = "Hist0ry:P@ss/1"
    made = client.post("/api/cameras", json={**_camera_body(gb_id, *home),
                                             "main_url": f"rtsp://admin:{quote(secret, safe='')}@192.0.2.41/a"})
    assert made.status_code == 201
    changed = client.patch(f"/api/cameras/{gb_id}", json={
        "heading": 120, "fov": 50, "tags": ["crowd"],
        "main_url": f"rtsp://operator:{quote(secret + 'x', safe='')}@192.0.2.41/a"})
    assert changed.status_code == 200
    refused = client.patch(f"/api/cameras/{gb_id}", json={"fov": 999})
    assert refused.status_code == 400
    items = client.get(f"/api/cameras/{gb_id}/changes").get_json()["items"]
    assert [(i["action"], i["username"]) for i in items] == [
        ("camera.changed", "district-operator"), ("camera.registered", "district-operator")]
    assert sorted(items[0]["detail"]["fields"]) == ["fov", "heading", "tags"]  # the address kept its host
    assert items[0]["detail"]["login"] is True and items[1]["detail"]["login"] is True
    trail = json.dumps(session.execute(text(
        "SELECT json_agg(a) FROM audit_log a WHERE target = :t"), {"t": f"camera:{gb_id}"}).scalar(),
        ensure_ascii=False)
    for form in all_text_forms(secret):
        assert form not in trail
    # Outside the caller's jurisdiction the camera, and so its history, does not exist.
    assert client_as("daan-operator").get(f"/api/cameras/{gb_id}/changes").status_code == 404
    # That refusal is in the trail under the camera, but a camera's history shows its writes only.
    assert session.execute(text("SELECT count(*) FROM audit_log WHERE target = :t AND "
                                "action = 'scope.denied'"), {"t": f"camera:{gb_id}"}).scalar() == 1
    assert len(client.get(f"/api/cameras/{gb_id}/changes").get_json()["items"]) == 2


def test_an_import_enters_every_camera_in_its_history(client, session):
    lon, lat = _point_in(session, TOWN)
    ledger = "gb_id,name,lon,lat,source,department,main_url\n" + "".join(
        f"3708120000131000995{i},导入历史{i},{lon + i * 1e-4},{lat},skynet,公安局,rtsp://192.0.2.5{i}/a\n"
        for i in range(3))
    resp = client.post("/api/cameras/import", data={"file": (io.BytesIO(ledger.encode()), "历史.csv")},
                       content_type="multipart/form-data")
    assert resp.status_code == 200 and resp.get_json()["inserted"] == 3
    for i in range(3):
        items = client.get(f"/api/cameras/3708120000131000995{i}/changes").get_json()["items"]
        assert [x["action"] for x in items] == ["camera.imported"]
    summary = session.execute(text(
        "SELECT detail FROM audit_log WHERE action = 'cameras.imported' ORDER BY at DESC LIMIT 1")).scalar()
    assert summary == {"filename": "历史.csv", "inserted": 3, "updated": 0}


def _import(client, body: str, name: str = "ledger.csv", datum: str = "wgs84"):
    return client.post(f"/api/cameras/import?datum={datum}", data={
        "file": (io.BytesIO(body.encode()), name)}, content_type="multipart/form-data")


def _full_camera(client, session) -> dict:
    """Register a camera with every optional field set; return its record."""
    lon, lat = _point_in(session, TOWN)
    body = {"gb_id": "37081200001310009941", "name": "全字段", "lon": lon, "lat": lat,
            "source": "skynet", "department": "兖州区公安分局", "heading": 45, "fov": 60,
            "range_m": 80, "tags": ["crowd"], "main_url": "rtsp://192.0.2.41/main",
            "sub_url": "rtsp://192.0.2.41/sub", "snapshot_url": "http://192.0.2.41/pic.jpg"}
    assert client.post("/api/cameras", json=body).status_code == 201
    return client.get(f"/api/cameras/{body['gb_id']}").get_json()


def test_an_import_keeps_what_its_file_leaves_out(client, session):
    cam = _full_camera(client, session)
    # A ledger of names and positions only: the owner, streams, view and tags stay.
    resp = _import(client, "gb_id,name,lon,lat,source,main_url\n"
                   f"{cam['gb_id']},改名,{cam['lon']},{cam['lat']},skynet,{cam['main_url']}\n")
    assert resp.status_code == 200 and resp.get_json()["updated"] == 1, resp.get_json()
    after = client.get(f"/api/cameras/{cam['gb_id']}").get_json()
    assert after == {**cam, "name": "改名"}
    # A column that is there but empty does clear its value.
    resp = _import(client, "gb_id,name,lon,lat,source,main_url,sub_url\n"
                   f"{cam['gb_id']},改名,{cam['lon']},{cam['lat']},skynet,{cam['main_url']},\n")
    assert client.get(f"/api/cameras/{cam['gb_id']}").get_json()["sub_url"] is None


@pytest.mark.parametrize("fmt", ["csv", "csv&headers=zh", "geojson", "gpkg"])
def test_an_export_imports_back_without_changing_anything(client, session, fmt):
    cam = _full_camera(client, session)
    exported = client.get(f"/api/cameras/export.{fmt}&q={cam['gb_id']}".replace("&", "?", 1))
    assert exported.status_code == 200
    name = "back." + fmt.split("&")[0]
    resp = client.post("/api/cameras/import", data={
        "file": (io.BytesIO(exported.get_data()), name)}, content_type="multipart/form-data")
    assert resp.status_code == 200 and resp.get_json()["updated"] == 1, resp.get_json()
    assert client.get(f"/api/cameras/{cam['gb_id']}").get_json() == cam


def test_the_status_is_the_health_checks_to_set(client, session):
    cam = _full_camera(client, session)
    assert cam["status"] == "unknown"
    patched = client.patch(f"/api/cameras/{cam['gb_id']}", json={"status": "offline"})
    assert patched.status_code == 400 and patched.get_json()["details"]["field"] == "status"
    assert "health checks" in patched.get_json()["reason"]
    # The same status again is no change, so a client sending the whole record may.
    assert client.patch(f"/api/cameras/{cam['gb_id']}",
                        json={"status": "unknown", "name": "同状态"}).status_code == 200
    # An import keeps it too, and says so; a new camera's status is its first one.
    resp = _import(client, "gb_id,name,lon,lat,source,main_url,status\n"
                   f"{cam['gb_id']},x,{cam['lon']},{cam['lat']},skynet,{cam['main_url']},离线\n"
                   f"37081200001310009942,y,{cam['lon']},{cam['lat']},skynet,rtsp://192.0.2.42/a,离线\n")
    assert resp.status_code == 200, resp.get_json()
    answer = resp.get_json()
    assert (answer["inserted"], answer["updated"]) == (1, 1) and "status_kept" not in answer
    assert [w["field"] for w in answer["warnings"]] == ["status"]
    assert "1 existing camera(s) kept theirs" in answer["warnings"][0]["reason"]
    assert client.get(f"/api/cameras/{cam['gb_id']}").get_json()["status"] == "unknown"
    assert client.get("/api/cameras/37081200001310009942").get_json()["status"] == "offline"


def test_an_import_in_gcj02_says_its_coordinates_were_converted(client, session):
    lon, lat = _point_in(session, TOWN)
    resp = _import(client, "gb_id,name,lon,lat,source,main_url\n"
                   f"37081200001310009943,火星,{lon},{lat},skynet,rtsp://192.0.2.43/a\n",
                   datum="gcj02")
    assert resp.status_code == 200, resp.get_json()
    reasons = [w["reason"] for w in resp.get_json()["warnings"]]
    assert reasons == ["coordinates were converted from GCJ-02 to WGS-84"]
