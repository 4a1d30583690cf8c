"""Crowd pipeline logic without a database: hysteresis, payload validation, simulator."""

from __future__ import annotations

import json
import math
import random
from datetime import UTC, datetime, timedelta

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridmap.errors import InvalidInput, PayloadTooLarge
from video import crowd, sensors
from video.crowd import AlertRule, Hysteresis, Reading, Transition, step
from video.density import Calibration

RULE = AlertRule(threshold=1.0, margin=0.2)
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- hysteresis


def test_two_readings_at_or_above_threshold_raise():
    assert crowd.run([1.0, 1.0], RULE) == [None, Transition.RAISE]


def test_a_single_spike_does_not_raise():
    assert crowd.run([0.1, 5.0, 0.1, 5.0, 0.1], RULE) == [None] * 5


def test_clearing_needs_two_readings_below_threshold_minus_margin():
    # 0.85 is below the threshold but within the margin: the alert holds.
    events = crowd.run([1.2, 1.2, 0.85, 0.85, 0.85, 0.7, 0.85, 0.7, 0.7], RULE)
    assert events == [None, Transition.RAISE, None, None, None, None, None, None,
                      Transition.CLEAR]


def test_state_carries_across_calls():
    state, event = step(Hysteresis(), 1.5, RULE)
    assert (state, event) == (Hysteresis(above=1), None)
    state, event = step(state, 1.5, RULE)
    assert (state, event) == (Hysteresis(active=True), Transition.RAISE)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -0.1])
def test_step_refuses_impossible_densities(bad):
    with pytest.raises(ValueError):
        step(Hysteresis(), bad, RULE)


@pytest.mark.parametrize("kwargs", [
    {"threshold": 0, "margin": 0}, {"threshold": 1, "margin": 1},
    {"threshold": 1, "margin": -0.1}, {"threshold": 1, "margin": 0.1, "raise_after": 0},
])
def test_rule_validation(kwargs):
    with pytest.raises(ValueError):
        AlertRule(**kwargs)


def test_default_rule_is_level_e_with_a_20_percent_margin():
    rule = AlertRule.for_threshold(None)
    assert rule.threshold == pytest.approx(1.08)
    assert rule.margin == pytest.approx(0.216)


def simulate_alerts(events: list[Transition | None]) -> tuple[int, int]:
    """Mirror advance_alerts' bookkeeping: return (alerts created, most open at once)."""
    created, open_alerts, most = 0, 0, 0
    for event in events:
        if event is Transition.RAISE and open_alerts == 0:
            created += 1
            open_alerts = 1
        # A CLEAR only marks the alert as dispersed; people close alerts.
        most = max(most, open_alerts)
    return created, most


densities = st.floats(min_value=0.0, max_value=10.0, allow_nan=False)
rules = st.builds(
    lambda t, share, up, down: AlertRule(t, t * share, up, down),
    st.floats(min_value=0.05, max_value=5.0), st.floats(min_value=0.0, max_value=0.9),
    st.integers(min_value=2, max_value=4), st.integers(min_value=1, max_value=4),
)


@settings(max_examples=300, deadline=None)
@given(rules, st.lists(densities, max_size=20),
       st.lists(st.tuples(st.floats(0.0, 5.0), st.floats(0.0, 0.99)), min_size=1, max_size=60),
       st.booleans())
def test_alternating_around_threshold_never_makes_more_than_one_alert(rule, prefix, swings, up_first):
    """After any history, readings that alternate above/below the threshold raise at most once."""
    alternating = []
    for over, under in swings:
        high = rule.threshold + over  # at or above the threshold
        low = rule.threshold * under  # strictly below it, possibly inside the margin
        alternating += [high, low] if up_first else [low, high]
    state = Hysteresis()
    for d in prefix:
        state, _ = step(state, d, rule)
    events = crowd.run(alternating, rule, state)
    # At most one raise: only one completing a run the history began, never a
    # raise-clear-raise flap. With the usual clear_after >= 2 nothing clears either.
    assert events.count(Transition.RAISE) <= 1
    if rule.clear_after >= 2:
        assert sum(e is not None for e in events) <= 1
    created, most = simulate_alerts(events)
    assert created <= 1 and most <= 1


