"""Crowd-density estimator: calibration, levels, state size, accuracy on synthetic clips, CLI.

Accuracy bands (stated here, checked below) on clips from video/crowdsim.py at
640x360 with a warm per-camera background:
- sparse (~5 people): mean absolute error <= 2 people;
- medium (~60 people): mean absolute percentage error <= 20 %;
- dense (~150 people, Fruin E): MAPE <= 20 % (occlusion makes oblique views hard).
Bursts without any state (temporal median): sparse MAE <= 3, medium MAPE <= 35 %.
As streams arrive (JPEG quality 40, sway up to 1 px), oblique: sparse MAE <= 1.5,
medium MAPE <= 25 %.
"""

from __future__ import annotations

import io
import json
import math
import struct
from functools import cache

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from video import density
from video.crowdsim import Clip, degrade, make_clip, write_video
from video.density import (
    FRUIN_THRESHOLDS,
    WARM_AGE,
    Calibration,
    CalibrationError,
    CameraState,
    DensityError,
    FrameError,
    StateError,
    analysis_size,
    estimate,
    fruin_level,
    level_min_density,
    run_cli,
)

GOOD = {
    "roi": [[40, 300], [600, 300], [560, 60], [80, 60]],
    "area_m2": 120.0,
    "person_height_px": [[300, 80], [60, 30]],
}


def _with(**changes: object) -> dict:
    data = json.loads(json.dumps(GOOD))
    data.update(changes)
    return data


@cache
def _clip(view: str, n: int, frames: int = 8, seed: int = 1) -> Clip:
    """Return a cached synthetic clip (generation dominates test time)."""
    return make_clip(view, n, frames, seed=seed)


def _warm_run(clip: Clip, look=lambda frame: frame) -> tuple[np.ndarray, np.ndarray]:
    """Run single frames with a state warmed up on the empty scene; return est, truth.

    As the pipeline does: the state learns the ground and its noise from the
    samples it saw (here, the empty street), through the same ``look`` (codec, sway).
    """
    calib = Calibration.from_json(clip.calibration)
    state = None
    for frame in _empty(clip.view, clip.meta["seed"]).frames:
        _, state = estimate(look(frame), calib, state)
    est = []
    for frame in clip.frames[2:]:
        e, state = estimate(look(frame), calib, state)
        est.append(e.count)
    return np.array(est), np.array(clip.counts[2:], float)


@cache
def _empty(view: str, seed: int) -> Clip:
    """Return the empty street of a clip's seed (same ground, nobody on it)."""
    return make_clip(view, 0, WARM_AGE - 1, seed=seed)


# --- calibration ------------------------------------------------------------------


def test_calibration_parses_json_text_and_dict() -> None:
    a = Calibration.from_json(json.dumps(GOOD))
    b = Calibration.from_json(GOOD)
    assert a == b
    assert a.area_m2 == pytest.approx(120.0)
    assert a.height_at(300)[()] == pytest.approx(80.0)
    assert a.height_at(180)[()] == pytest.approx(55.0)
    assert Calibration.from_json(a.to_dict()) == a


def test_calibration_extra_keys_and_place_thresholds() -> None:
    c = Calibration.from_json(
        _with(camera_id="K-0042", alert_level="D", crush_density=3.5)
    )
    assert c.alert_density == pytest.approx(FRUIN_THRESHOLDS[2])
    assert c.crush_density == pytest.approx(3.5)
    assert Calibration.from_json(
        _with(alert_density=1.5)
    ).alert_density == pytest.approx(1.5)


