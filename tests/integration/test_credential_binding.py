"""A camera's stored login is bound to its streams' scheme, host and port (security audit).

A grid admin who re-pointed a camera at a server of their own (PATCH main_url, no
login) used to keep the district's stored login on it: the sampler and the live
relay then sent it to that server. Logins hidden in queries, fragments and raw
reserved characters were stored as the address, and one address's login silently
replaced another's. Real PostGIS, the JSON API, demo users.
"""

from __future__ import annotations

import io
import json
from urllib.parse import quote

import pytest
from sqlalchemy import text

from tests.integration.test_cameras import all_text_forms
from video import registry
from video.registry import stream_credentials

TOWN = "370812001"  # 鼓楼街道: gulou-gridadmin's jurisdiction
PASSWORD = "S3cr3t!Zq9"
GB_ID = "37081200001310007701"
HOME_URL = "rtsp://10.0.0.5/ch1"
ATTACKER_URL = "http://127.0.0.1:57412/cam"


def _point_in(session, prefix: str = TOWN) -> tuple[float, float]:
    return session.execute(text(
        "SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) p FROM grids "
        "WHERE code LIKE :p ORDER BY code LIMIT 1) x"), {"p": prefix + "%"}).one()


def _body(session, gb_id: str = GB_ID, **extra) -> dict:
    lon, lat = _point_in(session)
    return {"gb_id": gb_id, "name": "登录绑定", "lon": lon, "lat": lat, "source": "skynet",
            "department": "鼓楼街道办事处", **extra}


def _with_login(url: str, user: str = "admin", password: str = PASSWORD) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{quote(user, safe='')}:{quote(password, safe='')}@{rest}"


@pytest.fixture
def camera(client, session) -> str:
    """A camera the district registered with rtsp://admin:S3cr3t%21Zq9@10.0.0.5/ch1."""
    made = client.post("/api/cameras", json=_body(session, main_url=_with_login(HOME_URL)))
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["has_credentials"] is True
    assert stream_credentials(session, GB_ID) == ("admin", PASSWORD)
    return GB_ID


def _stored_login_rows(session, gb_id: str) -> int:
    return session.execute(text(
        "SELECT count(*) FROM camera_credentials k JOIN cameras c ON c.id = k.camera_id "
        "WHERE c.gb_id = :g"), {"g": gb_id}).scalar()


def _row(session, gb_id: str) -> dict:
    return dict(session.execute(text(
        "SELECT main_url, sub_url, snapshot_url, has_credentials FROM cameras WHERE gb_id = :g"),
        {"g": gb_id}).mappings().one())


def _what_the_sampler_opens(session, gb_id: str) -> tuple[str, tuple[str, str] | None]:
    """The address the sampler and the relay open (sub, else main) and the login they attach."""
    url = session.execute(text("SELECT COALESCE(sub_url, main_url) FROM cameras WHERE gb_id = :g"),
                          {"g": gb_id}).scalar()
    return url, stream_credentials(session, gb_id)


def _audit_detail(session, gb_id: str, action: str) -> dict:
    return session.execute(text(
        "SELECT detail FROM audit_log WHERE target = :t AND action = :a ORDER BY id DESC LIMIT 1"),
        {"t": f"camera:{gb_id}", "a": action}).scalar()


def _import(client, body: str):
    return client.post("/api/cameras/import", data={"file": (io.BytesIO(body.encode()), "ledger.csv")},
                       content_type="multipart/form-data")


# --------------------------------------------------------------------------- finding 1: re-pointing


def test_repointing_a_camera_at_another_host_drops_its_login(client_as, session, camera):
    admin = client_as("gulou-gridadmin")
    resp = admin.patch(f"/api/cameras/{camera}", json={"main_url": ATTACKER_URL})
    assert resp.status_code == 200, resp.get_json()
    answer = resp.get_json()
    assert answer["main_url"] == ATTACKER_URL
    assert answer["has_credentials"] is False
    assert [(w["code"], w["field"]) for w in answer["warnings"]] == [("login_dropped", "main_url")]
    assert "enter the login for the new address" in answer["warnings"][0]["reason"]
    assert "登录" in answer["warnings"][0]["message"]  # in the page's language
    # Nothing the sampler or the relay would attach for the attacker's server.
    assert _what_the_sampler_opens(session, camera) == (ATTACKER_URL, None)
    assert _stored_login_rows(session, camera) == 0
    assert _row(session, camera)["has_credentials"] is False
    # The trail says so (never what the login was).
    detail = _audit_detail(session, camera, "camera.changed")
    assert detail["login_dropped"] is True and detail["fields"] == ["main_url"]
    trail = json.dumps(session.execute(text("SELECT json_agg(a) FROM audit_log a WHERE target = :t"),
                                       {"t": f"camera:{camera}"}).scalar(), ensure_ascii=False)
    body = resp.get_data(as_text=True) + trail
    assert all(form not in body for form in all_text_forms(PASSWORD))


