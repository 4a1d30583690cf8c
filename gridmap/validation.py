"""Checks of free-text fields in request payloads, shared by the domain modules."""

from __future__ import annotations

import base64
import binascii
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
# hold a raw "@" or "/" in a hand-typed ledger. The separators are matched in every
# form an echo can carry them: raw, backslash-escaped (GDAL and JSON write "\/"),
# percent-encoded in either case, once or several times ("%3A", "%253A"), and as
# JSON \u escapes. The scheme may be missing ("//user:pw@host").
_PCT = r"%(?:25)*"  # a percent sign, itself percent-encoded any number of times
_ESC = r"\\{1,8}"  # backslashes escaping the next character (JSON in JSON: several)
_COLON = rf"(?::|{_PCT}3a|{_ESC}u003a)"
_SLASH = rf"(?:(?:{_ESC}|(?:{_PCT}5c){{1,4}})?/|{_PCT}2f|{_ESC}u002f)"
_AT = rf"(?:@|{_PCT}40|{_ESC}u0040)"
_AT_SIGN = re.compile(_AT, re.IGNORECASE)
_URL_USERINFO = re.compile(
    rf"(?i)((?:(?<![a-z0-9+.-])[a-z][a-z0-9+.-]*{_COLON})?{_SLASH}{_SLASH})\S*{_AT}")
# A bare "user:password@host" (a stream URL typed without its scheme). The colon
# must not start "//": that is the URL form above, already masked.
_BARE_USERINFO = re.compile(rf"(?i)(?<![\w.~%+-])[\w.~-]+{_COLON}(?!{_SLASH})\S*{_AT}")
# A base64 token (standard or URL-safe alphabet) long enough to hold user:password,
# as in an HTTP Basic header or a token in a URL; masked if it decodes to one.
_BASE64_TOKEN = re.compile(r"(?<![\w+/-])[A-Za-z0-9+/_-]{8,}(?:={1,2}|(?:%3d){1,2})?(?![\w+/=%-])",
                           re.IGNORECASE)
_BASIC_AUTH = re.compile(r"(?i)\b(basic)(\s+|%20|\+)[A-Za-z0-9+/_=%-]+")
_WHITESPACE = re.compile(r"(\s+)")


def _decodes_to_login(token: str) -> bool:
    """Return whether a base64-looking token decodes to printable "user:password" text."""
    core = re.sub(r"(?i)(?:=|%3d)+$", "", token).replace("-", "+").replace("_", "/")
    if len(core) % 4 == 1:
        return False
    try:
        decoded = base64.b64decode(core + "=" * (-len(core) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    user, colon, password = decoded.partition(":")
    return bool(colon and user and password) and decoded.isprintable()


def _mask_base64(match: re.Match[str]) -> str:
    return "***" if _decodes_to_login(match.group(0)) else match.group(0)


def _mask_word(word: str) -> str:
    """Mask the logins in one run of non-space text."""
    ends = [at.end() for at in _AT_SIGN.finditer(word)]
    if not ends:
        return word
    # Every login ends at an @; matching only up to the last one keeps the work linear.
    head = _URL_USERINFO.sub(r"\1***@", word[:ends[-1]])
    return _BARE_USERINFO.sub("***@", head) + word[ends[-1]:]


def mask_url_userinfo(text: str) -> str:
    """Return ``text`` with every URL's user:password part replaced by ***.

    Also masks a bare ``user:password@host``, the login of an HTTP Basic header,
    and base64 tokens that decode to ``user:password`` text: no form of a stream
    login a client sent comes back in a reason or reaches a log line. URLs
    without a login stay as they are.
    """
    if "@" in text or "%" in text or "\\" in text:
        text = "".join(_mask_word(part) for part in _WHITESPACE.split(text))
    if len(text) >= 8:
        text = _BASIC_AUTH.sub(r"\1\2***", text)
        text = _BASE64_TOKEN.sub(_mask_base64, text)
    return text


def check_grid_code(code: Any, prefix: str) -> str:
    """Return the grid code if well-formed and inside the prefix; NotFound otherwise."""
    if not (isinstance(code, str) and code.isascii() and code.isdigit() and len(code) == 15):
        raise InvalidInput("a grid code has 15 digits", code=str(code)[:40])
    if not code.startswith(prefix or ""):
        # Outside the caller's jurisdiction is "not found": existence is not leaked.
        raise NotFound("no such grid", code=code)
    return code
