"""Stream URLs: credentials, validation and redaction (video.urls)."""

from __future__ import annotations

import base64
import json
import os
import re
import traceback
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from video.urls import (
    MAX_URL_LENGTH,
    REDACTED,
    Credentials,
    StreamURLError,
    attach_credentials,
    redact,
    split_credentials,
    validate_stream_url,
)

SECRET = "Zq7!x@y:z"  # contains '@' and ':' on purpose


def url_error(url: str, **kwargs) -> StreamURLError:
    """Return the StreamURLError that validate_stream_url raises for ``url``."""
    with pytest.raises(StreamURLError) as info:
        validate_stream_url(url, **kwargs)
    return info.value


def exposed_text(exc: BaseException) -> str:
    """Return everything a log line or traceback of ``exc`` could show."""
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


# --------------------------------------------------------------------------- credentials


@pytest.mark.parametrize(
    ("url", "clean", "creds"),
    [
        (
            "rtsp://admin:12345@192.168.1.64:554/Streaming/Channels/101",
            "rtsp://192.168.1.64:554/Streaming/Channels/101",
            ("admin", "12345"),
        ),
        (
            "rtsp://admin:p@ss:w0rd@10.0.0.2/live",
            "rtsp://10.0.0.2/live",
            ("admin", "p@ss:w0rd"),
        ),
        (
            "rtsps://adm%40in:p%2Fw%23d%2B@cam.local/x",
            "rtsps://cam.local/x",
            ("adm@in", "p/w#d+"),
        ),
        ("http://u:pa+ss@host/a?b=c#d", "http://host/a?b=c#d", ("u", "pa+ss")),
        (
            "https://user@host:8443/live.m3u8",
            "https://host:8443/live.m3u8",
            ("user", ""),
        ),
        ("rtsp://:secret@host/", "rtsp://host/", ("", "secret")),
        (
            "rtsp://u:p@[2001:db8::1]:554/s?x=1",
            "rtsp://[2001:db8::1]:554/s?x=1",
            ("u", "p"),
        ),
        ("rtsp://u:p@[fe80::1%25eth0]/s", "rtsp://[fe80::1%25eth0]/s", ("u", "p")),
        (
            "rtsp://admin:%E5%AF%86%E7%A0%81@host/",
            "rtsp://host/",
            ("admin", "密码"),
        ),
        # A raw '#' makes the RFC authority "admin:Admin", an impossible port.
        (
            "rtsp://admin:Admin#123@192.168.1.64:554/Streaming/Channels/101",
            "rtsp://192.168.1.64:554/Streaming/Channels/101",
            ("admin", "Admin#123"),
        ),
    ],
)
def test_split_credentials(url, clean, creds):
    got_clean, got_creds = split_credentials(url)
    assert got_clean == clean
    assert got_creds == Credentials(*creds)


@pytest.mark.parametrize(
    "url",
    [
        "rtsp://192.168.1.64:554/Streaming/Channels/101",
        "rtsp://[2001:db8::1]:554/s",
        "http://host:8080/path@with-at/x",  # '@' in the path, valid authority
        "/srv/demo/a.mp4",
        "file:///srv/demo/a@b.mp4",
        "not a url",
    ],
)
def test_split_credentials_without_credentials(url):
    assert split_credentials(url) == (url, None)


def test_split_credentials_errors_do_not_leak():
    for url in (
        "rtsp://admin:%ff%fe" + SECRET + "@host/",
        "rtsp://admin:" + SECRET + "#x@/",
    ):
        with pytest.raises(StreamURLError) as info:
            split_credentials(url)
        assert SECRET not in exposed_text(info.value)


def test_credentials_repr_hides_password():
    creds = Credentials("admin", SECRET)
    assert SECRET not in repr(creds)
    assert SECRET not in str(creds)
    assert SECRET not in f"{creds}"
    assert "admin" in repr(creds)


def test_attach_credentials_percent_encodes():
    url = attach_credentials(
        "rtsp://cam:554/ch1", Credentials("ad:min", "p@ss/w#rd 中")
    )
    assert url == "rtsp://ad%3Amin:p%40ss%2Fw%23rd%20%E4%B8%AD@cam:554/ch1"
    assert attach_credentials("rtsp://cam/", None) == "rtsp://cam/"
    assert (
        attach_credentials("rtsp://cam/", Credentials("admin", ""))
        == "rtsp://admin@cam/"
    )
    with pytest.raises(StreamURLError, match="already contains credentials"):
        attach_credentials("rtsp://a:b@cam/", Credentials("admin", SECRET))
    with pytest.raises(StreamURLError, match="scheme://host"):
        attach_credentials("/srv/demo/a.mp4", Credentials("admin", SECRET))


