"""Grid team rules without a database: "1+1" staffing and the checks on member fields."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gridmap import teams
from gridmap.errors import InvalidInput


@given(st.lists(st.sampled_from(teams.ROLES), max_size=12))
def test_a_team_has_no_problem_exactly_when_it_has_one_leader_and_one_full_time(roles):
    problems = teams.staffing_problems(roles)
    complete = roles.count("leader") == 1 and roles.count("full_time") == 1
    assert (problems == []) == complete
    for role in teams.ONE_PER_GRID:
        assert (f"no_{role}" in problems) == (role not in roles)
        assert (f"extra_{role}" in problems) == (roles.count(role) > 1)


def test_part_time_workers_and_volunteers_are_optional():
    assert teams.staffing_problems(["leader", "full_time"]) == []
    assert teams.staffing_problems(["part_time"] * 3 + ["volunteer"] * 5) == ["no_leader", "no_full_time"]


@pytest.mark.parametrize(("raw", "digits"), [
    ("13900004353", "13900004353"),
    ("139 0000 4353", "13900004353"),
    ("+86 139-0000-4353", "13900004353"),
    ("0537-3412345", "05373412345"),
    ("010 12345678", "01012345678"),
])
def test_phones_are_kept_as_digits(raw, digits):
    assert teams.parse_phone(raw) == digits


@pytest.mark.parametrize("raw", [
    "", "12345", "12900004353", "1390000435", "139000043531", "abc", "0537-34", "00537341234",
    "139０0004353", 13900004353, None,
])
def test_bad_phones_are_refused_with_the_field(raw):
    with pytest.raises(InvalidInput) as err:
        teams.parse_phone(raw)
    assert err.value.details["field"] == "phone"


def test_names_are_trimmed_and_checked():
    assert teams.parse_name("  王凯亮 ") == "王凯亮"
    for bad in ("", "   ", "王" * 41, "王\x00凯", "王\u202e凯", 7):
        with pytest.raises(InvalidInput):
            teams.parse_name(bad)


def test_a_new_member_needs_every_field_and_no_unknown_one():
    ok = {"role": "volunteer", "name": "刘磊", "phone": "13800001234"}
    assert teams.parse_member(ok) == ok
    for missing in ok:
        with pytest.raises(InvalidInput, match=missing):
            teams.parse_member({k: v for k, v in ok.items() if k != missing})
    with pytest.raises(InvalidInput, match="unknown fields: id_card"):
        teams.parse_member({**ok, "id_card": "x"})
    with pytest.raises(InvalidInput, match="role must be one of"):
        teams.parse_member({**ok, "role": "boss"})


def test_a_change_names_at_least_one_field():
    assert teams.parse_member({"phone": "13800001234"}, partial=True) == {"phone": "13800001234"}
    with pytest.raises(InvalidInput, match="say what to change"):
        teams.parse_member({}, partial=True)


@pytest.mark.parametrize(("raw", "version"), [(1, 1), ("3", 3), ('"4"', 4), (" 5 ", 5)])
def test_versions(raw, version):
    assert teams.parse_member_version(raw) == version


@pytest.mark.parametrize("raw", [0, -1, True, 1.5, "x", "", None, 2**31, [1]])
def test_bad_versions_are_refused(raw):
    with pytest.raises(InvalidInput, match="version"):
        teams.parse_member_version(raw)
