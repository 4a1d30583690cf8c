"""GB/T 28181 20-digit device and platform identifiers (统一编码).

Layout assumed here (GB/T 28181-2016 Appendix D, unchanged in the 2022 edition as far
as we know; written from memory of the standard's text, which could not be re-checked
while writing this module):

==========  =======  ===========================================================
positions   digits   meaning
==========  =======  ===========================================================
1-8         8        centre code (中心编码): province 2, city 2, county 2 (the
                     GB/T 2260 administrative code, e.g. 370812 for Yanzhou), then
                     base access unit 2 (基层接入单位)
9-10        2        industry code (行业编码), e.g. 00 public-security road access
11-13       3        type code (类型编码), see ``TYPE_NAMES`` and ``TYPE_RANGES``
14          1        network identification (网络标识)
15-20       6        serial number (设备/用户序号)
==========  =======  ===========================================================

Assumptions and deliberate choices:

* Network digit: 0-4 are monitoring/alarm private networks (监控报警专网), 5 is the
  public-security information network (公安信息网, *not* the public Internet), 6 the
  government network (政务网), 7 the Internet, 8 social-resource access networks
  (社会资源接入网) and 9 is reserved. Every digit is accepted.
* Type codes outside 111-499 (000-110 and 500-999) are treated as unknown and
  rejected; codes inside a range but without a name of their own are accepted as
  that range's "extension" types.
* The province must be a GB/T 2260 province code; city, county, base unit, industry
  and serial are not checked further.
* A demo-ID layout of "10-digit centre + 2 industry + 3 type + 5 serial" puts the type
  at positions 13-15, which contradicts this layout: such IDs parse with the wrong
  type code (usually an unknown one) and must be built with :func:`make_gb_id` instead.
"""

from __future__ import annotations

import re
from typing import NamedTuple

GB_ID_LENGTH = 20
_ASCII_DIGITS = re.compile(r"[0-9]+")

CAMERA_TYPES = frozenset({131, 132})

# GB/T 2260 province-level codes (incl. Taiwan 71, Hong Kong 81, Macao 82).
PROVINCE_CODES = frozenset(
    str(code)
    for code in (
        *(11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42),
        *(43, 44, 45, 46, 50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82),
    )
)

TYPE_NAMES = {
    111: "DVR",
    112: "video server",
    113: "encoder",
    114: "decoder",
    115: "video switching matrix",
    116: "audio switching matrix",
    117: "alarm controller",
    118: "NVR",
    131: "camera",
    132: "IP camera (IPC)",
    133: "display",
    134: "alarm input device",
    135: "alarm output device",
    136: "voice input device",
    137: "voice output device",
    138: "mobile transport device",
    139: "other peripheral",
    200: "central signalling control server",
    201: "web application server",
    202: "media distribution server",
    203: "proxy server",
    204: "security server",
    205: "alarm server",
    206: "database server",
    207: "GIS server",
    208: "management server",
    209: "access gateway",
    210: "media storage server",
    211: "signalling security routing gateway",
    215: "business group",
    216: "virtual organisation",
    300: "central user",
    400: "terminal user",
}

# (first, last, category) for every type code the standard defines.
TYPE_RANGES = (
    (111, 130, "front-end main device"),
    (131, 199, "front-end peripheral"),
    (200, 299, "platform device"),
    (300, 399, "central user"),
    (400, 499, "terminal user"),
)

NETWORK_NAMES = {
    **dict.fromkeys(range(5), "monitoring/alarm private network"),
    5: "public-security information network",
    6: "government network",
    7: "Internet",
    8: "social-resource access network",
    9: "reserved",
}


class InvalidGbId(ValueError):
    """A string that is not a well-formed GB/T 28181 identifier."""