def test_height_model_extrapolates_but_stays_positive() -> None:
    c = Calibration.from_json(GOOD)
    assert c.height_at(-10_000)[()] > 0
    assert c.height_at(420)[()] == pytest.approx(105.0)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ({"roi": GOOD["roi"], "area_m2": 1.0}, "lacks person_height_px"),
        (_with(roi=[[0, 0], [10, 0]]), "at least 3"),
        (_with(roi=[[0, 0], [10, 0], [0, 0]]), "at least 3"),
        (_with(roi=[[0, 0], [100, 100], [100, 0], [0, 100]]), "not a simple polygon"),
        (_with(roi=[[0, 0], [10, 10], [20, 20]]), "simple polygon|less than one pixel"),
        (_with(roi=[[0, 0], ["a", 1], [5, 5]]), "must be a number"),
        (_with(roi=[[0, 0], [1, 2, 3], [5, 5]]), "pair"),
        (_with(roi="0,0 1,1 2,0"), "list of"),
        (_with(area_m2=0), "area_m2 must be > 0"),
        (_with(area_m2=-5.0), "area_m2 must be > 0"),
        (_with(area_m2=float("nan")), "finite"),
        (_with(area_m2="120"), "must be a number"),
        (_with(area_m2=True), "must be a number"),
        # A ROI's ground under 1 m² made one person 1e300 p/m²; over 1 km² is no one place.
        (_with(area_m2=1e-300), "area_m2 must be within 1–1,000,000 m²"),
        (_with(area_m2=0.5), "area_m2 must be within"),
        (_with(area_m2=2e6), "area_m2 must be within"),
        (_with(person_height_px=[[300, 80]]), "exactly two"),
        (_with(person_height_px=[[300, 80], [60, 0]]), "heights must be > 0"),
        (_with(person_height_px=[[300, -8], [60, 30]]), "heights must be > 0"),
        (_with(person_height_px=[[200, 80], [200, 30]]), "rows must differ"),
        (_with(person_height_px=[[200, 80], [60, None]]), "must be a number"),
        (_with(person_height_px=[[200, float("inf")], [60, 30]]), "finite"),
        (_with(alert_density=0), "alert_density must be > 0"),
        (_with(alert_level="G"), "alert_level"),
        (_with(alert_level="C", alert_density=1.0), "not both"),
        (_with(crush_density=-1), "crush_density must be > 0"),
        (_with(image_size=[640.5, 360]), "image_size"),
    ],
)
def test_calibration_rejects_bad_input_with_reason(data: object, reason: str) -> None:
    with pytest.raises(CalibrationError, match=reason):
        Calibration.from_json(data)  # type: ignore[arg-type]


def test_calibration_error_is_a_value_error() -> None:
    assert issubclass(CalibrationError, ValueError)
    assert issubclass(CalibrationError, DensityError)


def test_roi_outside_frame_is_a_calibration_error() -> None:
    c = Calibration.from_json(_with(roi=[[2000, 2000], [2100, 2000], [2100, 2100]]))
    with pytest.raises(CalibrationError, match="outside the frame"):
        estimate(np.zeros((360, 640, 3), np.uint8), c)


# --- levels -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("density", "level"),
    [
        (0.0, "A"),
        (0.3099, "A"),
        (0.31, "B"),
        (0.4299, "B"),
        (0.43, "C"),
        (0.72, "D"),
        (1.0799, "D"),
        (1.08, "E"),
        (2.1499, "E"),
        (2.15, "F"),
        (9.0, "F"),
    ],
)
def test_fruin_level_boundaries(density: float, level: str) -> None:
    assert fruin_level(density) == level


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf])
def test_fruin_level_rejects_impossible_density(bad: float) -> None:
    with pytest.raises(DensityError):
        fruin_level(bad)


@given(st.floats(0, 20), st.floats(0, 20))
def test_fruin_level_is_monotonic(a: float, b: float) -> None:
    lo, hi = sorted((a, b))
    assert fruin_level(lo) <= fruin_level(hi)


@given(st.sampled_from("ABCDEF"))
def test_level_min_density_round_trips(level: str) -> None:
    assert fruin_level(level_min_density(level)) == level


# --- state --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("h", "w"), [(360, 640), (720, 1280), (1080, 1920), (480, 640)]
)
def test_state_is_small_and_round_trips(h: int, w: int) -> None:
    frame = np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)
    state = CameraState.from_background(frame)
    blob = state.to_bytes()
    # Noise is the worst case for compression; a real scene compresses better.
    assert state.nbytes <= 90_000  # 320x180 luma + 160x90x2 chroma, never the frame
    assert len(blob) <= 96_000
    back = CameraState.from_bytes(blob)
    assert np.array_equal(back.luma, state.luma)
    assert np.array_equal(back.chroma, state.chroma)
    assert back.frame_shape == (h, w)
    assert back.age == state.age


def test_state_from_estimate_stays_small_and_usable() -> None:
    clip = _clip("oblique", 5, frames=WARM_AGE + 2)
    calib = Calibration.from_json(clip.calibration)
    state = None
    sizes = []
    for frame in clip.frames[:WARM_AGE]:
        _, state = estimate(frame, calib, state)
        # Every round trip through bytes keeps the warm-up samples, as the pipeline does.
        state = CameraState.from_bytes(state.to_bytes())
        sizes.append(len(state.to_bytes()))
    assert state is not None and state.warm and state.stack is None
    # While warming up it holds at most WARM_AGE - 1 samples; then only the background.
    assert max(sizes) <= (WARM_AGE - 1) * 64_000
    assert sizes[-1] <= 64_000
    estimate(clip.frames[WARM_AGE], calib, CameraState.from_bytes(state.to_bytes()))


