"""The five-step state machine and deadline flags as pure functions (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from gridmap import matters
from gridmap.errors import Conflict, InvalidInput
from gridmap.matter_models import MATTER_STATES

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)

# The happy path of 上报 → 转办 → 处置 → 核实 → 结案.
HAPPY = [("transfer", "transferred"), ("accept", "handling"), ("handle", "handled"),
         ("verify", "verified"), ("close", "closed")]


def test_the_five_steps_in_order():
    state = "reported"
    for action, expected in HAPPY:
        state = matters.next_state(state, action)
        assert state == expected


@pytest.mark.parametrize("state", MATTER_STATES)
@pytest.mark.parametrize("action", matters.ACTIONS)
def test_every_pair_is_either_allowed_or_a_conflict(state, action):
    sources, target = matters.TRANSITIONS[action]
    if state in sources:
        assert matters.next_state(state, action) == (target or state)
        assert action in matters.actions_from(state)
    else:
        with pytest.raises(Conflict) as err:
            matters.next_state(state, action)
        assert err.value.details["allowed"] == matters.actions_from(state)
        assert action not in matters.actions_from(state)


def test_closed_matters_only_take_rating_reopening_and_comments():
    assert sorted(matters.actions_from("closed")) == ["comment", "rate", "reopen"]


def test_unknown_action_is_invalid_input_not_conflict():
    with pytest.raises(InvalidInput):
        matters.next_state("reported", "teleport")


def test_return_redo_and_escalation_paths():
    assert matters.next_state("handling", "return") == "reported"
    assert matters.next_state("transferred", "escalate") == "reported"
    assert matters.next_state("handled", "reject") == "handling"
    assert matters.next_state("closed", "reopen") == "transferred"


def row(state, **dues):
    base = {"state": state, "accept_due": None, "finish_due": None, "feedback_due": None}
    base.update(dues)
    return base


def test_overdue_and_due_soon_follow_the_running_clocks():
    past, soon, later = NOW - timedelta(minutes=1), NOW + timedelta(hours=3), NOW + timedelta(days=1)
    flags = matters.deadline_flags(row("transferred", accept_due=past, finish_due=soon,
                                       feedback_due=later), NOW)
    assert flags == {"overdue": ["accept"], "due_soon": ["finish"]}
    # Once accepted the accept clock stops mattering.
    flags = matters.deadline_flags(row("handling", accept_due=past, finish_due=soon,
                                       feedback_due=later), NOW)
    assert flags == {"overdue": [], "due_soon": ["finish"]}
    # Handled: only the feedback clock still runs.
    flags = matters.deadline_flags(row("handled", accept_due=past, finish_due=past,
                                       feedback_due=past), NOW)
    assert flags == {"overdue": ["feedback"], "due_soon": []}
    for state in ("verified", "closed", "reported"):
        assert matters.deadline_flags(row(state, accept_due=past, finish_due=past,
                                          feedback_due=past), NOW) == {"overdue": [], "due_soon": []}


def test_due_soon_boundary_is_the_constant():
    edge = NOW + matters.DUE_SOON
    assert matters.deadline_flags(row("handling", finish_due=edge), NOW)["due_soon"] == ["finish"]
    beyond = edge + timedelta(seconds=1)
    assert matters.deadline_flags(row("handling", finish_due=beyond), NOW)["due_soon"] == []


def test_clock_dues_are_one_two_three_work_days_in_beijing_time():
    # Friday 2026-11-27 10:00 Beijing = 02:00 UTC: due Mon, Tue, Wed at 10:00 Beijing.
    start = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
    dues = matters.clock_dues(start, {}, "workdays")
    assert dues["accept_due"] == datetime(2026, 11, 30, 2, 0, tzinfo=UTC)
    assert dues["finish_due"] == datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
    assert dues["feedback_due"] == datetime(2026, 12, 2, 2, 0, tzinfo=UTC)
    calendar = matters.clock_dues(start, {}, "calendar")
    assert calendar["accept_due"] == start + timedelta(days=1)
    # Friday 23:30 Beijing is still Friday there, though Saturday in no zone matters.
    late = datetime(2026, 11, 27, 15, 30, tzinfo=UTC)
    assert matters.clock_dues(late, {}, "workdays")["accept_due"] == datetime(2026, 11, 30, 15, 30, tzinfo=UTC)


def test_sniffing_recognises_images_and_pdf_only():
    assert matters.sniff(b"\xff\xd8\xff\xe0rest") == "image/jpeg"
    assert matters.sniff(b"\x89PNG\r\n\x1a\nrest") == "image/png"
    assert matters.sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "image/webp"
    assert matters.sniff(b"%PDF-1.7") == "application/pdf"
    assert matters.sniff(b"<svg onload=alert(1)>") is None
    assert matters.sniff(b"GIF89a") is None