@settings(max_examples=300, deadline=None)
@given(rules, st.lists(densities, max_size=80))
def test_raises_and_clears_alternate_and_follow_their_runs(rule, seq):
    events = crowd.run(seq, rule)
    seen = [e for e in events if e is not None]
    assert seen == [Transition.RAISE, Transition.CLEAR] * (len(seen) // 2) + (
        [Transition.RAISE] if len(seen) % 2 else [])
    for i, event in enumerate(events):
        if event is Transition.RAISE:
            assert all(d >= rule.threshold for d in seq[i - rule.raise_after + 1: i + 1])
        if event is Transition.CLEAR:
            assert all(d < rule.threshold - rule.margin for d in seq[i - rule.clear_after + 1: i + 1])


# --------------------------------------------------------------------------- readings


def test_reading_density_and_level():
    r = Reading(NOW, count=50, area_m2=100)
    assert r.density == pytest.approx(0.5) and r.level == "C"
    assert Reading(NOW, 300, 100).level == "F"


def test_demo_calibration_is_valid_and_alerts_at_level_e():
    calib = Calibration.from_json(crowd.DEMO_CALIBRATION)
    assert calib.alert_density == pytest.approx(1.08)
    assert calib.image_size == (640, 360)


def test_decode_jpeg():
    ok, data = cv2.imencode(".jpg", np.full((36, 64, 3), 90, np.uint8))
    assert ok and crowd.decode_jpeg(data.tobytes()).shape == (36, 64, 3)
    assert crowd.decode_jpeg(b"not a jpeg") is None
    assert crowd.decode_jpeg(None) is None


@pytest.mark.parametrize("raw, seconds", [("15m", 900), ("1h", 3600), ("90s", 90), ("600", 600)])
def test_parse_step(raw, seconds):
    assert crowd.parse_step(raw) == seconds


@pytest.mark.parametrize("raw", ["", "m", "10x", "30s", "25h", "-5m", "1.5h", "9999999m"])
def test_parse_step_refuses(raw):
    with pytest.raises(InvalidInput):
        crowd.parse_step(raw)


def test_parse_states():
    assert crowd.parse_states(["active"]) == ("open", "acknowledged")
    assert crowd.parse_states(["closed", "open", "open"]) == ("closed", "open")
    with pytest.raises(InvalidInput):
        crowd.parse_states(["gone"])


# --------------------------------------------------------------------------- sensor payloads


def test_tokens_are_random_and_only_their_digest_is_kept():
    a, b = sensors.new_token(), sensors.new_token()
    assert a != b and len(a) >= 43
    assert sensors.token_hash(a) != sensors.token_hash(b) and len(sensors.token_hash(a)) == 32


@pytest.mark.parametrize("header", [None, "", "Basic abc", "Bearer", "Bearer   ", "token abc"])
def test_bearer_token_refuses_other_schemes(header):
    with pytest.raises(sensors.SensorAuthError):
        sensors.bearer_token(header)


def test_bearer_token():
    assert sensors.bearer_token("bearer  abc.def ") == "abc.def"


def test_parse_one_reading_and_a_batch():
    one = sensors.parse_readings({"time": "2024-05-01T19:30:00+08:00", "count": 12}, 100, NOW)
    assert one == [Reading(datetime(2024, 5, 1, 11, 30, tzinfo=UTC), 12.0, 100, "sensor")]
    batch = sensors.parse_readings(
        [{"time": NOW.timestamp() - 60, "count": 3, "area_m2": 50},
         {"time": "2024-05-01T11:59:00Z", "count": 0}], 100, NOW)
    assert [r.area_m2 for r in batch] == [50, 100]
    assert [r.count for r in batch] == [3, 0]


