"""The Content-Security-Policy: this server, plus the intranet tile and media servers configured."""

from __future__ import annotations

import pytest

from web.headers import content_security_policy, source_of


@pytest.mark.parametrize("url, source", [
    ("http://tiles.intranet:8080/{z}/{x}/{y}.png", "http://tiles.intranet:8080"),
    ("https://{s}.tiles.intranet/{z}/{x}/{y}.png", "https://*.tiles.intranet"),
    ("http://tiles-{s}.intranet/{z}/{x}/{y}.png", "http:"),
    ("https://media:s3cret@10.1.2.3:8443/live/{gb_id}.m3u8", "https://10.1.2.3:8443"),
    ("HTTP://Media.Intranet/live", "http://Media.Intranet"),
    ("rtsp://10.1.2.3/live", None),
    ("/tiles/{z}/{x}/{y}.png", None),
    ("", None),
    (None, None),
])
def test_the_source_of_a_configured_url_never_carries_its_user(url, source):
    assert source_of(url) == source


def test_the_policy_allows_this_server_and_the_configured_servers_only():
    policy = dict(part.split(" ", 1) for part in content_security_policy(
        ["http://tiles.intranet/{z}/{x}/{y}.png"],
        ["https://admin:pw@media.intranet/live/{gb_id}.m3u8", None]).split("; "))
    assert policy["default-src"] == "'self'"
    assert policy["img-src"] == "'self' data: blob: http://tiles.intranet"
    assert policy["media-src"] == "'self' blob: https://media.intranet"
    assert policy["connect-src"] == "'self' https://media.intranet"
    assert policy["font-src"] == "'self' data:"
    assert policy["object-src"] == "'none'" and policy["frame-ancestors"] == "'self'"
    assert "pw" not in str(policy) and "admin" not in str(policy)
    bare = content_security_policy()
    assert "intranet" not in bare and "connect-src 'self';" in bare