def test_cold_start_learns_the_ground_from_spread_samples() -> None:
    # Samples 6 s apart on a busy square: the first one is full of people.
    clip = make_clip("topdown", 40, WARM_AGE + 8, seed=7, fps=1 / 6)
    calib = Calibration.from_json(clip.calibration)
    state = None
    for frame in clip.frames[:WARM_AGE]:
        _, state = estimate(frame, calib, state)
        state = CameraState.from_bytes(state.to_bytes())
    errors = []
    for k in range(WARM_AGE, len(clip.frames)):
        est, state = estimate(clip.frames[k], calib, state)
        errors.append(abs(est.count - clip.counts[k]) / clip.counts[k])
    assert np.mean(errors) <= 0.35


@pytest.mark.parametrize("version", [1, 2])
def test_older_states_still_load_as_known_backgrounds(version: int) -> None:
    state = CameraState.from_background(_clip("oblique", 5).background)
    state.support = 0.5
    blob = state.to_bytes()
    head = struct.calcsize("<4sBHHHHIIIf")
    # Version 3 added the support (a float) after the header; version 2 the
    # warm-up sample count (a byte) after that; version 1 had neither.
    old = blob[:4] + bytes([version]) + blob[5:head]
    old += blob[head + 4 : head + 5] if version == 2 else b""
    back = CameraState.from_bytes(old + blob[head + 5 :])
    assert np.array_equal(back.luma, state.luma) and back.stack is None
    assert back.support == 1.0


def test_state_keeps_its_support() -> None:
    state = CameraState.from_background(_clip("oblique", 5).background)
    state.support = 0.4
    assert CameraState.from_bytes(state.to_bytes()).support == pytest.approx(0.4)


def test_corrupt_state_is_rejected() -> None:
    with pytest.raises(StateError):
        CameraState.from_bytes(b"GMCS\x01garbage")


# --- accuracy on synthetic clips ---------------------------------------------------


@pytest.mark.parametrize("view", ["oblique", "topdown"])
def test_sparse_count_and_level(view: str) -> None:
    clip = _clip(view, 5)
    est, truth = _warm_run(clip)
    assert np.mean(np.abs(est - truth)) <= 2.0
    calib = Calibration.from_json(clip.calibration)
    assert fruin_level(est.mean() / calib.area_m2) == "A"


@pytest.mark.parametrize("view", ["oblique", "topdown"])
def test_medium_count_and_level(view: str) -> None:
    clip = _clip(view, 60)
    est, truth = _warm_run(clip)
    assert np.mean(np.abs(est - truth) / truth) <= 0.20
    calib = Calibration.from_json(clip.calibration)
    true_level = fruin_level(truth.mean() / calib.area_m2)
    assert true_level == "C"
    assert fruin_level(est.mean() / calib.area_m2) == true_level


@pytest.mark.parametrize("view", ["oblique", "topdown"])
def test_dense_count_and_level(view: str) -> None:
    clip = _clip(view, 150)
    est, truth = _warm_run(clip)
    # People cover nearly all the area: the noise estimate must not grow with them
    # (it did, and hid a quarter of the people of a dense oblique view).
    assert np.mean(np.abs(est - truth) / truth) <= 0.20
    calib = Calibration.from_json(clip.calibration)
    assert fruin_level(truth.mean() / calib.area_m2) == "E"
    assert fruin_level(est.mean() / calib.area_m2) == "E"


@pytest.mark.parametrize(
    ("view", "n"),
    [("oblique", 5), ("topdown", 5), ("oblique", 60), ("topdown", 60)],
)
def test_burst_without_state(view: str, n: int) -> None:
    clip = _clip(view, n, frames=14)
    calib = Calibration.from_json(clip.calibration)
    est, truth = [], []
    for k in range(8, 14):
        e, state = estimate(clip.frames[k - 8 : k + 1 : 2], calib)
        assert e.method.startswith("burst")
        assert state.age == 5
        est.append(e.count)
        truth.append(clip.counts[k])
    err = np.abs(np.array(est) - truth)
    if n <= 5:
        assert err.mean() <= 3.0
    else:
        assert np.mean(err / truth) <= 0.35