@pytest.mark.parametrize("payload, words", [
    ([], "empty"),
    ("12", "object"),
    ({"count": 1}, "lacks time"),
    ({"time": "2024-05-01T12:00:00Z"}, "lacks count"),
    ({"time": "2024-05-01T12:00:00", "count": 1}, "time zone"),
    ({"time": "yesterday", "count": 1}, "ISO 8601"),
    ({"time": True, "count": 1}, "ISO 8601"),
    ({"time": "2024-05-01T13:00:00Z", "count": 1}, "future"),
    ({"time": "2024-01-01T12:00:00Z", "count": 1}, "older"),
    ({"time": 1e300, "count": 1}, "out of range"),
    ({"time": "2024-05-01T12:00:00Z", "count": -1}, "count"),
    ({"time": "2024-05-01T12:00:00Z", "count": "7"}, "number"),
    ({"time": "2024-05-01T12:00:00Z", "count": True}, "number"),
    ({"time": "2024-05-01T12:00:00Z", "count": math.nan}, "finite"),
    ({"time": "2024-05-01T12:00:00Z", "count": 2e6}, "count"),
    ({"time": "2024-05-01T12:00:00Z", "count": 1, "area_m2": 0}, "area_m2"),
    # Hostile numbers: a subnormal or tiny area made the density inf (a 500) or 1e300
    # (level F on the map); an area beyond 1 km² is a unit mistake.
    ({"time": "2024-05-01T12:00:00Z", "count": 1, "area_m2": 5e-324},
     "reading.area_m2 must be within 1–1,000,000 m²"),
    ({"time": "2024-05-01T12:00:00Z", "count": 1e6, "area_m2": 1e-303}, "reading.area_m2"),
    ({"time": "2024-05-01T12:00:00Z", "count": 1, "area_m2": 1e-300}, "reading.area_m2"),
    ({"time": "2024-05-01T12:00:00Z", "count": 1, "area_m2": 0.99}, "reading.area_m2"),
    ({"time": "2024-05-01T12:00:00Z", "count": 1, "area_m2": 1e7}, "reading.area_m2"),
    ({"time": "2024-05-01T12:00:00Z", "count": 1001}, "reading.count: 1001 people on 100 m²"),
    ({"time": "2024-05-01T12:00:00Z", "count": 11, "area_m2": 1}, "more than 10 persons/m²"),
    ({"time": "2024-05-01T12:00:00Z", "count": 1, "extra": 1}, "unknown field"),
])
def test_bad_readings_are_refused_with_a_reason(payload, words):
    with pytest.raises(InvalidInput) as info:
        sensors.parse_readings(payload, 100, NOW)
    assert words in info.value.reason


def test_one_bad_reading_refuses_the_batch_and_names_it():
    good = {"time": "2024-05-01T12:00:00Z", "count": 1}
    with pytest.raises(InvalidInput, match=r"readings\[2\]"):
        sensors.parse_readings([good, good, {**good, "count": -3}], 100, NOW)


def test_huge_batches_and_bodies_are_too_large():
    good = {"time": "2024-05-01T12:00:00Z", "count": 1}
    with pytest.raises(PayloadTooLarge):
        sensors.parse_readings([good] * (sensors.MAX_BATCH + 1), 100, NOW)
    with pytest.raises(PayloadTooLarge):
        sensors.parse_body(b" " * (sensors.MAX_BODY_BYTES + 1))


@pytest.mark.parametrize("body", [b'{"time": 1, "count": NaN}', b"[Infinity]", b"{", b"\xff\xfe"])
def test_parse_body_refuses_non_json_numbers_and_garbage(body):
    with pytest.raises(InvalidInput):
        sensors.parse_body(body)