class GbId(NamedTuple):
    """A parsed GB/T 28181 identifier; ``str(gbid)`` gives back the 20 digits."""

    province: str
    city: str
    county: str
    base_unit: str
    industry: str
    type_code: int
    network: int
    serial: str

    def __str__(self) -> str:
        return (
            f"{self.center_code}{self.industry}{self.type_code:03d}"
            f"{self.network}{self.serial}"
        )

    @property
    def admin_code(self) -> str:
        """The 6-digit GB/T 2260 administrative division code, e.g. '370812'."""
        return f"{self.province}{self.city}{self.county}"

    @property
    def center_code(self) -> str:
        """The 8-digit centre code (administrative code plus base unit)."""
        return f"{self.admin_code}{self.base_unit}"

    @property
    def type_name(self) -> str:
        """A readable name for the type code, or its range's extension category."""
        return (
            TYPE_NAMES.get(self.type_code)
            or f"extension {type_category(self.type_code)}"
        )

    @property
    def network_name(self) -> str:
        """A readable name for the network identification digit."""
        return NETWORK_NAMES[self.network]


def type_category(type_code: int) -> str:
    """Return the category of a type code, or raise InvalidGbId for an unknown one."""
    for first, last, category in TYPE_RANGES:
        if first <= type_code <= last:
            return category
    raise InvalidGbId(f"unknown type code {type_code:03d} (defined codes are 111-499)")


def parse_gb_id(value: str) -> GbId:
    """Parse a 20-digit GB/T 28181 identifier, raising InvalidGbId with the reason."""
    if not isinstance(value, str):
        hint = ""
        if isinstance(value, int | float):
            hint = "; read ID columns as text (20 digits overflow 64-bit integers)"
        raise InvalidGbId(
            f"a GB/T 28181 ID must be a string, not {type(value).__name__}{hint}"
        )
    shown = value if len(value) <= 40 else value[:40] + "…"
    for position, char in enumerate(value, start=1):
        if "0" <= char <= "9":
            continue
        if char.isdigit() or char.isnumeric():
            what = "full-width or non-ASCII digit"
        elif char.isspace():
            what = "whitespace"
        else:
            what = "non-digit character"
        raise InvalidGbId(
            f"{shown!r} has a {what} {char!r} at position {position}; use ASCII 0-9"
        )
    if len(value) != GB_ID_LENGTH:
        raise InvalidGbId(
            f"{shown!r} has {len(value)} digits; a GB/T 28181 ID has {GB_ID_LENGTH}"
        )
    gbid = GbId(
        province=value[0:2],
        city=value[2:4],
        county=value[4:6],
        base_unit=value[6:8],
        industry=value[8:10],
        type_code=int(value[10:13]),
        network=int(value[13]),
        serial=value[14:20],
    )
    if gbid.province not in PROVINCE_CODES:
        raise InvalidGbId(
            f"{value!r} starts with {gbid.province}, which is not a province code"
        )
    try:
        type_category(gbid.type_code)
    except InvalidGbId as exc:
        raise InvalidGbId(f"{value!r}: {exc}") from None
    return gbid


def is_camera_type(gbid: GbId | str) -> bool:
    """Return whether an ID (parsed or not) denotes a camera (type 131) or IPC (132)."""
    parsed = gbid if isinstance(gbid, GbId) else parse_gb_id(gbid)
    return parsed.type_code in CAMERA_TYPES


def _part(value: str | int, width: int, name: str) -> str:
    if isinstance(value, bool):
        raise InvalidGbId(f"{name} must be {width} digits, not a bool")
    if isinstance(value, int):
        if not 0 <= value < 10**width:
            raise InvalidGbId(f"{name} {value} does not fit in {width} digits")
        return f"{value:0{width}d}"
    if (
        not isinstance(value, str)
        or len(value) != width
        or not _ASCII_DIGITS.fullmatch(value)
    ):
        raise InvalidGbId(f"{name} must be exactly {width} ASCII digits, got {value!r}")
    return value


def make_gb_id(
    admin6: str | int,
    base2: str | int,
    industry2: str | int,
    type3: str | int,
    net1: str | int,
    serial6: str | int,
) -> str:
    """Build and validate a 20-digit ID; integers are zero-padded to their width."""
    text = (
        _part(admin6, 6, "admin code")
        + _part(base2, 2, "base unit")
        + _part(industry2, 2, "industry code")
        + _part(type3, 3, "type code")
        + _part(net1, 1, "network digit")
        + _part(serial6, 6, "serial")
    )
    parse_gb_id(text)
    return text
