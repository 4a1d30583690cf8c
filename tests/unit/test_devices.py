"""Readable names for signed-in browsers (web.devices)."""

from __future__ import annotations

import pytest

from web.devices import describe_user_agent


@pytest.mark.parametrize(("header", "readable"), [
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.0.0", "Edge 124 · Windows 10"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, "
     "like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "Mobile Safari 17 · iOS 17 · iPhone"),
    ("Mozilla/5.0 (Linux; Android 14; V2309A) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.6099.230 Mobile Safari/537.36", "Chrome Mobile 120 · Android 14 · V2309A"),
    ("curl/8.5.0", "curl 8"),
])
def test_known_browsers_get_their_names(header, readable):
    assert describe_user_agent(header) == readable


@pytest.mark.parametrize("header", [None, "", "zzzz", "PatrolPhone/1.0"])
def test_unknown_or_missing_headers_give_none(header):
    assert describe_user_agent(header) is None