hosts = st.one_of(
    st.from_regex(r"[a-z][a-z0-9\-]{0,10}[a-z0-9](\.[a-z]{2,6}){0,2}", fullmatch=True),
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda ip: f"[{ip}]"),
)
clean_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["rtsp", "rtsps", "http", "https"]),
    hosts,
    st.sampled_from(["", ":554", ":8080"]),
    st.from_regex(
        r"(/[A-Za-z0-9._~\-]{0,12}){0,3}(\?[a-z]=[0-9]{1,3})?", fullmatch=True
    ),
)
any_text = st.characters(exclude_categories=("Cs",))


@given(
    clean=clean_urls,
    username=st.text(any_text, min_size=1, max_size=20),
    password=st.text(any_text, max_size=40),
)
def test_split_attach_round_trip(clean, username, password):
    creds = Credentials(username, password)
    assert split_credentials(attach_credentials(clean, creds)) == (clean, creds)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("rtsp://192.168.1.64:554/Streaming/Channels/101", None),
        ("RTSP://cam-01.yz.local/live", "rtsp://cam-01.yz.local/live"),
        ("rtsps://cam.example.cn:322/stream1", None),
        ("http://10.1.2.3:8080/mjpeg", None),
        ("https://hls.example.cn/live/cam1/index.m3u8", None),
        ("https://hls.example.cn/live/%E5%85%97%E5%B7%9E.m3u8", None),
        ("rtsp://[2001:db8::1]:554/s", None),
        ("rtsp://admin:p%40ss@cam/live", None),
    ],
)
def test_allowed_stream_urls(url, expected):
    assert validate_stream_url(url) == (expected or url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("exec:rm -rf /", "whitespace"),
        ("exec:/bin/sh", "'exec:' is not allowed"),
        ("ffmpeg:whatever", "'ffmpeg:' is not allowed"),
        ("pipe:0", "the ffmpeg protocol 'pipe:'"),
        ("concat:/a.mp4%7C/b.mp4", "the ffmpeg protocol 'concat:'"),
        ("subfile:,,start,0,end,100,,:/etc/passwd", "'subfile:'"),
        ("data:text/plain;base64,AAAA", "shell metacharacter ';'"),
        ("data:text/plain,hello", "'data:' is not allowed"),
        ("javascript:alert(1)", "the script scheme 'javascript:'"),
        ("ftp://host/file", "the scheme 'ftp:'"),
        ("hls+http://host/a.m3u8", "'hls+http:'"),
        ("tcp://host:1234", "'tcp:'"),
        ("rtsp://host/live;reboot", "shell metacharacter ';'"),
        ("rtsp://host/live|cat", "shell metacharacter '|'"),
        ("http://host/a&b", "shell metacharacter '&'"),  # '&' only in a query or login
        ("rtsp://host/$(id)", "shell metacharacter '$'"),
        ("rtsp://host/`id`", "shell metacharacter '`'"),
        ("rtsp://host/<x>", "shell metacharacter '<'"),
        ("rtsp://host/a\nb", "line break"),
        ("rtsp://host/a\rb", "line break"),
        ("rtsp://host/a\u2028b", "line break"),
        ("rtsp://host/a\tb", "control character (U+0009)"),
        ("rtsp://host/a\x00b", "control character (U+0000)"),
        ("rtsp://host/a\u202eb", "control character (U+202E)"),
        ("rtsp://host/a\u200bb", "control character (U+200B)"),
        ("rtsp://host/a b", "whitespace"),
        ("rtsp://host/a\u3000b", "whitespace"),
        ("rtsp://host/a%0D%0Ab", "percent-encoded control character"),
        ("rtsp://", "no host"),
        ("rtsp:///live", "no host"),
        ("http://:8080/x", "no host"),
        ("rtsp:host/live", "needs '//'"),
        ("rtsp://host:0/live", "port"),
        ("rtsp://host:65536/live", "port"),
        ("rtsp://host:abc/live", "port"),
        ("rtsp://2001:db8::1/live", "brackets"),
        ("rtsp://[2001:db8::zz]/live", "not an IPv6 address"),
        ("rtsp://999.1.1.1/live", "IPv4"),
        ("rtsp://-bad-.host/live", "host name"),
        ("", "empty"),
        ("rtsp://host/" + "a" * MAX_URL_LENGTH, f"the limit is {MAX_URL_LENGTH}"),
    ],
)
def test_rejected_stream_urls(url, reason):
    assert reason in str(url_error(url))