def test_readings_up_to_the_physical_bounds_are_accepted():
    at = "2024-05-01T12:00:00Z"
    edge = sensors.parse_readings(
        [{"time": at, "count": 10, "area_m2": 1}, {"time": at, "count": 0, "area_m2": 1e6},
         {"time": at, "count": 1_000_000, "area_m2": 1e6}], 100, NOW)
    assert [r.density for r in edge] == [10.0, 0.0, 1.0]
    assert all(r.plausible for r in edge)


def test_a_registered_area_outside_the_bounds_refuses_readings_that_rely_on_it():
    with pytest.raises(InvalidInput, match=r"reading\.area_m2"):
        sensors.parse_readings({"time": "2024-05-01T12:00:00Z", "count": 1}, 1e-300, NOW)


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 50_000, b"[" * 5_000 + b"]" * 5_000])
def test_deeply_nested_bodies_are_malformed_json(body):
    with pytest.raises(InvalidInput, match="malformed JSON: nested too deeply"):
        sensors.parse_body(body)


@pytest.mark.parametrize("count, area", [(1, 1e-300), (11, 1), (-1, 100), (math.inf, 100),
                                         (1, 2e6), (math.nan, 100)])
def test_implausible_readings_are_never_stored(count, area):
    reading = Reading(NOW, count, area)
    assert not reading.plausible
    with pytest.raises(ValueError, match="implausible reading"):
        crowd.record_readings(None, crowd.Source("sensor", 1), [reading])  # refused before SQL


@pytest.mark.parametrize("device", ["", "-lead", "a b", "x" * 65, "设备1", "a/b"])
def test_device_ids_are_checked(device):
    with pytest.raises(InvalidInput):
        sensors.check_device_id(device)


# --------------------------------------------------------------------------- simulator


def test_profiles_peak_where_expected():
    assert sensors.demo_density("square", 19.75) > crowd.DEFAULT_ALERT_DENSITY
    assert sensors.demo_density("square", 3.0) < 0.1
    assert sensors.demo_density("school", 16.6) > sensors.demo_density("school", 12.0)
    # The profile wraps around midnight smoothly.
    assert sensors.demo_density("station", 23.99) == pytest.approx(
        sensors.demo_density("station", 0.0), abs=1e-3)


def test_simulator_backfills_shuffled_then_posts_live():
    posted: list[tuple[str, list]] = []

    def post(url, token, body):
        posted.append((url, body))
        return 200, {"stored": len(body), "alerts_raised": 0}

    clock = iter(x * 0.5 for x in range(10_000))
    sensor = sensors.SimSensor("demo-square-1", "tok", "square", 1500.0, 1.0)
    totals = sensors.simulate("http://127.0.0.1:5000", [sensor], interval_s=60,
                              backfill_h=2, duration_s=90, post=post,
                              clock=lambda: 1_714_560_000.0 + next(clock), sleep=lambda s: None,
                              echo=lambda msg: None)
    backfill = posted[0][1]
    times = [r["time"] for r in backfill]
    assert posted[0][0].endswith("/api/sensors/demo-square-1/readings")
    assert len(backfill) == 24 and times != sorted(times)  # 2 h at 5 min, out of order
    assert all(isinstance(r["count"], int) and r["count"] >= 0 for r in backfill)
    live = [body for _, body in posted[1:]]
    assert live and all(len(b) == 1 for b in live)
    assert datetime.fromisoformat(live[0][0]["time"]).tzinfo is not None
    assert totals["stored"] == 24 + len(live)


def test_demo_counts_are_plausible():
    sensor = sensors.SimSensor("demo-square-1", "tok", "square", 1500.0, 1.0)
    rng = random.Random(1)
    evening = datetime(2024, 5, 1, 11, 45, tzinfo=UTC)  # 19:45 in Shanghai
    night = evening + timedelta(hours=8)
    assert sensors.demo_count(sensor, evening, rng) / 1500 > 1.0
    assert sensors.demo_count(sensor, night, rng) / 1500 < 0.2
    json.dumps([sensors.demo_count(sensor, evening, rng)])  # plain ints, JSON-ready
