"""Unit tests of the demo matters generator (no database): determinism and consistency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from geodata import synth_matters as sm

CATEGORIES = [sm.Category("SJ.01", "暴露垃圾", True, 5), sm.Category("JT.01", "违章停车", False, 3),
              sm.Category("LB.01", "拖欠工资", False, 1)]
GRIDS = [f"370812001001{i:03d}" for i in range(1, 9)]


def _inputs() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(1)
    houses = pd.DataFrame({"lon": 116.8 + rng.random(400) * 0.05,
                           "lat": 35.5 + rng.random(400) * 0.05,
                           "grid_code": [GRIDS[i % len(GRIDS)] for i in range(400)]})
    workers = pd.DataFrame({"grid_code": [g for g in GRIDS for _ in range(4)],
                            "role": ["leader", "full_time", "part_time", "volunteer"] * len(GRIDS)})
    return houses, workers


@pytest.fixture(scope="module")
def data() -> sm.SynthMatters:
    """Return a small generated data set."""
    houses, workers = _inputs()
    return sm.generate(7, houses, workers, CATEGORIES, n=3000)


def test_same_seed_same_data(data):
    houses, workers = _inputs()
    again = sm.generate(7, houses, workers, CATEGORIES, n=3000)
    pd.testing.assert_frame_equal(data.matters, again.matters)
    pd.testing.assert_frame_equal(data.events, again.events)
    pd.testing.assert_frame_equal(data.patrols, again.patrols)
    other = sm.generate(8, houses, workers, CATEGORIES, n=3000)
    assert not other.matters["reported_at"].equals(data.matters["reported_at"])


def test_mix_of_sources_states_and_ratings(data):
    m = data.matters
    assert len(m) == 3000 and m["ref"].is_unique
    shares = m["source"].value_counts(normalize=True)
    assert shares.idxmax() == "hotline_12345"
    assert shares["grid_worker"] > shares["video_patrol"]
    states = m["state"].value_counts()
    assert states["closed"] / len(m) > 0.9
    assert states.drop("closed").sum() > 0  # some are still open
    assert (m["redo_count"] > 0).any()
    assert m["rating"].dropna().between(1, 5).all()
    assert set(m["category_code"]) <= {c.code for c in CATEGORIES}
    # Only citizens leave a contact; the uniqueness of source refs holds per source.
    assert (m.loc[m["source"].isin(["grid_worker", "video_patrol"]), "reporter_phone"] == "").all()
    refs = m.dropna(subset=["source_ref"])
    assert not refs.duplicated(["source", "source_ref"]).any()


def test_states_follow_their_steps_and_clocks(data):
    m = data.matters.set_index("key")
    ref = data.reference
    for key, steps in data.events.groupby("key", sort=False):
        steps = steps.sort_values("at", kind="stable")
        row = m.loc[key]
        # Each step starts where the previous ended; the last one is the state.
        assert list(steps["from_state"].iloc[1:]) == list(steps["to_state"].iloc[:-1])
        assert steps["to_state"].iloc[-1] == row["state"]
        assert steps["action"].iloc[0] == "report"
        assert (steps["at"] <= ref).all()
        assert steps["at"].iloc[0] == row["reported_at"]
        if row["state"] == "closed":
            assert row["closed_at"] == steps["at"].iloc[-1]
        else:
            assert pd.isna(row["closed_at"])
        if row["state"] != "reported":
            start = row["clock_started_at"]
            assert row["accept_due"] == start + timedelta(days=1)
            assert row["finish_due"] == start + timedelta(days=2)
            assert row["feedback_due"] == start + timedelta(days=3)
            assert start >= row["reported_at"]
        assert (steps["action"] == "reopen").sum() == row["redo_count"]
        if row["state"] in ("handled", "verified", "closed"):
            assert row["handled_at"] >= row["accepted_at"] >= row["clock_started_at"]


def test_grid_worker_reports_fall_in_their_patrols(data):
    m, p = data.matters, data.patrols
    assert len(p) > 0 and (p["ended_at"] > p["started_at"]).all()
    since = data.reference - timedelta(days=sm.PATROL_DAYS)
    recent = m[(m["source"] == "grid_worker") & (m["reported_at"] >= since)]
    assert len(recent) > 0
    total = 0
    for row in p.itertuples():
        inside = recent[(recent["worker_index"] == row.worker_index)
                         & (recent["reported_at"] >= row.started_at)
                         & (recent["reported_at"] <= row.ended_at)]
        assert len(inside) >= row.matters_reported
        total += row.matters_reported
    assert total == len(recent)


def test_shift_moves_everything_by_whole_days(data):
    now = datetime(2027, 3, 10, 15, 30, tzinfo=UTC)
    moved = sm.shift(data, now)
    delta = moved.reference - data.reference
    assert delta.total_seconds() % 86400 == 0
    assert moved.reference == datetime(2027, 3, 10, tzinfo=sm.CST)  # now's local midnight
    assert (moved.matters["reported_at"] - data.matters["reported_at"] == delta).all()
    assert (moved.events["at"] <= now).all()
    assert moved.matters["ref"].is_unique
    assert moved.matters["ref"].str.match(r"^SX[0-9]{13}$").all()
