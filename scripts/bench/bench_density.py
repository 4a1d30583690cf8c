"""Benchmark the crowd-density estimator: count accuracy per density band and time per frame.

Run: .venv/bin/python scripts/bench/bench_density.py [--seeds 3] [--frames 10]

Accuracy uses synthetic clips (video/crowdsim.py) with known counts, for three
ways the estimator gets its background:
- fine state: a background at analysis resolution given as the clean empty scene
  (its noise unknown);
- live state: the small per-camera state (~86 KB) warmed up, as the pipeline does,
  on 7 frames of the empty scene (so it knows the ground and its noise);
- live q60 / live q40+shake: the same with every frame JPEG-coded at quality 60,
  or at quality 40 and shaken by up to 1 px, as real streams from poles arrive;
- burst: no state, 5 frames 0.4 s apart (temporal median);
- video file: the clip written as a video and read back as `gridmap density
  estimate VIDEO --every 4` does (background looked ahead in the file, plus a
  burst of the frames before each estimate);
- cold: no state at first, one frame every 6 s as a sampler sees a busy place,
  scored from the sample that completes the warm-up (the values the first ones agree on).
Timing is single-threaded (cv2.setNumThreads(1)), steady state, excluding decode.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

# The video writer tries hardware H.264 first; its failures are not results.
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")

import cv2
import numpy as np

from video.crowdsim import degrade, make_clip, write_video
from video.density import (
    WARM_AGE,
    Calibration,
    CameraState,
    analysis_size,
    estimate,
    estimate_video,
    fruin_level,
)

BANDS = (("sparse", 5), ("medium", 40), ("dense", 150))


def _accuracy(seeds: int, frames: int) -> list[tuple]:
    """Return rows (view, band, mode, mean truth, MAE, MAPE, level hit rate)."""
    with tempfile.TemporaryDirectory(prefix="bench_density_") as tmp:
        return _accuracy_rows(seeds, frames, Path(tmp))


def _accuracy_rows(seeds: int, frames: int, tmp: Path) -> list[tuple]:
    """Return the accuracy rows; video files for the "video file" mode go to tmp."""
    rows = []
    for view in ("oblique", "topdown"):
        for band, n in BANDS:
            errs: dict[str, list[tuple[float, float, bool]]] = {
                "fine": [],
                "live": [],
                "live q60": [],
                "live q40+shake": [],
                "burst": [],
                "video file": [],
                "cold": [],
            }
            truths = []
            for seed in range(seeds):
                clip = make_clip(view, n, frames + 8, seed=100 + seed)
                calib = Calibration.from_json(clip.calibration)
                h, w = clip.frames[0].shape[:2]
                fine = CameraState.from_background(
                    clip.background, size=analysis_size(calib, h, w)
                )
                empty = make_clip(view, 0, WARM_AGE - 1, seed=100 + seed).frames
                rng = np.random.default_rng(seed)
                looks = {
                    "live": lambda f: f,
                    "live q60": lambda f, rng=rng: degrade(f, rng, 60),
                    "live q40+shake": lambda f, rng=rng: degrade(f, rng, 40, shake_px=1),
                }
                live = {}
                for mode, look in looks.items():
                    for frame in empty:
                        _, live[mode] = estimate(look(frame), calib, live.get(mode))
                for k in range(8, frames + 8):
                    truth = clip.counts[k]
                    truths.append(truth)
                    level = fruin_level(truth / calib.area_m2)
                    for mode, look in looks.items():
                        e, live[mode] = estimate(look(clip.frames[k]), calib, live[mode])
                        errs[mode].append((e.count, truth, e.level == level))
                    e, fine = estimate(clip.frames[k], calib, fine)
                    errs["fine"].append((e.count, truth, e.level == level))
                    e, _ = estimate(clip.frames[k - 8 : k + 1 : 2], calib)
                    errs["burst"].append((e.count, truth, e.level == level))
                # An 8 s clip, like a short recording handed to the CLI.
                filed = make_clip(view, n, 40, seed=300 + seed)
                path = write_video(filed.frames, tmp / f"{view}{n}_{seed}.mp4",
                                   fps=filed.fps)
                for row in estimate_video(path, calib, every=4):
                    truth = filed.counts[row["frame"]]
                    level = fruin_level(truth / calib.area_m2)
                    errs["video file"].append((row["count"], truth, row["level"] == level))
                # Cold start, as the pipeline really begins: no state, one sample
                # every 6 s (people have moved on), scored once the state is warm.
                spaced = make_clip(view, n, WARM_AGE + frames, seed=200 + seed, fps=1 / 6)
                cold = None
                for k, frame in enumerate(spaced.frames):
                    e, cold = estimate(frame, calib, cold)
                    if k >= WARM_AGE:
                        level = fruin_level(spaced.counts[k] / calib.area_m2)
                        errs["cold"].append((e.count, spaced.counts[k], e.level == level))
            for mode, vals in errs.items():
                est = np.array([v[0] for v in vals])
                tru = np.array([v[1] for v in vals], float)
                mae = float(np.mean(np.abs(est - tru)))
                mape = float(np.mean(np.abs(est - tru) / np.maximum(tru, 1.0)))
                hit = float(np.mean([v[2] for v in vals]))
                rows.append((view, band, mode, float(np.mean(truths)), mae, mape, hit))
    return rows


def _timing(repeats: int) -> list[tuple]:
    """Return rows (resolution, view, path, ms/frame median, ms p90)."""
    rows = []
    for w, h in ((640, 360), (1280, 720)):
        for view in ("oblique", "topdown"):
            clip = make_clip(view, 60, 9, width=w, height=h, seed=5)
            calib = Calibration.from_json(clip.calibration)
            paths = {
                "live state": CameraState.from_background(clip.background),
                "fine state": CameraState.from_background(
                    clip.background, size=analysis_size(calib, h, w)
                ),
            }
            for name, state in paths.items():
                times = []
                for r in range(repeats):
                    frame = clip.frames[r % len(clip.frames)]
                    t0 = time.perf_counter()
                    _, state = estimate(frame, calib, state)
                    times.append((time.perf_counter() - t0) * 1e3)
                rows.append(
                    (
                        f"{w}x{h}",
                        view,
                        name,
                        np.median(times[2:]),
                        np.percentile(times[2:], 90),
                    )
                )
            times = []
            for _ in range(max(3, repeats // 4)):
                t0 = time.perf_counter()
                estimate(clip.frames[0:9:2], calib)
                times.append((time.perf_counter() - t0) * 1e3)
            rows.append(
                (
                    f"{w}x{h}",
                    view,
                    "burst of 5",
                    np.median(times),
                    np.percentile(times, 90),
                )
            )
            if view == "oblique":
                times = []
                for r in range(3):
                    t0 = time.perf_counter()
                    estimate(clip.frames[r], calib)
                    times.append((time.perf_counter() - t0) * 1e3)
                rows.append(
                    (f"{w}x{h}", view, "still (+HOG)", np.median(times), max(times))
                )
    return rows


def main() -> None:
    """Run the benchmark and print two tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="clips per view and band")
    parser.add_argument("--frames", type=int, default=10, help="scored frames per clip")
    parser.add_argument("--repeats", type=int, default=40, help="timed frames per case")
    args = parser.parse_args()
    if args.repeats < 3:
        parser.error("--repeats must be at least 3 (the first two are warm-up)")
    cv2.setNumThreads(1)

    print("Count accuracy on synthetic 640x360 clips")
    print(
        f"{'view':8} {'band':7} {'background':14} {'true n':>7} "
        f"{'MAE':>6} {'MAPE':>6} {'level ok':>8}"
    )
    for view, band, mode, truth, mae, mape, hit in _accuracy(args.seeds, args.frames):
        print(
            f"{view:8} {band:7} {mode:14} {truth:7.1f} {mae:6.1f} {mape:6.1%} {hit:8.0%}"
        )
    print()
    print("Time per frame, one thread (goal <= 30 ms at 640x360)")
    print(f"{'size':9} {'view':8} {'path':13} {'median ms':>9} {'p90 ms':>7}")
    for size, view, name, med, p90 in _timing(args.repeats):
        print(f"{size:9} {view:8} {name:13} {med:9.1f} {p90:7.1f}")


if __name__ == "__main__":
    main()
