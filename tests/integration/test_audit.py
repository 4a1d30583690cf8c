"""The audit log: sign-ins, denials, dispatches, escalations, dispatched views and data
edits are recorded with who, what, when and from where, and never with a secret."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from gridmap import accounts
from gridmap.accounts import DEMO_USERS

PASSWORDS = {u.username: u.password for u in DEMO_USERS}
TOWN = "370812001"
OTHER_TOWN = "370812100"


def entries(session, action: str | None = None) -> list[dict]:
    sql = ("SELECT a.*, u.name AS unit_name FROM audit_log a "
           "LEFT JOIN units u ON u.id = a.unit_id")
    params = {}
    if action:
        sql += " WHERE a.action = :a"
        params["a"] = action
    return [dict(r) for r in session.execute(text(sql + " ORDER BY a.id"), params).mappings()]


def all_audit_text(session) -> str:
    rows = session.execute(text("SELECT row_to_json(a)::text FROM audit_log a")).scalars()
    return "\n".join(rows)


def camera_in(session, prefix: str) -> str:
    return session.execute(text("SELECT gb_id FROM cameras WHERE grid_code LIKE :p || '%' "
                                "ORDER BY gb_id LIMIT 1"), {"p": prefix}).scalar()


def test_sign_ins_are_audited_with_who_and_where(app, session):
    client = app.test_client()
    ua = {"User-Agent": "pytest-browser/1.0"}
    client.post("/login", json={"username": "gulou-viewer", "password": "Wrong-passw0rd"},
                headers=ua, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    client.post("/login", json={"username": "gulou-viewer",
                                "password": PASSWORDS["gulou-viewer"]},
                headers=ua, environ_base={"REMOTE_ADDR": "10.9.8.7"})
    failed = entries(session, "auth.sign_in_failed")[-1]
    ok = entries(session, "auth.sign_in")[-1]
    assert failed["username"] == "gulou-viewer" and failed["status"] == 401
    assert failed["ip"] == ok["ip"] == "10.9.8.7"
    assert ok["user_agent"] == "pytest-browser/1.0"
    assert ok["username"] == "gulou-viewer" and ok["unit_name"] == "鼓楼街道"
    assert ok["at"] is not None and ok["path"] == "/login" and ok["method"] == "POST"


def test_a_password_typed_as_a_username_is_not_recorded(app, session):
    client = app.test_client()
    client.post("/login", json={"username": "Hunter2-Passw0rd", "password": "whatever-else"})
    row = entries(session, "auth.sign_in_failed")[-1]
    assert row["username"] is None and row["detail"] == {"known_user": False}
    assert "hunter2" not in all_audit_text(session).lower()


def test_lockouts_are_audited(app, session):
    client = app.test_client()
    for _ in range(5):
        client.post("/login", json={"username": "police-viewer", "password": "Wrong-passw0rd"})
    assert entries(session, "auth.locked")[-1]["username"] == "police-viewer"


def test_scope_denials_are_audited(client_as, session):
    gulou = client_as("gulou-operator")
    outside = camera_in(session, OTHER_TOWN)
    assert gulou.get(f"/api/cameras/{outside}/snapshot.jpg").status_code == 404
    grid = session.execute(text("SELECT code FROM grids WHERE code LIKE :t || '%' LIMIT 1"),
                           {"t": OTHER_TOWN}).scalar()
    assert gulou.get(f"/api/grids/{grid}").status_code == 404
    denied = entries(session, "scope.denied")
    assert [d["target"] for d in denied[-2:]] == [f"camera:{outside}", f"area:{grid}"]
    assert all(d["username"] == "gulou-operator" and d["status"] == 404 for d in denied[-2:])
    # A camera that does not exist at all is no denial, just a 404.
    assert gulou.get("/api/cameras/37081200001319999999").status_code == 404
    assert len(entries(session, "scope.denied")) == len(denied)


def test_role_denials_are_audited(client_as, session):
    viewer = client_as("district-viewer")
    assert viewer.post("/api/dispatch", json={}).status_code == 403
    row = entries(session, "access.denied")[-1]
    assert row["username"] == "district-viewer" and row["status"] == 403
    assert row["detail"]["reason"] == "viewers have read-only access"


def test_dispatch_steps_and_dispatched_views_are_audited(client_as, session):
    district = client_as("district-operator")
    gulou = client_as("gulou-operator")
    outside = camera_in(session, OTHER_TOWN)
    town = accounts.unit_by_ref(session, TOWN).id
    order = district.post("/api/dispatch", json={
        "targets": [town], "cameras": {"gb_ids": [outside]}, "note": "巡查"}).get_json()
    assert gulou.post(f"/api/dispatch/{order['id']}/ack").status_code == 200
    assert gulou.get(f"/api/cameras/{outside}").status_code == 200
    assert gulou.get(f"/api/cameras/{outside}/health").status_code == 200  # not audited twice
    assert gulou.post(f"/api/dispatch/{order['id']}/close", json={"feedback": "ok"}
                      ).status_code == 200
    created = entries(session, "dispatch.create")[-1]
    assert created["username"] == "district-operator" and created["target"] == f"order:{order['id']}"
    assert created["detail"]["targets"] == ["鼓楼街道"] and created["detail"]["cameras"] == 1
    assert entries(session, "dispatch.acknowledge")[-1]["username"] == "gulou-operator"
    assert entries(session, "dispatch.close")[-1]["detail"] == {"order_closed": True}
    views = [v for v in entries(session, "camera.view_dispatched")
             if v["detail"].get("orders") == [order["id"]]]
    assert len(views) == 1 and views[0]["target"] == outside
    assert views[0]["username"] == "gulou-operator"
    # The order's timeline shows the view too.
    timeline = district.get(f"/api/dispatch/{order['id']}").get_json()["timeline"]
    assert [s["action"] for s in timeline].count("viewed") == 1


def test_escalations_are_audited(client_as, session):
    community = client_as("community-operator")
    gb_id = camera_in(session, "370812001001")
    town = accounts.unit_by_ref(session, TOWN).id
    resp = community.post("/api/dispatch", json={"kind": "escalation", "targets": [town],
                                                 "cameras": {"gb_ids": [gb_id]}})
    assert resp.status_code == 201
    row = entries(session, "escalation.create")[-1]
    assert row["username"] == "community-operator" and row["detail"]["targets"] == ["鼓楼街道"]


def test_data_edits_are_audited(client_as, session):
    admin = client_as("district-gridadmin")
    gb_id = camera_in(session, TOWN)
    # Tags stored out of order (as older rows may be): the write sorts them, which is no change.
    session.execute(text("UPDATE cameras SET tags = ARRAY['road', 'intersection']::varchar[] "
                         "WHERE gb_id = :g"), {"g": gb_id})
    start = session.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar()
    assert admin.patch(f"/api/cameras/{gb_id}", json={"name": "新名称"}).status_code == 200
    # A camera change names the camera and the fields (the ledger shows it as its history).
    row = entries(session, "camera.changed")[-1]
    assert row["username"] == "district-gridadmin" and row["method"] == "PATCH"
    assert row["path"] == f"/api/cameras/{gb_id}" and row["target"] == f"camera:{gb_id}"
    assert row["detail"] == {"fields": ["name"], "login": False}
    assert not [r for r in entries(session, "data.edit") if r["id"] > start]  # not twice


def test_no_secret_ever_reaches_the_audit_log(app, client_as, session):
    client = app.test_client()
    password = PASSWORDS["district-operator"]
    client.post("/login", json={"username": "district-operator", "password": "Wrong-" + password})
    signed_in = client.post("/login", json={"username": "district-operator",
                                            "password": password}).get_json()
    csrf = signed_in["csrf_token"]
    cookie = client.get_cookie("gridmap_session").value
    # A camera registered with credentials in its URL; edited; dispatched.
    stream_secret = "Str3am-Secret-Pw"
    created = client.post("/api/cameras", json={
        "gb_id": "37081200001310999001", "name": "审计测试", "lon": 116.83, "lat": 35.553,
        "source": "skynet", "main_url": f"rtsp://admin:{stream_secret}@10.20.30.40:554/live"})
    assert created.status_code == 201, created.get_json()
    client.patch("/api/cameras/37081200001310999001",
                 json={"sub_url": f"rtsp://viewer:{stream_secret}@10.20.30.40/sub"})
    town = accounts.unit_by_ref(session, TOWN).id
    client.post("/api/dispatch", json={"targets": [town], "note": f"password={password}",
                                       "cameras": {"gb_ids": ["37081200001310999001"]}})
    client.post("/logout")
    token = session.execute(text("SELECT session_token FROM users "
                                 "WHERE username = 'district-operator'")).scalar()
    logged = all_audit_text(session)
    assert logged  # there is something to look at
    for secret in (password, stream_secret, csrf, cookie, token):
        assert secret not in logged
    assert "scrypt:" not in logged


def test_the_audit_api_is_for_district_operators(client_as, session):
    district = client_as("district-operator")
    client_as("gulou-viewer").get("/api/cameras/37081200001319999999")
    body = district.get("/api/audit?limit=5").get_json()
    assert body["total"] >= 0 and len(body["items"]) <= 5
    for user in ("district-viewer", "gulou-operator", "police-operator"):
        assert client_as(user).get("/api/audit").status_code == 403
    denied = district.get("/api/audit?action=access.denied&user=police-operator").get_json()
    assert denied["items"] and denied["items"][0]["target"] == "audit"
    assert all(i["action"].startswith("access.denied") for i in denied["items"])
    assert district.get("/api/audit?since=yesterday").status_code == 400
    json.dumps(body)  # serialisable as is


@pytest.mark.parametrize("key", ["password", "Authorization", "csrf_token", "session_token",
                                 "api_key", "stream_credentials"])
def test_scrub_drops_secret_looking_keys(key):
    scrubbed = accounts.scrub({key: "s3cret", "note": "rtsp://u:p@h/x", "ok": 1})
    assert key not in scrubbed and scrubbed["note"] == "rtsp://***@h/x" and scrubbed["ok"] == 1
