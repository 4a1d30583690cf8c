"""Where a stream login may hide in an address, and where it is refused (security audit).

Findings of the credentials audit: passwords with raw reserved characters that the
parser read as a host, logins in queries, paths and fragments (stored and shown as
the address), and '&' refused although no URL ever reaches a shell.
"""

from __future__ import annotations

import ast
import re
import traceback
from pathlib import Path

import pytest

from gridmap.errors import InvalidInput
from video.registry import validate
from video.urls import (
    FRAGMENT_REFUSED,
    RESERVED_IN_PASSWORD,
    SECRET_IN_PATH,
    SECRET_IN_QUERY,
    Credentials,
    StreamURLError,
    given_login,
    split_credentials,
    stream_origin,
    validate_stream_url,
)

ROOT = Path(__file__).resolve().parents[2]
RECORD = {"gb_id": "37081200001310000001", "name": "东门卡口", "lon": 116.8, "lat": 35.55,
          "source": "skynet", "department": "公安局",
          "main_url": "rtsp://192.0.2.10:554/Streaming/Channels/101"}


def refusal(url: str) -> StreamURLError:
    """Return the StreamURLError for ``url``, split as the registry splits it."""
    with pytest.raises(StreamURLError) as info:
        clean, _ = split_credentials(url)
        validate_stream_url(clean)
    return info.value


def exposed(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)) + repr(exc) + str(exc)


# --------------------------------------------------------------------------- 2a: raw reserved characters


@pytest.mark.parametrize("url, password", [
    ("rtsp://admin:12345#abc@10.0.0.41/ch1", "12345#abc"),
    ("rtsp://admin:8888?88@10.0.0.42:554/ch1", "8888?88"),
    ("rtsp://admin:2024/Ab@10.0.0.43/Streaming/Channels/101", "2024/Ab"),
    ("http://admin:80/b?c#d@10.0.0.44/ISAPI/Streaming/channels/101/picture", "80/b?c#d"),
    ("rtsps://admin:99#x@cam.local:322/live", "99#x"),
])
def test_a_password_with_a_raw_reserved_character_is_refused_not_read_as_a_host(url, password):
    # The RFC reading makes "admin" the host and the password a port: it used to be
    # stored as the address (has_credentials false) and shown everywhere.
    exc = refusal(url)
    assert str(exc) == RESERVED_IN_PASSWORD
    assert "reserved character" in str(exc) and "percent-encode" in str(exc)
    assert password not in exposed(exc)


def test_the_same_passwords_percent_encoded_are_split_off():
    for password in ("12345#abc", "8888?88", "2024/Ab", "p@ss"):
        encoded = re.sub(r"[#?/@]", lambda m: f"%{ord(m[0]):02X}", password)
        clean, creds = split_credentials(f"rtsp://admin:{encoded}@10.0.0.41/ch1")
        assert validate_stream_url(clean) == "rtsp://10.0.0.41/ch1"
        assert creds == Credentials("admin", password)


def test_an_at_sign_after_the_host_is_refused_even_without_a_colon():
    assert str(refusal("http://10.0.0.45:8080/path@with-at/x")) == RESERVED_IN_PASSWORD
    assert str(refusal("rtsp://10.0.0.45/live?x=a@b")) == RESERVED_IN_PASSWORD


def test_an_ambiguous_password_is_refused_before_its_characters_are_named():
    # Left in the "path", its '$' would otherwise be named in the message.
    exc = refusal("rtsp://admin:1245#a$b@10.0.0.41/ch1")
    assert str(exc) == RESERVED_IN_PASSWORD and "$" not in str(exc)


def test_a_raw_hash_that_leaves_an_impossible_port_is_still_understood():
    # "admin:Admin#123" cannot be host:port, so the login is recognised (as before).
    clean, creds = split_credentials("rtsp://admin:Admin#123@192.168.1.64:554/Streaming/Channels/101")
    assert validate_stream_url(clean) == "rtsp://192.168.1.64:554/Streaming/Channels/101"
    assert creds == Credentials("admin", "Admin#123")


