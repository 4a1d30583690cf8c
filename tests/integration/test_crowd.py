"""Crowd density on the real PostGIS (rolled back): sampler hook, aggregates, alerts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import cv2
import pytest
from sqlalchemy import text

from video import crowd
from video.crowd import CrowdHook, Reading, Source
from video.crowdsim import make_clip
from video.density import CameraState, fruin_level
from video.probe import ErrorClass, Health, ProbeResult
from video.registry import Filters
from video.sampler import Claim, record

pytestmark = pytest.mark.filterwarnings("error")

DEMO_TOWN = "370812001"  # the demo town user gulou-operator's jurisdiction (鼓楼街道)


# --------------------------------------------------------------------------- helpers


@pytest.fixture(autouse=True)
def alert_folder(tmp_path, monkeypatch):
    """Keep alert snapshots out of var/."""
    monkeypatch.setenv("GRIDMAP_ALERTS_DIR", str(tmp_path / "alerts"))
    return tmp_path / "alerts"


@pytest.fixture
def quiet_db(session):
    """Start from no crowd readings and alerts (inside the rolled-back transaction)."""
    session.execute(text("DELETE FROM crowd_alerts"))
    session.execute(text("DELETE FROM crowd_readings"))
    session.execute(text("UPDATE crowd_cameras SET alert_active = false, above_run = 0, "
                         "below_run = 0, alert_seen_at = NULL"))
    return session


def crowd_cameras_in_one_grid(session, n: int = 2, prefix: str = DEMO_TOWN) -> list:
    """Return n 'crowd' cameras sharing a grid under prefix (tagging some if needed)."""
    rows = session.execute(text(
        """
        SELECT c.id, c.gb_id, c.grid_code FROM cameras c
        WHERE c.grid_code = (SELECT grid_code FROM cameras
                             WHERE 'crowd' = ANY(tags) AND grid_code LIKE :p || '%'
                             GROUP BY grid_code HAVING count(*) >= :n
                             ORDER BY grid_code LIMIT 1)
          AND 'crowd' = ANY(c.tags)
        ORDER BY c.id LIMIT :n
        """
    ), {"n": n, "p": prefix}).all()
    if len(rows) < n:  # no such grid: tag cameras of one grid there instead
        rows = session.execute(text(
            """
            WITH g AS (SELECT grid_code FROM cameras WHERE grid_code LIKE :p || '%'
                       GROUP BY grid_code HAVING count(*) >= :n ORDER BY grid_code LIMIT 1)
            UPDATE cameras c SET tags = array_append(tags, 'crowd') FROM g
            WHERE c.id IN (SELECT id FROM cameras WHERE grid_code = g.grid_code ORDER BY id LIMIT :n)
            RETURNING c.id, c.gb_id, c.grid_code
            """
        ), {"n": n, "p": prefix}).all()
    assert len(rows) == n
    return sorted(rows, key=lambda r: r.id)


def jpeg(frame) -> bytes:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return data.tobytes()


def sample(camera, frame, at: float, health: Health = Health.ONLINE) -> tuple[Claim, ProbeResult]:
    claim = Claim(id=camera.id, gb_id=camera.gb_id, url="x", nominal_width=640,
                  nominal_height=360, last_signature=None, fail_count=0, interval_s=60,
                  status="online")
    result = ProbeResult(url="x", ok=health is Health.ONLINE, health=health,
                         error=None if health is Health.ONLINE else ErrorClass.TIMEOUT,
                         sampled_at=at, width=640, height=360, brightness=110.0,
                         signature=b"\x01" * 144, jpeg=jpeg(frame) if frame is not None else None)
    return claim, result


def run_like_the_sampler(session, hook, camera, frame, at, health=Health.ONLINE) -> None:
    """Record a sample and run the hook in its transaction, as Sampler._record does."""
    claim, result = sample(camera, frame, at, health)
    assert record(session, claim, result, sampler="test", delay_s=60, require_lease=False)
    hook(session, claim, result)


def readings_of(session, camera_id: int) -> list:
    return session.execute(
        text("SELECT measured_at, count, area_m2, density, level, method FROM crowd_readings "
             "WHERE camera_id = :id ORDER BY measured_at"), {"id": camera_id}
    ).all()


def put(session, source: Source, minutes_ago: float, count: float, area: float) -> Reading:
    """Store one reading (now - minutes_ago) for a source."""
    at = session.execute(text("SELECT now()")).scalar_one() - timedelta(minutes=minutes_ago)
    reading = Reading(at=at, count=count, area_m2=area)
    assert crowd.record_readings(session, source, [reading]) == [reading]
    return reading


# --------------------------------------------------------------------------- the hook


def test_hook_estimates_stores_readings_and_a_small_state(quiet_db):
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    clip = make_clip("oblique", n_people=25, n_frames=10, seed=7)
    crowd.set_calibration(session, camera.gb_id, clip.calibration)
    hook = CrowdHook(refresh_s=0)
    t0 = time.time() - 3600
    for i, frame in enumerate(clip.frames):
        run_like_the_sampler(session, hook, camera, frame, t0 + 60 * i)
    assert hook.stats == {"estimated": 10, "skipped": 0, "failed": 0, "alerts": 0}
    rows = readings_of(session, camera.id)
    assert len(rows) == 10
    assert rows[0].measured_at == datetime.fromtimestamp(t0, UTC)
    for r in rows:
        assert r.area_m2 == pytest.approx(clip.calibration["area_m2"])
        assert r.density == pytest.approx(r.count / r.area_m2)
        assert r.level == fruin_level(r.density)
        assert r.method
    # People are there: the estimates are not all zero, and none is absurd.
    assert max(r.count for r in rows) > 0
    assert all(r.count < 10 * max(clip.counts) for r in rows)
    state, state_at = session.execute(
        text("SELECT state, state_at FROM crowd_cameras WHERE camera_id = :id"), {"id": camera.id}
    ).one()
    assert len(state) < 64 * 1024 and CameraState.from_bytes(bytes(state)).frame_shape == (360, 640)
    assert state_at == rows[-1].measured_at
    # The sample itself was recorded as usual.
    assert session.execute(text("SELECT count(*) FROM camera_samples WHERE camera_id = :id "
                                "AND sampler = 'test'"), {"id": camera.id}).scalar() == 10


def test_hook_skips_uncalibrated_cameras_and_unusable_samples(quiet_db):
    session = quiet_db
    plain = session.execute(text("SELECT id, gb_id FROM cameras WHERE NOT ('crowd' = ANY(tags)) "
                                 "ORDER BY id LIMIT 1")).one()
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    clip = make_clip("oblique", n_people=5, n_frames=1, seed=1)
    crowd.set_calibration(session, camera.gb_id, clip.calibration)
    hook = CrowdHook(refresh_s=0)
    run_like_the_sampler(session, hook, plain, clip.frames[0], time.time())
    run_like_the_sampler(session, hook, camera, clip.frames[0], time.time(), Health.FROZEN)
    run_like_the_sampler(session, hook, camera, None, time.time() + 1, Health.OFFLINE)
    assert readings_of(session, plain.id) == [] and readings_of(session, camera.id) == []
    assert hook.stats["skipped"] == 2 and hook.stats["estimated"] == 0


def test_hook_failure_never_loses_the_sample(quiet_db, caplog):
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    # A calibration for a picture far larger than the sample: its ROI misses the frame.
    crowd.set_calibration(session, camera.gb_id, {
        "roi": [[5000, 5000], [5600, 5000], [5600, 5400], [5000, 5400]], "area_m2": 50,
        "person_height_px": [[5000, 40], [5400, 80]]})
    hook = CrowdHook(refresh_s=0)
    frame = make_clip("oblique", n_people=5, n_frames=1, seed=2).frames[0]
    run_like_the_sampler(session, hook, camera, frame, time.time())
    assert hook.stats["failed"] == 1
    assert "crowd estimate failed" in caplog.text
    # The savepoint was rolled back alone: the sample row and the session survive.
    assert session.execute(text("SELECT count(*) FROM camera_samples WHERE camera_id = :id "
                                "AND sampler = 'test'"), {"id": camera.id}).scalar() == 1
    assert readings_of(session, camera.id) == []


def test_hook_raises_one_alert_with_snapshot_place_and_nearest_cameras(quiet_db, alert_folder):
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    clip = make_clip("oblique", n_people=30, n_frames=6, seed=4)
    # A low per-place threshold, so this crowd is over it from the first sample.
    crowd.set_calibration(session, camera.gb_id, {**clip.calibration, "alert_density": 0.01})
    hook = CrowdHook(refresh_s=0)
    t0 = time.time() - 600
    for i, frame in enumerate(clip.frames):
        run_like_the_sampler(session, hook, camera, frame, t0 + 60 * i)
    alerts = session.execute(text("SELECT * FROM crowd_alerts WHERE camera_id = :id"),
                             {"id": camera.id}).mappings().all()
    assert len(alerts) == 1 and hook.stats["alerts"] == 1
    alert = alerts[0]
    second = readings_of(session, camera.id)[1]
    assert alert["state"] == "open" and alert["raised_at"] == second.measured_at
    assert alert["threshold"] == pytest.approx(0.01)
    assert alert["peak_density"] >= alert["density"] > 0.01
    assert alert["grid_code"] == camera.grid_code and alert["place"]
    assert (alert_folder / alert["snapshot_path"]).read_bytes()[:2] == b"\xff\xd8"
    near = alert["nearest_cameras"]
    assert 0 < len(near) <= crowd.NEAREST_LIMIT
    assert camera.gb_id not in {c["gb_id"] for c in near}
    assert [c["distance_m"] for c in near if not c["sees_point"]] == sorted(
        c["distance_m"] for c in near if not c["sees_point"])
    # The alert sits inside the camera's view sector, where the crowd is.
    inside = session.execute(text(
        "SELECT ST_Covers(c.view_sector, a.geom) FROM crowd_alerts a JOIN cameras c "
        "ON c.id = a.camera_id WHERE a.id = :id"), {"id": alert["id"]}).scalar()
    assert inside


def test_an_estimate_denser_than_any_crowd_is_capped_and_still_alerts(quiet_db, caplog):
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    clip = make_clip("oblique", n_people=30, n_frames=2, seed=4)
    # A calibration whose ground area is far too small: a dozen people on 1 m².
    crowd.set_calibration(session, camera.gb_id, {**clip.calibration, "area_m2": 1.0})
    hook = CrowdHook(refresh_s=0)
    for i, frame in enumerate(clip.frames):
        run_like_the_sampler(session, hook, camera, frame, time.time() - 120 + 60 * i)
    rows = readings_of(session, camera.id)
    assert len(rows) == 2 and hook.stats["failed"] == 0
    assert all(r.density == pytest.approx(crowd.MAX_DENSITY) and r.level == "F" for r in rows)
    assert all(r.method.endswith("+capped") for r in rows)
    assert "check its calibration" in caplog.text
    crush = session.execute(text("SELECT crush_risk FROM crowd_alerts WHERE camera_id = :id"),
                            {"id": camera.id}).scalar_one()
    assert crush  # the reading is kept at the maximum: a real crush is not lost


def test_a_calibration_area_outside_the_bounds_is_refused(quiet_db):
    from gridmap.errors import InvalidInput

    (camera,) = crowd_cameras_in_one_grid(quiet_db, 1)
    for area in (1e-300, 0.5, 2e6):
        with pytest.raises(InvalidInput, match="area_m2 must be within"):
            crowd.set_calibration(quiet_db, camera.gb_id, {**crowd.DEMO_CALIBRATION, "area_m2": area})


def test_alternating_densities_around_the_threshold_make_at_most_one_alert(quiet_db):
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    source = Source("camera", camera.id, threshold=1.0)
    start = datetime.now(UTC) - timedelta(hours=1)
    counts = [150, 150] + [120, 85] * 10 + [50, 50, 150, 150]  # area 100 m²
    for i, n in enumerate(counts):
        new = crowd.record_readings(session, source,
                                    [Reading(start + timedelta(minutes=i), n, 100.0)])
        crowd.advance_alerts(session, source, new)
    alerts = session.execute(text("SELECT state, cleared_at, peak_density FROM crowd_alerts "
                                  "WHERE camera_id = :id"), {"id": camera.id}).all()
    # Raised once; the swings inside the margin neither clear nor re-raise it; it
    # cleared at 0.5 and the return of the crowd re-arms the same, still unclosed alert.
    assert len(alerts) == 1
    assert alerts[0].state == "open" and alerts[0].cleared_at is None
    assert alerts[0].peak_density == pytest.approx(1.5)


def test_late_readings_are_stored_but_do_not_rewrite_the_alert_history(quiet_db):
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    source = Source("camera", camera.id, threshold=1.0)
    now = datetime.now(UTC)
    new = crowd.record_readings(session, source, [Reading(now, 10, 100.0)])
    crowd.advance_alerts(session, source, new)
    late = [Reading(now - timedelta(minutes=m), 300, 100.0) for m in (3, 2, 1)]
    assert crowd.advance_alerts(session, source, crowd.record_readings(session, source, late)) == []
    assert len(readings_of(session, camera.id)) == 4
    assert session.execute(text("SELECT count(*) FROM crowd_alerts")).scalar() == 0


def test_prune_deletes_only_old_readings(quiet_db):
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    source = Source("camera", camera.id)
    put(session, source, 60 * 24 * 40, 5, 100)
    put(session, source, 5, 5, 100)
    assert crowd.prune_readings(session, keep_days=30) == 1
    assert len(readings_of(session, camera.id)) == 1


# --------------------------------------------------------------------------- aggregates


@pytest.fixture
def scene(quiet_db):
    """Two cameras in one grid and a sensor, with known readings."""
    from video import sensors

    session = quiet_db
    a, b = crowd_cameras_in_one_grid(session, 2)
    for cam in (a, b):
        crowd.set_calibration(session, cam.gb_id, crowd.DEMO_CALIBRATION)
    lon, lat = session.execute(text(
        "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
        "WHERE code <> :g AND left(code, 9) <> left(:g, 9) ORDER BY code LIMIT 1"),
        {"g": a.grid_code}).one()
    sensor, _token = sensors.register(session, "test-gate-1", "测试闸机", lon, lat, 400.0)
    ca, cb = Source("camera", a.id), Source("camera", b.id)
    cs = Source("sensor", sensor["id"])
    put(session, ca, 30, 90, 80)  # too old for a 10-minute window
    put(session, ca, 4, 40, 80)  # latest of a: 0.5 p/m², level C
    put(session, cb, 2, 160, 80)  # b: 2.0 p/m², level E
    put(session, cs, 1, 100, 400)  # sensor: 0.25 p/m², level A
    return {"a": a, "b": b, "sensor": sensor}


def features_by_key(geojson: dict) -> dict:
    return {f["properties"]["key"]: f for f in geojson["features"]}


def test_heat_takes_the_latest_reading_per_source_within_the_window(scene, session):
    import json

    data = json.loads(crowd.heat(session, Filters(), "", minutes=10))
    got = features_by_key(data)
    assert set(got) == {scene["a"].gb_id, scene["b"].gb_id, "test-gate-1"}
    a, b, s = got[scene["a"].gb_id], got[scene["b"].gb_id], got["test-gate-1"]
    assert a["properties"]["density"] == pytest.approx(0.5) and a["properties"]["level"] == "C"
    assert b["properties"]["level"] == "E" and b["properties"]["count"] == pytest.approx(160)
    assert b["properties"]["weight"] == pytest.approx(round(2.0 / crowd.HEAT_FULL_DENSITY, 3))
    assert s["properties"]["kind"] == "sensor" and s["geometry"]["type"] == "Point"
    assert s["geometry"]["coordinates"] == pytest.approx(
        [scene["sensor"]["lon"], scene["sensor"]["lat"]], abs=1e-6)
    assert len(data["points"]) == 3
    assert sorted(p[2] for p in data["points"]) == sorted(
        f["properties"]["weight"] for f in data["features"])
    # A longer window reaches the same latest readings; footprints are polygons.
    wide = json.loads(crowd.heat(session, Filters(), "", minutes=60, geometry="footprint"))
    assert {f["geometry"]["type"] for f in wide["features"]} == {"Polygon"}
    assert features_by_key(wide)[scene["a"].gb_id]["properties"]["count"] == pytest.approx(40)


def test_heat_and_grids_are_scoped_by_jurisdiction(scene, session):
    import json

    town = DEMO_TOWN
    scoped = json.loads(crowd.heat(session, Filters(prefix=town), town, minutes=10))
    assert set(features_by_key(scoped)) == {scene["a"].gb_id, scene["b"].gb_id}
    other = scene["sensor"]["grid_code"][:9]
    assert set(features_by_key(json.loads(crowd.heat(session, Filters(prefix=other), other)))) == {
        "test-gate-1"}
    grids = json.loads(crowd.grids_geojson(session, Filters(prefix=town), town))
    assert [f["id"] for f in grids["features"]] == [scene["a"].grid_code]


def test_grid_choropleth_aggregates_people_over_measured_area(scene, session):
    import json

    data = json.loads(crowd.grids_geojson(session, Filters(), "", minutes=10))
    by_code = {f["id"]: f["properties"] for f in data["features"]}
    grid = by_code[scene["a"].grid_code]
    assert grid["people"] == pytest.approx(200) and grid["area_m2"] == pytest.approx(160)
    assert grid["density"] == pytest.approx(1.25) and grid["max_density"] == pytest.approx(2.0)
    assert grid["level"] == "E" and grid["calm"] == pytest.approx(0.2) and grid["sources"] == 2
    assert by_code[scene["sensor"]["grid_code"]]["level"] == "A"
    values = {v["key"]: v for v in json.loads(crowd.grid_values(session, Filters(), "", 10))}
    assert values[scene["a"].grid_code]["density"] == pytest.approx(1.25)


def test_replay_bins_readings_and_keeps_the_worst_per_step(scene, session):
    session.execute(text("DELETE FROM crowd_readings"))
    now = session.execute(text("SELECT now()")).scalar_one()
    empty = crowd.replay(session, Filters(), "", hours=1, step_s=600, now=now)
    assert empty["frames"] == [[]] * 6 and len(empty["index"]) == len(empty["times"]) == 6
    start = datetime.fromisoformat(empty["start"].replace("Z", "+00:00"))
    assert start.timestamp() % 600 == 0 and empty["end"] > now.isoformat()[:19]

    def at(step: int, second: int) -> datetime:
        return start + timedelta(seconds=600 * step + second)

    a, b = Source("camera", scene["a"].id), Source("camera", scene["b"].id)
    s = Source("sensor", scene["sensor"]["id"])
    crowd.record_readings(session, a, [Reading(at(1, 100), 40, 80), Reading(at(1, 300), 160, 80)])
    crowd.record_readings(session, b, [Reading(at(4, 30), 80, 80)])
    crowd.record_readings(session, s, [Reading(at(5, 10), 100, 400), Reading(at(6, 0), 900, 400)])
    data = crowd.replay(session, Filters(), "", hours=1, step_s=600, now=now)
    weights = [[p[2] for p in frame] for frame in data["frames"]]
    full = crowd.HEAT_FULL_DENSITY
    # Step 1 keeps a's worse reading; the reading at the end bound is not replayed.
    assert weights == [[], [round(2.0 / full, 3)], [], [], [round(1.0 / full, 3)],
                       [round(0.25 / full, 3)]]
    lat, lon, _w = data["frames"][5][0]  # [lat, lon] order for Leaflet
    assert (lat, lon) == pytest.approx((scene["sensor"]["lat"], scene["sensor"]["lon"]), abs=1e-5)
    town = scene["a"].grid_code[:9]
    scoped = crowd.replay(session, Filters(prefix=town), town, hours=1, step_s=600, now=now)
    assert [len(f) for f in scoped["frames"]] == [0, 1, 0, 0, 1, 0]


# --------------------------------------------------------------------------- web


def test_endpoints_answer_with_the_aggregates(client, scene):
    heat = client.get("/api/crowd/heat.geojson?minutes=10")
    assert heat.status_code == 200 and heat.mimetype == "application/geo+json"
    assert len(heat.get_json()["features"]) == 3
    replay = client.get("/api/crowd/replay?hours=2&step=30m").get_json()
    assert len(replay["frames"]) == 4 and replay["step_s"] == 1800
    grids = client.get("/api/crowd/grids.geojson").get_json()
    assert {f["id"] for f in grids["features"]} == {scene["a"].grid_code,
                                                   scene["sensor"]["grid_code"]}
    assert client.get("/api/crowd/grids.json").status_code == 200
    listed = client.get("/api/crowd/sensors").get_json()
    assert [s["device_id"] for s in listed if s["device_id"] == "test-gate-1"] == ["test-gate-1"]
    assert "token_hash" not in listed[0]


@pytest.mark.parametrize("url", [
    "/api/crowd/heat.geojson?minutes=0", "/api/crowd/heat.geojson?minutes=x",
    "/api/crowd/heat.geojson?geometry=hex", "/api/crowd/replay?hours=0",
    "/api/crowd/replay?step=5s", "/api/crowd/replay?hours=168&step=1m",
    "/api/crowd/grids.geojson?minutes=99999", "/api/alerts?state=nope",
])
def test_bad_parameters_are_400_with_a_reason(client, url):
    response = client.get(url)
    assert response.status_code == 400 and response.get_json()["reason"]


def test_a_town_user_sees_only_its_town(client_as, scene):
    assert scene["a"].grid_code.startswith(DEMO_TOWN)
    client = client_as("gulou-operator")
    keys = {f["properties"]["key"] for f in client.get("/api/crowd/heat.geojson").get_json()["features"]}
    assert keys == {scene["a"].gb_id, scene["b"].gb_id}
    grids = client.get("/api/crowd/grids.geojson").get_json()["features"]
    assert [f["id"] for f in grids] == [scene["a"].grid_code]
    assert client.get("/api/crowd/sensors").get_json() == []


def test_crowd_page_is_offline_and_carries_both_heat_layers(client, scene):
    html = client.get("/crowd").get_data(as_text=True)
    assert "L.heatLayer(" in html and "TDHeatmap" in html
    assert "/static/js/crowd.js" in html and "/vendor/folium/leaflet_heat.min.js" in html
    assert "https://" not in html and "cdn." not in html


# --------------------------------------------------------------------------- alerts


@pytest.fixture
def raised(quiet_db):
    """An open alert raised by a camera through the hysteresis."""
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    crowd.set_calibration(session, camera.gb_id, crowd.DEMO_CALIBRATION)
    source = Source("camera", camera.id, threshold=1.0)
    start = datetime.now(UTC) - timedelta(minutes=10)
    readings = [Reading(start + timedelta(minutes=i), n, 80.0) for i, n in enumerate((90, 95))]
    assert crowd.advance_alerts(session, source, crowd.record_readings(session, source, readings)) == [
        crowd.Transition.RAISE]
    alert_id = session.execute(text("SELECT id FROM crowd_alerts WHERE camera_id = :id"),
                               {"id": camera.id}).scalar_one()
    return {"id": alert_id, "camera": camera}


def test_alert_lifecycle_over_the_api(client, raised):
    url = f"/api/alerts/{raised['id']}"
    listed = client.get("/api/alerts?state=open").get_json()
    assert [a["id"] for a in listed["items"]] == [raised["id"]]
    assert listed["items"][0]["source_key"] == raised["camera"].gb_id
    assert client.get("/api/alerts.geojson").get_json()["features"][0]["id"] == raised["id"]

    ack = client.post(url + "/ack", json={"note": "民警已赶往现场"})
    assert ack.status_code == 200 and ack.get_json()["state"] == "acknowledged"
    assert ack.get_json()["acknowledged_by"] == "district-operator"
    assert client.post(url + "/ack").status_code == 409  # already acknowledged
    assert client.get("/api/alerts?state=open").get_json()["total"] == 0
    assert client.get("/api/alerts?state=active").get_json()["total"] == 1

    assert client.post(url + "/close", json={}).status_code == 400  # a note is required
    assert client.post(url + "/close", json={"note": "  "}).status_code == 400
    assert client.post(url + "/close", data="nope", content_type="application/json").status_code == 400
    closed = client.post(url + "/close", json={"note": "人群已疏导"})
    assert closed.status_code == 200
    body = closed.get_json()
    assert body["state"] == "closed" and body["closed_at"]
    assert [n["action"] for n in body["notes"]] == ["acknowledge", "close"]
    assert body["notes"][1]["note"] == "人群已疏导"

    conflict = client.post(url + "/close", json={"note": "again"})
    assert conflict.status_code == 409 and "closed" in conflict.get_json()["reason"]
    assert client.post(url + "/ack").status_code == 409
    assert client.get("/api/alerts.geojson").get_json()["features"] == []


def test_open_alert_can_be_closed_directly_and_unknown_is_404(client, raised):
    response = client.post(f"/api/alerts/{raised['id']}/close", json={"note": "误报"})
    assert response.status_code == 200
    assert client.post("/api/alerts/999999999/ack").status_code == 404
    assert client.get("/api/alerts/999999999").status_code == 404


def test_alerts_outside_the_jurisdiction_are_404(client_as, raised):
    assert raised["camera"].grid_code.startswith(DEMO_TOWN)
    inside = client_as("gulou-viewer")
    assert inside.get(f"/api/alerts/{raised['id']}").status_code == 200
    client = client_as("daan-operator")  # another town
    assert client.get("/api/alerts").get_json()["total"] == 0
    assert client.get(f"/api/alerts/{raised['id']}").status_code == 404
    assert client.post(f"/api/alerts/{raised['id']}/ack").status_code == 404
    assert client.get(f"/api/alerts/{raised['id']}/snapshot.jpg").status_code == 404


def test_alert_snapshot_is_served(client, quiet_db, alert_folder):
    session = quiet_db
    (camera,) = crowd_cameras_in_one_grid(session, 1)
    clip = make_clip("oblique", n_people=30, n_frames=2, seed=5)
    crowd.set_calibration(session, camera.gb_id, {**clip.calibration, "alert_density": 0.01})
    hook = CrowdHook(refresh_s=0)
    for i, frame in enumerate(clip.frames):
        run_like_the_sampler(session, hook, camera, frame, time.time() - 120 + 60 * i)
    alert_id = session.execute(text("SELECT id FROM crowd_alerts")).scalar_one()
    response = client.get(f"/api/alerts/{alert_id}/snapshot.jpg")
    assert response.status_code == 200 and response.data[:2] == b"\xff\xd8"
    response.close()
    detail = client.get(f"/api/alerts/{alert_id}").get_json()
    assert detail["has_snapshot"] and detail["nearest_cameras"]


POLICE = "兖州区公安分局"  # the department of the demo user police-operator


def a_camera(session, where: str) -> object:
    """Return (id, gb_id, grid_code) of the first camera matching a condition."""
    return session.execute(text(
        f"SELECT id, gb_id, grid_code FROM cameras WHERE {where} ORDER BY gb_id LIMIT 1"),
        {"d": POLICE, "t": DEMO_TOWN}).one()


def raise_alert(session, kind: str, source_id: int, area: float = 80.0,
                snapshot: bytes | None = None) -> int:
    """Raise an alert for a camera or sensor through the hysteresis; return its id."""
    source = Source(kind, source_id, threshold=1.0)
    start = datetime.now(UTC) - timedelta(minutes=10)
    readings = [Reading(start + timedelta(minutes=i), n * area / 80, area)
                for i, n in enumerate((90, 95))]
    new = crowd.record_readings(session, source, readings)
    assert crowd.advance_alerts(session, source, new, snapshot=snapshot) == [
        crowd.Transition.RAISE]
    column = crowd.SOURCES[kind][2]
    return session.execute(text(f"SELECT id FROM crowd_alerts WHERE {column} = :id"),
                           {"id": source_id}).scalar_one()


@pytest.fixture
def owners(quiet_db):
    """Alerts of a police camera outside the town, of a town camera the police do not
    own, of another camera neither sees, and of a sensor in the town."""
    from video import sensors

    session = quiet_db
    picture = jpeg(make_clip("oblique", n_people=5, n_frames=1, seed=3).frames[0])
    cameras = {
        "police": a_camera(session, "department = :d AND grid_code NOT LIKE :t || '%'"),
        "town": a_camera(session, "department <> :d AND grid_code LIKE :t || '%'"),
        "other": a_camera(session, "department <> :d AND grid_code NOT LIKE :t || '%'"),
    }
    alerts = {}
    for key, cam in cameras.items():
        crowd.set_calibration(session, cam.gb_id, crowd.DEMO_CALIBRATION)
        alerts[key] = raise_alert(session, "camera", cam.id, snapshot=picture)
    lon, lat = session.execute(text(
        "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids "
        "WHERE code LIKE :t || '%' ORDER BY code LIMIT 1"), {"t": DEMO_TOWN}).one()
    sensor, _token = sensors.register(session, "test-gate-town", "测试闸机", lon, lat, 200.0)
    alerts["sensor"] = raise_alert(session, "sensor", sensor["id"], area=200.0, snapshot=picture)
    return {"alerts": alerts, "cameras": cameras}


def visible_alerts(client) -> set[int]:
    listed = client.get("/api/alerts?limit=500").get_json()
    assert listed["total"] == len(listed["items"])
    features = client.get("/api/alerts.geojson").get_json()["features"]
    ids = {a["id"] for a in listed["items"]}
    assert {f["id"] for f in features} == ids
    return ids


def test_a_department_sees_and_handles_the_alerts_of_its_own_cameras(client_as, owners, session):
    alerts, cameras = owners["alerts"], owners["cameras"]
    client = client_as("police-operator")
    # Its camera's reading shows on the heat map; its alert now shows as well.
    heat = client.get("/api/crowd/heat.geojson").get_json()
    assert cameras["police"].gb_id in {f["properties"]["key"] for f in heat["features"]}
    assert visible_alerts(client) == {alerts["police"]}
    url = f"/api/alerts/{alerts['police']}"
    detail = client.get(url).get_json()
    assert detail["source_key"] == cameras["police"].gb_id
    # Neighbouring cameras are listed only where the department may see them.
    near = [c["gb_id"] for c in detail["nearest_cameras"]]
    if near:
        assert set(session.execute(text("SELECT DISTINCT department FROM cameras "
                                        "WHERE gb_id = ANY(:g)"), {"g": near}).scalars()) == {POLICE}
    snapshot = client.get(url + "/snapshot.jpg")
    assert snapshot.status_code == 200 and snapshot.data[:2] == b"\xff\xd8"
    snapshot.close()
    ack = client.post(url + "/ack", json={"note": "已派警力"})
    assert ack.status_code == 200 and ack.get_json()["acknowledged_by"] == "police-operator"
    assert client.post(url + "/close", json={"note": "已疏导"}).get_json()["state"] == "closed"
    # Alerts of cameras it does not own, and of sensors (area data), stay out of reach.
    for key in ("town", "other", "sensor"):
        other = f"/api/alerts/{alerts[key]}"
        assert client.get(other).status_code == 404, key
        assert client.get(other + "/snapshot.jpg").status_code == 404, key
        assert client.post(other + "/ack").status_code == 404, key
        assert client.post(other + "/close", json={"note": "x"}).status_code == 404, key


def test_towns_still_see_their_area_and_the_district_sees_everything(client_as, owners):
    alerts = owners["alerts"]
    town = client_as("gulou-operator")
    assert visible_alerts(town) == {alerts["town"], alerts["sensor"]}
    assert town.get(f"/api/alerts/{alerts['police']}").status_code == 404
    assert town.post(f"/api/alerts/{alerts['sensor']}/ack").status_code == 200
    assert visible_alerts(client_as("district-operator")) == set(alerts.values())
    assert visible_alerts(client_as("daan-operator")) & {alerts["town"], alerts["sensor"]} == set()


def test_the_alert_of_a_camera_dispatched_to_the_unit_is_view_only(client_as, owners, session):
    from gridmap import accounts, dispatch

    alerts, cameras = owners["alerts"], owners["cameras"]
    police = accounts.unit_by_ref(session, POLICE)
    district = accounts.unit_by_ref(session, accounts.DISTRICT_UNIT)
    dispatch.create_order(session, accounts.system_actor(district),
                          {"targets": [police.id], "cameras": {"gb_ids": [cameras["other"].gb_id]}})
    session.flush()
    client = client_as("police-operator")
    assert client.get(f"/api/cameras/{cameras['other'].gb_id}").status_code == 200
    assert visible_alerts(client) == {alerts["police"], alerts["other"]}
    url = f"/api/alerts/{alerts['other']}"
    assert client.get(url).status_code == 200
    for action, body in (("ack", None), ("close", {"note": "x"})):
        refused = client.post(f"{url}/{action}", json=body)
        assert refused.status_code == 403 and "view-only" in refused.get_json()["reason"]
    assert client.get(url).get_json()["state"] == "open"


def test_viewers_may_not_acknowledge(client_as, raised):
    client = client_as("district-viewer")
    assert client.get("/api/alerts").status_code == 200
    assert client.post(f"/api/alerts/{raised['id']}/ack").status_code == 403


def test_wall_layers_plug_into_the_wall_registry(app, monkeypatch):
    from web import wall
    from web.crowd_page import register_wall_layers

    monkeypatch.setattr(wall, "LAYERS", list(wall.LAYERS))  # leave the real registry alone
    register_wall_layers()
    offered = {layer["key"]: layer for layer in wall.wall_options(app)["layers"]}
    assert {"crowd_heat", "crowd_grids", "crowd_alerts"} <= set(offered)
    assert offered["crowd_heat"]["kind"] == "heat"


def test_only_sensor_ingestion_skips_sign_in(anon_client):
    assert anon_client.get("/api/crowd/heat.geojson").status_code == 401
    assert anon_client.get("/api/alerts").status_code == 401
    assert anon_client.post("/api/alerts/1/ack").status_code == 401
    # Ingestion answers on its own terms (here: no token), not with "sign in first".
    response = anon_client.post("/api/sensors/gate-x/readings", json={"time": 1, "count": 1})
    assert response.status_code == 401 and "Bearer" in response.get_json()["reason"]
