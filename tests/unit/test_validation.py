"""Free-text field checks shared by matters and dispatch."""

from __future__ import annotations

import pytest

from gridmap.errors import InvalidInput
from gridmap.validation import mask_url_userinfo, text_field


def test_text_is_stripped_and_may_hold_line_breaks() -> None:
    assert text_field({"note": "  a\r\n\tb  "}, "note", 10) == "a\r\n\tb"
    assert text_field({}, "note", 10) == ""


@pytest.mark.parametrize(
    ("payload", "kwargs", "error"),
    [
        ({}, {"required": True}, InvalidInput),
        ({"note": "   "}, {"required": True}, InvalidInput),
        ({"note": 5}, {}, InvalidInput),
        ({"note": "a\x00b"}, {}, InvalidInput),
        ({"note": "a\x7fb"}, {}, InvalidInput),
        ({"note": "x" * 11}, {}, InvalidInput),
    ],
)
def test_bad_text_is_refused_with_the_field(payload, kwargs, error) -> None:
    with pytest.raises(error) as raised:
        text_field(payload, "note", 10, **kwargs)
    assert raised.value.details["field"] == "note"


@pytest.mark.parametrize("reason, words", [
    ("道路改线\x00", "control characters"),
    ("道路\x1b[31m改线", "control characters"),
    ({"zh": "改线"}, "must be text"),
    ("   ", "say why"),
    ("改" * 501, "at most 500"),
])
def test_a_grid_edit_reason_is_text_a_person_wrote(reason, words):
    from gridmap.grid_edits import MAX_REASON, EditContext

    assert MAX_REASON == 500
    with pytest.raises(InvalidInput, match=words):
        EditContext("district-gridadmin", reason).checked()
    kept = EditContext("district-gridadmin", " 道路改线后\n调整边界 ").checked()
    assert kept.reason == "道路改线后\n调整边界"


@pytest.mark.parametrize("value", ["cam \ud800", "\udfff", "a\udc00b"])
def test_half_a_surrogate_pair_is_refused(value) -> None:
    with pytest.raises(InvalidInput, match="unpaired surrogate"):
        text_field({"name": value}, "name", 50)


def test_characters_beyond_the_basic_plane_are_text() -> None:
    assert text_field({"name": "摄像头 \N{CAMERA}"}, "name", 50) == "摄像头 \N{CAMERA}"


@pytest.mark.parametrize(("text", "masked"), [
    ("unknown source 'rtsp://admin:pw@192.0.2.1/ch1'", "unknown source 'rtsp://***@192.0.2.1/ch1'"),
    # A raw @ or / inside the password: everything up to the host's @ goes.
    ("rtsp://admin:S3cr@t!x@192.0.2.1/ch1", "rtsp://***@192.0.2.1/ch1"),
    ("rtsp://admin:pa/ss@host/x", "rtsp://***@host/x"),
    ("HTTP://u:p@h/ and http://v:q@k/", "HTTP://***@h/ and http://***@k/"),
    ("rtsp://192.0.2.1/ch1", "rtsp://192.0.2.1/ch1"),
    ("mail a@b.example", "mail a@b.example"),
])
def test_url_passwords_are_masked_in_any_text(text, masked) -> None:
    assert mask_url_userinfo(text) == masked
