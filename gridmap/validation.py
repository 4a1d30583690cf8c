"""Checks of free-text fields in request payloads, shared by the domain modules."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from gridmap.errors import InvalidInput, NotFound

# PostgreSQL's bigint, the type of every row id and version.
BIGINT_MAX = 2**63 - 1
# Line breaks and tabs are text; every other C0 control and DEL is refused.
ALLOWED_CONTROLS = frozenset("\n\t\r")


def text_field(payload: Mapping[str, Any], key: str, limit: int, *, required: bool = False,
               one_line: bool = False) -> str:
    """Return ``payload[key]`` stripped ('' if absent), or raise with the reason it is refused.

    ``one_line`` refuses line breaks and tabs too (names, not notes).
    """
    raw = payload.get(key)
    if raw is None or raw == "":
        if required:
            raise InvalidInput(f"{key} is required", field=key)
        return ""
    if not isinstance(raw, str):
        raise InvalidInput(f"{key} must be text", field=key)
    value = raw.strip()
    if required and not value:
        raise InvalidInput(f"{key} is required", field=key)
    if len(value) > limit:
        raise InvalidInput(f"{key} has at most {limit} characters", field=key)
    if one_line and any(ord(ch) < 32 or ch == "\x7f" for ch in value):
        raise InvalidInput(f"{key} must be one line without control characters", field=key)
    if any((ord(ch) < 32 and ch not in ALLOWED_CONTROLS) or ch == "\x7f" for ch in value):
        raise InvalidInput(f"{key} contains control characters", field=key)
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        # Half of a UTF-16 pair: no character at all, and the database cannot store it.
        raise InvalidInput(f"{key} contains an unpaired surrogate (not valid Unicode)", field=key)
    return value


# A URL's user:password@ part, up to the last @ before whitespace: a password may
# hold a raw "@" or "/" in a hand-typed ledger.
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^\s]*@")


def mask_url_userinfo(text: str) -> str:
    """Return ``text`` with every URL's user:password part replaced by ***."""
    return _URL_USERINFO.sub(r"\1***@", text) if "@" in text else text


def check_grid_code(code: Any, prefix: str) -> str:
    """Return the grid code if well-formed and inside the prefix; NotFound otherwise."""
    if not (isinstance(code, str) and code.isascii() and code.isdigit() and len(code) == 15):
        raise InvalidInput("a grid code has 15 digits", code=str(code)[:40])
    if not code.startswith(prefix or ""):
        # Outside the caller's jurisdiction is "not found": existence is not leaked.
        raise NotFound("no such grid", code=code)
    return code
