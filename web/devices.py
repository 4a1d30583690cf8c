"""Readable names for the browsers and phones an account is signed in on."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=256)
def describe_user_agent(user_agent: str | None) -> str | None:
    """Return "browser version · system version · device" for a User-Agent header, or None.

    People recognise "Chrome 120 · Android 14" as their phone; the raw header is
    a paragraph of Mozilla/AppleWebKit/KHTML tokens. ua-parser's regexes (the
    uap-core project's) know the browsers and phones; what they cannot name is
    left out, and a header they know nothing of gives None.
    """
    if not user_agent:
        return None
    from ua_parser import parse  # compiling its regexes takes a moment: only when needed

    found = parse(user_agent)
    parts = []
    for item in (found.user_agent, found.os):
        if item is not None and item.family != "Other":
            parts.append(" ".join(p for p in (item.family, item.major) if p))
    if found.device is not None and found.device.family not in ("Other", "Spider"):
        parts.append(found.device.family)
    return " · ".join(parts) or None