def test_density_flags_follow_place_thresholds() -> None:
    clip = _clip("topdown", 150)
    data = dict(clip.calibration, alert_level="D", crush_density=1.0)
    calib = Calibration.from_json(data)
    state = CameraState.from_background(
        clip.background, size=analysis_size(calib, 360, 640)
    )
    e, _ = estimate(clip.frames[3], calib, state)
    assert e.density == pytest.approx(e.count / calib.area_m2)
    assert e.level == fruin_level(e.density)
    assert e.alert and e.crush_risk
    quiet = Calibration.from_json(clip.calibration)
    e2, _ = estimate(
        clip.frames[3], quiet, CameraState.from_background(clip.background)
    )
    assert not e2.crush_risk and not e2.alert


@pytest.mark.parametrize("view", ["oblique", "topdown"])
def test_empty_scene_counts_about_zero(view: str) -> None:
    clip = _clip(view, 0, frames=6)
    assert set(clip.counts) == {0}
    calib = Calibration.from_json(clip.calibration)
    state = CameraState.from_background(clip.background)
    for frame in clip.frames:
        e, state = estimate(frame, calib, state)
        assert e.count < 0.5
        assert e.level == "A" and not e.crush_risk
        assert e.method == "quiet"
    e, _ = estimate(clip.frames, calib)
    assert e.count < 0.5


def test_still_image_without_history_gives_an_estimate() -> None:
    clip = _clip("topdown", 5)
    calib = Calibration.from_json(clip.calibration)
    e, state = estimate(clip.frames[0], calib)
    assert e.method.startswith("still")
    assert math.isfinite(e.count) and e.count >= 0
    assert not state.warm


def test_grey_frames_are_accepted() -> None:
    clip = _clip("oblique", 5)
    calib = Calibration.from_json(clip.calibration)
    grey = [cv2.cvtColor(f, cv2.COLOR_BGR2GRAY) for f in clip.frames[:5]]
    e, state = estimate(grey, calib)
    assert math.isfinite(e.count)
    e, _ = estimate(grey[-1], calib, state)
    assert math.isfinite(e.count)


def test_frames_are_validated() -> None:
    calib = Calibration.from_json(GOOD)
    with pytest.raises(FrameError):
        estimate([], calib)
    with pytest.raises(FrameError):
        estimate(
            [np.zeros((360, 640, 3), np.uint8), np.zeros((180, 320, 3), np.uint8)],
            calib,
        )
    with pytest.raises(FrameError):
        estimate(np.zeros((4, 4), np.uint8), calib)


def test_state_from_other_resolution_is_ignored() -> None:
    clip = _clip("oblique", 5)
    calib = Calibration.from_json(clip.calibration)
    other = CameraState.from_background(np.zeros((720, 1280, 3), np.uint8))
    _, state = estimate(clip.frames[0], calib, other)
    assert state.frame_shape == (360, 640)


# --- CLI ----------------------------------------------------------------------------


def test_run_cli_writes_json_lines_for_video(tmp_path) -> None:
    clip = make_clip("oblique", 8, 12, seed=3)
    video = write_video(clip.frames, tmp_path / "clip.mp4", fps=clip.fps)
    calib_path = tmp_path / "calib.json"
    calib_path.write_text(json.dumps(clip.calibration), "utf-8")
    out = io.StringIO()
    n = run_cli(video, calib_path, 3, out)
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(rows) == 4
    assert [r["frame"] for r in rows] == [0, 3, 6, 9]
    for r in rows:
        assert {"frame", "count", "density", "level"} <= set(r)
        assert r["level"] in "ABCDEF"
        assert r["density"] == pytest.approx(
            r["count"] / clip.calibration["area_m2"], abs=1e-3
        )
    # The clip's background is bootstrapped from the file itself: counts are sane.
    counts = np.array([r["count"] for r in rows])
    truth = np.array([clip.counts[r["frame"]] for r in rows])
    assert np.mean(np.abs(counts - truth)) <= 4.0


def test_run_cli_handles_a_still_image(tmp_path) -> None:
    clip = _clip("oblique", 5)
    image = tmp_path / "frame.png"
    assert cv2.imwrite(str(image), clip.frames[0])
    calib_path = tmp_path / "calib.json"
    calib_path.write_text(json.dumps(clip.calibration), "utf-8")
    out = io.StringIO()
    assert run_cli(image, calib_path, 1, out) == 1
    row = json.loads(out.getvalue())
    assert row["frame"] == 0 and row["level"] in "ABCDEF" and row["count"] >= 0


def test_run_cli_reports_bad_inputs(tmp_path) -> None:
    calib_path = tmp_path / "calib.json"
    calib_path.write_text(json.dumps(_with(area_m2=-1)), "utf-8")
    with pytest.raises(CalibrationError):
        run_cli(tmp_path / "x.mp4", calib_path, 1, io.StringIO())
    calib_path.write_text(json.dumps(GOOD), "utf-8")
    with pytest.raises(FrameError):
        run_cli(tmp_path / "missing.mp4", calib_path, 1, io.StringIO())
    with pytest.raises(DensityError):
        run_cli(tmp_path / "missing.mp4", calib_path, 0, io.StringIO())


