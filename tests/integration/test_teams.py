"""Grid teams on the real PostGIS: the API, "1+1" posts, versions, scope, leaving without
losing patrols, gaps after a split or merge, concurrent admins, and bad input."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from shapely.geometry import LineString, mapping
from sqlalchemy import text

from gridmap import teams
from gridmap.errors import Conflict
from tests.conftest import blocked_attempt
from tests.integration.test_grid_edits import geom_of, same_community_neighbour

GRID = "370812001001002"  # 东永安社区第二网格 (鼓楼街道)
OTHER_COMMUNITY_GRID = "370812001002001"  # same town, another community
OTHER_TOWN_GRID = "370812100201001"  # 大安镇
NEW = {"role": "volunteer", "name": "张志愿", "phone": "138 0000 1234"}


def members(session, code: str) -> list[tuple]:
    return session.execute(text(
        "SELECT w.id, w.role, w.name, w.phone, w.version, w.left_at IS NULL FROM grid_workers w "
        "JOIN grids g ON g.id = w.grid_id WHERE g.code = :c ORDER BY w.id"), {"c": code}).all()


def member_of(client, code: str, role: str) -> dict:
    return next(m for m in client.get(f"/api/grids/{code}/team").get_json()["members"]
                if m["role"] == role)


def test_a_grid_team_is_1_1_z_n_with_versions(client):
    resp = client.get(f"/api/grids/{GRID}/team")
    assert resp.status_code == 200
    team = resp.get_json()
    assert team["code"] == GRID and team["community_code"] == GRID[:12]
    assert team["counts"]["leader"] == 1 and team["counts"]["full_time"] == 1
    assert team["problems"] == []
    roles = [m["role"] for m in team["members"]]
    assert roles == sorted(roles, key=teams.ROLES.index)  # leader first, volunteers last
    assert all(m["version"] == 1 and m["id"] > 0 for m in team["members"])


def test_add_change_and_remove_a_member(client, session):
    resp = client.post(f"/api/grids/{GRID}/team", json=NEW)
    assert resp.status_code == 201, resp.get_json()
    member = resp.get_json()["member"]
    assert member["phone"] == "13800001234" and member["version"] == 1
    assert resp.headers["ETag"] == '"1"'
    assert member["id"] in {m["id"] for m in resp.get_json()["team"]["members"]}

    resp = client.patch(f"/api/grids/{GRID}/team/{member['id']}", json={"name": "张志"},
                        headers={"If-Match": '"1"'})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["member"]["name"] == "张志" and resp.headers["ETag"] == '"2"'

    resp = client.delete(f"/api/grids/{GRID}/team/{member['id']}?version=2")
    assert resp.status_code == 200, resp.get_json()
    assert member["id"] not in {m["id"] for m in resp.get_json()["team"]["members"]}
    # Kept, marked as having left: patrols and reported matters still point at the row.
    row = next(r for r in members(session, GRID) if r[0] == member["id"])
    assert row[2] == "张志" and row[4] == 3 and row[5] is False


def test_a_second_leader_is_refused_naming_the_holder(client, session):
    leader = member_of(client, GRID, "leader")
    before = members(session, GRID)
    resp = client.post(f"/api/grids/{GRID}/team", json={**NEW, "role": "leader"})
    assert resp.status_code == 409
    assert resp.get_json()["details"]["holder"] == leader["id"]
    volunteer = member_of(client, GRID, "volunteer")
    resp = client.patch(f"/api/grids/{GRID}/team/{volunteer['id']}",
                        json={"role": "full_time", "version": volunteer["version"]})
    assert resp.status_code == 409 and "full-time" in resp.get_json()["reason"]
    assert members(session, GRID) == before
    # Changing the leader into a leader again is not a second leader.
    resp = client.patch(f"/api/grids/{GRID}/team/{leader['id']}",
                        json={"role": "leader", "phone": "0537-3412345", "version": 1})
    assert resp.status_code == 200 and resp.get_json()["member"]["phone"] == "05373412345"


def test_a_vacant_post_can_be_filled_and_the_gap_is_listed_until_then(client):
    gaps_before = client.get("/api/teams/gaps").get_json()
    leader = member_of(client, GRID, "leader")
    resp = client.delete(f"/api/grids/{GRID}/team/{leader['id']}", headers={"If-Match": '"1"'})
    assert resp.get_json()["team"]["problems"] == ["no_leader"]
    gaps = client.get("/api/teams/gaps").get_json()
    assert gaps["total"] == gaps_before["total"] + 1
    assert {"code": GRID, "problems": ["no_leader"]}.items() <= next(
        g for g in gaps["grids"] if g["code"] == GRID).items()
    assert client.get(f"/api/grids/{GRID}").get_json()["team_problems"] == ["no_leader"]
    resp = client.post(f"/api/grids/{GRID}/team", json={**NEW, "role": "leader"})
    assert resp.status_code == 201 and resp.get_json()["team"]["problems"] == []
    assert client.get("/api/teams/gaps").get_json()["total"] == gaps_before["total"]


def test_gaps_are_paged_and_keep_their_total_past_the_end(client, session):
    session.execute(text(
        "UPDATE grid_workers SET left_at = now() WHERE role = 'leader' AND grid_id IN "
        "(SELECT id FROM grids WHERE code LIKE '370812001001%')"))
    first = client.get("/api/teams/gaps?limit=2").get_json()
    assert first["total"] >= 3 and len(first["grids"]) == 2
    assert [g["code"] for g in first["grids"]] == sorted(g["code"] for g in first["grids"])
    second = client.get("/api/teams/gaps?limit=2&offset=2").get_json()
    assert not {g["code"] for g in first["grids"]} & {g["code"] for g in second["grids"]}
    past = client.get(f"/api/teams/gaps?offset={first['total'] + 5}").get_json()
    assert past["grids"] == [] and past["total"] == first["total"]


def test_a_stale_change_is_409_with_the_current_member(client, session):
    volunteer = member_of(client, GRID, "volunteer")
    url = f"/api/grids/{GRID}/team/{volunteer['id']}"
    assert client.patch(url, json={"name": "甲", "version": 1}).status_code == 200
    before = members(session, GRID)
    resp = client.patch(url, json={"name": "乙", "version": 1})
    assert resp.status_code == 409
    details = resp.get_json()["details"]
    assert details["current_version"] == 2 and details["current"]["name"] == "甲"
    assert client.delete(url, headers={"If-Match": '"1"'}).status_code == 409
    assert client.post(url + "/move", json={"to": same_community_neighbour(session), "version": 1}
                       ).status_code == 409
    assert members(session, GRID) == before


def test_move_keeps_the_role_and_respects_the_destination_posts(client, session):
    other = same_community_neighbour(session)
    volunteer = member_of(client, GRID, "volunteer")
    resp = client.post(f"/api/grids/{GRID}/team/{volunteer['id']}/move",
                       json={"to": other}, headers={"If-Match": f'"{volunteer["version"]}"'})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["member"]["role"] == "volunteer" and body["member"]["version"] == 2
    assert volunteer["id"] in {m["id"] for m in body["to"]["members"]}
    assert volunteer["id"] not in {m["id"] for m in body["from"]["members"]}
    leader = member_of(client, GRID, "leader")
    before = members(session, GRID) + members(session, other)
    resp = client.post(f"/api/grids/{GRID}/team/{leader['id']}/move", json={"to": other, "version": 1})
    assert resp.status_code == 409 and resp.get_json()["details"]["code"] == other
    assert members(session, GRID) + members(session, other) == before
    for to, status in ((GRID, 400), ("123", 400), (7, 400), ("370812001001999", 404)):
        resp = client.post(f"/api/grids/{GRID}/team/{leader['id']}/move", json={"to": to, "version": 1})
        assert resp.status_code == status, (to, resp.get_json())
    assert members(session, GRID) + members(session, other) == before


def test_a_member_who_left_keeps_their_patrols_but_records_no_new_ones(client, session):
    worker = member_of(client, GRID, "full_time")
    start = datetime.now(UTC) - timedelta(hours=3)
    patrol = {"worker_id": worker["id"], "started_at": start.isoformat(),
              "ended_at": (start + timedelta(hours=1)).isoformat()}
    assert client.post(f"/api/grids/{GRID}/patrols", json=patrol).status_code == 201
    count = text("SELECT count(*) FROM grid_patrols WHERE worker_id = :w")
    patrols = session.execute(count, {"w": worker["id"]}).scalar()
    assert client.delete(f"/api/grids/{GRID}/team/{worker['id']}?version=1").status_code == 200
    assert session.execute(count, {"w": worker["id"]}).scalar() == patrols
    resp = client.post(f"/api/grids/{GRID}/patrols", json=patrol)
    assert resp.status_code == 400 and resp.get_json()["details"]["field"] == "worker_id"
    assert client.delete(f"/api/grids/{GRID}/team/{worker['id']}?version=2").status_code == 404


@pytest.mark.parametrize(("user", "code", "status"), [
    ("gulou-gridadmin", GRID, 201),
    ("community-gridadmin", GRID, 201),
    ("community-operator", OTHER_COMMUNITY_GRID, 404),
    ("daan-operator", GRID, 404),
    ("police-operator", GRID, 404),
    ("district-viewer", GRID, 403),
    ("gulou-patrol", GRID, 403),
])
def test_team_edits_are_scoped_and_need_an_editing_role(client_as, session, user, code, status):
    before = members(session, code)
    resp = client_as(user).post(f"/api/grids/{code}/team", json=NEW)
    assert resp.status_code == status, resp.get_json()
    if status != 201:
        assert members(session, code) == before


def test_moving_into_another_jurisdiction_is_404(client_as, session):
    client = client_as("community-gridadmin")
    volunteer = member_of(client, GRID, "volunteer")
    before = members(session, GRID)
    for to in (OTHER_COMMUNITY_GRID, OTHER_TOWN_GRID):
        resp = client.post(f"/api/grids/{GRID}/team/{volunteer['id']}/move",
                           json={"to": to, "version": 1})
        assert resp.status_code == 404, resp.get_json()
    assert members(session, GRID) == before


def test_gaps_list_only_the_callers_grids(client_as, session):
    session.execute(text("UPDATE grid_workers SET left_at = now() WHERE role = 'leader' AND grid_id IN "
                         "(SELECT id FROM grids WHERE code IN (:a, :b))"),
                    {"a": GRID, "b": OTHER_TOWN_GRID})
    gulou = client_as("gulou-operator").get("/api/teams/gaps?limit=500").get_json()
    codes = {g["code"] for g in gulou["grids"]}
    assert GRID in codes and OTHER_TOWN_GRID not in codes
    assert all(c.startswith("370812001") for c in codes)
    assert client_as("police-operator").get("/api/teams/gaps").get_json()["total"] == 0


def test_a_member_of_another_grid_is_not_found_here(client, session):
    other = same_community_neighbour(session)
    stranger = member_of(client, other, "volunteer")
    before = members(session, other)
    url = f"/api/grids/{GRID}/team/{stranger['id']}"
    assert client.patch(url, json={"name": "x", "version": 1}).status_code == 404
    assert client.delete(url + "?version=1").status_code == 404
    assert client.post(url + "/move", json={"to": other, "version": 1}).status_code == 404
    assert members(session, other) == before


BAD_ADDS = [
    ({"role": "volunteer", "name": "王"}, 400, "phone"),
    ({**NEW, "role": "captain"}, 400, "role"),
    ({**NEW, "phone": "12345"}, 400, "phone"),
    ({**NEW, "name": " "}, 400, "name"),
    ({**NEW, "name": "王" * 41}, 400, "name"),
    ({**NEW, "id_card": "370812199001011234"}, 400, "unknown"),
    ({**NEW, "version": 3}, 400, "version"),
    ([NEW], 400, "object"),
    ({**NEW, "name": "王" * 3000}, 413, ""),
]


@pytest.mark.parametrize(("body", "status", "word"), BAD_ADDS)
def test_bad_additions_are_4xx_with_a_reason_and_change_nothing(client, session, body, status, word):
    before = members(session, GRID)
    resp = client.post(f"/api/grids/{GRID}/team", json=body)
    assert resp.status_code == status, resp.get_json()
    assert word in resp.get_json()["reason"]
    assert members(session, GRID) == before


@pytest.mark.parametrize(("body", "headers", "word"), [
    ({"name": "王"}, {}, "version"),
    ({"name": "王", "version": "x"}, {}, "version"),
    ({"name": "王", "version": True}, {}, "version"),
    ({"name": "王", "version": 1}, {"If-Match": '"2"'}, "disagree"),
    ({"version": 1}, {}, "say what to change"),
    ({"phone": "1", "version": 1}, {}, "phone"),
    ({"to": GRID, "version": 1}, {}, "move"),
])
def test_bad_changes_are_400_and_change_nothing(client, session, body, headers, word):
    volunteer = member_of(client, GRID, "volunteer")
    before = members(session, GRID)
    resp = client.patch(f"/api/grids/{GRID}/team/{volunteer['id']}", json=body, headers=headers)
    assert resp.status_code == 400, resp.get_json()
    assert word in resp.get_json()["reason"]
    assert members(session, GRID) == before


def test_malformed_codes_and_ids(client):
    assert client.get("/api/grids/37081200100100/team").status_code == 400
    assert client.get("/api/grids/370812001001999/team").status_code == 404
    assert client.patch(f"/api/grids/{GRID}/team/abc", json={}).status_code == 404
    assert client.get("/api/teams/gaps?limit=0").status_code == 400
    assert client.get("/api/teams/gaps?offset=x").status_code == 400


def test_team_edits_are_audited_without_names_or_phones(client, session):
    resp = client.post(f"/api/grids/{GRID}/team", json=NEW)
    assert resp.status_code == 201
    row = session.execute(text(
        "SELECT action, path, detail FROM audit_log WHERE path = :p ORDER BY id DESC LIMIT 1"),
        {"p": f"/api/grids/{GRID}/team"}).one()
    assert row.action == "data.edit"
    logged = json.dumps([row.path, row.detail], ensure_ascii=False)
    assert NEW["name"] not in logged and "13800001234" not in logged


def test_a_split_reports_the_new_grid_without_a_team_and_a_merge_two_leaders(client, session):
    g = geom_of(session, GRID)
    x0, y0, x1, y1 = g.bounds
    line = LineString([(x0 - 0.001, (y0 + y1) / 2), (x1 + 0.001, (y0 + y1) / 2 + 0.0002)])
    resp = client.post(f"/api/grids/{GRID}/split", json={"line": mapping(line), "reason": "新建小区"},
                       headers={"If-Match": '"1"'})
    assert resp.status_code == 200, resp.get_json()
    (new,) = resp.get_json()["created"]
    assert resp.get_json()["team_gaps"] == {new: ["no_leader", "no_full_time"]}
    volunteer = member_of(client, GRID, "volunteer")
    client.post(f"/api/grids/{GRID}/team/{volunteer['id']}/move", json={"to": new, "version": 1})
    assert client.post(f"/api/grids/{new}/team", json={**NEW, "role": "leader"}).status_code == 201

    # Merged back: both leaders come along, one full-time worker.
    versions = {c: client.get(f"/api/grids/{c}/adjacent").get_json()["version"] for c in (GRID, new)}
    resp = client.post("/api/grids/merge", json={"codes": [GRID, new], "versions": versions,
                                                 "reason": "合并"})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["team_gaps"] == {GRID: ["extra_leader"]}
    counts = client.get(f"/api/grids/{GRID}/team").get_json()["counts"]
    assert counts["leader"] == 2 and counts["full_time"] == 1


# --------------------------------------------------------------------------- concurrency


def test_two_admins_filling_one_vacant_post_one_wins(engine, committed_team):
    team = [r for r in committed_team if r.grid_code == GRID]
    from gridmap import db

    factory = db.session_factory(engine)
    leader = next(r for r in team if r.role == "leader" and r.left_at is None)
    with factory() as s:
        teams.remove_member(s, GRID, leader.id, leader.version)
        s.commit()
    first = factory()
    first_pid = first.execute(text("SELECT pg_backend_pid()")).scalar()
    teams.add_member(first, GRID, {**NEW, "role": "leader"})  # holds the grid's row lock
    with blocked_attempt(engine, first_pid, lambda s: teams.add_member(
            s, GRID, {**NEW, "role": "leader", "name": "李四"}), Conflict) as outcome:
        first.commit()
        first.close()
    assert isinstance(outcome["result"], Conflict)
    with engine.connect() as conn:
        leaders = conn.execute(text(
            "SELECT w.name FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
            "WHERE g.code = :c AND w.role = 'leader' AND w.left_at IS NULL"), {"c": GRID}).scalars().all()
    assert leaders == [NEW["name"]]


def test_the_roster_lists_the_callers_current_members_for_excel(client_as, session):
    import csv
    import io

    client = client_as("gulou-gridadmin")
    leader = member_of(client, GRID, "leader")
    client.delete(f"/api/grids/{GRID}/team/{leader['id']}?version=1")
    client.post(f"/api/grids/{GRID}/team", json={**NEW, "name": "=HYPERLINK(1)"})
    resp = client.get("/api/teams.csv")
    assert resp.status_code == 200 and resp.mimetype == "text/csv"
    assert "attachment" in resp.headers["Content-Disposition"]
    assert resp.data.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads UTF-8
    rows = list(csv.DictReader(io.StringIO(resp.data.decode("utf-8-sig"))))
    expected = session.execute(text(
        "SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE w.left_at IS NULL AND g.code LIKE '370812001%'")).scalar()
    assert len(rows) == expected
    assert all(r["grid_code"].startswith("370812001") for r in rows)
    ours = [r for r in rows if r["grid_code"] == GRID]
    assert leader["name"] not in {r["name"] for r in ours}
    assert {r["role"] for r in ours} >= {"专职网格员", "志愿者"}
    assert "'=HYPERLINK(1)" in {r["name"] for r in ours}  # no formula in a spreadsheet
    english = client.get("/api/teams.csv?lang=en").data.decode("utf-8-sig")
    assert "Full-time grid worker" in english
    audited = session.execute(text(
        "SELECT count(*) FROM audit_log WHERE action = 'team.roster_export' AND target = '370812001'"
    )).scalar()
    assert audited == 2


def test_the_grid_at_a_spot_comes_with_whom_to_call(client_as, session):
    lon, lat = session.execute(text(
        "SELECT ST_X(ST_PointOnSurface(geom)), ST_Y(ST_PointOnSurface(geom)) FROM grids WHERE code = :c"),
        {"c": GRID}).one()
    patrol = client_as("gulou-patrol")
    plain = patrol.get(f"/api/grids/at?lon={lon}&lat={lat}").get_json()
    assert plain["code"] == GRID and "team" not in plain
    got = patrol.get(f"/api/grids/at?lon={lon}&lat={lat}&team=1").get_json()
    members = got["team"]["members"]
    assert [m["role"] for m in members[:2]] == ["leader", "full_time"]
    assert set(members[0]) == {"id", "role", "name", "phone"} and got["team"]["problems"] == []
    assert patrol.get(f"/api/grids/at?lon={lon}&lat={lat}&team=yes").status_code == 400
    assert client_as("daan-operator").get(
        f"/api/grids/at?lon={lon}&lat={lat}&team=1").status_code == 404


# --------------------------------------------------------------------------- roster import


def roster_of(client) -> list[dict]:
    import csv
    import io

    return list(csv.DictReader(io.StringIO(client.get("/api/teams.csv").data.decode("utf-8-sig"))))


def upload(client, rows: list[dict], *, encoding: str = "utf-8-sig", name: str = "roster.csv"):
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]) if rows else ["grid_code"])
    writer.writeheader()
    writer.writerows(rows)
    return client.post("/api/teams/import", data={"file": (io.BytesIO(out.getvalue().encode(encoding)), name)},
                       content_type="multipart/form-data")


def test_an_edited_roster_round_trips_keeping_records(client_as, session):
    client = client_as("community-gridadmin")
    audited = session.execute(text("SELECT coalesce(max(id), 0) FROM audit_log")).scalar()
    rows = roster_of(client)
    other = same_community_neighbour(session)
    ours = [r for r in rows if r["grid_code"] == GRID]
    theirs = [r for r in rows if r["grid_code"] == other]
    volunteer = next(r for r in ours if r["role"] == "志愿者")
    mover = [r for r in ours if r["role"] == "志愿者"][1]
    ids = dict(session.execute(text("SELECT name, id FROM grid_workers WHERE name = ANY(:n)"),
                               {"n": [volunteer["name"], mover["name"]]}).all())
    # Only the two grids: drop a volunteer, move one to the neighbour, add a newcomer.
    edited = [r for r in ours if r is not volunteer and r is not mover]
    edited += theirs + [{**mover, "grid_code": other},
                        {**ours[0], "role": "兼职网格员", "name": "新来的", "phone": "13700001111"}]
    before_elsewhere = session.execute(text(
        "SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE g.code NOT IN (:a, :b) AND w.left_at IS NULL"), {"a": GRID, "b": other}).scalar()
    resp = upload(client, edited)
    assert resp.status_code == 200, resp.get_json()
    result = resp.get_json()
    assert (result["grids"], result["added"], result["updated"], result["left"]) == (2, 1, 1, 1)
    assert result["unchanged"] == len(edited) - 2 and result["team_gaps"] == {}
    moved = session.execute(text(
        "SELECT g.code, w.version FROM grid_workers w JOIN grids g ON g.id = w.grid_id WHERE w.id = :i"),
        {"i": ids[mover["name"]]}).one()
    assert moved == (other, 2)  # the same record: patrols still point at it
    assert session.execute(text("SELECT left_at IS NOT NULL FROM grid_workers WHERE id = :i"),
                           {"i": ids[volunteer["name"]]}).scalar()
    assert session.execute(text(
        "SELECT count(*) FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE g.code NOT IN (:a, :b) AND w.left_at IS NULL"), {"a": GRID, "b": other}
    ).scalar() == before_elsewhere
    # Importing the same roster again changes nothing.
    again = upload(client, edited).get_json()
    assert (again["added"], again["updated"], again["left"]) == (0, 0, 0)
    entries = session.execute(text(
        "SELECT action, detail FROM audit_log WHERE path = '/api/teams/import' AND id > :a "
        "ORDER BY id"), {"a": audited}).all()
    assert [e.action for e in entries] == ["team.roster_import"] * 2  # one entry per import
    assert entries[0].detail["added"] == 1 and entries[0].detail["left"] == 1


def test_a_bad_roster_lists_every_bad_row_and_changes_nothing(client_as, session):
    client = client_as("community-gridadmin")
    rows = [r for r in roster_of(client) if r["grid_code"] == GRID]
    leader = next(r for r in rows if r["role"] == "网格长")
    bad = rows + [
        {**leader, "name": "第二个网格长", "phone": "13700002222"},          # row n+1: a second leader
        {**leader, "grid_code": OTHER_COMMUNITY_GRID},                      # outside the jurisdiction
        {**leader, "grid_code": "12345", "name": "x"},                        # not a grid code
        {**leader, "role": "队长", "name": "甲"},                              # unknown role
        {**leader, "phone": "110", "name": "乙"},                              # bad phone
        {**rows[-1]},                                                       # the same person twice
    ]
    before = session.execute(text("SELECT id, grid_id, role, version, left_at FROM grid_workers ORDER BY id")).all()
    resp = upload(client, bad)
    assert resp.status_code == 400
    details = resp.get_json()["details"]
    n = len(rows)
    assert [(e["row"], e["field"]) for e in details["errors"]] == [
        (n + 1, "role"), (n + 2, "grid_code"), (n + 3, "grid_code"), (n + 4, "role"),
        (n + 5, "phone"), (n + 6, "name")]
    assert details["total"] == 6
    assert session.execute(text("SELECT id, grid_id, role, version, left_at FROM grid_workers ORDER BY id")).all() == before


@pytest.mark.parametrize(("data", "status", "word"), [
    (b"", 400, "empty"),
    (b"grid_code,name\n370812001001002,x\n", 400, "role"),
    (b"grid_code,role,name,phone\n,,,\n", 400, "no members"),
    (b"\x00\x01\x02binary", 400, "text"),
    (b"a" * (2 * 1024 * 1024 + 10), 413, "MB"),
])
def test_unreadable_rosters_are_4xx(client, session, data, status, word):
    import io

    before = session.execute(text("SELECT count(*), max(version) FROM grid_workers WHERE left_at IS NULL")).one()
    # Encoded by hand: the test client would spool a large body to a file it never closes.
    body = (b"--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"r.csv\"\r\n"
            b"Content-Type: text/csv\r\n\r\n" + data + b"\r\n--B--\r\n")
    resp = client.post("/api/teams/import", data=io.BytesIO(body),
                       content_type="multipart/form-data; boundary=B")
    assert resp.status_code == status, resp.get_json()
    assert word in json.dumps(resp.get_json(), ensure_ascii=False)
    assert session.execute(text("SELECT count(*), max(version) FROM grid_workers WHERE left_at IS NULL")).one() == before


def test_a_gbk_roster_with_chinese_headers_and_role_codes_is_read(client, session):
    rows = [{"网格编码": GRID, "角色": "leader", "姓名": "王五", "电话": "139 0000 7777"},
            {"网格编码": GRID, "角色": "Full-time grid worker", "姓名": "赵六", "电话": "0537-3412345"},
            {"网格编码": "", "角色": "", "姓名": "", "电话": ""}]  # Excel's empty rows
    resp = upload(client, rows, encoding="gbk")
    assert resp.status_code == 200, resp.get_json()
    team = client.get(f"/api/grids/{GRID}/team").get_json()
    assert [(m["role"], m["name"], m["phone"]) for m in team["members"]] == [
        ("leader", "王五", "13900007777"), ("full_time", "赵六", "05373412345")]
    assert resp.get_json()["left"] == 7 and team["problems"] == []


def test_a_person_serving_two_grids_keeps_the_record_of_the_grid_they_stay_in(client, session):
    other = same_community_neighbour(session)
    rows = [r for r in roster_of(client) if r["grid_code"] in (GRID, other)]
    leader = next(r for r in rows if r["grid_code"] == GRID and r["role"] == "网格长")
    leader_id = session.execute(text(
        "SELECT w.id FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE g.code = :c AND w.role = 'leader' AND w.left_at IS NULL"), {"c": GRID}).scalar()
    # The neighbour's part-time worker row for GRID's leader comes first in the file.
    extra = {**leader, "grid_code": other, "role": "兼职网格员"}
    resp = upload(client, [extra, *rows])
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["added"], resp.get_json()["left"]) == (1, 0)
    assert session.execute(text(
        "SELECT g.code, w.role FROM grid_workers w JOIN grids g ON g.id = w.grid_id WHERE w.id = :i"),
        {"i": leader_id}).one() == (GRID, "leader")


def test_the_roster_carries_member_ids_that_keep_records_through_edits(client, session):
    rows = [r for r in roster_of(client) if r["grid_code"] == GRID]
    records = dict(session.execute(text(
        "SELECT w.id, w.name FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE g.code = :c AND w.left_at IS NULL"), {"c": GRID}).all())
    assert {int(r["member_id"]): r["name"] for r in rows} == records
    first, second, third = rows[0], rows[1], rows[2]
    edited = [{**first, "phone": "13900001234"},                   # a new phone number
              {**second, "name": second["name"] + "（更正）"},       # a corrected name
              *rows[2:],
              {**third, "role": "志愿者", "name": "新来的", "phone": "13700001111"}]  # copied row
    resp = upload(client, edited)
    assert resp.status_code == 200, resp.get_json()
    result = resp.get_json()
    assert (result["added"], result["updated"], result["left"]) == (1, 2, 0), result
    kept = session.execute(text(
        "SELECT name, phone, version, left_at FROM grid_workers WHERE id = ANY(:i) ORDER BY id"),
        {"i": [int(first["member_id"]), int(second["member_id"]), int(third["member_id"])]}).all()
    assert [(k.phone, k.name, k.left_at) for k in kept] == [
        ("13900001234", first["name"], None), (second["phone"], second["name"] + "（更正）", None),
        (third["phone"], third["name"], None)]
    assert [k.version for k in kept][:2] == [2, 2]
    assert session.execute(text(
        "SELECT count(*) FROM grid_workers WHERE name = '新来的' AND left_at IS NULL")).scalar() == 1


@pytest.mark.parametrize(("change", "field"), [
    ("abc", "member_id"),
    ("-5", "member_id"),
    ("twice", "member_id"),  # two rows each still half the same member
])
def test_bad_member_ids_are_reported_and_change_nothing(client, session, change, field):
    rows = [r for r in roster_of(client) if r["grid_code"] == GRID]
    if change == "twice":
        bad = [*rows, {**rows[0], "name": "别人", "role": "志愿者"}]  # same phone, same id
        bad[0] = {**rows[0], "phone": "13900004321"}                   # same name, same id
    else:
        bad = [{**rows[0], "member_id": change}, *rows[1:]]
    before = session.execute(text(
        "SELECT id, grid_id, role, name, phone, version, left_at FROM grid_workers ORDER BY id")).all()
    resp = upload(client, bad)
    assert resp.status_code == 400
    errors = resp.get_json()["details"]["errors"]
    assert [e["field"] for e in errors] == [field] and errors[0]["field_label"] == "成员编号"
    assert errors[0]["message"] != errors[0]["reason"]  # in the reader's language
    assert session.execute(text(
        "SELECT id, grid_id, role, name, phone, version, left_at FROM grid_workers ORDER BY id")
    ).all() == before


def test_a_member_id_from_an_old_roster_falls_back_to_name_and_phone(client, session):
    rows = [r for r in roster_of(client) if r["grid_code"] == GRID]
    stale = [{**rows[0], "member_id": "999999999"}, *rows[1:]]
    resp = upload(client, stale)
    assert resp.status_code == 200, resp.get_json()
    assert (resp.get_json()["added"], resp.get_json()["updated"], resp.get_json()["left"]) == (0, 0, 0)