@pytest.mark.parametrize("url", [
    "rtsp://10.0.0.5:8554/ch1",  # another port
    "rtsps://10.0.0.5/ch1",  # another scheme
    "http://10.0.0.5/ch1",
    "rtsp://10.0.0.6/ch1",  # another host
    "rtsp://cam.attacker.example/ch1",
])
def test_any_change_of_scheme_host_or_port_drops_the_login(client_as, session, camera, url):
    resp = client_as("gulou-gridadmin").patch(f"/api/cameras/{camera}", json={"main_url": url})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["has_credentials"] is False
    assert _what_the_sampler_opens(session, camera) == (url, None)


def test_a_new_sub_stream_elsewhere_drops_the_login(client_as, session, camera):
    # The sampler opens the sub stream first: a sub stream at another host is a re-point.
    resp = client_as("gulou-gridadmin").patch(f"/api/cameras/{camera}",
                                              json={"sub_url": "rtsp://127.0.0.1:57412/sub"})
    assert resp.status_code == 200
    assert [w["field"] for w in resp.get_json()["warnings"]] == ["sub_url"]
    assert _what_the_sampler_opens(session, camera) == ("rtsp://127.0.0.1:57412/sub", None)


@pytest.mark.parametrize("change", [
    {"main_url": "rtsp://10.0.0.5:554/Streaming/Channels/101"},  # path; the default port
    {"main_url": "rtsp://10.0.0.5/cam/realmonitor?channel=1&subtype=0"},  # path and query
    {"sub_url": "rtsp://10.0.0.5/ch2"},  # a sub stream on the same device
    {"snapshot_url": "http://127.0.0.1:57412/pic.jpg"},  # the login is never sent there
    {"name": "改名", "heading": 30},
])
def test_a_change_on_the_same_origin_keeps_the_login(client_as, session, camera, change):
    resp = client_as("gulou-gridadmin").patch(f"/api/cameras/{camera}", json=change)
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["has_credentials"] is True
    assert resp.get_json()["warnings"] == []
    assert stream_credentials(session, camera) == ("admin", PASSWORD)
    assert "login_dropped" not in _audit_detail(session, camera, "camera.changed")


def test_a_new_address_with_its_login_stores_that_login(client_as, session, camera):
    resp = client_as("gulou-gridadmin").patch(f"/api/cameras/{camera}", json={
        "main_url": _with_login("rtsp://10.0.0.9:554/ch1", "viewer", "N3w:P@ss/1")})
    assert resp.status_code == 200 and resp.get_json()["warnings"] == []
    assert resp.get_json()["has_credentials"] is True
    assert _what_the_sampler_opens(session, camera) == (
        "rtsp://10.0.0.9:554/ch1", ("viewer", "N3w:P@ss/1"))


def test_moving_back_does_not_bring_a_dropped_login_back(client_as, session, camera):
    admin = client_as("gulou-gridadmin")
    assert admin.patch(f"/api/cameras/{camera}", json={"main_url": ATTACKER_URL}).status_code == 200
    back = admin.patch(f"/api/cameras/{camera}", json={"main_url": HOME_URL})
    assert back.status_code == 200 and back.get_json()["has_credentials"] is False
    assert stream_credentials(session, camera) is None


def test_a_ledger_that_moves_a_camera_without_a_login_drops_it(client, session, camera):
    lon, lat = _point_in(session)
    header = "gb_id,name,lon,lat,source,department,main_url\n"
    kept = _import(client, header + f"{camera},登录绑定,{lon},{lat},skynet,鼓楼街道办事处,"
                                    "rtsp://10.0.0.5:554/Streaming/Channels/101\n")
    assert kept.status_code == 200, kept.get_json()
    assert [w.get("code") for w in kept.get_json()["warnings"]] == []
    assert stream_credentials(session, camera) == ("admin", PASSWORD)

    moved = _import(client, header + f"{camera},登录绑定,{lon},{lat},skynet,鼓楼街道办事处,{ATTACKER_URL}\n"
                                     f"37081200001310007702,新摄像头,{lon},{lat},skynet,鼓楼街道办事处,"
                                     "rtsp://10.0.0.77/ch1\n")
    assert moved.status_code == 200, moved.get_json()
    answer = moved.get_json()
    assert (answer["inserted"], answer["updated"]) == (1, 1)
    dropped = [w for w in answer["warnings"] if w.get("code") == "login_dropped"]
    assert [(w["row"], w["field"], w["gb_id"]) for w in dropped] == [(1, "main_url", camera)]
    assert dropped[0]["message"] and "login_dropped" not in answer
    assert _what_the_sampler_opens(session, camera) == (ATTACKER_URL, None)
    assert _audit_detail(session, camera, "camera.imported")["login_dropped"] is True
    assert "login_dropped" not in _audit_detail(session, "37081200001310007702", "camera.imported")
    summary = session.execute(text(
        "SELECT detail FROM audit_log WHERE action = 'cameras.imported' ORDER BY id DESC LIMIT 1")).scalar()
    assert set(summary) == {"filename", "inserted", "updated"}