def test_non_string_url():
    assert "must be a string" in str(url_error(None))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        f"rtsp://admin:{SECRET}$@host/live",  # metacharacter inside the password
        f"rtsp://admin:{quote(SECRET, safe='')};@host/live",
        f"rtsp://admin:{quote(SECRET, safe='')}@host:99999/live",
        f"rtsp://admin:{quote(SECRET, safe='')}@host/live;x",
        f"pipe://admin:{quote(SECRET, safe='')}@host/live",
        f"file://admin:{quote(SECRET, safe='')}@localhost/srv/x.mp4",
        f"rtsp://admin:{quote(SECRET, safe='')}@host/" + "a" * MAX_URL_LENGTH,
        f"rtsp://admin:{SECRET}\n@host/live",
        f"rtsp://admin:{SECRET} @host/live",
        f"rtsp://admin:{quote(SECRET, safe='')}%ff@host/live",
    ],
)
def test_errors_never_contain_the_password(url):
    exc = url_error(url)
    text = exposed_text(exc)
    for form in (SECRET, quote(SECRET, safe=""), quote(SECRET)):
        assert form not in text
    assert exc.__cause__ is None


def test_metacharacter_in_password_is_not_named():
    message = str(url_error("rtsp://admin:pa$$word@host/live"))
    assert message == "the credentials contain a shell metacharacter; percent-encode it"


@given(
    password=st.text(any_text, max_size=20).map(lambda s: f"Pw{s}§Q"),
    suffix=st.sampled_from(["/live;x", ":0/live", "/a b", "/\x00", "/%0a", "/$x"]),
    encode=st.booleans(),
)
def test_error_messages_never_echo_passwords(password, suffix, encode):
    secret = quote(password, safe="") if encode else password
    try:
        validate_stream_url(f"rtsp://admin:{secret}@cam.local{suffix}")
    except StreamURLError as exc:
        text = exposed_text(exc)
        assert password not in text
        assert quote(password, safe="") not in text
    else:
        pytest.fail("the URL should have been rejected")


@given(st.text(max_size=60))
def test_validation_only_ever_raises_stream_url_error(url):
    try:
        validate_stream_url(url)
    except StreamURLError:
        pass


# --------------------------------------------------------------------------- demo files


@pytest.fixture
def demo_root(tmp_path) -> Path:
    """A demo directory with a video, a nested video and an outside file."""
    root = tmp_path / "demo"
    (root / "sub").mkdir(parents=True)
    (root / "cam1.mp4").write_bytes(b"video")
    (root / "sub" / "兖州 路口.mp4").write_bytes(b"video")
    (tmp_path / "secret.txt").write_text("outside")
    return root


def test_files_inside_demo_root_are_allowed(demo_root):
    cam1 = str((demo_root / "cam1.mp4").resolve())
    assert validate_stream_url(cam1, demo_root=demo_root) == cam1
    assert validate_stream_url("cam1.mp4", demo_root=demo_root) == cam1
    assert validate_stream_url("./sub/../cam1.mp4", demo_root=demo_root) == cam1
    assert validate_stream_url(f"file://{cam1}", demo_root=demo_root) == cam1
    assert validate_stream_url(f"file://localhost{cam1}", demo_root=demo_root) == cam1
    assert validate_stream_url(f"FILE:{cam1}", demo_root=demo_root) == cam1
    nested = (demo_root / "sub" / "兖州 路口.mp4").resolve()
    url = "file://" + quote(str(nested))
    assert validate_stream_url(url, demo_root=demo_root) == str(nested)


def test_files_need_a_demo_root(demo_root):
    assert "no demo directory" in str(url_error(str(demo_root / "cam1.mp4")))
    assert "no demo directory" in str(url_error("file:///etc/passwd"))


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("../secret.txt", "outside the demo directory"),
        ("sub/../../secret.txt", "outside the demo directory"),
        ("/etc/passwd", "outside the demo directory"),
        ("file:///etc/passwd", "outside the demo directory"),
        ("file:///%2E%2E/etc/passwd", "outside the demo directory"),
        ("file://evil.example/share/x.mp4", "remote host"),
        ("missing.mp4", "no such file"),
        ("sub", "no such file"),
        ("file:cam1.mp4%00.txt", "NUL"),
    ],
)
def test_files_outside_demo_root_are_rejected(demo_root, path, reason):
    assert reason in str(url_error(path, demo_root=demo_root))


