"""Grid-worker patrols: recording with sane times and workers, listing by grid/worker/day."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

GRID = "370812001001001"  # 东永安社区 (鼓楼街道)


@pytest.fixture
def worker(session) -> dict:
    """Return a worker of GRID and one of another grid of another town."""
    own = session.execute(text("SELECT w.id FROM grid_workers w JOIN grids g ON g.id = w.grid_id"
                               " WHERE g.code = :c ORDER BY w.id LIMIT 1"), {"c": GRID}).scalar()
    other, other_grid = session.execute(text(
        "SELECT w.id, g.code FROM grid_workers w JOIN grids g ON g.id = w.grid_id"
        " WHERE g.code LIKE '370812100%' ORDER BY w.id LIMIT 1")).one()
    return {"own": own, "other": other, "other_grid": other_grid}


def _times(hours_ago: float = 3, minutes: int = 90) -> tuple[str, str]:
    start = datetime.now(UTC) - timedelta(hours=hours_ago)
    return start.isoformat(), (start + timedelta(minutes=minutes)).isoformat()


def test_record_and_list_a_patrol(client, worker, session):
    started, ended = _times()
    resp = client.post(f"/api/grids/{GRID}/patrols", json={
        "worker_id": worker["own"], "started_at": started, "ended_at": ended,
        "distance_m": 2400.5, "places_visited": 7, "note": "<i>巡查</i>"})
    assert resp.status_code == 201, resp.get_json()
    patrol = resp.get_json()
    assert patrol["worker"]["id"] == worker["own"] and patrol["minutes"] == 90
    assert patrol["note"] == "<i>巡查</i>" and patrol["matters"] == []
    listed = client.get(f"/api/grids/{GRID}/patrols?day={patrol['day']}").get_json()
    assert patrol["id"] in {p["id"] for p in listed["items"]}
    by_worker = client.get(f"/api/grids/{GRID}/patrols?worker={worker['own']}").get_json()
    assert all(p["worker"]["id"] == worker["own"] for p in by_worker["items"])


def test_matters_reported_during_the_day_are_listed(client, worker, seeded):
    from gridmap import matters
    from gridmap.accounts import DISTRICT_UNIT, system_actor, unit_by_ref

    session = seeded
    lon, lat = session.execute(text(
        "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids"
        " WHERE code = :c"), {"c": GRID}).one()
    actor = system_actor(unit_by_ref(session, DISTRICT_UNIT), "patrol-test")
    now = datetime.now(UTC)
    detail = matters.intake(session, actor, {
        "source": "grid_worker", "category": "SJ.01", "lon": lon, "lat": lat,
        "title": "巡查发现垃圾", "reported_by_worker": worker["own"],
        "reported_at": (now - timedelta(minutes=30)).isoformat()})
    session.commit()
    started, ended = (now - timedelta(hours=1)).isoformat(), now.isoformat()
    patrol = client.post(f"/api/grids/{GRID}/patrols", json={
        "worker_id": worker["own"], "started_at": started, "ended_at": ended}).get_json()
    assert patrol["matters_reported"] == 1
    assert detail["ref"] in {m["ref"] for m in patrol["matters"]}


@pytest.mark.parametrize("change, field", [
    ({"worker_id": "other"}, "worker"),
    ({"ended_at": "before"}, "before"),
    ({"ended_at": "future"}, "future"),
    ({"started_at": "old"}, "31 days"),
    ({"started_at": "2026-01-01T08:00:00"}, "offset"),
    ({"distance_m": -5}, "distance_m"),
    ({"places_visited": 2.5}, "places_visited"),
    ({"extra": 1}, "unknown"),
])
def test_bad_patrols_are_400(client, worker, session, change, field):
    started, ended = _times()
    body = {"worker_id": worker["own"], "started_at": started, "ended_at": ended}
    now = datetime.now(UTC)
    for key, value in change.items():
        body[key] = {"other": worker["other"],
                     "before": (now - timedelta(hours=5)).isoformat(),
                     "future": (now + timedelta(hours=2)).isoformat(),
                     "old": (now - timedelta(days=40)).isoformat()}.get(value, value) \
            if isinstance(value, str) else value
    before = session.execute(text("SELECT count(*) FROM grid_patrols")).scalar()
    resp = client.post(f"/api/grids/{GRID}/patrols", json=body)
    assert resp.status_code == 400
    assert field in resp.get_json()["reason"]
    assert session.execute(text("SELECT count(*) FROM grid_patrols")).scalar() == before


def test_scope_by_area_prefix(client_as, worker):
    started, ended = _times()
    gulou = client_as("gulou-operator")
    assert gulou.get(f"/api/grids/{GRID}/patrols").status_code == 200
    # Another town's grid, and any grid for a department: not found.
    assert gulou.get(f"/api/grids/{worker['other_grid']}/patrols").status_code == 404
    assert gulou.post(f"/api/grids/{worker['other_grid']}/patrols", json={
        "worker_id": worker["other"], "started_at": started,
        "ended_at": ended}).status_code == 404
    assert client_as("police-operator").get(f"/api/grids/{GRID}/patrols").status_code == 404
    # Viewers read but do not write.
    viewer = client_as("gulou-viewer")
    assert viewer.get(f"/api/grids/{GRID}/patrols").status_code == 200
    assert viewer.post(f"/api/grids/{GRID}/patrols", json={
        "worker_id": worker["own"], "started_at": started, "ended_at": ended}).status_code == 403


def test_listing_period_is_checked(client):
    assert client.get(f"/api/grids/{GRID}/patrols?from=2026-01-01&to=2026-12-31").status_code == 400
    assert client.get(f"/api/grids/{GRID}/patrols?day=yesterday").status_code == 400
