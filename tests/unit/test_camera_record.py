"""One camera record's text fields: what a ledger may hold and what is refused."""

from __future__ import annotations

import pytest

from gridmap.errors import InvalidInput
from video.registry import validate

RECORD = {"gb_id": "37081200001310000001", "name": "东门卡口", "lon": 116.8, "lat": 35.55,
          "source": "skynet", "department": "公安局",
          "main_url": "rtsp://192.0.2.10:554/Streaming/Channels/101"}


@pytest.mark.parametrize("field, value, reason", [
    ("name", "", "name is required"),
    ("name", "   ", "name is required"),
    ("name", "东门\n卡口", "one line"),
    ("name", "东门\x00卡口", "one line"),
    ("name", "东门\x7f", "one line"),
    ("name", "x" * 121, "at most 120"),
    ("name", {"zh": "东门"}, "must be text"),
    ("name", ["东门"], "must be text"),
    ("name", True, "must be text"),
    ("department", "公安\t局", "one line"),
    ("department", "局" * 61, "at most 60"),
])
def test_bad_text_fields_are_refused_with_their_reason(field, value, reason):
    with pytest.raises(InvalidInput, match=reason) as caught:
        validate({**RECORD, field: value})
    assert caught.value.details["field"] == field


def test_numbers_in_a_ledger_are_names_and_blanks_are_trimmed():
    assert validate({**RECORD, "name": 1024}).name == "1024"
    assert validate({**RECORD, "name": 12.0}).name == "12"
    assert validate({**RECORD, "name": "  东门卡口 "}).name == "东门卡口"
    assert validate({**RECORD, "department": None}).department == ""
    assert validate({**RECORD, "department": "局" * 60}).department == "局" * 60


@pytest.mark.parametrize("raw, codes", [
    (["道路", "Key place", "crowd"], ["crowd", "key_place", "road"]),
    ("路口，河道、CROWD MONITORING；village", ["crowd", "intersection", "river", "village"]),
    ("道路,road", ["road"]),
    ("夜景,road", ["road", "夜景"]),
])
def test_known_tags_given_by_name_are_stored_as_their_codes(raw, codes):
    assert validate({**RECORD, "tags": raw}).tags == codes


def test_a_tag_that_is_not_a_word_is_still_refused():
    with pytest.raises(InvalidInput, match="short words") as caught:
        validate({**RECORD, "tags": "night view"})
    assert caught.value.details["field"] == "tags"
