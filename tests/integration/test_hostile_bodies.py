"""Request bodies built to break the server: half surrogate pairs, deep nesting, huge numbers,
stream passwords in the wrong field. Each gets a 4xx with its reason, and nothing is stored.

Found by an audit of the running app; each case answered a 500 (or echoed a
password) before its fix.
"""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy import text

from tests.integration.test_cameras import all_text_forms, grid_interior_point, new_camera

GRID = "370812001001002"
PASSWORD = "S3cr@t!x/9"


def post_raw(client, path: str, body: str, method: str = "POST"):
    """Send ``body`` as the JSON text it is: escapes like \\ud800 reach the server unparsed."""
    return client.open(path, method=method, data=body.encode(), content_type="application/json")


def camera_count(session) -> int:
    return session.scalar(text("SELECT count(*) FROM cameras"))


@pytest.mark.parametrize("field", ["name", "department"])
def test_half_a_surrogate_pair_in_a_camera_is_refused(client, session, field):
    _, lon, lat = grid_interior_point(session)
    before = camera_count(session)
    raw = json.dumps(new_camera(lon, lat, 71, **{field: "@@"})).replace("@@", "bad \\ud800 text")
    resp = post_raw(client, "/api/cameras", raw)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert "not valid JSON" in resp.get_json()["reason"]
    assert camera_count(session) == before


@pytest.mark.parametrize("path, body", [
    ("/api/matters", '{"title": "\\udc00", "description": "x", "category": "other"}'),
    ("/api/dispatch", '{"targets": ["370812001"], "cameras": {"area": "\\ud800"}}'),
    ("/api/patrol/tours", '{"name": "\\ud83d", "gb_ids": []}'),
])
def test_half_a_surrogate_pair_anywhere_is_refused(client, path, body):
    resp = post_raw(client, path, body)
    assert resp.status_code == 400
    assert resp.get_json()["reason"].startswith("the body is not valid JSON")


def test_a_whole_surrogate_pair_is_a_character_and_is_kept(client, session):
    _, lon, lat = grid_interior_point(session)
    raw = json.dumps(new_camera(lon, lat, 72, name="@@")).replace("@@", "cam \\ud83d\\udcf7")
    resp = post_raw(client, "/api/cameras", raw)
    assert resp.status_code == 201, resp.get_json()
    assert resp.get_json()["name"] == "cam \N{CAMERA}"


@pytest.mark.parametrize("path, method", [("/api/cameras", "POST"), ("/api/matters", "POST"),
                                          ("/api/dispatch", "POST"), ("/api/grids/merge", "POST")])
def test_deeply_nested_json_is_refused(client, path, method):
    resp = post_raw(client, path, "[" * 2000 + "]" * 2000, method)
    assert resp.status_code == 400
    assert "not valid JSON" in resp.get_json()["reason"]


@pytest.mark.parametrize("body", ["", "NaN", '{"a": 1e400}', "[1, 2", "\xff"])
def test_malformed_json_says_so(client, body):
    resp = client.post("/api/cameras", data=body.encode("latin-1"), content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json()["reason"].startswith("the body is not valid JSON")


@pytest.mark.parametrize("version", [2**63, 2**64, 10**30])
def test_a_version_past_bigint_is_refused_not_a_500(client, session, version):
    before = session.scalar(text("SELECT max(version) FROM grid_versions"))
    resp = post_raw(client, f"/api/grids/{GRID}/revert",
                    f'{{"to": {version}, "version": {version}, "reason": "x"}}')
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["reason"]
    assert session.scalar(text("SELECT max(version) FROM grid_versions")) == before


def test_a_tour_id_past_64_bits_is_an_answer_not_a_500(client):
    resp = post_raw(client, "/api/patrol/findings",
                    f'{{"grid_code": "{GRID}", "note": "x", "tour_id": {2**64}}}')
    assert 400 <= resp.status_code < 500
    assert resp.get_json()["reason"]


@pytest.mark.parametrize("field", ["source", "status"])
def test_a_stream_url_in_the_wrong_field_does_not_come_back_with_its_password(client, session,
                                                                              caplog, field):
    _, lon, lat = grid_interior_point(session)
    url = f"rtsp://admin:{PASSWORD}@192.0.2.10/ch1"
    resp = client.post("/api/cameras", json=new_camera(lon, lat, 73, **{field: url}))
    assert resp.status_code == 400
    text_out = resp.get_data(as_text=True)
    assert f"unknown {field}" in resp.get_json()["reason"] and "192.0.2.10" in text_out
    for form in all_text_forms(PASSWORD):
        assert form not in text_out and form not in caplog.text
    # The same as a browser would see it: the error page.
    page = client.post("/api/cameras", json=new_camera(lon, lat, 73, **{field: url}),
                       headers={"Accept": "text/html"}).get_data(as_text=True)
    assert all(form not in page for form in all_text_forms(PASSWORD))


def test_an_import_report_does_not_repeat_a_password_from_any_column(client, session):
    _, lon, lat = grid_interior_point(session)
    csv_text = ("gb_id,name,lon,lat,source,main_url\n"
                f"37081200001310000074,x,{lon},{lat},rtsp://admin:{PASSWORD}@192.0.2.10/ch1,"
                "rtsp://192.0.2.10/ch1\n")
    before = camera_count(session)
    resp = client.post("/api/cameras/import",
                       data={"file": (io.BytesIO(csv_text.encode()), "ledger.csv")},
                       content_type="multipart/form-data")
    assert resp.status_code == 400
    errors = resp.get_json()["details"]["errors"]
    assert any("unknown source" in e["reason"] for e in errors)
    body = resp.get_data(as_text=True)
    assert all(form not in body for form in all_text_forms(PASSWORD))
    assert camera_count(session) == before


def test_a_roster_naming_a_column_twice_is_refused(client_as, session):
    client = client_as("gulou-gridadmin")
    members = session.scalar(text(
        "SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE g.code = :g AND w.left_at IS NULL"), {"g": GRID})
    roster = ("grid_code,grid_code,role,name,phone\n"
              f"{GRID},370812100231001,volunteer,张三,13800000000\n")
    resp = client.post("/api/teams/import",
                       data={"file": (io.BytesIO(roster.encode()), "roster.csv")},
                       content_type="multipart/form-data")
    assert resp.status_code == 400
    assert any("twice" in e["reason"] for e in resp.get_json()["details"]["errors"])
    assert session.scalar(text(
        "SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE g.code = :g AND w.left_at IS NULL"), {"g": GRID}) == members
