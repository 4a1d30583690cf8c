"""No form of a stream login comes back through a reason, a GDAL message or a path check."""

from __future__ import annotations

import base64
import json
import time
from urllib.parse import quote

import pytest

from geodata.io import FILE_VALUE, ImportRejected, gdal_message, read_features
from gridmap.validation import mask_url_userinfo
from web.assets import served_package

SECRET = "S3cr3t!Zq9"
LOGIN = f"admin:{SECRET}"
URL = f"rtsp://{LOGIN}@10.0.0.5/ch1"


def forms_of_the_secret() -> list[str]:
    once = quote(SECRET, safe="")
    return [SECRET, once, once.lower(), quote(once, safe=""),
            base64.b64encode(LOGIN.encode()).decode().rstrip("="),
            base64.urlsafe_b64encode(LOGIN.encode()).decode().rstrip("=")]


def assert_masked(text: str) -> None:
    for form in forms_of_the_secret():
        assert form.lower() not in text.lower(), (form, text)


@pytest.mark.parametrize(("text", "masked"), [
    # GDAL (and JSON) escape the slashes.
    ("Unexpected type string for '\"rtsp:\\/\\/admin:S3cr3t!Zq9@10.0.0.5\\/ch1\"'",
     "Unexpected type string for '\"rtsp:\\/\\/***@10.0.0.5\\/ch1\"'"),
    ("rtsp:\\\\/\\\\/admin:S3cr3t!Zq9@h/x", "rtsp:\\\\/\\\\/***@h/x"),
    ("rtsp:\\u002f\\u002fadmin:S3cr3t!Zq9\\u0040h", "rtsp:\\u002f\\u002f***@h"),
    # Percent-encoded, either case, once or twice; also right after other encoded text.
    ("source rtsp%3A%2F%2Fadmin%3AS3cr3t%21Zq9%4010.0.0.5%2Fch1",
     "source rtsp%3A%2F%2F***@10.0.0.5%2Fch1"),
    ("source rtsp%3a%2f%2fadmin%3as3cr3t%21zq9%4010.0.0.5%2fch1",
     "source rtsp%3a%2f%2f***@10.0.0.5%2fch1"),
    ("x=rtsp%253A%252F%252Fadmin%253AS3cr3t%2521Zq9%254010.0.0.5",
     "x=rtsp%253A%252F%252F***@10.0.0.5"),
    ("%22rtsp%3A%2F%2Fadmin%3AS3cr3t%21Zq9%4010.0.0.5%22", "%22rtsp%3A%2F%2F***@10.0.0.5%22"),
    ("rtsp:%5C/%5C/admin:S3cr3t!Zq9@h", "rtsp:%5C/%5C/***@h"),
    # No scheme, or no slashes either.
    ("gb_id '//admin:S3cr3t!Zq9@10.0.0.5/ch1'", "gb_id '//***@10.0.0.5/ch1'"),
    ("main_url admin:S3cr3t!Zq9@10.0.0.5/ch1", "main_url ***@10.0.0.5/ch1"),
    # A raw @ or / in the password, as before.
    ("rtsp://admin:S3cr@t!x@192.0.2.1/ch1", "rtsp://***@192.0.2.1/ch1"),
    # base64 of user:password: an HTTP Basic value, a token in a URL (padded or not).
    ("Authorization: Basic YWRtaW46UzNjcjN0IVpxOQ==", "Authorization: Basic ***"),
    ("http://h/live?t=YWRtaW46UzNjcjN0IVpxOQ==", "http://h/live?t=***"),
    ("http://h/live?t=YWRtaW46UzNjcjN0IVpxOQ%3D%3D&x=1", "http://h/live?t=***&x=1"),
    ("token YWRtaW46UzNjcjN0IVpxOQ", "token ***"),
])
def test_every_written_form_of_a_login_is_masked(text, masked):
    assert mask_url_userinfo(text) == masked
    assert_masked(mask_url_userinfo(text))


