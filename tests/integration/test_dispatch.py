"""Dispatch orders down the tiers, escalations up them, video patrol and the video wall.

The lifecycle runs through the HTTP API as the people involved: the district
operator dispatches a camera from elsewhere to a town; the town sees the order
arrive, acknowledges it, watches the camera (which lies outside its jurisdiction),
and closes the order, after which the camera is gone again. Expiry and
cancellation end the access too. Every refused request leaves the tables as they
were.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import pytest
from sqlalchemy import text

from gridmap import accounts

TOWN = "370812001"  # 鼓楼街道, the target
OTHER_TOWN = "370812100"  # 大安镇
COMMUNITY = "370812001001"
OTHER_COMMUNITY = "370812100201"
COUNTED = ("dispatch_orders", "dispatch_targets", "dispatch_cameras", "dispatch_events")


def unit_id(session, ref: str) -> int:
    return accounts.unit_by_ref(session, ref).id


def camera_in(session, prefix: str, not_prefix: str | None = None, n: int = 1) -> list[str]:
    sql = "SELECT gb_id FROM cameras WHERE grid_code LIKE :p || '%'"
    if not_prefix:
        sql += " AND grid_code NOT LIKE :q || '%'"
    rows = session.execute(text(sql + " ORDER BY gb_id LIMIT :n"),
                           {"p": prefix, "q": not_prefix, "n": n}).scalars().all()
    return list(rows)


def counts(session) -> dict[str, int]:
    return {t: session.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in COUNTED}


@pytest.fixture
def district(client_as):
    return client_as("district-operator")


@pytest.fixture
def gulou(client_as):
    return client_as("gulou-operator")


def send(client, targets, cameras, **extra):
    return client.post("/api/dispatch", json={"targets": targets, "cameras": cameras, **extra})


# --------------------------------------------------------------------------- lifecycle


def test_dispatch_lifecycle_grants_and_ends_access(district, gulou, session):
    gb_id = camera_in(session, OTHER_TOWN)[0]
    town = unit_id(session, TOWN)
    assert gulou.get(f"/api/cameras/{gb_id}").status_code == 404
    first_poll = gulou.get("/api/dispatch/inbox").get_json()
    assert first_poll["orders"] == []

    created = send(district, [town], {"gb_ids": [gb_id]}, priority="high",
                   note="河道巡查，请关注", incident="ALERT-2024-0007", expires_in_minutes=90)
    assert created.status_code == 201, created.get_json()
    order = created.get_json()
    assert order["state"] == "open" and order["kind"] == "dispatch"
    assert [c["gb_id"] for c in order["cameras"]] == [gb_id]
    assert order["targets"][0]["state"] == "pending"
    assert order["incident"] == "ALERT-2024-0007"

    # The target sees it arrive on its next poll.
    poll = gulou.get(f"/api/dispatch/inbox?since={first_poll['server_time']}").get_json()
    assert [o["id"] for o in poll["orders"]] == [order["id"]]
    assert poll["orders"][0]["my_state"] == "pending"
    assert poll["orders"][0]["priority"] == "high"

    # While open, the camera is visible to the town although it is not in its area.
    assert gulou.get(f"/api/cameras/{gb_id}").status_code == 200
    assert gulou.get(f"/api/cameras/{gb_id}/live.json").status_code == 200
    layer = {r[0] for r in gulou.get("/api/cameras/layer.json").get_json()["rows"]}
    assert gb_id in layer

    ack = gulou.post(f"/api/dispatch/{order['id']}/ack")
    assert ack.status_code == 200
    assert ack.get_json()["targets"][0]["state"] == "acknowledged"
    assert gulou.post(f"/api/dispatch/{order['id']}/ack").status_code == 409

    closed = gulou.post(f"/api/dispatch/{order['id']}/close",
                        json={"feedback": "已到场处置，河道畅通"})
    assert closed.status_code == 200
    body = closed.get_json()
    assert body["state"] == "closed" and body["targets"][0]["feedback"] == "已到场处置，河道畅通"
    actions = [step["action"] for step in body["timeline"]]
    assert actions[0] == "created" and actions[-1] == "closed"
    assert {"acknowledged", "viewed"} <= set(actions)
    times = [step["at"] for step in body["timeline"]]
    assert times == sorted(times)

    # Access ends with the close.
    assert gulou.get(f"/api/cameras/{gb_id}").status_code == 404
    assert gb_id not in {r[0] for r in gulou.get("/api/cameras/layer.json").get_json()["rows"]}
    # The sender sees the whole timeline too; closing again is refused.
    assert district.get(f"/api/dispatch/{order['id']}").get_json()["state"] == "closed"
    assert gulou.post(f"/api/dispatch/{order['id']}/close", json={}).status_code == 409


def test_expiry_ends_access_and_refuses_steps(district, gulou, session):
    gb_id = camera_in(session, OTHER_TOWN)[0]
    order = send(district, [unit_id(session, TOWN)], {"gb_ids": [gb_id]}).get_json()
    assert gulou.get(f"/api/cameras/{gb_id}").status_code == 200
    session.execute(text("UPDATE dispatch_orders SET created_at = now() - interval '2 hours', "
                         "expires_at = now() - interval '1 minute' WHERE id = :o"),
                    {"o": order["id"]})
    assert gulou.get(f"/api/cameras/{gb_id}").status_code == 404
    before = counts(session)
    ack = gulou.post(f"/api/dispatch/{order['id']}/ack")
    assert ack.status_code == 410 and "expired" in ack.get_json()["reason"]
    assert gulou.post(f"/api/dispatch/{order['id']}/close", json={}).status_code == 410
    assert counts(session) == before
    detail = gulou.get(f"/api/dispatch/{order['id']}").get_json()
    assert detail["state"] == "expired" and detail["timeline"][-1]["action"] == "expired"
    assert gulou.get("/api/dispatch/inbox").get_json()["orders"] == []


def test_cancel_by_the_sender_ends_access(district, gulou, session):
    gb_id = camera_in(session, OTHER_TOWN)[0]
    order = send(district, [unit_id(session, TOWN)], {"gb_ids": [gb_id]}).get_json()
    assert gulou.post(f"/api/dispatch/{order['id']}/cancel", json={}).status_code == 403
    resp = district.post(f"/api/dispatch/{order['id']}/cancel", json={"reason": "误派"})
    assert resp.status_code == 200 and resp.get_json()["state"] == "cancelled"
    assert gulou.get(f"/api/cameras/{gb_id}").status_code == 404


def test_one_target_closing_does_not_end_the_others(district, client_as, session):
    gb_id = camera_in(session, "370812002")[0]
    targets = [unit_id(session, TOWN), unit_id(session, OTHER_TOWN)]
    order = send(district, targets, {"gb_ids": [gb_id]}).get_json()
    daan = client_as("daan-operator")
    gulou = client_as("gulou-operator")
    assert gulou.post(f"/api/dispatch/{order['id']}/close", json={"feedback": "ok"}).status_code == 200
    assert gulou.get(f"/api/cameras/{gb_id}").status_code == 404
    assert daan.get(f"/api/cameras/{gb_id}").status_code == 200
    assert daan.get(f"/api/dispatch/{order['id']}").get_json()["state"] == "open"


def test_a_department_without_cameras_watches_what_is_dispatched(district, client_as, session):
    gb_id = camera_in(session, OTHER_TOWN)[0]
    emergency = client_as("emergency-operator")
    assert emergency.get("/api/cameras?limit=1").get_json()["total"] == 0
    send(district, [unit_id(session, "兖州区应急管理局")], {"gb_ids": [gb_id]})
    page = emergency.get("/api/cameras").get_json()
    assert page["total"] == 1 and page["items"][0]["gb_id"] == gb_id


def test_hashed_and_array_scope_forms_select_the_same_cameras(district, client_as, session):
    """KNN queries match dispatched cameras by hash, listings by array: same cameras."""
    from video.registry import Scope

    town = unit_id(session, TOWN)
    elsewhere = camera_in(session, OTHER_TOWN, n=8)
    open_order = send(district, [town], {"gb_ids": elsewhere[0:2]}).get_json()
    expired = send(district, [town], {"gb_ids": elsewhere[2:4]}).get_json()
    cancelled = send(district, [town], {"gb_ids": elsewhere[4:6]}).get_json()
    closed = send(district, [town, unit_id(session, "370812002")],
                  {"gb_ids": elsewhere[6:8]}).get_json()
    assert all(o.get("id") for o in (open_order, expired, cancelled, closed))
    session.execute(text("UPDATE dispatch_orders SET created_at = now() - interval '2 hours', "
                         "expires_at = now() - interval '1 minute' WHERE id = :o"),
                    {"o": expired["id"]})
    assert district.post(f"/api/dispatch/{cancelled['id']}/cancel", json={}).status_code == 200
    gulou = client_as("gulou-operator")
    assert gulou.post(f"/api/dispatch/{closed['id']}/close", json={}).status_code == 200

    def selected(ordered: bool) -> set[str]:
        where, params = Scope(prefix=TOWN, unit_id=town).sql(ordered=ordered)
        return set(session.execute(text(f"SELECT c.gb_id FROM cameras c WHERE TRUE {where}"),
                                   params).scalars())

    own = set(session.execute(text("SELECT gb_id FROM cameras WHERE grid_code LIKE :p"),
                              {"p": TOWN + "%"}).scalars())
    assert selected(ordered=True) == selected(ordered=False) == own | set(elsewhere[0:2])
    # Nearby (the hashed form) next to a dispatched camera finds it; not the expired one.
    for gb_id, seen in ((elsewhere[0], True), (elsewhere[2], False)):
        cam = district.get(f"/api/cameras/{gb_id}").get_json()
        near = gulou.get(f"/api/cameras/nearby?lon={cam['lon']}&lat={cam['lat']}&radius=30")
        assert (gb_id in {i["gb_id"] for i in near.get_json()["items"]}) is seen


# --------------------------------------------------------------------------- escalation


def test_community_escalates_up_to_its_town_and_the_district(client_as, session):
    community = client_as("community-patrol")
    gb_id = camera_in(session, COMMUNITY)[0]
    to_town = community.post("/api/dispatch", json={
        "kind": "escalation", "targets": [unit_id(session, TOWN)],
        "cameras": {"gb_ids": [gb_id]}, "priority": "urgent", "note": "聚集，需支援"})
    assert to_town.status_code == 201, to_town.get_json()
    district_unit = unit_id(session, accounts.DISTRICT_UNIT)
    to_district = community.post("/api/dispatch", json={
        "kind": "escalation", "targets": [district_unit], "cameras": {"gb_ids": [gb_id]}})
    assert to_district.status_code == 201
    inbox = client_as("gulou-operator").get("/api/dispatch/inbox").get_json()["orders"]
    assert [o["kind"] for o in inbox] == ["escalation"]
    district_inbox = client_as("district-operator").get("/api/dispatch/inbox").get_json()
    assert to_district.get_json()["id"] in {o["id"] for o in district_inbox["orders"]}


@pytest.mark.parametrize(
    ("user", "kind", "target", "status"),
    [
        ("community-operator", "escalation", OTHER_TOWN, 403),  # not its own town
        ("community-operator", "escalation", "兖州区公安分局", 403),  # not upward
        ("community-operator", "dispatch", COMMUNITY, 403),  # nobody below a community
        ("gulou-operator", "dispatch", COMMUNITY, 201),  # its own community
        ("gulou-operator", "dispatch", OTHER_COMMUNITY, 403),  # another town's community
        ("gulou-operator", "dispatch", OTHER_TOWN, 403),  # a peer
        ("gulou-operator", "dispatch", "兖州区公安分局", 403),
        ("gulou-operator", "escalation", "DISTRICT", 201),
        ("gulou-patrol", "dispatch", COMMUNITY, 403),  # role: patrol leads escalate only
        ("gulou-patrol", "escalation", "DISTRICT", 201),
        ("gulou-viewer", "escalation", "DISTRICT", 403),
        ("district-gridadmin", "dispatch", TOWN, 403),
        ("district-operator", "dispatch", "兖州区公安分局", 201),
        ("district-operator", "dispatch", OTHER_COMMUNITY, 201),
        ("district-operator", "escalation", TOWN, 403),  # nothing above the district
        ("police-operator", "dispatch", TOWN, 403),
        ("police-operator", "escalation", "DISTRICT", 201),
    ],
)
def test_who_may_address_whom(client_as, session, user, kind, target, status):
    ref = accounts.DISTRICT_UNIT if target == "DISTRICT" else target
    client = client_as(user)
    me = client.get("/api/me").get_json()["user"]["unit"]
    # A camera the sender can see (its own area, or the department's own cameras).
    if me["kind"] == "department":
        gb_id = session.execute(text("SELECT gb_id FROM cameras WHERE department = :d "
                                     "ORDER BY gb_id LIMIT 1"), {"d": me["department"]}).scalar()
    else:
        gb_id = camera_in(session, me["code"] if me["kind"] != "district" else "370812")[0]
    before = counts(session)
    resp = client.post("/api/dispatch", json={"kind": kind, "targets": [unit_id(session, ref)],
                                              "cameras": {"gb_ids": [gb_id]}})
    assert resp.status_code == status, resp.get_json()
    if status != 201:
        assert counts(session) == before


def test_addressable_units_list(client_as):
    town = client_as("gulou-operator").get("/api/dispatch/units").get_json()["items"]
    assert town and all(u["kind"] == "community" and u["code"].startswith(TOWN) for u in town)
    up = client_as("community-operator").get("/api/dispatch/units?kind=escalation").get_json()
    assert {u["kind"] for u in up["items"]} == {"district", "town"}


# --------------------------------------------------------------------------- bad input


def test_senders_cannot_dispatch_cameras_they_cannot_see(gulou, session):
    outside = camera_in(session, OTHER_TOWN)[0]
    before = counts(session)
    resp = send(gulou, [unit_id(session, COMMUNITY)], {"gb_ids": [outside]})
    assert resp.status_code == 404 and resp.get_json()["details"]["gb_ids"] == [outside]
    area = send(gulou, [unit_id(session, COMMUNITY)], {"area": OTHER_TOWN})
    assert area.status_code == 400  # nothing you can see there
    assert counts(session) == before


def test_a_lent_camera_is_not_sent_on_and_ends_with_the_order_that_lent_it(
        district, gulou, client_as, session):
    lent = camera_in(session, OTHER_TOWN)[0]
    own = camera_in(session, COMMUNITY)[0]
    community = unit_id(session, COMMUNITY)
    order = send(district, [unit_id(session, TOWN)], {"gb_ids": [lent]}).get_json()
    assert gulou.get(f"/api/cameras/{lent}").status_code == 200
    before = counts(session)
    # Named, it is refused with the reason; in an area, a box or around a point it
    # is left out (the selection is the town's own cameras).
    named = send(gulou, [community], {"gb_ids": [own, lent]})
    assert named.status_code == 403 and named.get_json()["details"]["gb_ids"] == [lent]
    assert "dispatched to your unit" in named.get_json()["reason"]
    lon, lat = session.execute(text("SELECT ST_X(geom), ST_Y(geom) FROM cameras "
                                    "WHERE gb_id = :g"), {"g": lent}).one()
    around = send(gulou, [community], {"nearby": {"lon": lon, "lat": lat, "radius": 50}})
    assert around.status_code == 400
    assert "of your own jurisdiction" in around.get_json()["reason"]
    assert counts(session) == before
    # Its own cameras still go down, and the district's cancelling ends the lent one
    # for everybody below.
    assert send(gulou, [community], {"gb_ids": [own]}).status_code == 201
    district.post(f"/api/dispatch/{order['id']}/cancel", json={})
    for user in ("gulou-operator", "community-operator"):
        assert client_as(user).get(f"/api/cameras/{lent}").status_code == 404


def test_orders_cannot_be_enumerated(district, client_as, session):
    gb_id = camera_in(session, OTHER_TOWN)[0]
    order = send(district, [unit_id(session, TOWN)], {"gb_ids": [gb_id]}).get_json()
    outsider = client_as("daan-operator")
    missing_id = order["id"] + 100000
    for path in (f"/api/dispatch/{order['id']}", f"/api/dispatch/{missing_id}"):
        resp = outsider.get(path)
        assert resp.status_code == 404 and resp.get_json()["reason"] == "no such order"
    for step in ("ack", "close", "cancel"):
        a = outsider.post(f"/api/dispatch/{order['id']}/{step}", json={})
        b = outsider.post(f"/api/dispatch/{missing_id}/{step}", json={})
        assert a.status_code == b.status_code == 404
        assert a.get_json()["reason"] == b.get_json()["reason"]
    assert outsider.get("/api/dispatch/99999999999999999999").status_code == 404
    assert outsider.get("/api/dispatch/-1").status_code == 404


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"targets": "all", "cameras": {"area": TOWN}}, 400),
        ({"targets": [], "cameras": {"area": TOWN}}, 400),
        ({"targets": [True], "cameras": {"area": TOWN}}, 400),
        ({"targets": list(range(1, 30)), "cameras": {"area": TOWN}}, 413),
        ({"targets": ["TOWN"], "cameras": {}}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN, "grid": TOWN}}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": "37'--"}}, 400),
        ({"targets": ["TOWN"], "cameras": {"gb_ids": ["123"]}}, 400),
        ({"targets": ["TOWN"], "cameras": {"gb_ids": ["0" * 20] * 201}}, 413),
        ({"targets": ["TOWN"], "cameras": {"bbox": [116.0, 35.0, 118.0, 36.0]}}, 400),
        ({"targets": ["TOWN"], "cameras": {"bbox": [1, 2, 3]}}, 400),
        ({"targets": ["TOWN"], "cameras": {"nearby": {"lon": 116.8, "lat": 35.55,
                                                      "radius": 1e9}}}, 400),
        ({"targets": ["TOWN"], "cameras": {"nearby": {"lon": "x", "lat": 35.55}}}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": "370812"}}, 413),  # 8,600 cameras
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "priority": "whenever"}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "note": "x" * 2001}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "note": 5}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "incident": "<script>"}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "expires_in_minutes": 0}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "expires_in_minutes": 99999}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN},
          "expires_at": "2020-01-01T00:00:00+08:00"}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "expires_at": "tomorrow"}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "kind": "order66"}, 400),
        ({"targets": ["TOWN"], "cameras": {"area": TOWN}, "state": "closed"}, 400),
        ({"targets": [2**40], "cameras": {"area": TOWN}}, 400),
        ({"targets": [999999], "cameras": {"area": TOWN}}, 404),
    ],
)
def test_malformed_orders_are_refused_and_change_nothing(district, session, body, status):
    town = unit_id(session, TOWN)
    body = json.loads(json.dumps(body).replace('"TOWN"', str(town)))
    before = counts(session)
    resp = district.post("/api/dispatch", json=body)
    assert resp.status_code == status, resp.get_json()
    assert counts(session) == before


def test_oversized_and_non_json_bodies_are_refused(district, session):
    before = counts(session)
    big = {"targets": [1], "cameras": {"area": TOWN}, "note": "x" * 100_000}
    assert district.post("/api/dispatch", json=big).status_code == 413
    assert district.post("/api/dispatch", data="not json",
                         content_type="application/json").status_code == 400
    assert district.post("/api/dispatch", data=b"\x00\x01",
                         content_type="application/octet-stream").status_code == 400
    assert district.post("/api/dispatch", json=[1, 2]).status_code == 400
    assert counts(session) == before


# --------------------------------------------------------------------------- selections


@pytest.mark.parametrize("kind", ["area", "grid", "bbox", "nearby"])
def test_selections_pick_cameras_in_the_senders_scope(gulou, session, kind):
    grid, lon, lat = session.execute(text(
        "SELECT g.code, ST_X(ST_PointOnSurface(g.geom)), ST_Y(ST_PointOnSurface(g.geom)) "
        "FROM grids g WHERE g.code LIKE :t || '%' AND EXISTS (SELECT 1 FROM cameras c "
        "WHERE c.grid_code = g.code) ORDER BY g.code LIMIT 1"), {"t": COMMUNITY}).one()
    selection = {
        "area": {"area": COMMUNITY},
        "grid": {"grid": grid},
        "bbox": {"bbox": [lon - 0.003, lat - 0.003, lon + 0.003, lat + 0.003]},
        "nearby": {"nearby": {"lon": lon, "lat": lat, "radius": 400, "limit": 10}},
    }[kind]
    preview = gulou.post("/api/dispatch/preview", json={"cameras": selection})
    assert preview.status_code == 200, preview.get_json()
    picked = [i["gb_id"] for i in preview.get_json()["items"]]
    assert picked
    in_town = session.execute(text("SELECT count(*) FROM cameras WHERE gb_id = ANY(:g) "
                                   "AND grid_code LIKE :t || '%'"),
                              {"g": picked, "t": TOWN}).scalar()
    assert in_town == len(picked)
    if kind == "area":
        assert len(picked) == session.execute(text(
            "SELECT count(*) FROM cameras WHERE grid_code LIKE :c || '%'"),
            {"c": COMMUNITY}).scalar()
    order = send(gulou, [unit_id(session, COMMUNITY)], selection)
    assert order.status_code == 201
    assert sorted(c["gb_id"] for c in order.get_json()["cameras"]) == sorted(picked)


# --------------------------------------------------------------------------- video patrol


def test_patrol_tours_and_findings(gulou, client_as, session):
    cams = camera_in(session, TOWN, n=6)
    created = gulou.post("/api/patrol/tours", json={"name": "早班巡查", "gb_ids": cams,
                                                    "dwell_s": 15, "layout": 4})
    assert created.status_code == 201, created.get_json()
    tour = created.get_json()
    assert [c["gb_id"] for c in tour["cameras"]] == cams and tour["dwell_s"] == 15
    assert gulou.post("/api/patrol/tours", json={"name": "早班巡查", "gb_ids": cams}
                      ).status_code == 409
    outside = camera_in(session, OTHER_TOWN)[0]
    assert gulou.post("/api/patrol/tours", json={"name": "越界", "gb_ids": [outside]}
                      ).status_code == 404
    assert gulou.post("/api/patrol/tours", json={"name": "x", "gb_ids": cams, "dwell_s": 1}
                      ).status_code == 400
    listed = gulou.get("/api/patrol/tours").get_json()["items"]
    assert [t["name"] for t in listed] == ["早班巡查"] and listed[0]["cameras"] == 6
    daan = client_as("daan-operator")
    assert daan.get(f"/api/patrol/tours/{tour['id']}").status_code == 404
    assert daan.delete(f"/api/patrol/tours/{tour['id']}").status_code == 404
    assert client_as("gulou-viewer").delete(f"/api/patrol/tours/{tour['id']}").status_code == 403

    grid = session.execute(text("SELECT grid_code FROM cameras WHERE gb_id = :g"),
                           {"g": cams[0]}).scalar()
    finding = gulou.post("/api/patrol/findings", json={
        "grid_code": grid, "note": "占道经营", "severity": "issue", "gb_id": cams[0],
        "tour_id": tour["id"]})
    assert finding.status_code == 201, finding.get_json()
    other_grid = session.execute(text("SELECT code FROM grids WHERE code LIKE :t || '%' "
                                      "ORDER BY code LIMIT 1"), {"t": OTHER_TOWN}).scalar()
    assert gulou.post("/api/patrol/findings", json={"grid_code": other_grid, "note": "x"}
                      ).status_code == 404
    assert gulou.post("/api/patrol/findings", json={"grid_code": grid, "note": ""}
                      ).status_code == 400
    findings = gulou.get("/api/patrol/findings").get_json()["items"]
    assert findings[0]["note"] == "占道经营" and findings[0]["grid_code"] == grid
    assert daan.get("/api/patrol/findings").get_json()["items"] == []
    assert gulou.delete(f"/api/patrol/tours/{tour['id']}").status_code == 204
    assert gulou.get("/api/patrol/tours").get_json()["items"] == []


def test_a_department_records_findings_on_its_cameras_grids(client_as, session):
    police = client_as("police-patrol")
    gb_id, grid = session.execute(text(
        "SELECT gb_id, grid_code FROM cameras WHERE department = '兖州区公安分局' "
        "AND grid_code IS NOT NULL ORDER BY gb_id LIMIT 1")).one()
    ok = police.post("/api/patrol/findings", json={"grid_code": grid, "note": "可疑车辆",
                                                   "gb_id": gb_id})
    assert ok.status_code == 201
    assert police.post("/api/patrol/findings", json={"grid_code": grid, "note": "x"}
                       ).status_code == 404  # no area of its own without the camera


# --------------------------------------------------------------------------- video wall


def test_video_wall_and_live_pages(gulou, session):
    cams = camera_in(session, TOWN, n=4)
    html = gulou.get(f"/videowall?layout=9&cameras={','.join(cams)}").get_data(as_text=True)
    assert 'name="csrf-token"' in html and "/static/js/videowall.js" in html
    config = json.loads(html.split("window.VIDEOWALL = ", 1)[1].split(";</script>", 1)[0])
    assert config["layout"] == 9 and config["cameras"] == cams
    assert gulou.get("/videowall?layout=7").status_code == 200
    live = gulou.get(f"/cameras/{cams[0]}/live")
    assert live.status_code == 200 and cams[0] in live.get_data(as_text=True)
    assert gulou.get(f"/cameras/{camera_in(session, OTHER_TOWN)[0]}/live").status_code == 404


def test_live_source_uses_a_media_server_when_configured(connection, database_url,
                                                         demo_accounts, session):
    from tests.conftest import sign_in_client
    from web import create_app

    cams = camera_in(session, TOWN, n=2)
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False,
                      "LIVE_URL_TEMPLATE": "https://media.example/live/{gb_id}.m3u8",
                      "LIVE_URLS": {cams[1]: "https://flv.example/{x}.flv"}})
    client = sign_in_client(app, app.test_client(), "gulou-operator")
    first = client.get(f"/api/cameras/{cams[0]}/live.json").get_json()
    assert first["mode"] == "external"
    assert first["url"] == f"https://media.example/live/{cams[0]}.m3u8"
    assert client.get(f"/api/cameras/{cams[1]}/live.json").get_json()["url"] == \
        "https://flv.example/{x}.flv"


@pytest.fixture(scope="module")
def demo_streams(tmp_path_factory):
    """Real local demo stream servers (with a password on the private ones)."""
    from video.streams import serve_demo_streams

    with serve_demo_streams(tmp_path_factory.mktemp("relay-streams"), 0,
                            password="relay-Secret-42", seconds=3.0,
                            include_uhd=False) as running:
        yield running


def point_camera_at(session, gb_id: str, url: str, credentials: tuple[str, str] | None) -> None:
    from video import credentials as secret_store

    session.execute(text("UPDATE cameras SET main_url = :u, sub_url = :u WHERE gb_id = :g"),
                    {"u": url, "g": gb_id})
    session.execute(text("DELETE FROM camera_credentials WHERE camera_id = "
                         "(SELECT id FROM cameras WHERE gb_id = :g)"), {"g": gb_id})
    if credentials:
        session.execute(
            text("INSERT INTO camera_credentials (camera_id, username_enc, password_enc) "
                 "SELECT id, :u, :p FROM cameras WHERE gb_id = :g"),
            {"g": gb_id, "u": secret_store.encrypt(credentials[0]),
             "p": secret_store.encrypt(credentials[1])},
        )
    session.flush()


def read_parts(resp, n: int) -> list[bytes]:
    """Read n JPEG parts of a multipart/x-mixed-replace response."""
    buf, parts = b"", []
    for chunk in resp.response:
        buf += chunk
        while b"\r\n\r\n" in buf:
            head, rest = buf.split(b"\r\n\r\n", 1)
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length")))
            if len(rest) < length + 2:
                break
            parts.append(rest[:length])
            buf = rest[length + 2:]
        if len(parts) >= n:
            break
    return parts


def relay_children(app) -> list[int]:
    """Return the pids of running relay processes (children of this process)."""
    import os

    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == os.getpid() and b"web.relay" in cmd:
            pids.append(int(entry))
    return pids


def test_mjpeg_relay_streams_with_credentials_kept_inside(connection, database_url,
                                                          demo_accounts, session, demo_streams):
    from tests.conftest import sign_in_client
    from web import create_app

    slot = next(s for s in demo_streams.manifest()
                if s.kind == "mjpeg" and s.expected == "online" and s.username)
    gb_id = camera_in(session, TOWN)[0]
    point_camera_at(session, gb_id, slot.url, (slot.username, demo_streams.password))
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False,
                      "RELAY_MAX": 1, "RELAY_FPS": 4.0})
    client = sign_in_client(app, app.test_client(), "gulou-operator")
    resp = client.get(f"/cameras/{gb_id}/live.mjpeg", buffered=False)
    try:
        assert resp.status_code == 200, resp.get_data(as_text=True)
        assert resp.mimetype == "multipart/x-mixed-replace"
        parts = read_parts(resp, 3)
        assert len(parts) == 3 and all(p[:2] == b"\xff\xd8" for p in parts)
        import cv2
        import numpy as np

        frame = cv2.imdecode(np.frombuffer(parts[0], np.uint8), cv2.IMREAD_COLOR)
        assert frame is not None and frame.shape[1] <= 640
        children = relay_children(app)
        assert len(children) == 1
        with open(f"/proc/{children[0]}/cmdline", "rb") as f:
            assert demo_streams.password.encode() not in f.read()
        with open(f"/proc/{children[0]}/environ", "rb") as f:
            assert demo_streams.password.encode() not in f.read()
        # Over the cap: 503 with a reason, and the wall shows snapshots instead.
        busy = client.get(f"/cameras/{gb_id}/live.mjpeg")
        assert busy.status_code == 503 and busy.headers["Retry-After"] == "10"
        assert client.get("/api/relay/status").get_json() == {"active": 1, "cap": 1}
    finally:
        resp.close()
    deadline = time.monotonic() + 10
    while relay_children(app) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert relay_children(app) == []
    assert client.get("/api/relay/status").get_json() == {"active": 0, "cap": 1}
    assert demo_streams.password not in json.dumps(
        client.get(f"/api/cameras/{gb_id}/live.json").get_json())


def test_relay_of_a_dead_stream_is_502_and_frees_its_slot(connection, database_url,
                                                          demo_accounts, session, demo_streams):
    from tests.conftest import sign_in_client
    from web import create_app

    slot = next(s for s in demo_streams.manifest() if s.expected == "offline")
    gb_id = camera_in(session, TOWN)[0]
    point_camera_at(session, gb_id, slot.url, None)
    app = create_app({"TESTING": True, "DATABASE_URL": database_url,
                      "TEST_CONNECTION": connection, "WTF_CSRF_ENABLED": False, "RELAY_MAX": 1})
    client = sign_in_client(app, app.test_client(), "gulou-operator")
    resp = client.get(f"/cameras/{gb_id}/live.mjpeg")
    assert resp.status_code == 502
    assert client.get("/api/relay/status").get_json()["active"] == 0
    assert relay_children(app) == []


def test_inbox_polling_since_returns_only_changes(district, gulou, session):
    gb_id = camera_in(session, OTHER_TOWN)[0]
    town = unit_id(session, TOWN)
    first = send(district, [town], {"gb_ids": [gb_id]}).get_json()
    poll = gulou.get("/api/dispatch/inbox").get_json()
    assert [o["id"] for o in poll["orders"]] == [first["id"]]
    stamp = datetime.fromisoformat(poll["server_time"]) + timedelta(seconds=10)
    quiet = gulou.get("/api/dispatch/inbox", query_string={"since": stamp.isoformat()})
    assert quiet.get_json()["orders"] == []
    assert gulou.get("/api/dispatch/inbox?since=yesterday").status_code == 400
    assert gulou.get("/api/dispatch/inbox?since=2024-01-01T00:00:00").status_code == 400
    outbox = district.get("/api/dispatch/outbox").get_json()
    assert first["id"] in {o["id"] for o in outbox["orders"]}