# --------------------------------------------------------------------------- 2b: logins elsewhere


@pytest.mark.parametrize("url, reason, secret", [
    ("rtsp://10.0.0.7/ch1?password=S3cr3t%21Zq9", SECRET_IN_QUERY, "S3cr3t"),
    ("rtsp://10.0.0.7/ch1?channel=1&PWD=S3cr3t", SECRET_IN_QUERY, "S3cr3t"),
    ("http://10.0.0.14/x?auth=YWRtaW46UzNjcjN0IVpxOQ", SECRET_IN_QUERY, "YWRtaW46"),
    ("http://10.0.0.14/snap.cgi?user=admin&pass=S3cr3t", SECRET_IN_QUERY, "S3cr3t"),
    ("http://10.0.0.14/videostream.cgi?loginuse=admin&loginpas=S3cr3t", SECRET_IN_QUERY, "S3cr3t"),
    ("http://10.0.0.14/CGIProxy.fcgi?cmd=snapPicture2&usr=admin&pwd=S3cr3t", SECRET_IN_QUERY, "S3cr3t"),
    ("https://hls.example.cn/live/cam1.m3u8?token=abcdef123456", SECRET_IN_QUERY, "abcdef123456"),
    ("https://hls.example.cn/live/cam1.m3u8?api_key=abcdef123456", SECRET_IN_QUERY, "abcdef123456"),
    ("http://10.0.0.14/x?User_Name=admin", SECRET_IN_QUERY, "admin"),
    ("http://10.0.0.14/x?pass%77ord=S3cr3t", SECRET_IN_QUERY, "S3cr3t"),
    ("rtsp://10.0.0.9/ch1#admin:S3cr3t%21Zq9", FRAGMENT_REFUSED, "S3cr3t"),
    ("https://hls.example.cn/live/cam1.m3u8#t=10", FRAGMENT_REFUSED, "t=10"),
    ("rtsp://10.0.0.8:554/user=admin_password=S3cr3t_channel=1_stream=0.sdp", SECRET_IN_PATH, "S3cr3t"),
    ("rtsp://10.0.0.8/live/password=S3cr3t/ch1", SECRET_IN_PATH, "S3cr3t"),
    ("rtsp://10.0.0.8/live/Token=S3cr3t", SECRET_IN_PATH, "S3cr3t"),
])
def test_a_login_in_the_query_path_or_fragment_is_refused(url, reason, secret):
    exc = refusal(url)
    assert str(exc) == reason
    assert secret not in exposed(exc)
    if reason != FRAGMENT_REFUSED:
        assert "login" in str(exc)


@pytest.mark.parametrize("url", [
    "rtsp://192.168.1.64:554/Streaming/Channels/101",  # Hikvision
    "rtsp://192.168.1.64:554/Streaming/Channels/102?transportmode=unicast",
    "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0",  # Dahua
    "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif",
    "http://192.168.1.64/ISAPI/Streaming/channels/101/picture",
    "http://192.168.1.64/ISAPI/Streaming/channels/101/picture?snapShotImageType=JPEG",
    "http://192.168.1.108/cgi-bin/snapshot.cgi?channel=1&type=0",
    "http://hls.example.cn/live/cam1/index.m3u8",
    "https://hls.example.cn/live/%E5%85%97%E5%B7%9E.m3u8",
    "rtsp://192.168.1.64/h264/ch1/main/av_stream",
    "rtsp://192.168.1.64/onvif1",
    "rtsp://192.168.1.64/live/ch00_0",
    "http://192.168.1.64/monkey=1/keyframe_only",  # "monkey" and "keyframe" are not keys
    "rtsp://[2001:db8::1]:554/cam/realmonitor?channel=1&subtype=0",
])
def test_ordinary_camera_urls_are_accepted(url):
    assert validate_stream_url(url) == url
    clean, creds = split_credentials(url.replace("://", "://admin:S3cr3t%21@", 1))
    assert clean == url and creds == Credentials("admin", "S3cr3t!")