@pytest.mark.parametrize("text", [
    "rtsp://192.0.2.1/ch1",
    "https://media.example:8443/live/37081200001320000001.m3u8?x=1#y",
    "rtsp%3A%2F%2F192.0.2.1%2Fch1",
    "rtsp:\\/\\/192.0.2.1\\/ch1",
    "mail a@b.example",
    "at 10:30 ask a@b",
    "gb_id '37081200001320000001' is not in the ledger",
    "/vendor/npm/leaflet/dist/leaflet.js",
    "OGRGeoJSONGetCoordinate(): invalid 'x' coordinate",
    "a GeoJSON file is UTF-8 text (RFC 7946)",
    "YWJjZGVmZ2hpams=",  # base64 of text without a colon
    "",
])
def test_text_without_a_login_stays_readable(text):
    assert mask_url_userinfo(text) == text


@pytest.mark.parametrize("text", [
    "a://" * 50_000 + "@", "@ " + "a://" * 50_000, "a:" * 100_000 + "@", "\\" * 100_000 + "/@",
    "%25" * 100_000 + "@", "%5c" * 50_000 + "/@", "A" * 200_001 + "===",
])
def test_masking_stays_fast_on_hostile_text(text):
    started = time.perf_counter()
    mask_url_userinfo(text)
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize("message", [
    "Unexpected type string for '\"rtsp:\\/\\/admin:S3cr3t!Zq9@10.0.0.5\\/ch1\"'. Expected double",
    "Value 'S3cr3t!Zq9' of field gb_id parsed incompletely to integer 0.",
    'Field "S3cr3t!Zq9" not found',
    "Unexpected type string for '\"it's S3cr3t!Zq9\"'",
    "cut short: '\"S3cr3t!Zq9",
    "Field name (rtsp://admin:S3cr3t!Zq9@h) already exists",
])
def test_gdal_never_repeats_what_it_quotes_from_the_file(message):
    cleaned = gdal_message(message)
    assert_masked(cleaned)
    assert FILE_VALUE in cleaned or "***@" in cleaned


def test_gdal_keeps_its_own_words():
    assert gdal_message("invalid 'x' coordinate; can't read it") == \
        "invalid 'x' coordinate; can't read it"


def test_a_geojson_coordinate_that_is_a_stream_url_is_refused_without_it():
    document = {"type": "FeatureCollection", "features": [{
        "type": "Feature", "properties": {"gb_id": "37081200001320000001"},
        "geometry": {"type": "Point", "coordinates": [URL, 35.5]}}]}
    with pytest.raises(ImportRejected) as refused:
        read_features(json.dumps(document).encode(), fmt="geojson")
    text = str(refused.value) + json.dumps([e._asdict() for e in refused.value.errors])
    assert_masked(text)
    assert "10.0.0.5" not in text and FILE_VALUE in text and "'x' coordinate" in text


@pytest.mark.parametrize("path", [
    "leaflet/../axe-core/axe.min.js", "leaflet/%2e%2e/.package-lock.json",
    "leaflet/./dist/leaflet.js", "leaflet//dist/leaflet.js", "/etc/passwd",
    "leaflet\\..\\axe-core\\axe.min.js", "leaflet/.npmignore", "leaflet/node_modules/x.js",
    "@geoman-io/../axe-core/axe.min.js", "leaflet", "leaflet/C:/x", "leaflet/dist/\x00.js",
    "axe-core/axe.min.js",
])
def test_a_vendor_path_leaving_its_package_is_refused(path):
    assert served_package(path) is None


@pytest.mark.parametrize("path, package", [
    ("leaflet/dist/leaflet.js", "leaflet"),
    ("@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.js", "@geoman-io/leaflet-geoman-free"),
    ("hls.js/dist/hls.light.min.js", "hls.js"),
])
def test_a_vendor_path_inside_its_package_is_served(path, package):
    assert served_package(path) == package
