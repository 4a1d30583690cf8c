"""GB/T 28181 identifiers (video.gbid)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from video.gbid import (
    PROVINCE_CODES,
    TYPE_RANGES,
    GbId,
    InvalidGbId,
    is_camera_type,
    make_gb_id,
    parse_gb_id,
)

YANZHOU_IPC = "37081200001320000001"


def test_parse_splits_every_field():
    gbid = parse_gb_id(YANZHOU_IPC)
    assert gbid == GbId(
        province="37",
        city="08",
        county="12",
        base_unit="00",
        industry="00",
        type_code=132,
        network=0,
        serial="000001",
    )
    assert gbid.admin_code == "370812"
    assert gbid.center_code == "37081200"
    assert gbid.type_name == "IP camera (IPC)"
    assert gbid.network_name == "monitoring/alarm private network"
    assert str(gbid) == YANZHOU_IPC


def test_type_code_is_positions_11_to_13():
    centre, industry, type_code, net, serial = "37081201", "04", "118", "5", "000042"
    text = f"{centre}{industry}{type_code}{net}{serial}"
    gbid = parse_gb_id(text)
    assert (gbid.base_unit, gbid.industry, gbid.type_code) == ("01", "04", 118)
    assert (gbid.network, gbid.serial) == (5, "000042")
    assert gbid.type_name == "NVR"
    assert gbid.network_name == "public-security information network"


@pytest.mark.parametrize(
    ("type_code", "name"),
    [
        (111, "DVR"),
        (131, "camera"),
        (139, "other peripheral"),
        (200, "central signalling control server"),
        (215, "business group"),
        (216, "virtual organisation"),
        (125, "extension front-end main device"),
        (150, "extension front-end peripheral"),
        (299, "extension platform device"),
    ],
)
def test_type_names(type_code, name):
    assert parse_gb_id(make_gb_id("370812", 0, 0, type_code, 0, 1)).type_name == name


def test_camera_types():
    assert is_camera_type(YANZHOU_IPC)
    assert is_camera_type(parse_gb_id(make_gb_id("370812", 0, 0, 131, 0, 7)))
    assert not is_camera_type(make_gb_id("370812", 0, 0, 118, 0, 7))
    assert not is_camera_type(make_gb_id("370812", 0, 0, 200, 0, 1))


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("3708120000132000001", "has 19 digits"),
        ("370812000013200000011", "has 21 digits"),
        ("", "has 0 digits"),
        ("3708120000132000000１", "full-width or non-ASCII digit '１' at position 20"),
        (
            "３７０８１２００００１３２００００００１",
            "full-width or non-ASCII digit '３' at position 1",
        ),
        ("37081200001320000٠01", "non-ASCII digit"),  # Arabic-Indic zero
        (
            "3708120000132000000²",
            "non-ASCII digit",
        ),  # superscript two: isdigit() is True
        ("37081200001320000001 ", "whitespace ' ' at position 21"),
        ("3708120000A320000001", "non-digit character 'A' at position 11"),
        ("3708120000" + "099" + "0000001", "unknown type code 099"),
        ("3708120000" + "500" + "0000001", "unknown type code 500"),
        ("3708120000" + "000" + "0000001", "unknown type code 000"),
        ("99081200001320000001", "not a province code"),
    ],
)
def test_invalid_ids_give_a_reason(value, reason):
    with pytest.raises(InvalidGbId) as info:
        parse_gb_id(value)
    assert reason in str(info.value)
    assert isinstance(info.value, ValueError)


def test_non_string_ids_are_rejected_with_a_hint():
    with pytest.raises(InvalidGbId, match="read ID columns as text"):
        parse_gb_id(37081200001320000001)  # type: ignore[arg-type]
    with pytest.raises(InvalidGbId, match="must be a string"):
        parse_gb_id(None)  # type: ignore[arg-type]


def test_ten_digit_centre_layout_is_not_this_layout():
    # "10-digit centre + 2 industry + 3 type + 5 serial" puts the type at 13-15.
    wrong = "3708121500" + "01" + "132" + "00001"
    with pytest.raises(InvalidGbId, match="unknown type code 011"):
        parse_gb_id(wrong)
    right = make_gb_id("370812", "15", "01", "132", 0, 1)
    assert parse_gb_id(right).type_code == 132


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("37081", 0, 0, 132, 0, 1), "admin code must be exactly 6 ASCII digits"),
        (("370812", 100, 0, 132, 0, 1), "base unit 100 does not fit in 2 digits"),
        (("370812", 0, -1, 132, 0, 1), "industry code -1 does not fit"),
        (("370812", 0, 0, "13２", 0, 1), "type code must be exactly 3 ASCII digits"),
        (("370812", 0, 0, 132, 10, 1), "network digit 10 does not fit"),
        (("370812", 0, 0, 132, True, 1), "not a bool"),
        (("370812", 0, 0, 132, 0, 1_000_000), "serial 1000000 does not fit"),
        (("370812", 0, 0, 600, 0, 1), "unknown type code 600"),
    ],
)
def test_make_rejects_bad_parts(args, reason):
    with pytest.raises(InvalidGbId) as info:
        make_gb_id(*args)
    assert reason in str(info.value)


def digits(width: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=width, max_size=width)


valid_types = st.sampled_from(TYPE_RANGES).flatmap(lambda r: st.integers(r[0], r[1]))
admin_codes = st.builds(
    lambda p, rest: p + rest, st.sampled_from(sorted(PROVINCE_CODES)), digits(4)
)


@given(
    admin=admin_codes,
    base=digits(2),
    industry=digits(2),
    type_code=valid_types,
    network=st.integers(0, 9),
    serial=st.integers(0, 999_999),
)
def test_make_then_parse_round_trips(admin, base, industry, type_code, network, serial):
    text = make_gb_id(admin, base, industry, type_code, network, serial)
    gbid = parse_gb_id(text)
    assert len(text) == 20 and text.isascii() and text.isdigit()
    assert (gbid.admin_code, gbid.base_unit, gbid.industry) == (admin, base, industry)
    assert (gbid.type_code, gbid.network, int(gbid.serial)) == (
        type_code,
        network,
        serial,
    )
    assert str(gbid) == text
    assert (
        make_gb_id(
            gbid.admin_code,
            gbid.base_unit,
            gbid.industry,
            str(gbid.type_code),
            str(gbid.network),
            gbid.serial,
        )
        == text
    )
    assert is_camera_type(gbid) == (type_code in (131, 132))


@given(st.text(max_size=25))
def test_parse_only_ever_raises_invalid_gb_id(value):
    try:
        gbid = parse_gb_id(value)
    except InvalidGbId:
        return
    assert str(gbid) == value