# --------------------------------------------------------------------------- 4: '&' is no shell's business


def test_an_ampersand_is_allowed_in_the_query_and_the_login():
    url = "rtsp://192.168.1.108:554/cam/realmonitor?channel=1&subtype=0"
    assert validate_stream_url(url) == url
    clean, creds = split_credentials("rtsp://admin:Pass&Word1@192.168.1.108/cam/realmonitor")
    assert validate_stream_url(clean) == clean and creds.password == "Pass&Word1"
    assert validate_stream_url("rtsp://admin:Pass&Word1@192.168.1.108/x") == (
        "rtsp://admin:Pass&Word1@192.168.1.108/x")


@pytest.mark.parametrize("url, char", [
    ("rtsp://host/a?x=1;y=2", ";"),
    ("rtsp://host/a?x=1|id", "|"),
    ("rtsp://host/a?x=$(id)", "$"),
    ("rtsp://host/a?x=`id`", "`"),
    ("rtsp://host/a?x=<y>", "<"),
    ("rtsp://host/a?x='1'", "'"),
    ("rtsp://host/a?x=\"1\"", '"'),
    ("rtsp://host/a&b", "&"),  # outside the query it is still refused
])
def test_the_dangerous_characters_stay_refused_in_the_query(url, char):
    assert str(refusal(url)) == f"the URL contains the shell metacharacter {char!r}"


@pytest.mark.parametrize("url, reason", [
    ("rtsp://host/a?x=1\n&y=2", "line break"),
    ("rtsp://host/a?x=1&y=a b", "whitespace"),
    ("rtsp://host/a?x=1&y=\x00", "control character"),
])
def test_breaks_spaces_and_nul_stay_refused_in_the_query(url, reason):
    assert reason in str(refusal(url))


def test_no_stream_url_is_given_to_a_shell():
    # Why '&' may pass: every process that opens a stream is started with an argument
    # list, never through a shell (probe workers, the relay, ffmpeg for demo clips).
    offenders = []
    for room in ("video", "web", "gridmap", "geodata"):
        for path in (ROOT / room).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    func = node.func
                    os_call = (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                               and func.value.id == "os" and func.attr in ("system", "popen"))
                    if os_call or any(
                            k.arg == "shell" and not (isinstance(k.value, ast.Constant)
                                                      and k.value.value is False)
                            for k in node.keywords):
                        offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


# --------------------------------------------------------------------------- logins and origins


@pytest.mark.parametrize("url, login", [
    ("rtsp://@10.0.0.20/ch2", None),
    ("rtsp://:@10.0.0.20/ch2", None),
    ("rtsp://admin@10.0.0.20/ch2", Credentials("admin", "")),
    ("rtsp://:pw@10.0.0.20/ch2", Credentials("", "pw")),
    ("rtsp://10.0.0.20/ch2", None),
])
def test_an_empty_userinfo_gives_no_login(url, login):
    assert given_login(split_credentials(url)[1]) == login


@pytest.mark.parametrize("a, b, same", [
    ("rtsp://10.0.0.5/ch1", "rtsp://10.0.0.5:554/Streaming/Channels/102", True),
    ("rtsp://Cam.Local/ch1", "rtsp://cam.local./ch1?x=1", True),
    ("http://10.0.0.5/a", "http://10.0.0.5:80/b", True),
    ("https://10.0.0.5/a", "https://10.0.0.5:443/b", True),
    ("rtsp://[2001:DB8:0::1]/x", "rtsp://[2001:db8::1]:554/y", True),
    ("rtsp://10.0.0.5/ch1", "http://127.0.0.1:57412/cam", False),
    ("rtsp://10.0.0.5/ch1", "rtsp://10.0.0.6/ch1", False),
    ("rtsp://10.0.0.5/ch1", "rtsp://10.0.0.5:8554/ch1", False),
    ("rtsp://10.0.0.5/ch1", "rtsps://10.0.0.5/ch1", False),
    ("http://10.0.0.5/a", "https://10.0.0.5/a", False),
])
def test_the_origin_a_login_is_bound_to(a, b, same):
    assert (stream_origin(a) == stream_origin(b)) is same


