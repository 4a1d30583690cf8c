"""Stream logins never reach a viewer: not through the live-view settings (refused at
start-up, stripped from live.json if set later), and not through the reasons a bad
camera-ledger import answers with (GDAL's own messages quote the file)."""

from __future__ import annotations

import base64
import io
import json
from urllib.parse import quote, quote_plus

import pytest
from sqlalchemy import text

from web import ConfigError, create_app

SECRET = "S3cr3t!Zq9"
LOGIN = f"admin:{SECRET}"
URL = f"rtsp://{LOGIN}@10.0.0.5/ch1"
DUMMY_DB = "postgresql://nobody@127.0.0.1:1/none"


def secret_forms() -> list[str]:
    """Every way the password could show: plain, percent-encoded, escaped, base64."""
    forms = {SECRET, quote(SECRET, safe=""), quote(SECRET, safe="").lower(), quote_plus(SECRET),
             quote(quote(SECRET, safe=""), safe=""), json.dumps(SECRET)[1:-1],
             SECRET.replace("!", "\\u0021"),
             base64.b64encode(LOGIN.encode()).decode().rstrip("="),
             base64.urlsafe_b64encode(LOGIN.encode()).decode().rstrip("="),
             base64.b64encode(SECRET.encode()).decode().rstrip("=")}
    return sorted(forms)


def assert_no_secret(body: str) -> None:
    for form in secret_forms():
        assert form not in body, form
        assert form.lower() not in body.lower(), form


# --- the live-view settings -------------------------------------------------------------


@pytest.mark.parametrize("settings", [
    {"LIVE_URL_TEMPLATE": f"https://{LOGIN}@media.example/live/{{gb_id}}.m3u8"},
    {"LIVE_URL_TEMPLATE": f"//{LOGIN}@media.example/live/{{gb_id}}.m3u8"},
    {"LIVE_URLS": {"37081200001320000001": f"https://{LOGIN}@media.example/a.m3u8"}},
    {"LIVE_URLS": {"37081200001320000001": "https://" + quote(f"{LOGIN}@", safe="")
                   + "media.example/a.m3u8"}},
    {"LIVE_URLS": {"37081200001320000001": quote(f"https://{LOGIN}@media.example/a", safe="")}},
    {"LIVE_URLS": {"37081200001320000001": "https://media.example/a.m3u8?auth="
                   + base64.b64encode(LOGIN.encode()).decode()}},
    {"LIVE_URLS": {f"key-{SECRET}": f"https://{LOGIN}@media.example/a.m3u8"}},
])
def test_a_media_server_login_in_the_settings_is_refused_at_start_up(settings):
    with pytest.raises(ConfigError) as refused:
        create_app({"DATABASE_URL": DUMMY_DB, **settings})
    message = str(refused.value)
    assert "login" in message and ("LIVE_URL_TEMPLATE" in message or "LIVE_URLS" in message)
    assert_no_secret(message)
    assert "admin" not in message


@pytest.mark.parametrize("settings, words", [
    ({"LIVE_URLS": ["https://media.example/a.m3u8"]}, "LIVE_URLS must map"),
    ({"LIVE_URLS": {"37081200001320000001": None}}, "must be a media-server URL"),
    ({"LIVE_URL_TEMPLATE": 42}, "LIVE_URL_TEMPLATE must be a URL"),
])
def test_malformed_live_settings_are_refused_with_the_reason(settings, words):
    with pytest.raises(ConfigError, match=words):
        create_app({"DATABASE_URL": DUMMY_DB, **settings})


def test_settings_without_a_login_start(monkeypatch):
    app = create_app({"DATABASE_URL": DUMMY_DB,
                      "LIVE_URL_TEMPLATE": "https://media.example/live/{gb_id}.m3u8",
                      "LIVE_URLS": {"37081200001320000001": "http://10.0.0.9:8080/a.flv"}})
    assert app.config["LIVE_URLS"]
    monkeypatch.setenv("GRIDMAP_LIVE_URL_TEMPLATE", f"https://{LOGIN}@media.example/{{gb_id}}")
    with pytest.raises(ConfigError):  # the environment is checked the same way
        create_app({"DATABASE_URL": DUMMY_DB})