def test_crowdsim_is_deterministic() -> None:
    a = make_clip("topdown", 10, 2, seed=7)
    b = make_clip("topdown", 10, 2, seed=7)
    assert a.counts == b.counts
    assert np.array_equal(a.frames[1], b.frames[1])
    assert a.calibration == b.calibration
    Calibration.from_json(a.calibration)


# --- noise and how well the background is known -----------------------------------


@pytest.mark.parametrize("sigma", [0.7, 1.5, 3.0])
def test_ground_noise_from_samples_that_agree(sigma: float) -> None:
    rng = np.random.default_rng(3)
    ground = rng.uniform(40, 200, (90, 160)).astype(np.float32)
    samples = np.clip(np.round(ground + rng.normal(0, sigma, (7, 90, 160))), 0, 255)
    # People cover a third of each sample, somewhere else each time.
    for sample in samples:
        y, x = rng.integers(0, 60), rng.integers(0, 100)
        sample[y : y + 30, x : x + 60] = rng.uniform(0, 255)
    _, noise = density._ground_seen(samples.astype(np.uint8), np.round(ground).astype(np.uint8))
    # Both sides are rounded to grey levels: +-0.29 each.
    assert noise == pytest.approx(math.hypot(sigma, 0.29, 0.29), rel=0.15)


def test_ground_noise_unknown_without_agreement() -> None:
    rng = np.random.default_rng(4)
    samples = rng.integers(0, 255, (5, 40, 40)).astype(np.uint8)
    assert density._ground_seen(samples, samples[0])[1] == 0.0


@pytest.mark.parametrize("n", [5, 40])
def test_compressed_swaying_stream_is_not_counted_as_people(n: int) -> None:
    # Block coding errs at the ground's texture and sway shifts its edges: on an
    # oblique street that read as half as many people again before.
    clip = _clip("oblique", n)
    rng = np.random.default_rng(9)
    est, truth = _warm_run(clip, lambda f: degrade(f, rng, 40, shake_px=1))
    if n <= 5:
        assert np.mean(np.abs(est - truth)) <= 1.5
    else:
        assert np.mean(np.abs(est - truth) / truth) <= 0.25


def _warm_up(clip: Clip) -> CameraState:
    calib = Calibration.from_json(clip.calibration)
    state = None
    for frame in clip.frames[: density.WARM_AGE]:
        _, state = estimate(frame, calib, state)
    return state


def test_warm_up_through_a_dense_crowd_leaves_the_background_a_guess() -> None:
    # Samples 6 s apart: the ground under a packed crowd is seldom seen twice.
    dense = _warm_up(make_clip("oblique", 150, density.WARM_AGE, seed=7, fps=1 / 6))
    sparse = _warm_up(make_clip("oblique", 5, density.WARM_AGE, seed=7, fps=1 / 6))
    assert dense.support < density.KNOWN_SUPPORT <= sparse.support


def test_warm_up_goes_on_until_the_samples_agree() -> None:
    clip = make_clip("oblique", 150, density.WARM_AGE, seed=7, fps=1 / 6)
    calib = Calibration.from_json(clip.calibration)
    state = _warm_up(clip)
    assert state.stack is not None and len(state.stack[0]) == density.WARM_AGE - 1
    # The crowd leaves: once most of the window shows the ground, it is learnt.
    for _ in range(density.WARM_AGE // 2):
        _, state = estimate(clip.background, calib, state)
    assert state.support >= density.KNOWN_SUPPORT
    assert state.stack is None
    truth = CameraState.from_background(clip.background).luma.astype(int)
    assert np.mean(np.abs(state.luma.astype(int) - truth) <= 10) > 0.95


def test_burst_adds_what_the_background_absorbed_without_widening_the_rest() -> None:
    seen = np.zeros((40, 60), bool)
    seen[10:30, 5:15] = True  # a person the state sees
    burst = np.zeros_like(seen)
    burst[9:31, 4:16] = True  # the same person, outlined a pixel wider
    burst[10:30, 40:50] = True  # a slow walker the look-ahead background absorbed
    combined = density._with_burst(seen, burst)
    assert combined[10:30, 5:15].all() and not combined[9, 4] and not combined[:, 16].any()
    assert combined[11:29, 41:49].all()