def test_a_record_takes_one_login_for_its_streams():
    cam = validate({**RECORD, "main_url": "rtsp://admin:StreamPW1@10.0.0.5/ch1",
                    "sub_url": "rtsp://admin:StreamPW1@10.0.0.5/ch2"})
    assert (cam.username, cam.password) == ("admin", "StreamPW1")
    assert cam.main_url == "rtsp://10.0.0.5/ch1" and cam.sub_url == "rtsp://10.0.0.5/ch2"
    only_sub = validate({**RECORD, "sub_url": "rtsp://admin:StreamPW1@192.0.2.10/ch2"})
    assert (only_sub.username, only_sub.password) == ("admin", "StreamPW1")


def test_different_logins_on_main_and_sub_are_refused():
    with pytest.raises(InvalidInput) as caught:
        validate({**RECORD, "main_url": "rtsp://admin:StreamPW1@10.0.0.5/ch1",
                  "sub_url": "rtsp://viewer:OtherPW2@10.0.0.5/ch2"})
    assert caught.value.details["field"] == "sub_url"
    assert "different logins" in caught.value.reason
    assert "StreamPW1" not in caught.value.reason and "OtherPW2" not in caught.value.reason


@pytest.mark.parametrize("extra", [
    {"snapshot_url": "http://viewer:SnapPW2@10.0.0.5/ISAPI/Streaming/channels/101/picture"},
    {"main_url": "rtsp://admin:StreamPW1@10.0.0.5/ch1",
     "snapshot_url": "http://viewer:SnapPW2@10.0.0.5/pic.jpg"},
])
def test_a_snapshot_login_never_becomes_the_stream_login(extra):
    with pytest.raises(InvalidInput) as caught:
        validate({**RECORD, **extra})
    assert caught.value.details["field"] == "snapshot_url"
    assert "SnapPW2" not in caught.value.reason


def test_a_snapshot_url_may_repeat_the_stream_login():
    cam = validate({**RECORD, "main_url": "rtsp://admin:StreamPW1@10.0.0.5/ch1",
                    "snapshot_url": "http://admin:StreamPW1@10.0.0.5/pic.jpg"})
    assert (cam.username, cam.password) == ("admin", "StreamPW1")
    assert cam.snapshot_url == "http://10.0.0.5/pic.jpg"


def test_an_empty_userinfo_is_no_login_in_a_record():
    cam = validate({**RECORD, "sub_url": "rtsp://@10.0.0.20/ch2"})
    assert cam.username is None and cam.password is None
    assert cam.sub_url == "rtsp://10.0.0.20/ch2"


@pytest.mark.parametrize("url", [
    "rtsp://admin:12345#abc@10.0.0.41/ch1",
    "rtsp://10.0.0.7/ch1?password=S3cr3t%21Zq9",
    "rtsp://10.0.0.9/ch1#admin:S3cr3t%21Zq9",
])
def test_a_record_with_a_hidden_login_is_refused_for_its_field(url):
    for field in ("main_url", "sub_url", "snapshot_url"):
        with pytest.raises(InvalidInput) as caught:
            validate({**RECORD, field: url})
        assert caught.value.details["field"] == field
        assert caught.value.reason.startswith(f"{field}: ")
        assert "S3cr3t" not in caught.value.reason and "12345#abc" not in caught.value.reason
