"""Matters on the real PostGIS: routing, duplicates, the five steps, deadlines, rating,
scope, contact visibility, attachments, the video link and re-derivation on grid edits.

Each refused call is checked to leave the matter (state, version, events) as it was.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from shapely import wkb
from shapely.geometry import mapping
from sqlalchemy import select, text

from geodata.coords import wgs84_to_gcj02
from gridmap import accounts, dispatch, grid_edits, matters
from gridmap.accounts import User
from gridmap.errors import Conflict, Forbidden, InvalidInput, NotFound, PayloadTooLarge
from tests.integration.test_grid_edits import geom_of, grown, same_community_neighbour, version_of

TOWN = "370812001"  # 鼓楼街道
COMMUNITY = "370812001001"  # 东永安社区
OTHER_COMMUNITY = "370812001002"
OTHER_TOWN = "370812100"  # 大安镇
MARKET = "兖州区市场监督管理局"
ECO = "济宁市生态环境局兖州区分局"
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 200 + b"\xff\xd9"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 100
PDF = b"%PDF-1.4\n" + b"0" * 100
FRIDAY = datetime(2026, 3, 6, 2, 0, tzinfo=UTC)  # Friday 10:00 in Beijing


def actor(session, username: str) -> accounts.Actor:
    user = session.scalars(select(User).where(User.username == username)).one()
    return accounts.actor_for(session, user)


def unit_actor(session, ref: str, username: str = "unit-operator") -> accounts.Actor:
    return accounts.system_actor(accounts.unit_by_ref(session, ref), username)


def point_in(session, prefix: str, n: int = 0) -> tuple[float, float]:
    """Return a point well inside the n-th grid under an area prefix."""
    return tuple(session.execute(
        text("SELECT ST_X(p), ST_Y(p) FROM (SELECT ST_PointOnSurface(geom) AS p FROM grids "
             "WHERE code LIKE :p || '%' ORDER BY code OFFSET :n LIMIT 1) s"),
        {"p": prefix, "n": n},
    ).one())


def report(session, who, prefix=COMMUNITY, category="CS.01", *, now=None, **extra):
    lon, lat = extra.pop("at", None) or point_in(session, prefix)
    payload = {"source": "hotline_12345", "category": category, "lon": lon, "lat": lat,
               "title": "路边垃圾堆积", "reporter_name": "王女士",
               "reporter_phone": "13800001234", **extra}
    return matters.intake(session, who, payload, now=now)


def snapshot_of(session, matter_id: int) -> tuple:
    row = session.execute(
        text("SELECT state, version, current_unit_id, redo_count, rating, "
             "(SELECT count(*) FROM matter_events e WHERE e.matter_id = m.id) "
             "FROM matters m WHERE id = :m"), {"m": matter_id}).one()
    return tuple(row)


def count(session, table: str) -> int:
    return session.execute(text(f"SELECT count(*) FROM {table}")).scalar()


def step(session, who, m, action, **payload):
    return matters.apply_action(session, who, m["id"] if isinstance(m, dict) else m, action,
                                payload)


# --------------------------------------------------------------------------- categories, routing


def test_category_tree_has_the_ten_sectors_and_urban_classes(seeded):
    tree = matters.category_tree(seeded)
    codes = [c["code"] for c in tree]
    assert len(codes) == 12 and {"XF", "SP", "JY", "LY", "LB", "JT", "CS", "GJ", "CJ", "NY",
                                 "BJ", "SJ"} == set(codes)
    assert all(c["children"] and c["name_zh"] and c["name_en"] for c in tree)
    assert matters.ensure_categories(seeded) == 0 and matters.ensure_routing_rules(seeded) == 0


def test_routing_by_category_and_location(seeded):
    lon, lat = point_in(seeded, COMMUNITY)
    town = accounts.unit_by_ref(seeded, TOWN).id
    assert matters.route(seeded, "CS.01", lon, lat).unit_id == town  # town-solvable
    assert matters.route(seeded, "SP.01", lon, lat).unit_id == accounts.unit_by_ref(seeded, MARKET).id
    assert matters.route(seeded, "CS.03", lon, lat).unit_id == accounts.unit_by_ref(seeded, ECO).id
    assert matters.route(seeded, "NY.02", lon, lat).unit_id == town  # solvable child of a dept area
    r = matters.route(seeded, "NY.01", lon, lat)
    assert r.unit_id == accounts.unit_by_ref(seeded, "兖州区农业农村局").id and not r.to_district
    assert r.grid_code.startswith(COMMUNITY) and r.town_code == TOWN
    assert matters.route(seeded, "CS.01", lon, lat, urgency="urgent").to_district
    with pytest.raises(InvalidInput):
        matters.route(seeded, "ZZ.99", lon, lat)


def test_most_specific_rule_wins(seeded):
    community = accounts.unit_by_ref(seeded, COMMUNITY)
    seeded.add(matters.MatterRoutingRule(category_prefix="CS.01", area_prefix=COMMUNITY,
                                         unit_id=community.id))
    seeded.flush()
    inside = point_in(seeded, COMMUNITY)
    outside = point_in(seeded, OTHER_COMMUNITY)
    assert matters.route(seeded, "CS.01", *inside).unit_id == community.id
    assert matters.route(seeded, "CS.02", *inside).unit_id == accounts.unit_by_ref(seeded, TOWN).id
    assert matters.route(seeded, "CS.01", *outside).unit_id == accounts.unit_by_ref(seeded, TOWN).id


def test_routine_goes_to_the_unit_urgent_and_unrouted_wait_at_the_district(seeded):
    district = actor(seeded, "district-operator")
    routine = report(seeded, district)
    assert routine["state"] == "transferred"
    assert routine["current_unit"]["name"] == "鼓楼街道"
    assert routine["deadlines"]["accept_due"] is not None
    assert [e["action"] for e in routine["events"]] == ["report", "transfer"]
    assert routine["ref"].startswith("SX") and len(routine["ref"]) == 15
    urgent = report(seeded, district, urgency="urgent", title="井盖缺失")
    assert urgent["state"] == "reported" and urgent["current_unit"]["name"] == accounts.DISTRICT_UNIT
    assert urgent["deadlines"]["accept_due"] is None
    assert int(urgent["ref"][-5:]) == int(routine["ref"][-5:]) + 1
    seeded.execute(text("DELETE FROM matter_routing_rules WHERE area_prefix = :t"), {"t": OTHER_TOWN})
    unrouted = report(seeded, district, OTHER_TOWN)
    assert unrouted["state"] == "reported"


def test_gcj02_and_cgcs2000_coordinates_are_converted(seeded):
    district = actor(seeded, "district-operator")
    lon, lat = point_in(seeded, COMMUNITY)
    glon, glat = wgs84_to_gcj02(lon, lat)
    m = report(seeded, district, at=(glon, glat), coord_sys="gcj02")
    assert m["lon"] == pytest.approx(lon, abs=2e-5) and m["lat"] == pytest.approx(lat, abs=2e-5)
    m2 = report(seeded, district, at=(lon, lat), coord_sys="cgcs2000", title="另一处")
    assert m2["grid_code"] == m["grid_code"]


BAD_INTAKE = [
    ({"category": "ZZ.01"}, InvalidInput),
    ({"category": None}, InvalidInput),
    ({"at": (116.0, 35.0)}, InvalidInput),  # in China, outside the district
    ({"at": (float("nan"), 35.5)}, InvalidInput),
    ({"at": (116.8, float("inf"))}, InvalidInput),
    ({"coord_sys": "bd09"}, InvalidInput),
    ({"title": ""}, InvalidInput),
    ({"title": "   "}, InvalidInput),
    ({"title": "x" * 121}, InvalidInput),
    ({"title": "bad\x00title"}, InvalidInput),
    ({"description": 42}, InvalidInput),
    ({"urgency": "asap"}, InvalidInput),
    ({"source": "fax"}, InvalidInput),
    ({"reporter_phone": "call me"}, InvalidInput),
    ({"reported_by_worker": 10**9}, InvalidInput),
    ({"reported_at": "2020-01-01"}, InvalidInput),
    ({"duplicate_of": 10**12}, NotFound),
    ({"sneaky": 1}, InvalidInput),
]


@pytest.mark.parametrize(("change", "error"), BAD_INTAKE)
def test_bad_intake_is_refused_and_nothing_is_stored(seeded, change, error):
    district = actor(seeded, "district-operator")
    before = (count(seeded, "matters"), count(seeded, "matter_events"), count(seeded, "audit_log"))
    with pytest.raises(error):
        report(seeded, district, **change)
    assert (count(seeded, "matters"), count(seeded, "matter_events"),
            count(seeded, "audit_log")) == before


def test_duplicate_source_ref_is_a_conflict(seeded):
    district = actor(seeded, "district-operator")
    report(seeded, district, source_ref="12345-2026-000001")
    before = count(seeded, "matters")
    with pytest.raises(Conflict):
        report(seeded, district, source_ref="12345-2026-000001", title="再次来电")
    assert count(seeded, "matters") == before
    # The same ticket id from another source is a different ticket.
    assert report(seeded, district, source="emergency_110", source_ref="12345-2026-000001")


def test_viewers_may_not_report(seeded):
    with pytest.raises(Forbidden):
        report(seeded, actor(seeded, "district-viewer"))


# --------------------------------------------------------------------------- duplicates


def test_duplicates_same_category_within_50_m_and_7_days(seeded):
    district = actor(seeded, "district-operator")
    lon, lat = point_in(seeded, COMMUNITY)
    first = report(seeded, district, at=(lon, lat), now=FRIDAY)
    near = lon + 30 / 91_000  # ~30 m east at 35.5°N
    far = lon + 80 / 91_000
    found = matters.find_duplicates(seeded, "CS.01", near, lat, at=FRIDAY + timedelta(days=2))
    assert [d["id"] for d in found] == [first["id"]]
    assert 20 < found[0]["distance_m"] < 40
    assert matters.find_duplicates(seeded, "CS.01", far, lat, at=FRIDAY) == []
    assert matters.find_duplicates(seeded, "CS.02", near, lat, at=FRIDAY) == []
    assert matters.find_duplicates(seeded, "CS.01", near, lat, at=FRIDAY + timedelta(days=8)) == []
    second = report(seeded, district, at=(near, lat), now=FRIDAY + timedelta(hours=1),
                    title="同一处垃圾")
    assert [d["id"] for d in second["duplicates"]] == [first["id"]]
    # A town sees suggestions in its scope, a department none it cannot see.
    assert matters.find_duplicates(seeded, "CS.01", near, lat, at=FRIDAY,
                                   actor=actor(seeded, "police-operator")) == []


# --------------------------------------------------------------------------- the five steps


def test_full_lifecycle_records_every_step(seeded):
    district = actor(seeded, "district-operator")
    gulou = actor(seeded, "gulou-operator")
    m = report(seeded, district)
    assert "accept" in matters.matter_detail(seeded, gulou, m["id"])["allowed_actions"]
    m = step(seeded, gulou, m, "accept", note="已受理")
    assert m["state"] == "handling" and m["accepted_at"] is not None
    m = step(seeded, gulou, m, "handle", note="已清运")
    assert m["state"] == "handled"
    m = step(seeded, district, m, "verify", note="现场核实")
    assert m["state"] == "verified"
    m = step(seeded, district, m, "close", note="办结")
    assert m["state"] == "closed" and m["closed_at"] is not None
    actions = [(e["action"], e["from_state"], e["to_state"], e["username"], e["unit"])
               for e in m["events"]]
    assert actions == [
        ("report", None, "reported", "district-operator", accounts.DISTRICT_UNIT),
        ("transfer", "reported", "transferred", None, None),
        ("accept", "transferred", "handling", "gulou-operator", "鼓楼街道"),
        ("handle", "handling", "handled", "gulou-operator", "鼓楼街道"),
        ("verify", "handled", "verified", "district-operator", accounts.DISTRICT_UNIT),
        ("close", "verified", "closed", "district-operator", accounts.DISTRICT_UNIT),
    ]
    assert m["events"][1]["to_unit"] == "鼓楼街道" and m["events"][3]["note"] == "已清运"
    assert m["version"] == 5
    audits = seeded.execute(text("SELECT action, detail::text FROM audit_log WHERE target = :t "
                                 "AND at >= now() ORDER BY id"),  # this transaction's only
                           {"t": f"matter:{m['ref']}"}).all()
    assert [a for a, _d in audits] == ["matter.report", "matter.accept", "matter.handle",
                                       "matter.verify", "matter.close"]
    assert not any("13800001234" in d or "王女士" in d for _a, d in audits)


ILLEGAL = [
    ("reported", "accept"), ("reported", "handle"), ("reported", "close"),
    ("transferred", "handle"), ("transferred", "verify"), ("handling", "close"),
    ("handling", "verify"), ("handled", "accept"), ("closed", "handle"), ("closed", "close"),
]


def _advance(session, m, to: str):
    district = actor(session, "district-operator")
    gulou = actor(session, "gulou-operator")
    path = {"transferred": [], "handling": [(gulou, "accept")],
            "handled": [(gulou, "accept"), (gulou, "handle")],
            "closed": [(gulou, "accept"), (gulou, "handle"), (district, "verify"),
                       (district, "close")]}[to]
    for who, action in path:
        m = step(session, who, m, action, note="ok")
    return m


@pytest.mark.parametrize(("state", "action"), ILLEGAL)
def test_illegal_transitions_are_conflicts_and_change_nothing(seeded, state, action):
    district = actor(seeded, "district-operator")
    if state == "reported":
        m = report(seeded, district, urgency="urgent")
    else:
        m = _advance(seeded, report(seeded, district), state)
    assert m["state"] == state
    before = snapshot_of(seeded, m["id"])
    who = district if action in ("verify", "close") else actor(seeded, "gulou-operator")
    with pytest.raises(Conflict) as err:
        step(seeded, who, m, action, note="x")
    assert err.value.details["state"] == state
    assert action not in err.value.details["allowed"]
    assert snapshot_of(seeded, m["id"]) == before


def test_wrong_party_is_forbidden_and_out_of_scope_is_not_found(seeded):
    district = actor(seeded, "district-operator")
    m = report(seeded, district)
    before = snapshot_of(seeded, m["id"])
    with pytest.raises(Forbidden):
        step(seeded, actor(seeded, "community-operator"), m, "accept")  # sees it, does not hold it
    with pytest.raises(Forbidden):
        step(seeded, actor(seeded, "gulou-viewer"), m, "accept")
    with pytest.raises(Forbidden):
        step(seeded, district, m, "accept")  # the district does not hold it either
    with pytest.raises(NotFound):
        step(seeded, actor(seeded, "daan-operator"), m, "accept")
    with pytest.raises(NotFound):
        step(seeded, actor(seeded, "police-operator"), m, "comment", note="hi")
    with pytest.raises(InvalidInput):
        step(seeded, actor(seeded, "gulou-operator"), m, "teleport")
    assert snapshot_of(seeded, m["id"]) == before


def test_notes_are_required_where_it_matters(seeded):
    m = report(seeded, actor(seeded, "district-operator"))
    gulou = actor(seeded, "gulou-operator")
    before = snapshot_of(seeded, m["id"])
    with pytest.raises(InvalidInput):
        step(seeded, gulou, m, "return")
    with pytest.raises(InvalidInput):
        step(seeded, gulou, m, "return", note="x" * 2001)
    assert snapshot_of(seeded, m["id"]) == before


def test_return_escalate_and_retransfer(seeded):
    district = actor(seeded, "district-operator")
    gulou = actor(seeded, "gulou-operator")
    m = report(seeded, district)
    m = step(seeded, gulou, m, "return", note="不属于本街道职责")
    assert m["state"] == "reported" and m["current_unit"]["name"] == accounts.DISTRICT_UNIT
    community = accounts.unit_by_ref(seeded, COMMUNITY)
    m = step(seeded, district, m, "transfer", unit_id=community.id, note="请社区处理")
    assert m["state"] == "transferred" and m["current_unit"]["id"] == community.id
    with pytest.raises(Conflict):  # already with that unit
        step(seeded, district, m, "transfer", unit_id=community.id)
    comm = actor(seeded, "community-operator")
    m = step(seeded, comm, m, "accept")
    m = step(seeded, comm, m, "escalate", note="需要执法部门")
    assert m["state"] == "reported" and m["escalated"] is True
    with pytest.raises(InvalidInput):  # the district center does not transfer to itself
        step(seeded, district, m, "transfer", unit_id=accounts.unit_by_ref(seeded, "370812").id)
    with pytest.raises(NotFound):
        step(seeded, district, m, "transfer", unit_id=10**6)


def test_a_town_passes_to_its_community_and_verifies_its_work(seeded):
    district = actor(seeded, "district-operator")
    gulou = actor(seeded, "gulou-operator")
    comm = actor(seeded, "community-operator")
    m = report(seeded, district)
    other_town = accounts.unit_by_ref(seeded, OTHER_TOWN)
    with pytest.raises(Forbidden):
        step(seeded, gulou, m, "transfer", unit_id=other_town.id)
    community = accounts.unit_by_ref(seeded, COMMUNITY)
    m = step(seeded, gulou, m, "transfer", unit_id=community.id, note="转社区")
    m = step(seeded, comm, m, "accept")
    m = step(seeded, comm, m, "handle", note="已处理")
    assert "verify" not in m["allowed_actions"]  # nobody verifies their own work
    with pytest.raises(Forbidden):
        step(seeded, comm, m, "verify")
    m = step(seeded, gulou, m, "reject", note="未清理干净")
    assert m["state"] == "handling" and m["redo_count"] == 1
    m = step(seeded, comm, m, "handle", note="已再次处理")
    m = step(seeded, gulou, m, "verify", note="核实通过")
    assert m["state"] == "verified"


def test_a_step_with_an_unknown_field_is_refused_and_changes_nothing(seeded):
    m = report(seeded, actor(seeded, "district-operator"))
    gulou = actor(seeded, "gulou-operator")
    before = snapshot_of(seeded, m["id"])
    for action, payload in (("accept", {"versoin": m["version"] + 5}),
                            ("comment", {"note": "ok", "bogus": 1}),
                            ("accept", {"unit_id": 1}), ("comment", {"rating": 5})):
        with pytest.raises(InvalidInput, match="unknown field") as err:
            step(seeded, gulou, m, action, **payload)
        assert "note" in err.value.details["allowed"]
    assert snapshot_of(seeded, m["id"]) == before
    assert step(seeded, gulou, m, "accept", version=m["version"], note="收到")["state"] == "handling"


def test_stale_version_is_a_conflict(seeded):
    m = report(seeded, actor(seeded, "district-operator"))
    gulou = actor(seeded, "gulou-operator")
    before = snapshot_of(seeded, m["id"])
    with pytest.raises(Conflict) as err:
        step(seeded, gulou, m, "accept", version=m["version"] + 5)
    assert err.value.details["version"] == m["version"]
    assert snapshot_of(seeded, m["id"]) == before
    assert step(seeded, gulou, m, "accept", version=m["version"])["state"] == "handling"


# --------------------------------------------------------------------------- deadlines


def test_one_two_three_clocks_flags_and_restart_on_redo(seeded):
    district = actor(seeded, "district-operator")
    gulou = actor(seeded, "gulou-operator")
    m = report(seeded, district, now=FRIDAY)
    d = m["deadlines"]
    # Friday 10:00 Beijing: accept Monday, finish Tuesday, report back Wednesday, 10:00.
    assert d["accept_due"] == FRIDAY + timedelta(days=3)
    assert d["finish_due"] == FRIDAY + timedelta(days=4)
    assert d["feedback_due"] == FRIDAY + timedelta(days=5)
    soon = FRIDAY + timedelta(days=3) - timedelta(hours=2)
    assert matters.matter_detail(seeded, gulou, m["id"], now=soon)["flags"] == {
        "overdue": [], "due_soon": ["accept"]}
    late = FRIDAY + timedelta(days=3, hours=1)
    assert matters.matter_detail(seeded, gulou, m["id"], now=late)["flags"]["overdue"] == ["accept"]
    listed = matters.list_matters(seeded, gulou, overdue=True, now=late)
    assert m["id"] in [i["id"] for i in listed["items"]]
    assert m["id"] not in [i["id"] for i in
                           matters.list_matters(seeded, gulou, overdue=True, now=soon)["items"]]
    # A make-up workday on the Saturday shortens the wait; a holiday Monday lengthens it.
    seeded.execute(text("INSERT INTO work_calendar (day, workday, name) VALUES "
                        "('2026-03-09', false, 'test holiday')"))
    later = report(seeded, district, now=FRIDAY, title="第二件")
    assert later["deadlines"]["accept_due"] == FRIDAY + timedelta(days=4)
    m = matters.apply_action(seeded, gulou, m["id"], "accept", {}, now=late)
    m = matters.apply_action(seeded, gulou, m["id"], "handle", {"note": "ok"}, now=late)
    redo_at = late + timedelta(hours=1)
    m = matters.apply_action(seeded, district, m["id"], "reject", {"note": "不合格"}, now=redo_at)
    assert m["redo_count"] == 1 and m["clock_started_at"] == redo_at
    assert m["deadlines"]["finish_due"] > redo_at + timedelta(days=1)


def test_calendar_mode_is_configurable(seeded, monkeypatch):
    monkeypatch.setenv("GRIDMAP_MATTER_DEADLINE_MODE", "calendar")
    m = report(seeded, actor(seeded, "district-operator"), now=FRIDAY)
    assert m["deadlines"]["accept_due"] == FRIDAY + timedelta(days=1)
    assert m["deadlines"]["feedback_due"] == FRIDAY + timedelta(days=3)


# --------------------------------------------------------------------------- supervision


def test_supervision(seeded):
    district = actor(seeded, "district-operator")
    m = report(seeded, district)
    before = snapshot_of(seeded, m["id"])
    with pytest.raises(Forbidden):
        step(seeded, actor(seeded, "gulou-operator"), m, "supervise", kind="instant", note="快")
    with pytest.raises(InvalidInput):
        step(seeded, district, m, "supervise", kind="shouting", note="快")
    with pytest.raises(InvalidInput):
        step(seeded, district, m, "supervise", kind="written", note="快",
             respond_by="2000-01-01T00:00:00+08:00")
    for far in ("9999-12-31T23:59:59-14:00", (datetime.now(UTC) + timedelta(days=400)).isoformat()):
        with pytest.raises(InvalidInput, match="within a year"):
            step(seeded, district, m, "supervise", kind="instant", note="快", respond_by=far)
    assert snapshot_of(seeded, m["id"]) == before
    respond = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    m = step(seeded, district, m, "supervise", kind="escalated", note="提级督办",
             respond_by=respond)
    assert m["escalated"] is True and m["state"] == "transferred"
    assert [(s["kind"], s["to_unit"]) for s in m["supervisions"]] == [("escalated", "鼓楼街道")]


# --------------------------------------------------------------------------- rating


def _verified(session):
    district = actor(session, "district-operator")
    gulou = actor(session, "gulou-operator")
    m = report(session, district)
    m = step(session, gulou, m, "accept")
    m = step(session, gulou, m, "handle", note="ok")
    return step(session, district, m, "verify")


@pytest.mark.parametrize("rating", [0, 6, -1, 2.5, "5", True, None])
def test_ratings_out_of_range_are_refused(seeded, rating):
    m = _verified(seeded)
    before = snapshot_of(seeded, m["id"])
    with pytest.raises(InvalidInput):
        step(seeded, actor(seeded, "district-operator"), m, "rate", rating=rating)
    assert snapshot_of(seeded, m["id"]) == before


def test_rating_by_the_wrong_party_is_refused(seeded):
    m = _verified(seeded)
    before = snapshot_of(seeded, m["id"])
    for username in ("gulou-operator", "community-operator", "district-viewer"):
        with pytest.raises(Forbidden):
            step(seeded, actor(seeded, username), m, "rate", rating=5)
    with pytest.raises(Forbidden):  # another Open311 client than the one that filed it
        step(seeded, unit_actor(seeded, TOWN, "open311:other-app"), m, "rate", rating=5)
    assert snapshot_of(seeded, m["id"]) == before


def test_the_reporting_unit_rates_on_the_citizens_behalf(seeded):
    comm = actor(seeded, "community-operator")
    gulou = actor(seeded, "gulou-operator")
    district = actor(seeded, "district-operator")
    m = report(seeded, comm)  # routed to the town, reported by the community
    assert m["current_unit"]["name"] == "鼓楼街道"
    m = step(seeded, gulou, m, "accept")
    m = step(seeded, gulou, m, "handle", note="ok")
    m = step(seeded, district, m, "verify")
    assert "rate" in matters.matter_detail(seeded, comm, m["id"])["allowed_actions"]
    m = step(seeded, comm, m, "rate", rating=4, by="callback")
    assert m["rating"] == 4 and m["state"] == "verified"
    with pytest.raises(Conflict):
        step(seeded, comm, m, "rate", rating=5)


def test_a_unit_that_rates_low_does_not_become_the_judge_of_the_redo(seeded):
    comm = actor(seeded, "community-operator")
    gulou = actor(seeded, "gulou-operator")
    district = actor(seeded, "district-operator")
    m = report(seeded, comm)  # routed to the town, reported by the community
    m = step(seeded, gulou, m, "accept")
    m = step(seeded, gulou, m, "handle", note="ok")
    m = step(seeded, district, m, "verify")
    m = step(seeded, comm, m, "rate", rating=1, by="callback")
    assert m["state"] == "transferred" and m["current_unit"]["name"] == "鼓楼街道"
    m = step(seeded, gulou, m, "accept")
    m = step(seeded, gulou, m, "handle", note="重新处理")
    seen = matters.matter_detail(seeded, comm, m["id"])["allowed_actions"]
    assert not {"verify", "reject", "close"} & set(seen)
    before = snapshot_of(seeded, m["id"])
    for action in ("verify", "reject", "close"):
        with pytest.raises((Forbidden, Conflict)):
            step(seeded, comm, m, action, note="自己核实")
    assert snapshot_of(seeded, m["id"]) == before
    assert step(seeded, district, m, "verify")["state"] == "verified"


def test_open311_client_rates_what_it_filed(seeded):
    client = unit_actor(seeded, "370812", "open311:citizen-app")
    lon, lat = point_in(seeded, COMMUNITY)
    m = matters.intake(seeded, client, {"source": "open311", "category": "CS.01", "lon": lon,
                                        "lat": lat, "title": "路灯不亮"})
    gulou = actor(seeded, "gulou-operator")
    m = step(seeded, gulou, m, "accept")
    m = step(seeded, gulou, m, "handle", note="ok")
    m = step(seeded, actor(seeded, "district-operator"), m, "verify")
    other = unit_actor(seeded, "370812", "open311:another-app")
    with pytest.raises(Forbidden):  # the district's unit, but not the client that filed it
        step(seeded, other, m, "rate", rating=1)
    m = step(seeded, client, m, "rate", rating=5, by="open311")
    assert m["rating"] == 5


def test_an_unsatisfied_rating_reopens_with_history(seeded):
    district = actor(seeded, "district-operator")
    gulou = actor(seeded, "gulou-operator")
    m = _verified(seeded)
    m = step(seeded, district, m, "close")
    m = step(seeded, district, m, "rate", rating=2, note="垃圾仍在")
    assert m["state"] == "transferred" and m["redo_count"] == 1 and m["rating"] == 2
    assert m["current_unit"]["name"] == "鼓楼街道" and m["closed_at"] is None
    assert [e["action"] for e in m["events"]][-3:] == ["close", "rate", "reopen"]
    with pytest.raises(Conflict):  # not verified again yet
        step(seeded, district, m, "rate", rating=5)
    m = step(seeded, gulou, m, "accept")
    m = step(seeded, gulou, m, "handle", note="重新处理")
    m = step(seeded, district, m, "verify")
    # Unsatisfied again: this time to a new unit.
    eco = accounts.unit_by_ref(seeded, ECO)
    m = step(seeded, district, m, "rate", rating=1, unit_id=eco.id)
    assert m["redo_count"] == 2 and m["current_unit"]["id"] == eco.id
    assert sum(1 for e in m["events"] if e["action"] == "rate") == 2
    m = step(seeded, district, m, "transfer", unit_id=accounts.unit_by_ref(seeded, TOWN).id)
    assert m["state"] == "transferred"


def test_district_reopens_a_closed_matter(seeded):
    district = actor(seeded, "district-operator")
    m = step(seeded, district, _verified(seeded), "close")
    with pytest.raises(Forbidden):
        step(seeded, actor(seeded, "gulou-operator"), m, "reopen")
    m = step(seeded, district, m, "reopen", note="回头看")
    assert m["state"] == "transferred" and m["redo_count"] == 1


# --------------------------------------------------------------------------- scope, contact


@pytest.mark.parametrize("email", ["wang", "wang@", "@example.cn", "wang@example", "a b@example.cn",
                                   "wang@example.c", "<wang@example.cn>", "w" * 250 + "@example.cn"])
def test_a_bad_reporter_email_is_refused_and_nothing_is_stored(seeded, email):
    district = actor(seeded, "district-operator")
    before = seeded.execute(text("SELECT count(*) FROM matters")).scalar()
    with pytest.raises(InvalidInput) as err:
        report(seeded, district, reporter_email=email)
    assert err.value.details["field"] == "reporter_email"
    assert seeded.execute(text("SELECT count(*) FROM matters")).scalar() == before


def test_scope_matrix_and_contact_visibility(seeded):
    district = actor(seeded, "district-operator")
    m1 = report(seeded, district, COMMUNITY, reporter_email="wang@example.invalid")  # → 鼓楼街道
    m2 = report(seeded, district, OTHER_TOWN)  # → 大安镇
    m3 = report(seeded, district, COMMUNITY, "SP.01")  # → 市场监管局
    market = unit_actor(seeded, MARKET)
    ids = {m1["id"], m2["id"], m3["id"]}
    expected = {
        "district-operator": ({m1["id"], m2["id"], m3["id"]}, {m1["id"], m2["id"], m3["id"]}),
        "gulou-operator": ({m1["id"], m3["id"]}, {m1["id"]}),
        "community-operator": ({m1["id"], m3["id"]}, set()),
        "daan-operator": ({m2["id"]}, {m2["id"]}),
        "police-operator": (set(), set()),
        "market": ({m3["id"]}, {m3["id"]}),
    }
    for name, (visible, contact) in expected.items():
        who = market if name == "market" else actor(seeded, name)
        listed = {i["id"] for i in matters.list_matters(seeded, who, limit=200)["items"]} & ids
        assert listed == visible, name
        for mid in ids:
            if mid in visible:
                detail = matters.matter_detail(seeded, who, mid)
                assert ("reporter" in detail) == (mid in contact), (name, mid)
                if mid in contact:
                    email = "wang@example.invalid" if mid == m1["id"] else ""
                    assert detail["reporter"] == {"name": "王女士", "phone": "13800001234",
                                                  "email": email}
            else:
                with pytest.raises(NotFound):
                    matters.matter_detail(seeded, who, mid)
        layer = matters.matters_geojson(seeded, who)
        assert {f["properties"]["id"] for f in layer["features"]} & ids == visible, name
    # A department that once held a matter keeps seeing it.
    gulou = actor(seeded, "gulou-operator")
    step(seeded, gulou, m1, "return", note="转部门")
    step(seeded, district, m1, "transfer", unit_id=accounts.unit_by_ref(seeded, MARKET).id)
    step(seeded, district, m1, "transfer", unit_id=accounts.unit_by_ref(seeded, TOWN).id)
    assert "reporter" in matters.matter_detail(seeded, market, m1["id"])


def test_list_filters(seeded):
    district = actor(seeded, "district-operator")
    # A marker no demo matter has, so the demo data set cannot match the search.
    tag = "占道经营-" + uuid.uuid4().hex[:8]
    m1 = report(seeded, district, COMMUNITY, title=f"{tag}<script>alert(1)</script>",
                category="SJ.04")
    report(seeded, district, OTHER_TOWN, title=tag)
    page = matters.list_matters(seeded, district, category="SJ", area=COMMUNITY, q=tag)
    assert [i["id"] for i in page["items"]] == [m1["id"]]
    assert page["items"][0]["title"] == f"{tag}<script>alert(1)</script>"
    assert matters.list_matters(seeded, district, state="closed", q=tag)["total"] == 0
    for bad in ({"state": "weird"}, {"area": "37x"}, {"category": "bad code"}, {"limit": 0},
                {"q": "x" * 61}):
        with pytest.raises(InvalidInput):
            matters.list_matters(seeded, district, **bad)
    grid = matters.grid_matters(seeded, district, m1["grid_code"])
    assert m1["id"] in [i["id"] for i in grid["items"]]


# --------------------------------------------------------------------------- attachments


def test_attachments_are_sniffed_capped_and_scoped(seeded):
    district = actor(seeded, "district-operator")
    m = report(seeded, district)
    photo = matters.add_attachment(seeded, district, m["id"], kind="photo", filename="../x.jpg",
                                   content_type="image/jpeg", data=JPEG)
    assert photo["content_type"] == "image/jpeg" and photo["filename"] == "x.jpg"
    doc = matters.add_attachment(seeded, district, m["id"], kind="document", filename="a.pdf",
                                 content_type="application/pdf", data=PDF)
    assert doc["content_type"] == "application/pdf"
    before = count(seeded, "matter_attachments")
    bad = [
        (dict(kind="photo", content_type="image/png", data=b"<svg/>"), InvalidInput),
        (dict(kind="photo", content_type="application/pdf", data=PDF), InvalidInput),
        (dict(kind="photo", content_type="image/png", data=JPEG), InvalidInput),
        (dict(kind="video", content_type="image/jpeg", data=JPEG), InvalidInput),
        (dict(kind="photo", content_type="image/jpeg", data=b""), InvalidInput),
        (dict(kind="photo", content_type="image/jpeg",
              data=JPEG + b"\x00" * matters.MAX_ATTACHMENT_BYTES), PayloadTooLarge),
    ]
    for kwargs, error in bad:
        with pytest.raises(error):
            matters.add_attachment(seeded, district, m["id"], filename="f", **kwargs)
    assert count(seeded, "matter_attachments") == before
    assert matters.attachment_bytes(seeded, district, m["id"], photo["id"]) == (
        "image/jpeg", "x.jpg", JPEG)
    with pytest.raises(NotFound):
        matters.attachment_bytes(seeded, actor(seeded, "daan-operator"), m["id"], photo["id"])
    other = report(seeded, district, title="另一件")
    with pytest.raises(NotFound):  # an attachment id of another matter
        matters.attachment_bytes(seeded, district, other["id"], photo["id"])
    with pytest.raises(NotFound):
        matters.add_attachment(seeded, actor(seeded, "daan-operator"), m["id"], kind="photo",
                               filename="f", content_type=None, data=PNG)


def test_camera_snapshot_is_attached(seeded, tmp_path):
    from video.sampler import snapshot_paths

    district = actor(seeded, "district-operator")
    gb_id, lon, lat = _seen_spot(seeded, TOWN)
    m = report(seeded, district, at=(lon, lat))
    with pytest.raises(NotFound):  # never sampled
        matters.attach_snapshot(seeded, district, m["id"], gb_id, snapshot_dir=tmp_path)
    latest, _thumb = snapshot_paths(tmp_path, gb_id)
    latest.parent.mkdir(parents=True)
    latest.write_bytes(JPEG)
    att = matters.attach_snapshot(seeded, district, m["id"], gb_id, snapshot_dir=tmp_path)
    assert att["kind"] == "snapshot" and att["content_type"] == "image/jpeg"
    detail = matters.matter_detail(seeded, district, m["id"])
    assert detail["attachments"][0]["camera_id"] == gb_id
    with pytest.raises(InvalidInput):
        matters.attach_snapshot(seeded, district, m["id"], "not-a-gb-id", snapshot_dir=tmp_path)


# --------------------------------------------------------------------------- video link


def _seen_spot(session, prefix: str, department: str | None = None) -> tuple[str, float, float]:
    """Return a camera and a point inside its view sector, in the area."""
    sql = ("SELECT c.gb_id, ST_X(p), ST_Y(p) FROM cameras c, "
           "LATERAL (SELECT ST_PointOnSurface(ST_Intersection(c.view_sector, g.geom)) AS p "
           "FROM grids g WHERE g.id = c.grid_id) s "
           "WHERE c.grid_code LIKE :p || '%' AND c.heading IS NOT NULL AND NOT ST_IsEmpty(p) ")
    if department:
        sql += "AND c.department = :d "
    return tuple(session.execute(text(sql + "ORDER BY c.gb_id LIMIT 1"),
                                 {"p": prefix, "d": department}).one())


def test_cameras_that_see_the_matter_and_video_dispatch(seeded):
    district = actor(seeded, "district-operator")
    gb_id, lon, lat = _seen_spot(seeded, TOWN)
    m = report(seeded, district, at=(lon, lat))
    cams = matters.cameras_for_matter(seeded, district, m["id"])
    assert gb_id in [c["gb_id"] for c in cams]
    assert all(c["distance_m"] <= matters.CAMERA_RADIUS_M for c in cams)
    # Every listed camera's sector covers the spot.
    covered = seeded.execute(
        text("SELECT count(*) FROM cameras WHERE gb_id = ANY(:g) AND "
             "ST_Intersects(view_sector, ST_SetSRID(ST_MakePoint(:x, :y), 4326))"),
        {"g": [c["gb_id"] for c in cams], "x": m["lon"], "y": m["lat"]}).scalar()
    assert covered == len(cams)
    # The camera scope applies: a department sees only its own cameras.
    police = actor(seeded, "police-operator")
    town = accounts.unit_by_ref(seeded, TOWN)
    daan = accounts.unit_by_ref(seeded, OTHER_TOWN)
    order_id = matters.dispatch_video(seeded, district, m["id"], [town.id, daan.id],
                                      note="请查看现场")
    order = dispatch.order_detail(seeded, district, order_id)
    assert order["incident"] == m["ref"]
    assert {c["gb_id"] for c in order["cameras"]} == {c["gb_id"] for c in cams}
    picked, summary = dispatch.select_cameras(seeded, district, {"incident": m["ref"]})
    assert {g for _i, g in picked} == {c["gb_id"] for c in cams} and summary["incident"] == m["ref"]
    with pytest.raises(NotFound):  # the police see no such matter
        dispatch.select_cameras(seeded, police, {"incident": m["ref"]})
    with pytest.raises(NotFound):
        matters.cameras_for_matter(seeded, police, m["id"])
    gulou = actor(seeded, "gulou-operator")
    layer = matters.open_orders_geojson(seeded, gulou)
    assert {f["properties"]["order"] for f in layer["features"]} == {order_id}
    # Once the town closes its part the order leaves its map; it stays open, with
    # 大安's part, on the sender's and 大安's.
    dispatch.close(seeded, gulou, order_id, "已查看")
    assert matters.open_orders_geojson(seeded, gulou)["features"] == []
    for other in (district, actor(seeded, "daan-operator")):
        assert {f["properties"]["order"]
                for f in matters.open_orders_geojson(seeded, other)["features"]} == {order_id}


# --------------------------------------------------------------------------- grid edits


def test_grid_edit_rederives_matter_grid_codes(seeded):
    district = actor(seeded, "district-operator")
    grid = "370812001001002"
    other = same_community_neighbour(seeded, grid)
    old = geom_of(seeded, grid)
    new = grown(seeded, grid, other, 0.0008)
    taken = new.difference(old)
    spot = taken.representative_point()
    m = report(seeded, district, at=(spot.x, spot.y))
    assert m["grid_code"] == other
    stay = report(seeded, district, at=tuple(geom_of(seeded, other).difference(new)
                                            .representative_point().coords[0]), title="不动")
    grid_edits.edit_boundary(seeded, grid, mapping(new), version=version_of(seeded, grid),
                             ctx=grid_edits.EditContext("tester", "调整边界"))
    codes = dict(seeded.execute(text("SELECT id, grid_code FROM matters WHERE id = ANY(:i)"),
                                {"i": [m["id"], stay["id"]]}).all())
    assert codes == {m["id"]: grid, stay["id"]: other}
    # The trigger derives on move, too.
    raw = seeded.execute(text("SELECT ST_AsBinary(ST_PointOnSurface(geom)) FROM grids "
                              "WHERE code LIKE :p || '%' ORDER BY code LIMIT 1"),
                         {"p": OTHER_TOWN}).scalar()
    p = wkb.loads(bytes(raw))
    seeded.execute(text("UPDATE matters SET geom = ST_SetSRID(ST_MakePoint(:x, :y), 4326) "
                        "WHERE id = :i"), {"x": p.x, "y": p.y, "i": stay["id"]})
    assert seeded.execute(text("SELECT grid_code FROM matters WHERE id = :i"),
                          {"i": stay["id"]}).scalar().startswith(OTHER_TOWN)


def test_a_matter_names_the_grid_worker_who_found_it(seeded):
    district = actor(seeded, "district-operator")
    worker_id, name = seeded.execute(text(
        "SELECT w.id, w.name FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
        "WHERE g.code LIKE :p || '%' AND w.role = 'full_time' ORDER BY g.code LIMIT 1"),
        {"p": COMMUNITY}).one()
    m = report(seeded, district, source="grid_worker", reported_by_worker=worker_id)
    detail = matters.matter_detail(seeded, actor(seeded, "community-viewer"), m["id"])
    assert detail["reported_by_worker"]["id"] == worker_id
    assert detail["reported_by_worker"]["name"] == name and not detail["reported_by_worker"]["left"]
    assert "reporter" not in detail  # the citizen's contact stays with the handling units
    assert "reported_by_worker" not in matters.matter_detail(seeded, district,
                                                             report(seeded, district)["id"])
    # A member who has left can no longer be named as the reporter of a new matter.
    seeded.execute(text("UPDATE grid_workers SET left_at = now() WHERE id = :w"), {"w": worker_id})
    with pytest.raises(InvalidInput, match="current team"):
        report(seeded, district, source="grid_worker", reported_by_worker=worker_id)
    assert matters.matter_detail(seeded, district, m["id"])["reported_by_worker"]["left"]


def test_only_a_worker_of_the_callers_own_area_can_be_named(seeded):
    comm = actor(seeded, "community-operator")

    def worker_under(prefix):
        return seeded.execute(text(
            "SELECT w.id FROM grid_workers w JOIN grids g ON g.id = w.grid_id "
            "WHERE g.code LIKE :p || '%' AND w.left_at IS NULL ORDER BY w.id LIMIT 1"),
            {"p": prefix}).scalar()

    before = count(seeded, "matters")
    with pytest.raises(InvalidInput, match="your area") as err:
        report(seeded, comm, source="grid_worker", reported_by_worker=worker_under(OTHER_TOWN))
    assert "name" not in str(err.value.details)
    assert count(seeded, "matters") == before
    own = worker_under(COMMUNITY)
    m = report(seeded, comm, source="grid_worker", reported_by_worker=own)
    assert matters.matter_detail(seeded, comm, m["id"])["reported_by_worker"]["id"] == own