def test_symlinks_are_resolved(demo_root):
    outside = demo_root.parent / "secret.txt"
    (demo_root / "escape.mp4").symlink_to(outside)
    (demo_root / "alias.mp4").symlink_to(demo_root / "cam1.mp4")
    (demo_root / "loop.mp4").symlink_to(demo_root / "loop.mp4")
    assert "outside" in str(url_error("escape.mp4", demo_root=demo_root))
    assert validate_stream_url("alias.mp4", demo_root=demo_root) == str(
        (demo_root / "cam1.mp4").resolve()
    )
    assert "cannot be resolved" in str(
        url_error("loop.mp4", demo_root=demo_root)
    ) or "no such file" in str(url_error("loop.mp4", demo_root=demo_root))


def test_demo_root_that_is_a_symlink(demo_root, tmp_path):
    link = tmp_path / "demo-link"
    link.symlink_to(demo_root, target_is_directory=True)
    expected = str((demo_root / "cam1.mp4").resolve())
    assert validate_stream_url(os.fspath(link / "cam1.mp4"), demo_root=link) == expected


# --------------------------------------------------------------------------- redaction


def test_redact_known_forms():
    pw = "p@ss:w/rd #中"
    basic = base64.b64encode(f"admin:{pw}".encode()).decode()
    samples = {
        f"rtsp://admin:{quote(pw, safe='')}@cam/live": f"rtsp://admin:{REDACTED}@cam/live",
        f"password={quote_plus(pw)}&x=1": f"password={REDACTED}&x=1",
        f"Authorization: Basic {basic}\r\n": f"Authorization: Basic {REDACTED}\r\n",
        json.dumps({"password": pw}): json.dumps({"password": REDACTED}),
        f"raw {pw} raw": f"raw {REDACTED} raw",
    }
    for text, expected in samples.items():
        assert redact(text, [pw]) == expected
        assert redact(text, [Credentials("admin", pw)]) == expected


def test_redact_basic_auth_of_short_password_needs_credentials():
    basic = base64.b64encode(b"admin:abc").decode()
    assert (
        redact(f"Basic {basic}", [Credentials("admin", "abc")]) == f"Basic {REDACTED}"
    )


def test_redact_ignores_empty_and_keeps_other_text():
    assert redact("nothing secret here", []) == "nothing secret here"
    assert redact("nothing secret here", ["", None]) == "nothing secret here"
    assert redact("a hunter2 b hunter2", ["hunter2"]) == f"a {REDACTED} b {REDACTED}"
    assert (
        redact("longer-secret and secret", ["secret", "longer-secret"])
        == f"{REDACTED} and {REDACTED}"
    )


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m[0].lower(), text)


secrets = st.text(
    st.characters(exclude_categories=("Cs",), exclude_characters="*"),
    min_size=1,
    max_size=24,
)


@given(
    secret=secrets,
    before=st.text(any_text, max_size=12),
    after=st.text(any_text, max_size=12),
    user=st.text(
        st.characters(exclude_categories=("Cs",), exclude_characters=":"), max_size=8
    ),
    which=st.integers(0, 12),
)
def test_redact_removes_every_encoding(secret, before, after, user, which):
    raw = secret.encode()
    basic = f"{user}:{secret}".encode()
    forms = [
        secret,
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        _lower_hex(quote(secret, safe="")),
        _lower_hex(quote_plus(secret)),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        base64.b64encode(basic).decode(),
        base64.b64encode(basic).decode(),
        base64.urlsafe_b64encode(basic).decode(),
    ]
    form = forms[which]
    if which in (8, 9):
        assume(len(raw) >= 3)  # shorter secrets have no distinctive base64 form
    if which in (10, 12):
        assume(len(raw) >= 7)  # found inside "user:password" without knowing the user
    given_secrets = [Credentials(user, secret)] if which == 11 else [secret]
    redacted = redact(before + form + after, given_secrets)
    assert form not in redacted
    assert REDACTED in redacted
