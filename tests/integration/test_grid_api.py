"""The grid JSON API and the first map page, through the Flask test client."""

from __future__ import annotations

import re

import pytest


def test_grids_geojson(client):
    resp = client.get("/api/grids.geojson")
    assert resp.status_code == 200
    assert resp.mimetype == "application/geo+json"
    data = resp.get_json(force=True)
    assert data["type"] == "FeatureCollection" and len(data["features"]) == 930
    props = data["features"][0]["properties"]
    assert {"code", "name", "houses", "residents", "key_persons"} <= set(props)


def test_towns_geojson(client):
    data = client.get("/api/areas/towns.geojson").get_json(force=True)
    assert len(data["features"]) == 10


@pytest.mark.parametrize(
    "url, status",
    [
        ("/api/grids/at?lon=abc&lat=35.5", 400),
        ("/api/grids/at?lat=35.5", 400),
        ("/api/grids/at?lon=nan&lat=35.5", 400),
        ("/api/grids/at?lon=0&lat=0", 400),
        ("/api/grids/370812999999999", 404),
        ("/api/grids/xyz", 400),
        ("/api/grids?bbox=1,2,3", 400),
        ("/api/grids?bbox=a,b,c,d", 400),
        ("/api/grids.geojson?prefix=37%27--", 400),
        ("/api/areas/planets.geojson", 400),
        ("/api/areas/370812999/hierarchy", 404),
    ],
)
def test_bad_input_gets_4xx_with_reason(client, url, status):
    resp = client.get(url)
    assert resp.status_code == status
    body = resp.get_json()
    assert body["reason"] and "Traceback" not in resp.get_data(as_text=True)


def test_point_lookup_api(client):
    grid = client.get("/api/grids.geojson").get_json(force=True)["features"][5]
    code = grid["properties"]["code"]
    detail = client.get(f"/api/grids/{code}").get_json()
    lon, lat = detail["centroid"]["coordinates"]
    found = client.get(f"/api/grids/at?lon={lon}&lat={lat}")
    # A centroid can fall outside a concave grid; then a neighbour answers.
    assert found.status_code == 200 and found.get_json()["code"][:6] == "370812"


def test_openapi_documents_every_api_route(app, client):
    spec = client.get("/api/openapi.json").get_json()
    documented = set(spec["paths"])
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") and rule.endpoint != "openapi":
            path = rule.rule.replace("<", "{").replace(">", "}")
            path = path.replace("{path:", "{").replace("{int:", "{")
            assert path in documented, path


def test_openapi_operations_declare_their_path_variables_security_and_errors(client):
    spec = client.get("/api/openapi.json").get_json()
    assert spec["security"] == [{"session": []}]
    assert set(spec["components"]["securitySchemes"]) == {"session", "device"}
    methods = {"get", "put", "post", "patch", "delete"}
    for path, operations in spec["paths"].items():
        variables = set(re.findall(r"{(\w+)}", path))
        for method, operation in operations.items():
            if method not in methods:
                continue
            declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
            assert declared == variables, (method, path)
            answers = operation["responses"]
            assert "400" in answers, (method, path)
            for status, answer in answers.items():
                if str(status).startswith(("4", "5")):
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    dispatch = spec["paths"]["/api/matters/{matter_id}/dispatch"]["post"]
    assert {"in": "path", "name": "matter_id", "required": True,
            "schema": {"type": "integer", "minimum": 0}} in dispatch["parameters"]
    assert spec["paths"]["/api/version"]["get"]["security"] == []
    assert "401" not in spec["paths"]["/api/version"]["get"]["responses"]
    readings = spec["paths"]["/api/sensors/{device_id}/readings"]["post"]
    assert readings["security"] == [{"device": []}] and "413" in readings["responses"]
    assert "401" in spec["paths"]["/api/cameras/nearby"]["get"]["responses"]


