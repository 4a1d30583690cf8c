"""The matters HTTP API: status codes, CSRF, uploads, scope and text that stays text."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import text
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from gridmap import accounts
from tests.integration.test_matters import JPEG, PDF, point_in

COMMUNITY = "370812001001"
OTHER_TOWN = "370812100"


def body(seeded, prefix=COMMUNITY, **extra):
    lon, lat = point_in(seeded, prefix)
    return {"source": "hotline_12345", "category": "CS.01", "lon": lon, "lat": lat,
            "title": "路面破损", "reporter_name": "李先生", "reporter_phone": "13900001111",
            **extra}


def count(session) -> int:
    return session.execute(text("SELECT count(*) FROM matters")).scalar()


def test_create_get_list_and_steps(seeded, client, client_as):
    resp = client.post("/api/matters", json=body(seeded))
    assert resp.status_code == 201, resp.get_json()
    m = resp.get_json()
    assert resp.headers["Location"] == f"/api/matters/{m['id']}"
    assert m["state"] == "transferred" and m["duplicates"] == []
    gulou = client_as("gulou-operator")
    got = gulou.get(f"/api/matters/{m['id']}").get_json()
    assert "accept" in got["allowed_actions"] and got["reporter"]["phone"] == "13900001111"
    assert gulou.post(f"/api/matters/{m['id']}/actions/accept").status_code == 200
    stepped = gulou.post(f"/api/matters/{m['id']}/actions/handle", json={"note": "已修复"})
    assert stepped.status_code == 200 and stepped.get_json()["state"] == "handled"
    listed = client.get(f"/api/matters?state=handled&area={COMMUNITY}").get_json()
    assert m["id"] in [i["id"] for i in listed["items"]]
    assert client.get("/api/matters/categories").get_json()["items"][0]["children"]
    units = gulou.get("/api/matters/units").get_json()["items"]
    assert {u["code"] for u in units} <= {c for c in accounts.DEMO_COMMUNITIES if c.startswith("370812001")}
    dups = client.post("/api/matters/duplicates", json={"category": "CS.01", "lon": m["lon"],
                                                        "lat": m["lat"]}).get_json()
    assert [d["id"] for d in dups["items"]] == [m["id"]]


BAD = [
    ({"category": "ZZ.00"}, 400),
    ({"lon": 116.0, "lat": 35.0}, 400),
    ({"lon": "east"}, 400),
    ({"title": "x" * 500}, 400),
    ({"urgency": 3}, 400),
    ({"extra": True}, 400),
]


@pytest.mark.parametrize(("change", "status"), BAD)
def test_bad_reports_are_4xx_and_store_nothing(seeded, client, change, status):
    before = count(seeded)
    resp = client.post("/api/matters", json=body(seeded, **change))
    assert resp.status_code == status
    assert set(resp.get_json()) >= {"error", "reason"}
    assert count(seeded) == before


def test_malformed_bodies_and_unknown_ids(seeded, client):
    before = count(seeded)
    assert client.post("/api/matters", data="not json",
                       content_type="application/json").status_code == 400
    assert client.post("/api/matters", json=[1, 2]).status_code == 400
    assert client.post("/api/matters", json={"title": "x" * 70_000}).status_code == 413
    assert client.get("/api/matters/999999999").status_code == 404
    assert client.post("/api/matters/999999999/actions/accept").status_code == 404
    assert client.get("/api/matters?limit=0").status_code == 400
    assert client.get("/api/matters?overdue=maybe").status_code == 400
    assert client.get("/api/matters?bbox=1,2,3").status_code == 400
    assert count(seeded) == before


def test_duplicate_ticket_is_409_and_illegal_step_409(seeded, client):
    first = client.post("/api/matters", json=body(seeded, source_ref="T-0001"))
    assert first.status_code == 201
    again = client.post("/api/matters", json=body(seeded, source_ref="T-0001"))
    assert again.status_code == 409
    mid = first.get_json()["id"]
    illegal = client.post(f"/api/matters/{mid}/actions/close", json={})
    assert illegal.status_code == 409
    assert "accept" not in illegal.get_json()["details"]["allowed"]
    assert "transfer" in illegal.get_json()["details"]["allowed"]
    assert client.post(f"/api/matters/{mid}/actions/rate", json={"rating": 9}).status_code == 409
    stale = client.post(f"/api/matters/{mid}/actions/comment", json={"note": "x", "version": 99})
    assert stale.status_code == 409 and stale.get_json()["details"]["version"] == 1
    assert client.post(f"/api/matters/{mid}/actions/fly", json={}).status_code == 400


def test_scope_and_roles_over_http(seeded, client, client_as):
    mid = client.post("/api/matters", json=body(seeded)).get_json()["id"]
    assert client_as("daan-operator").get(f"/api/matters/{mid}").status_code == 404
    assert client_as("police-operator").get(f"/api/matters/{mid}/cameras").status_code == 404
    assert client_as("community-operator").post(f"/api/matters/{mid}/actions/accept").status_code == 403
    assert client_as("gulou-viewer").post(f"/api/matters/{mid}/actions/accept").status_code == 403
    community = client_as("community-operator").get(f"/api/matters/{mid}").get_json()
    assert "reporter" not in community
    layer = client_as("daan-operator").get("/api/matters.geojson").get_json()
    assert mid not in [f["properties"]["id"] for f in layer["features"]]
    grid = community["grid_code"]
    assert client_as("daan-operator").get(f"/api/grids/{grid}/matters").status_code == 404
    section = client_as("gulou-operator").get(f"/api/grids/{grid}/matters").get_json()
    assert mid in [i["id"] for i in section["items"]]


def test_html_in_fields_is_stored_and_returned_as_text(seeded, client):
    evil = '<img src=x onerror="alert(1)">&amp;<script>alert(2)</script>'
    resp = client.post("/api/matters", json=body(seeded, title=evil[:120], description=evil,
                                                 address="<b>路口</b>"))
    assert resp.status_code == 201
    mid = resp.get_json()["id"]
    got = client.get(f"/api/matters/{mid}")
    assert got.mimetype == "application/json"
    detail = got.get_json()
    assert detail["description"] == evil and detail["address"] == "<b>路口</b>"
    stored = seeded.execute(text("SELECT description FROM matters WHERE id = :m"),
                            {"m": mid}).scalar()
    assert stored == evil


def test_multipart_intake_with_photos_and_attachments(seeded, client):
    form = {k: str(v) for k, v in body(seeded).items()}
    form["photos"] = (io.BytesIO(JPEG), "scene.jpg", "image/jpeg")
    resp = client.post("/api/matters", data=form, content_type="multipart/form-data")
    assert resp.status_code == 201, resp.get_json()
    m = resp.get_json()
    assert [a["filename"] for a in m["attachments"]] == ["scene.jpg"]
    aid = m["attachments"][0]["id"]
    got = client.get(f"/api/matters/{m['id']}/attachments/{aid}")
    assert got.status_code == 200 and got.data == JPEG and got.mimetype == "image/jpeg"
    assert got.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"/api/matters/{m['id']}/attachments/{aid + 1000}").status_code == 404
    doc = client.post(f"/api/matters/{m['id']}/attachments",
                      data={"kind": "document", "file": (io.BytesIO(PDF), "r.pdf")},
                      content_type="multipart/form-data")
    assert doc.status_code == 201 and doc.get_json()["content_type"] == "application/pdf"
    html = client.post(f"/api/matters/{m['id']}/attachments",
                       data={"kind": "photo", "file": (io.BytesIO(b"<html>hi</html>"), "x.jpg",
                                                       "image/jpeg")},
                       content_type="multipart/form-data")
    assert html.status_code == 400
    # Encoded in memory: the test client would otherwise spool it to an unclosed file.
    boundary, payload = encode_multipart({
        "kind": "photo",
        "file": FileStorage(io.BytesIO(JPEG + b"\x00" * (6 * 1024 * 1024)), "big.jpg"),
    })
    big = client.post(f"/api/matters/{m['id']}/attachments", data=payload,
                      content_type=f"multipart/form-data; boundary={boundary}")
    assert big.status_code == 413
    assert seeded.execute(text("SELECT count(*) FROM matter_attachments WHERE matter_id = :m"),
                          {"m": m["id"]}).scalar() == 2
    before = count(seeded)
    bad_form = {k: str(v) for k, v in body(seeded).items()}
    bad_form["photos"] = (io.BytesIO(b"GIF89a...."), "a.gif", "image/gif")
    assert client.post("/api/matters", data=bad_form,
                       content_type="multipart/form-data").status_code == 400
    assert count(seeded) == before  # the matter is not stored without its photo


def test_dispatch_layers_and_wall_registration(seeded, client, app):
    from tests.integration.test_matters import _seen_spot
    from web.wall import wall_options

    gb_id, lon, lat = _seen_spot(seeded, "370812001")
    mid = client.post("/api/matters", json=body(seeded, lon=lon, lat=lat)).get_json()["id"]
    cams = client.get(f"/api/matters/{mid}/cameras").get_json()
    assert gb_id in [c["gb_id"] for c in cams["items"]]
    town = accounts.unit_by_ref(seeded, "370812001").id
    resp = client.post(f"/api/matters/{mid}/dispatch", json={"unit_ids": [town], "minutes": 60})
    assert resp.status_code == 201, resp.get_json()
    order = resp.get_json()["order"]
    layer = client.get("/api/dispatch/orders.geojson").get_json()
    assert order in {f["properties"]["order"] for f in layer["features"]}
    assert client.post(f"/api/matters/{mid}/dispatch",
                       json={"unit_ids": "all"}).status_code == 400
    options = wall_options(app)
    assert {"matters", "matters_overdue", "dispatch_orders"} <= {lay["key"] for lay in options["layers"]}
    assert "matters" in {s["key"] for s in options["sections"]}
    assert "/api/matters/{matter_id}/actions/{action}" in client.get("/api/openapi.json").get_json()["paths"]


@pytest.fixture
def csrf_client(connection, database_url, demo_accounts):
    from tests.conftest import sign_in_client
    from web import create_app

    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "TEST_CONNECTION": connection})
    return sign_in_client(app, app.test_client(), "district-operator")


def test_csrf_is_enforced(seeded, csrf_client):
    before = count(seeded)
    payload = body(seeded)
    assert csrf_client.post("/api/matters", json=payload).status_code == 400
    assert csrf_client.post("/api/matters", json=payload,
                            headers={"X-CSRFToken": "forged"}).status_code == 400
    assert count(seeded) == before
    token = csrf_client.get("/api/me").get_json()["csrf_token"]
    ok = csrf_client.post("/api/matters", json=payload, headers={"X-CSRFToken": token})
    assert ok.status_code == 201
    mid = ok.get_json()["id"]
    assert csrf_client.post(f"/api/matters/{mid}/actions/comment",
                            json={"note": "x"}).status_code == 400