def test_a_ledger_that_moves_a_camera_with_its_login_keeps_a_login(client, session, camera):
    lon, lat = _point_in(session)
    url = _with_login("rtsp://10.0.0.9/ch1", "viewer", "Ledger#PW")
    resp = _import(client, "gb_id,name,lon,lat,source,department,main_url\n"
                           f"{camera},登录绑定,{lon},{lat},skynet,鼓楼街道办事处,{url}\n")
    assert resp.status_code == 200 and resp.get_json()["warnings"] == []
    assert _what_the_sampler_opens(session, camera) == ("rtsp://10.0.0.9/ch1", ("viewer", "Ledger#PW"))


# --------------------------------------------------------------------------- clearing a login


def test_clear_login_removes_the_stored_login(client_as, session, camera):
    admin = client_as("gulou-gridadmin")
    for bad, reason in (("yes", "clear_login must be true or false"),
                        (1, "clear_login must be true or false")):
        refused = admin.patch(f"/api/cameras/{camera}", json={"clear_login": bad})
        assert refused.status_code == 400 and refused.get_json()["reason"] == reason
    both = admin.patch(f"/api/cameras/{camera}", json={
        "clear_login": True, "main_url": _with_login(HOME_URL, "x", "y")})
    assert both.status_code == 400 and both.get_json()["details"]["field"] == "clear_login"
    assert stream_credentials(session, camera) == ("admin", PASSWORD)
    kept = admin.patch(f"/api/cameras/{camera}", json={"clear_login": False, "name": "留着"})
    assert kept.status_code == 200 and kept.get_json()["has_credentials"] is True
    cleared = admin.patch(f"/api/cameras/{camera}", json={"clear_login": True})
    assert cleared.status_code == 200
    assert cleared.get_json()["has_credentials"] is False
    assert [w["code"] for w in cleared.get_json()["warnings"]] == ["login_cleared"]
    assert stream_credentials(session, camera) is None
    assert _audit_detail(session, camera, "camera.changed")["login_cleared"] is True


# --------------------------------------------------------------------------- finding 2: hidden logins


@pytest.mark.parametrize("url, secret", [
    ("rtsp://admin:12345#abc@10.0.0.41/ch1", "12345#abc"),
    ("rtsp://admin:8888?88@10.0.0.42:554/ch1", "8888?88"),
    ("rtsp://admin:2024/Ab@10.0.0.43/Streaming/Channels/101", "2024/Ab"),
])
def test_an_ambiguous_password_is_refused_and_nothing_stored(client, session, url, secret):
    resp = client.post("/api/cameras", json=_body(session, main_url=url))
    assert resp.status_code == 400, resp.get_json()
    answer = resp.get_json()
    assert answer["details"]["field"] == "main_url"
    assert "reserved character" in answer["reason"] and "percent-encode" in answer["reason"]
    assert "保留字符" in answer["message"]
    assert secret not in resp.get_data(as_text=True)
    assert session.execute(text("SELECT count(*) FROM cameras WHERE gb_id = :g"),
                           {"g": GB_ID}).scalar() == 0


@pytest.mark.parametrize("url, field, secret", [
    ("rtsp://10.0.0.7/ch1?password=S3cr3t%21Zq9", "main_url", "S3cr3t"),
    ("rtsp://10.0.0.9/ch1#admin:S3cr3t%21Zq9", "sub_url", "S3cr3t"),
    ("rtsp://10.0.0.8:554/user=admin_password=S3cr3t_channel=1_stream=0.sdp", "main_url", "S3cr3t"),
    ("http://10.0.0.14/x?auth=YWRtaW46UzNjcjN0IVpxOQ", "snapshot_url", "YWRtaW46"),
])
def test_a_login_in_a_query_path_or_fragment_is_refused_and_nothing_stored(
        client, client_as, session, camera, url, field, secret):
    before = _row(session, camera)
    patched = client_as("gulou-gridadmin").patch(f"/api/cameras/{camera}", json={field: url})
    assert patched.status_code == 400 and patched.get_json()["details"]["field"] == field
    assert "login" in patched.get_json()["reason"] or "'#'" in patched.get_json()["reason"]
    assert secret not in patched.get_data(as_text=True)
    assert _row(session, camera) == before
    assert stream_credentials(session, camera) == ("admin", PASSWORD)

    lon, lat = _point_in(session)
    ledger = (f"gb_id,name,lon,lat,source,department,main_url,{field}\n" if field != "main_url"
              else "gb_id,name,lon,lat,source,department,main_url\n")
    cells = f"rtsp://10.0.0.70/ch1,{url}" if field != "main_url" else url
    imported = _import(client, ledger + f"37081200001310007703,隐藏登录,{lon},{lat},skynet,公安局,{cells}\n")
    assert imported.status_code == 400
    errors = imported.get_json()["details"]["errors"]
    assert [(e["row"], e["field"]) for e in errors] == [(1, field)]
    assert secret not in imported.get_data(as_text=True)
    assert session.execute(text("SELECT count(*) FROM cameras WHERE gb_id = '37081200001310007703'")
                           ).scalar() == 0