def test_live_json_never_hands_out_a_login_set_on_a_running_app(app, client, session):
    gb_ids = session.scalars(text("SELECT gb_id FROM cameras ORDER BY gb_id LIMIT 3")).all()
    app.config["LIVE_URLS"] = {
        gb_ids[0]: f"https://{LOGIN}@media.example/a.m3u8",
        gb_ids[1]: "https://" + quote(f"{LOGIN}@", safe="") + "media.example/b.m3u8",
    }
    app.config["LIVE_URL_TEMPLATE"] = f"https://{LOGIN}@media.example/live/{{gb_id}}.m3u8"
    answers = [client.get(f"/api/cameras/{gb}/live.json") for gb in gb_ids]
    assert [a.status_code for a in answers] == [200, 200, 200]
    for answer in answers:
        assert_no_secret(answer.get_data(as_text=True))
    first, second, third = (a.get_json() for a in answers)
    assert first["mode"] == "external" and first["url"] == "https://media.example/a.m3u8"
    assert second["mode"] == "mjpeg"  # a login the URL parser cannot split off: no URL at all
    assert third["url"] == f"https://media.example/live/{gb_ids[2]}.m3u8"


# --- the camera-ledger import ------------------------------------------------------------


def _upload(client, document: dict, name: str = "ledger.geojson", lang: str = "zh"):
    return client.post(f"/api/cameras/import?lang={lang}",
                       data={"file": (io.BytesIO(json.dumps(document).encode()), name)},
                       content_type="multipart/form-data")


def _ledger(coordinates: list, **properties) -> dict:
    props = {"gb_id": "37081200001310000071", "name": "导入", "source": "skynet",
             "department": "公安局", **properties}
    return {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": props,
        "geometry": {"type": "Point", "coordinates": coordinates}}]}


@pytest.mark.parametrize("coordinate", [
    URL,
    quote(URL, safe=""),
    f"see {LOGIN}@10.0.0.5",
    f"it's '{SECRET}'",
    SECRET,
])
def test_a_coordinate_that_is_text_is_refused_without_repeating_it(client, coordinate):
    for lang in ("en", "zh"):
        resp = _upload(client, _ledger([coordinate, 35.5]), lang=lang)
        assert resp.status_code == 400
        body = resp.get_data(as_text=True)
        assert_no_secret(body)
        reason = resp.get_json()["details"]["errors"][0]["reason"]
        assert "not valid GeoJSON" in reason and "(a value from the file)" in reason, reason
    page = client.post("/api/cameras/import", headers={"Accept": "text/html"},
                       data={"file": (io.BytesIO(json.dumps(_ledger([URL, 35.5])).encode()),
                                      "ledger.geojson")},
                       content_type="multipart/form-data")
    assert page.status_code == 400
    assert_no_secret(page.get_data(as_text=True))


@pytest.mark.parametrize("field, value", [
    ("source", URL),
    ("source", quote(URL, safe="")),
    ("source", quote(quote(URL, safe=""), safe="").upper()),
    ("source", URL.replace("/", "\\/")),
    ("gb_id", quote(URL, safe="")),
    ("gb_id", f"//{LOGIN}@10.0.0.5"),
    ("main_url", URL + " x"),
    ("main_url", f"ftp://{LOGIN}@10.0.0.5/x"),
    ("main_url", "rtsp://10.0.0.5/x?auth=" + base64.b64encode(LOGIN.encode()).decode()),
])
def test_a_refused_ledger_value_comes_back_without_its_login(client, session, field, value):
    _, lon, lat = session.execute(text(
        "SELECT code, ST_X(p), ST_Y(p) FROM (SELECT code, ST_PointOnSurface(geom) p "
        "FROM grids WHERE kind = 'urban' ORDER BY code LIMIT 1) x")).one()
    resp = _upload(client, _ledger([lon, lat], **{field: value}))
    assert 400 <= resp.status_code < 500, resp.get_json()
    assert resp.get_json()["reason"]
    assert_no_secret(resp.get_data(as_text=True))
    history = client.get("/api/audit?limit=20")
    if history.status_code == 200:
        assert_no_secret(history.get_data(as_text=True))
