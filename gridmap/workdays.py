"""Work-day arithmetic for matter deadlines: pure functions, no database.

China's official calendar moves days around every year: public holidays that fall
on weekdays, and make-up workdays (调休) that fall on weekends. Those exceptions
live in the ``work_calendar`` table; callers load the few that matter and pass them
in as a mapping ``{date: is_workday}``, so these functions stay pure and testable.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta

MODES = ("workdays", "calendar")
DEFAULT_MODE = "workdays"
# A deadline more than this many days out is refused rather than searched for.
MAX_DAYS = 366

Exceptions = Mapping[date, bool]


def is_workday(day: date, exceptions: Exceptions | None = None) -> bool:
    """Return whether ``day`` is a workday: Mon–Fri unless the calendar says otherwise."""
    if exceptions and day in exceptions:
        return bool(exceptions[day])
    return day.weekday() < 5


def add_workdays(start: datetime, n: int, exceptions: Exceptions | None = None) -> datetime:
    """Return the same time of day on the ``n``-th workday after ``start``'s day.

    Counting starts with the day after ``start`` (a matter transferred on Friday
    afternoon with one workday to go is due on Monday afternoon); ``n = 0`` returns
    ``start`` itself.
    """
    if n < 0 or n > MAX_DAYS:
        raise ValueError(f"n must be within 0–{MAX_DAYS}")
    day = start.date()
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if is_workday(day, exceptions):
            counted += 1
    return start + timedelta(days=(day - start.date()).days)


def add_days(start: datetime, n: int, exceptions: Exceptions | None = None,
             mode: str = DEFAULT_MODE) -> datetime:
    """Return ``start`` plus ``n`` work days or calendar days, by ``mode``."""
    if mode not in MODES:
        raise ValueError(f"mode is one of {', '.join(MODES)}")
    if mode == "calendar":
        if n < 0 or n > MAX_DAYS:
            raise ValueError(f"n must be within 0–{MAX_DAYS}")
        return start + timedelta(days=n)
    return add_workdays(start, n, exceptions)


def workdays_between(first: date, last: date, exceptions: Exceptions | None = None) -> int:
    """Return how many workdays lie after ``first`` up to and including ``last``."""
    if last <= first:
        return 0
    count = 0
    day = first
    while day < last:
        day += timedelta(days=1)
        if is_workday(day, exceptions):
            count += 1
    return count
