"""Work-day arithmetic for the 1-2-3 deadlines (pure: no database)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridmap import workdays

# 2024: National Day holiday Oct 1–7, make-up workdays Sun Sep 29 and Sat Oct 12.
NATIONAL_DAY_2024 = {
    **{date(2024, 10, d): False for d in range(1, 8)},
    date(2024, 9, 29): True,
    date(2024, 10, 12): True,
}


def at(y: int, m: int, d: int, h: int = 10) -> datetime:
    return datetime(y, m, d, h, 30, tzinfo=UTC)


def test_weekdays_are_workdays_weekends_are_not():
    assert workdays.is_workday(date(2024, 9, 27))  # Friday
    assert not workdays.is_workday(date(2024, 9, 28))  # Saturday
    assert workdays.is_workday(date(2024, 9, 29), NATIONAL_DAY_2024)  # make-up Sunday
    assert not workdays.is_workday(date(2024, 10, 1), NATIONAL_DAY_2024)


def test_friday_plus_one_workday_is_monday_same_time():
    assert workdays.add_workdays(at(2024, 9, 20), 1) == at(2024, 9, 23)


def test_saturday_start_counts_from_monday():
    assert workdays.add_workdays(at(2024, 9, 21), 1) == at(2024, 9, 23)


def test_holidays_and_make_up_days_are_honoured():
    # Friday Sep 27: next workdays are Sun Sep 29 (make-up), Mon Sep 30, then Tue Oct 8.
    start = at(2024, 9, 27)
    assert workdays.add_workdays(start, 1, NATIONAL_DAY_2024) == at(2024, 9, 29)
    assert workdays.add_workdays(start, 2, NATIONAL_DAY_2024) == at(2024, 9, 30)
    assert workdays.add_workdays(start, 3, NATIONAL_DAY_2024) == at(2024, 10, 8)
    # Without the calendar the same sum is plain Mon–Fri.
    assert workdays.add_workdays(start, 3) == at(2024, 10, 2)


def test_calendar_mode_ignores_weekends():
    assert workdays.add_days(at(2024, 9, 27), 2, mode="calendar") == at(2024, 9, 29)
    assert workdays.add_days(at(2024, 9, 27), 2) == at(2024, 10, 1)


def test_zero_days_is_the_start_and_bad_arguments_are_refused():
    assert workdays.add_workdays(at(2024, 9, 27), 0) == at(2024, 9, 27)
    with pytest.raises(ValueError):
        workdays.add_workdays(at(2024, 9, 27), -1)
    with pytest.raises(ValueError):
        workdays.add_days(at(2024, 9, 27), 1, mode="lunar")


calendars = st.dictionaries(
    st.dates(min_value=date(2024, 1, 1), max_value=date(2025, 12, 31)), st.booleans(),
    max_size=40,
)


@given(
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2025, 6, 30)),
    n=st.integers(min_value=1, max_value=30),
    exceptions=calendars,
)
def test_adding_n_workdays_lands_on_a_workday_n_workdays_later(start, n, exceptions):
    start = start.replace(tzinfo=UTC)
    due = workdays.add_workdays(start, n, exceptions)
    assert workdays.is_workday(due.date(), exceptions)
    assert workdays.workdays_between(start.date(), due.date(), exceptions) == n
    assert due.time() == start.time()
    # Nothing earlier would do: the day before holds only n - 1 workdays.
    assert workdays.workdays_between(start.date(), due.date() - timedelta(days=1), exceptions) == n - 1


@given(start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2025, 6, 30)),
       n=st.integers(min_value=0, max_value=30))
def test_workday_deadlines_are_never_earlier_than_calendar_ones(start, n):
    assert workdays.add_days(start, n) >= workdays.add_days(start, n, mode="calendar")


def test_the_official_calendar_knows_the_2026_spring_festival_and_its_make_up_days():
    from gridmap.holidays import official_days

    days = {d: (work, name) for d, work, name in official_days([2026])}
    assert days[date(2026, 2, 16)] == (False, "春节")  # a Monday off
    assert days[date(2026, 2, 14)] == (True, "春节调休")  # a Saturday at work
    assert {d.year for d in days} == {2026}
    # Friday 13 Feb 2026, 13:30: one work day is the make-up Saturday, two and three
    # are the Tuesday and Wednesday after the nine days off.
    start = datetime(2026, 2, 13, 13, 30)
    exceptions = {d: work for d, (work, _) in days.items()}
    assert [workdays.add_workdays(start, n, exceptions).date() for n in (1, 2, 3)] == [
        date(2026, 2, 14), date(2026, 2, 24), date(2026, 2, 25)]


def test_a_calendar_file_is_read_or_refused_with_every_bad_row():
    from gridmap.errors import InvalidInput
    from gridmap.holidays import read_calendar_csv

    good = "\ufeffday,workday,name\n2027-01-01,0,元旦\n2027-02-06,是,春节调休\n\n".encode()
    assert read_calendar_csv(good) == [(date(2027, 1, 1), False, "元旦"),
                                       (date(2027, 2, 6), True, "春节调休")]
    with pytest.raises(InvalidInput) as caught:
        read_calendar_csv(b"2027-13-01,0,x\n2027-01-02,maybe,y\n2027-01-03,1,z\n")
    assert caught.value.reason == ("row 1: '2027-13-01' is not a date (YYYY-MM-DD); "
                                   "row 2: workday is 1 or 0, not 'maybe'")
    with pytest.raises(InvalidInput, match="not UTF-8"):
        read_calendar_csv("2027-01-01,0,元旦".encode("gbk"))
