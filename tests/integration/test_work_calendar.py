"""The official holidays in the database, and the deadlines that count with them."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import text

from gridmap import holidays, matters


def test_stored_holidays_move_a_matters_deadlines(session):
    session.execute(text("DELETE FROM work_calendar WHERE day BETWEEN '2026-01-01' AND '2026-12-31'"))
    assert holidays.store(session, holidays.official_days([2026])) == 39
    start = datetime(2026, 2, 13, 5, 30, tzinfo=UTC)  # Friday 13:30 in Beijing
    dues = matters.clock_dues(start, matters._calendar(session, start), mode="workdays")
    assert {k: v.astimezone(matters.LOCAL_TZ).date() for k, v in dues.items()} == {
        "accept_due": date(2026, 2, 14), "finish_due": date(2026, 2, 24),
        "feedback_due": date(2026, 2, 25)}


def test_a_local_entry_outranks_the_package_unless_a_file_replaces_it(session):
    session.execute(text("DELETE FROM work_calendar WHERE day BETWEEN '2026-01-01' AND '2026-12-31'"))
    # The center gave 2 January 2026 as a workday; loading the official calendar keeps it.
    holidays.store(session, [(date(2026, 1, 2), True, "本地安排")])
    assert holidays.store(session, holidays.official_days([2026])) == 38
    day = "SELECT workday, name FROM work_calendar WHERE day = '2026-01-02'"
    assert session.execute(text(day)).one() == (True, "本地安排")
    assert holidays.store(session, [(date(2026, 1, 2), False, "元旦")], replace=True) == 1
    assert session.execute(text(day)).one() == (False, "元旦")


def test_topping_up_an_older_demo_database_fills_its_empty_calendar(session):
    from gridmap import demo

    session.execute(text("DELETE FROM work_calendar"))
    added = demo.top_up(session)
    stored = session.execute(text("SELECT count(*) FROM work_calendar")).scalar()
    assert added["work_calendar"] == stored == len(holidays.official_days())
    assert session.execute(text(
        "SELECT workday FROM work_calendar WHERE day = '2026-10-01'")).scalar() is False
    assert demo.top_up(session)["work_calendar"] == 0  # a second run adds nothing


def test_a_clock_running_into_a_year_without_a_calendar_is_logged_once(session, caplog,
                                                                        monkeypatch):
    monkeypatch.setattr(matters, "_WARNED_YEARS", set())
    session.execute(text("DELETE FROM work_calendar"))
    holidays.store(session, holidays.official_days([2026]))
    start = datetime(2026, 12, 20, 2, 0, tzinfo=UTC)  # its 60-day window reaches 2027
    with caplog.at_level("WARNING", logger="gridmap.matters"):
        matters._calendar(session, start)
        matters._calendar(session, start)
    warned = [r.getMessage() for r in caplog.records if r.name == "gridmap.matters"]
    assert len(warned) == 1 and "2027" in warned[0]
    caplog.clear()
    holidays.store(session, [(date(2027, 1, 1), False, "元旦")])
    monkeypatch.setattr(matters, "_WARNED_YEARS", set())
    with caplog.at_level("WARNING", logger="gridmap.matters"):
        matters._calendar(session, start)
    assert not [r for r in caplog.records if r.name == "gridmap.matters"]
