"""Free-text field checks shared by matters and dispatch."""

from __future__ import annotations

import pytest

from gridmap.errors import InvalidInput, PayloadTooLarge
from gridmap.validation import text_field


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
        ({"note": "x" * 11}, {"too_long": PayloadTooLarge}, PayloadTooLarge),
    ],
)
def test_bad_text_is_refused_with_the_field(payload, kwargs, error) -> None:
    with pytest.raises(error) as raised:
        text_field(payload, "note", 10, **kwargs)
    assert raised.value.details["field"] == "note"
