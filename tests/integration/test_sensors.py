"""Crowd-flow sensor ingestion over HTTP against the real PostGIS (rolled back)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from video import sensors

pytestmark = pytest.mark.filterwarnings("error")

DEVICE = "gate-test-01"


@pytest.fixture(autouse=True)
def alert_folder(tmp_path, monkeypatch):
    """Keep alert snapshots out of var/."""
    monkeypatch.setenv("GRIDMAP_ALERTS_DIR", str(tmp_path / "alerts"))


@pytest.fixture
def place(session):
    """A point inside a grid (lon, lat, grid code)."""
    return session.execute(text(
        "SELECT ST_X(p) AS lon, ST_Y(p) AS lat, code FROM "
        "(SELECT ST_PointOnSurface(geom) AS p, code FROM grids ORDER BY code LIMIT 1) g"
    )).one()


@pytest.fixture
def device(session, place):
    """A registered sensor and its token."""
    session.execute(text("DELETE FROM crowd_alerts WHERE sensor_id IS NOT NULL"))
    info, token = sensors.register(session, DEVICE, "测试广场东门", place.lon, place.lat, 200.0)
    return {**info, "token": token}


def post(client, body, token: str | None, device_id: str = DEVICE, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if "data" in kwargs:
        return client.post(f"/api/sensors/{device_id}/readings", headers=headers,
                           content_type="application/json", **kwargs)
    return client.post(f"/api/sensors/{device_id}/readings", headers=headers, json=body)


def stored(session, device_id: str = DEVICE) -> list:
    return session.execute(text(
        "SELECT r.measured_at, r.count, r.area_m2, r.density, r.level FROM crowd_readings r "
        "JOIN crowd_sensors s ON s.id = r.sensor_id WHERE s.device_id = :d ORDER BY measured_at"
    ), {"d": device_id}).all()


def iso(minutes_ago: float) -> str:
    return (datetime.now(UTC) - timedelta(minutes=minutes_ago)).isoformat()


# --------------------------------------------------------------------------- registration


def test_register_derives_the_grid_and_keeps_only_a_token_hash(session, device, place):
    row = session.execute(text("SELECT grid_code, token_hash FROM crowd_sensors WHERE device_id = :d"),
                          {"d": DEVICE}).one()
    assert row.grid_code == place.code == device["grid_code"]
    assert bytes(row.token_hash) == sensors.token_hash(device["token"])
    assert device["token"].encode() not in bytes(row.token_hash)


def test_grid_follows_moves_and_grid_edits(session, device, place):
    session.execute(text("UPDATE crowd_sensors SET geom = ST_SetSRID(ST_MakePoint(0, 0), 4326) "
                         "WHERE device_id = :d"), {"d": DEVICE})
    assert session.execute(text("SELECT grid_code FROM crowd_sensors WHERE device_id = :d"),
                           {"d": DEVICE}).scalar() is None
    session.execute(text("UPDATE crowd_sensors SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) "
                         "WHERE device_id = :d"), {"d": DEVICE, "x": place.lon, "y": place.lat})
    # Moving the grid away (as an edit would) re-derives the sensor's grid.
    session.execute(text("UPDATE grids SET geom = ST_Multi(ST_Translate(geom, 1, 1)) WHERE code = :c"),
                    {"c": place.code})
    assert session.execute(text("SELECT grid_code FROM crowd_sensors WHERE device_id = :d"),
                           {"d": DEVICE}).scalar() != place.code


def test_register_refuses_duplicates_and_places_outside_the_district(session, device, place):
    from gridmap.errors import Conflict, InvalidInput

    with pytest.raises(Conflict):
        sensors.register(session, DEVICE, "again", place.lon, place.lat, 10)
    with pytest.raises(InvalidInput):
        sensors.register(session, "far-away", "Beijing", 116.39, 39.9, 10)
    with pytest.raises(InvalidInput):
        sensors.register(session, "no-area", "x", place.lon, place.lat, 0)


def test_cli_adds_a_sensor_and_prints_its_token_once(session, place, monkeypatch):
    from contextlib import nullcontext

    from web.cli import main

    monkeypatch.setattr("video.cli._db_session", lambda: nullcontext(session))
    result = CliRunner().invoke(main, ["sensors", "add", "cli-gate-9", "--name", "北门",
                                       "--lon", str(place.lon), "--lat", str(place.lat),
                                       "--area-m2", "120"])
    assert result.exit_code == 0, result.output
    token = result.output.split("token (shown once): ")[1].strip()
    hashed = session.execute(text("SELECT token_hash FROM crowd_sensors WHERE device_id = 'cli-gate-9'")).scalar()
    assert bytes(hashed) == sensors.token_hash(token)
    again = CliRunner().invoke(main, ["sensors", "add", "cli-gate-9", "--name", "北门", "--lon",
                                      str(place.lon), "--lat", str(place.lat), "--area-m2", "1"])
    assert again.exit_code == 2 and "exists" in again.output
    listed = CliRunner().invoke(main, ["sensors", "list"])
    assert "cli-gate-9" in listed.output and "no readings" in listed.output


# --------------------------------------------------------------------------- ingestion
# Devices are not signed in: every request here goes through an anonymous client.


def test_one_reading_is_stored_and_resending_it_changes_nothing(anon_client, session, device):
    reading = {"time": iso(1), "count": 50}
    first = post(anon_client, reading, device["token"])
    assert first.status_code == 200
    assert first.get_json() == {"device_id": DEVICE, "received": 1, "stored": 1, "duplicates": 0,
                                "alerts_raised": 0, "alerts_cleared": 0}
    again = post(anon_client, {**reading, "count": 999}, device["token"])
    assert again.status_code == 200 and again.get_json()["duplicates"] == 1
    rows = stored(session)
    assert len(rows) == 1 and rows[0].count == 50 and rows[0].density == pytest.approx(0.25)
    assert rows[0].level == "A"


def test_batches_out_of_order_and_overlapping_are_merged(anon_client, session, device):
    times = [iso(m) for m in (10, 2, 30, 5)]
    first = post(anon_client, [{"time": t, "count": i} for i, t in enumerate(times)], device["token"])
    assert first.get_json()["stored"] == 4
    # A later batch overlaps the first and adds older and unix-time readings.
    older = (datetime.now(UTC) - timedelta(hours=3)).timestamp()
    second = post(anon_client, [{"time": times[1], "count": 7}, {"time": older, "count": 3,
                                                             "area_m2": 50}], device["token"])
    assert second.get_json() == {"device_id": DEVICE, "received": 2, "stored": 1,
                                 "duplicates": 1, "alerts_raised": 0, "alerts_cleared": 0}
    rows = stored(session)
    assert len(rows) == 5 and rows[0].area_m2 == 50 and rows[0].density == pytest.approx(0.06)
    assert [r.measured_at for r in rows] == sorted(r.measured_at for r in rows)


BAD_PAYLOADS = [
    ({"count": 1}, 400, "lacks time"),
    ({"time": "2024-13-01T00:00:00Z", "count": 1}, 400, "ISO 8601"),
    ({"time": "2030-01-01T00:00:00Z", "count": 1}, 400, "future"),
    ({"time": "2001-01-01T00:00:00Z", "count": 1}, 400, "older"),
    ({"time": "NOW", "count": 1}, 400, "ISO 8601"),
    ({"time": None, "count": 1}, 400, "ISO 8601"),
    ({"count": -4, "time": "T"}, 400, "ISO 8601"),
    ([], 400, "empty"),
    (17, 400, "object"),
    ([{"time": "2024-01-01T00:00:00Z", "count": 1}, "x"], 400, "readings[0]"),
]


@pytest.mark.parametrize("payload, status, words", BAD_PAYLOADS)
def test_bad_payloads_are_refused_and_nothing_is_stored(anon_client, session, device, payload, status,
                                                        words):
    response = post(anon_client, payload, device["token"])
    assert response.status_code == status
    assert words in response.get_json()["reason"]
    assert stored(session) == []


@pytest.mark.parametrize("data, status, words", [
    (b'{"time": 1, "count": NaN}', 400, "NaN"),
    (b'{"time": "%s", "count": Infinity}', 400, "Infinity"),
    (b"{not json", 400, "JSON"),
    (b"", 400, "JSON"),
])
def test_non_json_numbers_and_garbage_are_refused(anon_client, session, device, data, status, words):
    response = post(anon_client, None, device["token"], data=data)
    assert response.status_code == status and words in response.get_json()["reason"]
    assert stored(session) == []


@pytest.mark.parametrize("readings, words", [
    # Each answered a 500 (density inf) or went onto the heat map as 1e300 p/m², level F.
    (lambda: [{"time": iso(1), "count": 1, "area_m2": 5e-324}],
     "readings[0].area_m2 must be within 1–1,000,000 m²"),
    (lambda: [{"time": iso(1), "count": 1e6, "area_m2": 1e-303}], "readings[0].area_m2"),
    (lambda: {"time": iso(1), "count": 1, "area_m2": 1e-300}, "reading.area_m2"),
    (lambda: {"time": iso(1), "count": 1, "area_m2": 0.5}, "reading.area_m2"),
    (lambda: {"time": iso(1), "count": 1, "area_m2": 5e6}, "reading.area_m2"),  # 5 km²
    # 2,001 people on the sensor's 200 m² is over 10 p/m², the densest crowd possible.
    (lambda: [{"time": iso(2), "count": 5}, {"time": iso(1), "count": 2001}],
     "readings[1].count: 2001 people on 200 m² is more than 10 persons/m²"),
    (lambda: [{"time": iso(2), "count": 5}, {"time": iso(1), "count": 1e6, "area_m2": 1000}],
     "readings[1].count"),
])
def test_impossible_numbers_are_refused_with_the_reading_and_field(anon_client, session, device,
                                                                   readings, words):
    response = post(anon_client, readings(), device["token"])
    assert response.status_code == 400, response.get_json()
    assert words in response.get_json()["reason"]
    assert stored(session) == []
    assert session.execute(text("SELECT count(*) FROM crowd_alerts a JOIN crowd_sensors s "
                                "ON s.id = a.sensor_id WHERE s.device_id = :d"),
                           {"d": DEVICE}).scalar() == 0


def test_the_densest_possible_reading_is_still_accepted(anon_client, session, device):
    response = post(anon_client, [{"time": iso(2), "count": 2000},
                                  {"time": iso(1), "count": 10, "area_m2": 1}], device["token"])
    assert response.status_code == 200 and response.get_json()["stored"] == 2
    assert [r.density for r in stored(session)] == [10.0, 10.0]


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"time":' * 30_000, b"[" * 3_000 + b"]" * 3_000])
def test_deeply_nested_bodies_are_400_not_500(anon_client, session, device, data):
    response = post(anon_client, None, device["token"], data=data)
    assert response.status_code == 400
    assert "malformed JSON" in response.get_json()["reason"]
    assert stored(session) == []


def test_a_bad_reading_anywhere_refuses_the_whole_batch(anon_client, session, device):
    batch = [{"time": iso(m), "count": 5} for m in range(1, 6)]
    batch[3]["count"] = -1
    response = post(anon_client, batch, device["token"])
    assert response.status_code == 400 and "readings[3].count" in response.get_json()["reason"]
    batch[3]["count"] = float("nan")
    response = post(anon_client, None, device["token"], data=json.dumps(batch).encode())
    assert response.status_code == 400
    assert stored(session) == []


def test_oversize_batches_and_bodies_are_413(anon_client, session, device):
    batch = [{"time": iso(1 + i / 100), "count": 1} for i in range(sensors.MAX_BATCH + 1)]
    assert post(anon_client, batch, device["token"]).status_code == 413
    padding = b" " * (sensors.MAX_BODY_BYTES + 1)
    big = post(anon_client, None, device["token"], data=b'{"time": 1, "count": 1}' + padding)
    assert big.status_code == 413
    assert stored(session) == []


def test_wrong_missing_or_foreign_tokens_are_401(anon_client, session, device, place):
    _other, other_token = sensors.register(session, "gate-test-02", "西门", place.lon, place.lat, 50)
    reading = {"time": iso(1), "count": 1}
    for token in ("wrong", other_token, ""):
        response = post(anon_client, reading, token)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert post(anon_client, reading, None).status_code == 401
    basic = anon_client.post(f"/api/sensors/{DEVICE}/readings", json=reading,
                        headers={"Authorization": "Basic Z2F0ZTp4"})
    assert basic.status_code == 401
    assert stored(session) == []


def test_unknown_device_is_404_and_a_malformed_id_400(anon_client, device):
    reading = {"time": iso(1), "count": 1}
    assert post(anon_client, reading, device["token"], device_id="no-such-gate").status_code == 404
    assert post(anon_client, reading, device["token"], device_id="bad%20id").status_code == 400


def test_rotating_the_token_retires_the_old_one(anon_client, session, device):
    new_token = sensors.rotate_token(session, DEVICE)
    reading = {"time": iso(1), "count": 1}
    assert post(anon_client, reading, device["token"]).status_code == 401
    assert post(anon_client, reading, new_token).status_code == 200


def test_ingestion_needs_no_session_or_csrf_token(app, anon_client, device):
    app.config["WTF_CSRF_ENABLED"] = True  # as in production
    assert post(anon_client, {"time": iso(1), "count": 3}, device["token"]).status_code == 200


def test_closing_an_alert_while_still_crowded_lets_the_next_crowd_raise_a_new_one(
        anon_client, client, session, device):
    # Area 200 m²: 300 people is 1.5 p/m² (over the 1.08 threshold), 1,000 is 5 (a crush).
    first = post(anon_client, [{"time": iso(m), "count": 300} for m in (9, 8)], device["token"])
    assert first.get_json()["alerts_raised"] == 1

    def alerts():
        return session.execute(text(
            "SELECT a.id, a.state, a.crush_risk FROM crowd_alerts a JOIN crowd_sensors s "
            "ON s.id = a.sensor_id WHERE s.device_id = :d ORDER BY a.id"), {"d": DEVICE}).all()

    (closed_id, _, _), = alerts()
    assert client.post(f"/api/alerts/{closed_id}/close", json={"note": "已疏散"}).status_code == 200
    crush = post(anon_client, [{"time": iso(m), "count": 1000} for m in (7, 6, 5)], device["token"])
    assert crush.get_json()["alerts_raised"] == 1
    (old, new) = alerts()
    assert old == (closed_id, "closed", False)  # the closed one keeps what it was closed with
    assert new.state == "open" and new.crush_risk


def test_sensor_readings_raise_and_clear_an_alert(anon_client, session, device):
    # Area 200 m²; the default threshold is 1.08 p/m² and clears below 0.864.
    crowded = [{"time": iso(m), "count": 300} for m in (9, 8)]
    calm = [{"time": iso(m), "count": 20} for m in (7, 6)]
    # Sent in reverse: the server orders them by time before the hysteresis.
    first = post(anon_client, list(reversed(crowded + calm)), device["token"])
    assert first.get_json()["alerts_raised"] == 1 and first.get_json()["alerts_cleared"] == 1
    alert = session.execute(text(
        "SELECT a.state, a.cleared_at, a.peak_level, a.place, a.grid_code FROM crowd_alerts a "
        "JOIN crowd_sensors s ON s.id = a.sensor_id WHERE s.device_id = :d"), {"d": DEVICE}).one()
    assert alert.state == "open" and alert.cleared_at is not None and alert.peak_level == "E"
    assert alert.grid_code == device["grid_code"] and alert.place
    # A late crowded reading from before the clear does not re-raise anything.
    late = post(anon_client, [{"time": iso(8.5), "count": 400}, {"time": iso(7.5), "count": 400}],
                device["token"])
    assert late.get_json()["stored"] == 2 and late.get_json()["alerts_raised"] == 0
    assert session.execute(text("SELECT count(*) FROM crowd_alerts a JOIN crowd_sensors s "
                                "ON s.id = a.sensor_id WHERE s.device_id = :d"),
                           {"d": DEVICE}).scalar() == 1