def test_map_page_is_offline_html(client):
    html = client.get("/").get_data(as_text=True)
    assert "/vendor/npm/leaflet/dist/leaflet.js" in html
    assert "cdn." not in html and "unpkg" not in html and "https://" not in html
    assert "/api/grids.geojson" in html


@pytest.mark.parametrize(
    "url, status",
    [
        ("/vendor/npm/leaflet/dist/leaflet.js", 200),
        ("/vendor/folium/leaflet_heat.min.js", 200),
        ("/vendor/npm/lodash/lodash.js", 404),
        ("/vendor/npm/leaflet/../../package.json", 404),
    ],
)
def test_vendor_assets_served_and_sandboxed(client, url, status):
    with client.get(url) as resp:
        assert resp.status_code == status


def test_every_answer_carries_the_security_headers(client, anon_client):
    for c, path in ((client, "/"), (client, "/api/cameras?limit=1"), (anon_client, "/login"),
                    (anon_client, "/api/cameras"), (client, "/no-such-page")):
        resp = c.get(path)
        assert resp.headers["X-Content-Type-Options"] == "nosniff", path
        assert resp.headers["X-Frame-Options"] == "SAMEORIGIN", path
        assert resp.headers["Referrer-Policy"] == "same-origin", path
        policy = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'self'" in policy, path


def test_the_policy_follows_the_configured_tile_and_media_servers(app, client):
    app.config["TILE_URL"] = "http://tiles.intranet/{z}/{x}/{y}.png"
    app.config["LIVE_URLS"] = {"37081200001320000001": "https://u:secret@media.intranet/a.m3u8"}
    policy = client.get("/").headers["Content-Security-Policy"]
    assert "img-src 'self' data: blob: http://tiles.intranet;" in policy
    assert "connect-src 'self' https://media.intranet;" in policy
    assert "secret" not in policy


def test_vendor_stylesheets_name_no_internet_font(client):
    path = "/vendor/npm/leaflet-timedimension/dist/leaflet.timedimension.control.css"
    with client.get(path) as resp:
        css = resp.get_data(as_text=True)
    assert resp.status_code == 200 and ".leaflet-bar-timecontrol" in css
    assert "//netdna" not in css and "@font-face" not in css


@pytest.mark.parametrize("path", ["/", "/wall", "/patrol", "/videowall", "/matters"])
def test_only_the_pages_own_inline_scripts_may_run(client, path):
    resp = client.get(path)
    policy = dict(part.split(" ", 1) for part in resp.headers["Content-Security-Policy"].split("; "))
    nonce = re.fullmatch(r"'self' 'nonce-([\w-]+)'", policy["script-src"]).group(1)
    html = resp.get_data(as_text=True)
    inline = re.findall(r"<script(?![^>]*\bsrc\s*=)[^>]*>", html)
    assert inline and all(f'nonce="{nonce}"' in tag for tag in inline), inline
    assert "unsafe-inline" not in policy["script-src"] and "javascript:" not in html
    again = client.get(path).headers["Content-Security-Policy"]
    assert nonce not in again  # a new nonce for every answer


@pytest.mark.parametrize("path", ["/", "/wall", "/crowd", "/patrol", "/matters"])
def test_only_the_pages_own_style_elements_apply(client, path):
    resp = client.get(path)
    policy = dict(part.split(" ", 1) for part in resp.headers["Content-Security-Policy"].split("; "))
    assert policy["style-src-attr"] == "'unsafe-inline'"  # Leaflet's positioning
    html = resp.get_data(as_text=True)
    styles = re.findall(r"<style[^>]*>", html)
    if not styles:  # a page of files only: no inline style element may apply
        assert policy["style-src-elem"] == "'self'"
        return
    nonce = re.fullmatch(r"'self' 'nonce-([\w-]+)'", policy["style-src-elem"]).group(1)
    assert all(f'nonce="{nonce}"' in tag for tag in styles), styles


def test_json_answers_allow_no_inline_script(client):
    policy = client.get("/api/cameras?limit=1").headers["Content-Security-Policy"]
    assert "script-src 'self';" in policy and "nonce" not in policy
