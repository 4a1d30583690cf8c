"""Matter statistics on the real PostGIS: overdue scan, unit rates, hot spots, repeats, look-back.

The matters are inserted in a month long past (March 2021), so the figures count
only them, whatever else the database holds; each test rolls back.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from gridmap import matter_stats, matters
from gridmap.accounts import DEMO_TOWN, DISTRICT_UNIT, Unit, system_actor, unit_by_ref
from gridmap.errors import Forbidden, InvalidInput

MONTH = date(2021, 3, 1)
T0 = datetime(2021, 3, 10, 9, 0, tzinfo=UTC)
GULOU = (116.826, 35.553)  # inside 鼓楼街道 (370812001)
DAAN = (116.93, 35.47)  # 大安镇, elsewhere


@pytest.fixture
def ctx(seeded):
    """Return the district and town units and actors (categories and rules seeded)."""
    session = seeded
    district = unit_by_ref(session, DISTRICT_UNIT)
    town = unit_by_ref(session, DEMO_TOWN)
    return {"district": district, "town": town, "center": system_actor(district, "stats-test"),
            "town_actor": system_actor(town, "town-test")}


_n = iter(range(1, 100_000))


def add(session, unit: Unit, *, state: str, at: datetime = T0, where=GULOU, cat: str = "SJ.01",
        handled: datetime | None = None, rating: int | None = None, closed: datetime | None = None,
        clock: datetime | None = None) -> int:
    """Insert one matter as the loader would; return its id."""
    clock = clock or at
    return session.execute(text("""
        INSERT INTO matters (ref, source, category_code, title, geom, state, current_unit_id,
          handling_unit_id, reported_at, clock_started_at, accept_due, finish_due, feedback_due,
          accepted_at, handled_at, closed_at, rating)
        VALUES (:ref, 'hotline_12345', :cat, '测试事项', ST_SetSRID(ST_MakePoint(:x, :y), 4326),
          :state, :unit, :unit, :at, :clock, :clock + interval '1 day', :clock + interval '2 days',
          :clock + interval '3 days', :accepted, :handled, :closed, :rating)
        RETURNING id"""),
        {"ref": f"SX20210301{next(_n):05d}", "cat": cat, "x": where[0], "y": where[1],
         "state": state, "unit": unit.id, "at": at, "clock": clock,
         "accepted": handled or None, "handled": handled, "closed": closed,
         "rating": rating}).scalar()


def test_overdue_scan_counts_each_clock(session, ctx):
    town = ctx["town"]
    now = T0 + timedelta(days=5)
    late_accept = add(session, town, state="transferred", clock=now - timedelta(days=2, hours=1))
    soon_accept = add(session, town, state="transferred",
                      clock=now - timedelta(days=1) + timedelta(hours=2))
    late_finish = add(session, town, state="handling", clock=now - timedelta(days=2, hours=1))
    late_feedback = add(session, town, state="handled", clock=now - timedelta(days=4))
    add(session, town, state="closed", clock=now - timedelta(days=9), closed=now)
    add(session, town, state="handling", clock=now)  # nothing due yet
    scan = matter_stats.overdue_scan(session, now)
    assert scan["ids"]["overdue"]["accept"] == [late_accept]
    assert scan["ids"]["due_soon"]["accept"] == [soon_accept]
    assert set(scan["ids"]["overdue"]["finish"]) == {late_accept, late_finish}
    assert scan["ids"]["overdue"]["feedback"] == [late_feedback]
    assert scan["overdue"] == {"accept": 1, "finish": 2, "feedback": 1}
    assert scan["any_overdue"] == 3
    # The flags agree with the matters module's own rule for a single matter.
    row = session.execute(text("SELECT state, accept_due, finish_due, feedback_due FROM matters"
                               " WHERE id = :i"), {"i": late_finish}).mappings().one()
    assert matters.deadline_flags(row, now)["overdue"] == ["finish"]


def test_overdue_scan_uses_the_partial_indexes(session, ctx):
    # With the sequential scan ruled out the plan must still find the open matters
    # through the three partial indexes (a BitmapOr), i.e. the predicates match them.
    session.execute(text("SET LOCAL enable_seqscan = off"))
    plan = "\n".join(r[0] for r in session.execute(
        text("EXPLAIN " + matter_stats._OVERDUE_SQL.format(scope="TRUE")),
        {"now": T0, "soon": T0 + timedelta(hours=4)}))
    assert "ix_matters_open_accept_due" in plan
    assert "ix_matters_open_feedback_due" in plan


def test_unit_stats_rates(session, ctx):
    town = ctx["town"]
    on_time = T0 + timedelta(days=1)
    late = T0 + timedelta(days=3)
    add(session, town, state="closed", handled=on_time, rating=5, closed=late)
    add(session, town, state="closed", handled=on_time, rating=2, closed=late)
    add(session, town, state="verified", handled=late)
    add(session, town, state="handling")
    rows = matter_stats.unit_stats(session, ctx["center"], MONTH)
    mine = next(r for r in rows if r["unit"]["id"] == town.id)
    assert (mine["received"], mine["completed"], mine["on_time"], mine["rated"]) == (4, 3, 2, 2)
    assert mine["completion_rate"] == pytest.approx(0.75)
    assert mine["on_time_rate"] == pytest.approx(2 / 3, abs=1e-4)
    assert mine["satisfaction_rate"] == pytest.approx(0.5)
    summary = matter_stats.month_summary(session, ctx["center"], MONTH)
    assert summary["total"] == 4 and summary["by_state"]["closed"] == 2


def test_scope_limits_the_figures(session, ctx):
    police = unit_by_ref(session, "兖州区公安分局")
    add(session, ctx["town"], state="handling")
    add(session, police, state="handling", where=DAAN, cat="JT.01")
    town_rows = matter_stats.unit_stats(session, ctx["town_actor"], MONTH)
    assert [r["unit"]["id"] for r in town_rows] == [ctx["town"].id]
    everything = matter_stats.unit_stats(session, ctx["center"], MONTH)
    assert {r["unit"]["id"] for r in everything} == {ctx["town"].id, police.id}


def test_hotspots_and_repeats(session, ctx):
    town = ctx["town"]
    for i in range(4):  # four times within ~35 m: one repeat cluster
        add(session, town, state="closed", where=(GULOU[0], GULOU[1] + i * 0.0001),
            at=T0 + timedelta(days=i), closed=T0 + timedelta(days=i + 1))
    add(session, town, state="handling", where=(GULOU[0] + 0.01, GULOU[1]))  # 900 m away
    add(session, town, state="handling", cat="CS.03")  # same spot, other category
    hot = matter_stats.hotspots(session, ctx["center"], MONTH)
    assert hot["categories"][0] == {**hot["categories"][0], "code": "SJ.01", "count": 5}
    assert hot["grids"][0]["count"] >= 4
    assert hot["areas"][0]["code"] == "SJ"
    reps = matter_stats.repeats(session, ctx["center"], MONTH)
    assert len(reps) == 1
    assert reps[0]["count"] == 4 and reps[0]["category"]["code"] == "SJ.01"
    assert reps[0]["first_at"] < reps[0]["last_at"]
    with pytest.raises(InvalidInput):
        matter_stats.repeats(session, ctx["center"], MONTH, radius_m=0)


def test_lookback_lists_reassigns_and_strikes_off(session, ctx):
    town = ctx["town"]
    open_id = add(session, town, state="handling")
    unsatisfied = add(session, town, state="closed", handled=T0, rating=1,
                      closed=T0 + timedelta(days=1))
    satisfied = add(session, town, state="closed", handled=T0, rating=5,
                    closed=T0 + timedelta(days=1))
    center = system_actor(ctx["district"], "district-operator")
    result = matter_stats.run_lookback(session, center, MONTH)
    assert result["unresolved"] >= 1 and result["unsatisfied"] == 1
    assert result["reopened"] == 1
    listed = matter_stats.lookback_list(session, center, MONTH)
    reasons = {i["id"]: i["reason"] for i in listed["items"]}
    assert reasons[open_id] == "unresolved" and reasons[unsatisfied] == "unsatisfied"
    assert satisfied not in reasons
    state = session.execute(text("SELECT state FROM matters WHERE id = :i"),
                            {"i": unsatisfied}).scalar()
    assert state == "transferred"  # reopened to its unit
    # Running the month again lists nothing new.
    assert matter_stats.run_lookback(session, center, MONTH)["listed"] == 0
    # Closed after its listing: struck off.
    session.execute(text("UPDATE matters SET state = 'closed', closed_at = now() + interval '1 s'"
                         " WHERE id = :i"), {"i": open_id})
    assert matter_stats.strike_off(session, MONTH) >= 1
    listed = matter_stats.lookback_list(session, center, MONTH)
    struck = {i["id"]: i["struck_at"] for i in listed["items"]}
    assert struck[open_id] is not None and struck[unsatisfied] is None


def test_lookback_leaves_a_matter_whose_low_rating_was_already_redone(session, ctx):
    town = ctx["town"]
    redone = add(session, town, state="closed", handled=T0 + timedelta(days=3), rating=1,
                 closed=T0 + timedelta(days=4))
    # Rated 1 on day 1 (which reopened it), then redone and verified again on day 3.
    session.execute(text("UPDATE matters SET rated_at = :r, verified_at = :v, redo_count = 1 "
                         "WHERE id = :i"),
                    {"r": T0 + timedelta(days=1), "v": T0 + timedelta(days=3), "i": redone})
    still_low = add(session, town, state="closed", handled=T0, rating=2,
                    closed=T0 + timedelta(days=2))
    session.execute(text("UPDATE matters SET verified_at = :v, rated_at = :r WHERE id = :i"),
                    {"v": T0 + timedelta(days=1), "r": T0 + timedelta(days=2), "i": still_low})
    center = system_actor(ctx["district"], "district-operator")
    matter_stats.run_lookback(session, center, MONTH)
    reasons = {i["id"]: i["reason"] for i in matter_stats.lookback_list(session, center, MONTH)["items"]}
    assert redone not in reasons and reasons[still_low] == "unsatisfied"
    assert session.execute(text("SELECT state, redo_count FROM matters WHERE id = :i"),
                           {"i": redone}).one() == ("closed", 1)


def test_lookback_needs_a_district_operator(session, ctx):
    with pytest.raises(Forbidden):
        matter_stats.run_lookback(session, ctx["town_actor"], MONTH)


def test_stats_api_and_bad_month(client, client_as):
    resp = client.get("/api/matters/stats?month=2021-03")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["month"] == "2021-03" and "overdue" in body and "units" in body
    assert client.get("/api/matters/stats?month=2021-13").status_code == 400
    assert client.get("/api/matters/lookback?month=nope").status_code == 400
    assert client_as("gulou-operator").post("/api/matters/lookback/run",
                                            json={"month": "2021-03"}).status_code == 403
    for month in (202103, ["2021-03"], {"y": 2021}):
        refused = client.post("/api/matters/lookback/run", json={"month": month})
        assert refused.status_code == 400 and "YYYY-MM" in refused.get_json()["reason"]


def test_bulletin_page_escapes_and_translates(session, client, ctx):
    add(session, ctx["town"], state="closed", handled=T0, rating=5, closed=T0)
    mid = add(session, ctx["town"], state="closed", handled=T0, rating=1, closed=T0)
    session.execute(text("UPDATE matters SET title = '<script>alert(1)</script>' WHERE id = :i"),
                    {"i": mid})
    center = system_actor(ctx["district"], "district-operator")
    matter_stats.run_lookback(session, center, MONTH)
    session.commit()
    page = client.get("/matters/bulletin?month=2021-03")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "事项办理月度通报" in html and "<svg" in html and "@media print" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    english = client.get("/matters/bulletin?month=2021-03&lang=en").get_data(as_text=True)
    assert "Monthly matters bulletin" in english and "Look-back list" in english
