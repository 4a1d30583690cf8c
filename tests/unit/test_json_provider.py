"""The orjson-backed JSON provider encodes like Flask's default one, dates as RFC 3339."""

from __future__ import annotations

import json
from collections import namedtuple
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from uuid import UUID
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from flask import Flask
from flask.json.provider import DefaultJSONProvider

from web.json_provider import OrjsonProvider

Point = namedtuple("Point", "x y")


@dataclass
class Reading:
    count: int
    level: str


@pytest.fixture
def providers():
    app = Flask(__name__)
    return OrjsonProvider(app), DefaultJSONProvider(app)


SAMPLES = [
    {"b": 1, "a": [1.5, None, True], "名称": "鼓楼街道"},
    {"amount": Decimal("12.50"), "id": UUID("12345678-1234-5678-1234-567812345678")},
    {"row": Point(1, 2), "reading": Reading(3, "C")},
    {"nested": {"z": {"y": 1, "x": 2}}},
]


@pytest.mark.parametrize("value", SAMPLES)
def test_same_json_as_flask(providers, value):
    fast, flask_default = providers
    assert json.loads(fast.dumps(value)) == json.loads(flask_default.dumps(value))


def test_keys_sorted_and_text_left_as_utf8(providers):
    fast, _ = providers
    out = fast.dumps({"b": 1, "a": "兖州"})
    assert out == '{"a":"兖州","b":1}'


def test_dates_are_rfc3339_and_read_back(providers):
    fast, _ = providers
    at = datetime(2026, 11, 27, 11, 56, 3, 250000, tzinfo=ZoneInfo("Asia/Shanghai"))
    out = json.loads(fast.dumps({"t": at, "day": date(2026, 11, 27)}))
    assert out == {"t": "2026-11-27T11:56:03.250000+08:00", "day": "2026-11-27"}
    assert datetime.fromisoformat(out["t"]) == at


def test_naive_times_are_utc_as_in_flask(providers):
    fast, _ = providers
    out = json.loads(fast.dumps({"t": datetime(2026, 11, 27, 3, 56, 3)}))
    assert datetime.fromisoformat(out["t"]) == datetime(2026, 11, 27, 3, 56, 3, tzinfo=UTC)


def test_numpy_values_encode(providers):
    fast, _ = providers
    out = json.loads(fast.dumps({"n": np.int64(7), "f": np.float32(0.5), "a": np.arange(3)}))
    assert out == {"n": 7, "f": 0.5, "a": [0, 1, 2]}


def test_unknown_types_still_refused(providers):
    fast, _ = providers
    with pytest.raises(TypeError):
        fast.dumps({"s": {1, 2}})


def test_other_json_arguments_fall_back_to_the_json_module(providers):
    fast, _ = providers
    assert fast.dumps({"a": 1}, indent=4) == '{\n    "a": 1\n}'


def test_responses_use_it(providers):
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    with app.app_context():
        response = app.json.response({"名": 1})
    assert response.get_data(as_text=True) == '{"名":1}\n'
    assert response.mimetype == "application/json"


def test_response_body_is_the_encoded_json():
    app = Flask(__name__)  # the providers hold their app weakly
    fast, flask_default = OrjsonProvider(app), DefaultJSONProvider(app)
    value = {"名称": "鼓楼街道", "n": [1, 2.5], "t": datetime(2026, 11, 27, tzinfo=UTC)}
    with app.app_context():
        mine = fast.response(value)
        theirs = flask_default.response(value)
    assert mine.mimetype == theirs.mimetype == "application/json"
    assert mine.get_data().endswith(b"\n")
    assert mine.get_data() == (fast.dumps(value) + "\n").encode()
    assert json.loads(mine.get_data()) == json.loads(theirs.get_data()) | {
        "t": "2026-11-27T00:00:00+00:00"}


def test_response_is_indented_when_not_compact():
    app = Flask(__name__)
    fast = OrjsonProvider(app)
    fast.compact = False
    with app.app_context():
        body = fast.response({"b": 1, "a": 2}).get_data(as_text=True)
    assert body == '{\n  "a": 2,\n  "b": 1\n}\n'