def test_a_dahua_url_is_accepted(client, session):
    url = "rtsp://10.0.0.108:554/cam/realmonitor?channel=1&subtype=0"
    resp = client.post("/api/cameras", json=_body(
        session, main_url=_with_login(url), sub_url="rtsp://10.0.0.108:554/cam/realmonitor?channel=1&subtype=1",
        snapshot_url="http://10.0.0.108/cgi-bin/snapshot.cgi?channel=1&type=0"))
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["main_url"] == url
    assert _row(session, GB_ID)["sub_url"].endswith("?channel=1&subtype=1")
    assert stream_credentials(session, GB_ID) == ("admin", PASSWORD)


# --------------------------------------------------------------------------- finding 3: one login


def test_a_snapshot_login_never_replaces_the_stream_login(client_as, session):
    client = client_as("district-operator")
    made = client.post("/api/cameras", json=_body(
        session, main_url=_with_login(HOME_URL, "admin", "StreamPW1")))
    assert made.status_code == 201
    admin = client_as("gulou-gridadmin")
    before = _row(session, GB_ID)
    resp = admin.patch(f"/api/cameras/{GB_ID}", json={
        "snapshot_url": _with_login("http://10.0.0.5/ISAPI/Streaming/channels/101/picture",
                                    "viewer", "SnapPW2")})
    assert resp.status_code == 400, resp.get_json()
    assert resp.get_json()["details"]["field"] == "snapshot_url"
    assert "SnapPW2" not in resp.get_data(as_text=True)
    assert stream_credentials(session, GB_ID) == ("admin", "StreamPW1")
    assert _row(session, GB_ID) == before
    # The stream's own login may be repeated there: it changes nothing.
    same = admin.patch(f"/api/cameras/{GB_ID}", json={
        "main_url": _with_login(HOME_URL, "admin", "StreamPW1"),
        "snapshot_url": _with_login("http://10.0.0.5/pic.jpg", "admin", "StreamPW1")})
    assert same.status_code == 200, same.get_json()
    assert same.get_json()["snapshot_url"] == "http://10.0.0.5/pic.jpg"
    assert stream_credentials(session, GB_ID) == ("admin", "StreamPW1")


def test_different_logins_on_main_and_sub_are_refused(client, session):
    resp = client.post("/api/cameras", json=_body(
        session, main_url=_with_login(HOME_URL, "admin", "StreamPW1"),
        sub_url=_with_login("rtsp://10.0.0.5/ch2", "viewer", "OtherPW2")))
    assert resp.status_code == 400
    assert resp.get_json()["details"]["field"] == "sub_url"
    assert "different logins" in resp.get_json()["reason"]
    body = resp.get_data(as_text=True)
    assert "StreamPW1" not in body and "OtherPW2" not in body
    assert session.execute(text("SELECT count(*) FROM cameras WHERE gb_id = :g"),
                           {"g": GB_ID}).scalar() == 0


def test_the_same_login_on_main_and_sub_is_stored_once(client, session):
    resp = client.post("/api/cameras", json=_body(
        session, main_url=_with_login(HOME_URL), sub_url=_with_login("rtsp://10.0.0.5/ch2")))
    assert resp.status_code == 201, resp.get_json()
    assert stream_credentials(session, GB_ID) == ("admin", PASSWORD)


@pytest.mark.parametrize("sub_url", ["rtsp://@10.0.0.5/ch2", "rtsp://:@10.0.0.5/ch2"])
def test_an_empty_userinfo_keeps_the_stored_login(client_as, session, camera, sub_url):
    resp = client_as("gulou-gridadmin").patch(f"/api/cameras/{camera}", json={"sub_url": sub_url})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["sub_url"] == "rtsp://10.0.0.5/ch2"
    assert stream_credentials(session, camera) == ("admin", PASSWORD)
    assert _audit_detail(session, camera, "camera.changed")["login"] is False


def test_registry_update_without_a_warnings_list_still_drops(session, camera):
    # Callers other than the API (scripts) get the same binding.
    cam = registry.update(session, camera, {"main_url": ATTACKER_URL})
    assert cam["has_credentials"] is False and stream_credentials(session, camera) is None
