"""Crowd density from a frame (or a short burst) and a camera calibration.

Pure numpy/OpenCV: no database, no web framework, no model weights, nothing
downloaded. The estimator must work on high oblique and near top-down street
cameras, so it leans on geometry from the calibration and on generic foreground
cues rather than on a detector trained for one viewpoint.

Pipeline (each step is explained where it is implemented):

0. Cheap check (`_quiet`): with a warm per-camera background, compare luma at
   state resolution (~320x180); if nothing in the ROI changed, return 0 and skip everything else.
1. Geometry (`_geometry`). From the ROI, its ground area and the linear
   person-height model we derive the camera's mean depression angle, the
   expected silhouette area of one person at every pixel (including sideways
   lean in near top-down views), and which pixels belong to people whose *feet*
   are inside the ROI.
2. Foreground (`_foreground`). Background = temporal median of the burst (with
   a three-frame-difference ghost test), or the per-camera running background
   (`CameraState`, ~86 KB), or both (a video file: the background looked ahead
   in the file, and a burst of the frames before each estimate for whoever it
   absorbed), or for a lone still image a spatial (large median filter)
   estimate. Colour distance with noise-adaptive thresholds (bounded by the
   noise the camera showed on bare ground, so a crowd that fills the area does
   not raise them; raised at the ground's texture and edges, where stream
   compression and a swaying pole err), global gain compensation, and shadow
   suppression (a cast shadow darkens the ground by the scene's one shadow
   ratio and keeps its chroma and texture).
3. Counting (`_count`). Each foreground pixel is weighted by 1/(expected person
   area at that pixel): perspective normalisation. Connected blobs that hold
   about one or two people are counted by rounding (robust when the area model
   is off, i.e. in sparse scenes); large merged blobs are counted by their
   normalised area with an occlusion correction from a coverage model (Boolean
   random overlap plus a hard core) whose strength follows from the view angle:
   silhouettes overlap in oblique views, hardly at all from above. So blobs
   dominate sparse scenes and the occlusion-corrected area dominates dense
   ones, without a hand-set switch.
4. HOG people detection only where it can work: still images (no background),
   oblique views, people tall enough for the 64x128 window, sparse foreground.
5. Density = count / ROI area, Fruin level of service, alert and crush flags.

Fitted constants are few and physical: adult height 1.70 m, body footprint
0.45 m, silhouette fill 0.70 (see `BODY_*`), plus the mask growth at edges
(`MASK_GROWTH_PX`, `STATE_BLUR_GROWTH`), which depends on resolution only.

Known limits: people who stand still for long are learnt into a background;
a short burst cannot separate people who moved less than their own size (use a
warm state for dense, slow crowds); a lone still image is a rough estimate; a
camera that starts amid a packed crowd guesses its ground until the crowd thins
(`CameraState.support`), and counts cautiously until then.
"""

from __future__ import annotations

import json
import math
import struct
import zlib
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
from shapely.geometry import Polygon
from shapely.validation import explain_validity

# --- Level of service -------------------------------------------------------------
# Fruin, J. J. (1971) "Pedestrian Planning and Design", walkway level of service,
# defined by area per pedestrian: A >= 35 ft², B 25-35, C 15-25, D 10-15, E 5-10,
# F < 5 ft² (1 ft² = 0.0929 m², i.e. 3.25, 2.32, 1.39, 0.93, 0.46 m²/person). The
# density thresholds are the reciprocals, rounded to 0.01 p/m²; a density equal to
# a threshold belongs to the worse level.
FRUIN_LEVELS = "ABCDEF"
FRUIN_THRESHOLDS = (0.31, 0.43, 0.72, 1.08, 2.15)
# Crush risk: above ~4-5 p/m² people can no longer choose their movement and
# pressure waves can build (Fruin 1993 "The causes and prevention of crowd
# disasters"; G. K. Still, "Crowd Science"). We flag from 4.0 by default; a place
# may lower it in its calibration ("crush_density").
CRUSH_DENSITY = 4.0
# No crowd is denser than about 10 p/m²: an adult takes ~0.45 x 0.25 m in plan (an
# ellipse of 0.09 m²), and the worst crushes reconstructed from video reached local
# densities of about 10 p/m² (Helbing, Johansson & Al-Abideen 2007, "Dynamics of crowd
# disasters", Phys. Rev. E 75). A reading above this is a miscount or a wrong area.
MAX_DENSITY = 10.0

# --- Plausible areas ------------------------------------------------------------
# A counting area (a camera ROI's ground, a sensor's area) below 1 m² holds hardly
# one person, so a density over it is noise (1e-300 m² turned one person into
# 1e300 p/m²); one above 1 km² is not one place but a unit mistake (the district is
# 655 km²; the largest city squares are about 0.4 km²; a camera footprint is
# limited to 1 km² as well).
MIN_AREA_M2 = 1.0
MAX_AREA_M2 = 1_000_000.0

# --- Body model (metres) -------------------------------------------------------
BODY_HEIGHT_M = 1.70  # adult the calibration's person_height_px refers to
BODY_FOOTPRINT_M = 0.45  # mean horizontal extent (shoulders 0.45-0.5, depth 0.25-0.3)
# Fraction of the person's image bounding box (height x footprint width) that the
# silhouette fills: an ellipse fills pi/4 = 0.79; legs and neck make it less.
BODY_FILL = 0.70
MIN_PERSON_PX = 2.0  # clamp for the height model far beyond its measured rows

# --- Processing resolution and state -----------------------------------------------
# Per-camera background width: 320x180 luma + half-res chroma, 86 KB (~40 KB stored).
# It matches the smallest analysis width; at 160 (22 KB) people a few pixels wide
# blurred into the background and live counts were off by 20-56 % instead of 3-24 %
# (scripts/bench/bench_density.py).
STATE_WIDTH = 320
ANALYSIS_MIN_WIDTH = 320
ANALYSIS_MAX_WIDTH = 640
MIN_ANALYSIS_PERSON_PX = 12.0  # smallest person we want at analysis resolution
MASK_GROWTH_PX = 0.5  # foreground blobs grow ~0.25 px per side (partial-cover edges)
STATE_BLUR_GROWTH = 1.0  # extra mask growth per state pixel of blur (analysis px)
WARM_AGE = 8  # a state background is trusted after this many frames' evidence
_STATE_MAGIC = b"GMCS"
_STATE_VERSION = 3
# A state's background counts as known when at least this share of its pixels was
# agreed on by at least half its warm-up samples.
KNOWN_SUPPORT = 0.75
# A frame teaches a state its ground noise only while people cover less than this
# share of the area (the noise measure then sits on ground).
GROUND_NOISE_MAX_COVERAGE = 0.15
# A video file's estimates also look at a burst of the frames before: this many,
# this far apart (people move about their own width in that time).
BURST_FRAMES = 5
BURST_SPACING_S = 0.4
# Share of the ground's local gradient (grey levels per pixel) added to the luma
# threshold: the error of half a pixel of sway, and of block coding at texture.
TEXTURE_MARGIN = 0.5


class DensityError(ValueError):
    """Base class for errors of the density estimator."""


class CalibrationError(DensityError):
    """A camera calibration that is missing, malformed or physically impossible."""


class FrameError(DensityError):
    """A frame or burst that cannot be analysed (empty, wrong shape, mixed sizes)."""


class StateError(DensityError):
    """Serialised camera state that is corrupt or from another format version."""


# ---------------------------------------------------------------------------------
# Level of service
# ---------------------------------------------------------------------------------


def fruin_level(density: float) -> str:
    """Return Fruin's walkway level of service (A-F) for a density in persons/m²."""
    if not math.isfinite(density) or density < 0:
        raise DensityError(f"density must be a finite number >= 0, got {density!r}")
    for level, bound in zip(FRUIN_LEVELS, FRUIN_THRESHOLDS, strict=False):
        if density < bound:
            return level
    return FRUIN_LEVELS[-1]


def level_min_density(level: str) -> float:
    """Return the lowest density (persons/m²) that has the given Fruin level."""
    level = str(level).strip().upper()
    if level not in FRUIN_LEVELS:
        raise DensityError(f"unknown level {level!r}; use one of {FRUIN_LEVELS}")
    i = FRUIN_LEVELS.index(level)
    return 0.0 if i == 0 else FRUIN_THRESHOLDS[i - 1]


# ---------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------


def _number(value: Any, what: str) -> float:
    """Return value as a finite float or raise CalibrationError naming it."""
    # bool is an int subclass; "true" as a coordinate is a data-entry error.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CalibrationError(f"{what} must be a number, got {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise CalibrationError(f"{what} must be finite, got {value!r}")
    return out


def _pair(value: Any, what: str) -> tuple[float, float]:
    """Return a 2-sequence of numbers as a tuple or raise CalibrationError."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise CalibrationError(f"{what} must be a pair [a, b], got {value!r}")
    return _number(value[0], f"{what}[0]"), _number(value[1], f"{what}[1]")


@dataclass(frozen=True)
class Calibration:
    """Camera calibration: ROI polygon (px), its ground area and person heights by row."""

    roi: tuple[tuple[float, float], ...]
    area_m2: float
    person_height_px: tuple[tuple[float, float], tuple[float, float]]
    alert_density: float | None = None  # per-place alert threshold, persons/m²
    crush_density: float = CRUSH_DENSITY
    image_size: tuple[int, int] | None = None  # (w, h) the pixel values refer to

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def from_json(cls, data: str | bytes | dict) -> Calibration:
        """Parse and strictly validate a calibration from JSON text or a dict."""
        if isinstance(data, str | bytes):
            try:
                data = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise CalibrationError(
                    f"calibration is not valid JSON: {exc}"
                ) from None
        if not isinstance(data, dict):
            raise CalibrationError("calibration must be a JSON object")
        missing = [k for k in ("roi", "area_m2", "person_height_px") if k not in data]
        if missing:
            raise CalibrationError(f"calibration lacks {', '.join(missing)}")
        roi = data["roi"]
        if not isinstance(roi, list | tuple):
            raise CalibrationError("roi must be a list of [x, y] points")
        points = tuple(_pair(p, f"roi[{i}]") for i, p in enumerate(roi))
        heights = data["person_height_px"]
        if not isinstance(heights, list | tuple) or len(heights) != 2:
            raise CalibrationError(
                "person_height_px must be exactly two [y, height] pairs (near and far)"
            )
        h0 = _pair(heights[0], "person_height_px[0]")
        h1 = _pair(heights[1], "person_height_px[1]")
        alert = data.get("alert_density")
        if alert is not None:
            alert = _number(alert, "alert_density")
        if data.get("alert_level") is not None:
            if alert is not None:
                raise CalibrationError("give alert_density or alert_level, not both")
            try:
                alert = level_min_density(data["alert_level"])
            except DensityError as exc:
                raise CalibrationError(f"alert_level: {exc}") from None
        crush = _number(data.get("crush_density", CRUSH_DENSITY), "crush_density")
        size = data.get("image_size")
        if size is not None:
            w, h = _pair(size, "image_size")
            if w < 1 or h < 1 or w != int(w) or h != int(h):
                raise CalibrationError(
                    f"image_size must be two positive integers, got {size!r}"
                )
            size = (int(w), int(h))
        return cls(
            roi=points,
            area_m2=_number(data["area_m2"], "area_m2"),
            person_height_px=(h0, h1),
            alert_density=alert,
            crush_density=crush,
            image_size=size,
        )

    def to_dict(self) -> dict:
        """Return the calibration as a JSON-ready dict (round-trips through from_json)."""
        out: dict[str, Any] = {
            "roi": [list(p) for p in self.roi],
            "area_m2": self.area_m2,
            "person_height_px": [list(p) for p in self.person_height_px],
            "crush_density": self.crush_density,
        }
        if self.alert_density is not None:
            out["alert_density"] = self.alert_density
        if self.image_size is not None:
            out["image_size"] = list(self.image_size)
        return out

    def height_at(self, y: np.ndarray | float) -> np.ndarray:
        """Return the expected person height (px) for feet at image row(s) y."""
        (y0, h0), (y1, h1) = self.person_height_px
        slope = (h1 - h0) / (y1 - y0)
        return np.maximum(h0 + slope * (np.asarray(y, float) - y0), MIN_PERSON_PX)


def _validate(c: Calibration) -> None:
    """Raise CalibrationError unless the calibration is physically usable."""
    roi = [tuple(p) for p in c.roi]
    if len(roi) >= 2 and roi[0] == roi[-1]:
        roi = roi[:-1]  # GeoJSON-style closed ring
    if len(roi) < 3:
        raise CalibrationError(f"roi needs at least 3 distinct points, got {len(roi)}")
    for i, p in enumerate(roi):
        _pair(p, f"roi[{i}]")
    poly = Polygon(roi)
    if not poly.is_valid:
        raise CalibrationError(f"roi is not a simple polygon: {explain_validity(poly)}")
    if poly.area < 1.0:
        raise CalibrationError("roi encloses less than one pixel")
    area = _number(c.area_m2, "area_m2")
    if area <= 0:
        raise CalibrationError(f"area_m2 must be > 0, got {c.area_m2!r}")
    if not MIN_AREA_M2 <= area <= MAX_AREA_M2:
        raise CalibrationError(
            f"area_m2 must be within {MIN_AREA_M2:g}–{MAX_AREA_M2:,.0f} m², got {c.area_m2!r}"
        )
    if len(c.person_height_px) != 2:
        raise CalibrationError("person_height_px must be exactly two [y, height] pairs")
    (y0, h0), (y1, h1) = (_pair(p, "person_height_px") for p in c.person_height_px)
    if h0 <= 0 or h1 <= 0:
        raise CalibrationError(f"person heights must be > 0 px, got {h0!r} and {h1!r}")
    if abs(y1 - y0) < 1.0:
        raise CalibrationError(
            f"person_height_px rows must differ by at least 1 px, got {y0!r} and {y1!r}"
        )
    if c.alert_density is not None and not c.alert_density > 0:
        raise CalibrationError(f"alert_density must be > 0, got {c.alert_density!r}")
    if not c.crush_density > 0:
        raise CalibrationError(f"crush_density must be > 0, got {c.crush_density!r}")


# ---------------------------------------------------------------------------------
# Geometry: everything that depends only on the calibration and the frame size
# ---------------------------------------------------------------------------------


def _view_angle(j_sum: float, area_m2: float) -> float:
    """Return the mean camera depression angle (rad) implied by the calibration.

    For a camera looking down at angle t, a person at a given distance spans
    E(t) = H cos t + D sin t metres across the line of sight, so horizontal scale
    is h/E px per metre and a ground patch of 1 m² covers (h/E)² sin t pixels.
    Summing 1/h² over ROI pixels therefore gives J = area_m2 * sin t / E(t)², and
    sin t / E(t)² grows monotonically from 0 (horizontal) to 1/D² (top-down), so
    the angle follows by bisection. Inconsistent calibrations clamp to 3° or 90°.
    """
    target = j_sum / area_m2

    def g(t: float) -> float:
        return (
            math.sin(t)
            / (BODY_HEIGHT_M * math.cos(t) + BODY_FOOTPRINT_M * math.sin(t)) ** 2
        )

    lo, hi = math.radians(3.0), math.pi / 2
    if target <= g(lo):
        return lo
    if target >= g(hi):
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if g(mid) < target else (lo, mid)
    return (lo + hi) / 2


@dataclass(eq=False)
class _Geometry:
    """Per (calibration, frame size) lookup tables at analysis resolution."""

    full: tuple[int, int]  # (h, w) of input frames
    size: tuple[int, int]  # (h, w) at analysis resolution
    scale: float
    roi_mask: np.ndarray  # bool, ground ROI at analysis res
    body_mask: np.ndarray  # bool, pixels of people whose feet are in the ROI
    bbox: tuple[int, int, int, int]  # y0, y1, x0, x1 of body_mask
    body_w: np.ndarray  # (h, w) expected silhouette width (px) at each pixel, bbox crop
    body_l: np.ndarray  # (h, w) expected silhouette length (px), bbox crop
    person_h: np.ndarray  # (h,) expected person bbox height (px) for a pixel on row y
    hard_fraction: float  # part of a silhouette that cannot overlap others
    view_deg: float
    bands: np.ndarray  # (h,) band index per row (-1 outside), for occlusion
    n_bands: int


def _analysis_scale(calib: Calibration, h: int, w: int) -> float:
    """Return the downscale factor: people >= ~12 px tall, width within 320-640 px."""
    ys = np.array([p[1] for p in calib.roi])
    y_lo, y_hi = float(np.clip(ys.min(), 0, h - 1)), float(np.clip(ys.max(), 0, h - 1))
    h_min = float(np.min(calib.height_at(np.array([y_lo, y_hi]))))
    s = MIN_ANALYSIS_PERSON_PX / max(h_min, 1.0)
    s = max(s, ANALYSIS_MIN_WIDTH / w)
    s = min(s, ANALYSIS_MAX_WIDTH / w, 1.0)
    return s


@lru_cache(maxsize=64)
def _geometry(calib: Calibration, h: int, w: int) -> _Geometry:
    """Build (and cache) the geometry tables for frames of h x w pixels."""
    sx = sy = 1.0
    if calib.image_size is not None:
        sx, sy = w / calib.image_size[0], h / calib.image_size[1]
    s = _analysis_scale(_rescaled(calib, sx, sy), h, w)
    ah, aw = max(8, round(h * s)), max(8, round(w * s))
    kx, ky = sx * aw / w, sy * ah / h  # calibration px -> analysis px
    roi = np.array([[x * kx, y * ky] for x, y in calib.roi], np.float64)
    roi_mask = np.zeros((ah, aw), np.uint8)
    cv2.fillPoly(roi_mask, [np.round(roi * 8).astype(np.int32)], 1, cv2.LINE_8, shift=3)
    roi_mask = roi_mask.astype(bool)
    if not roi_mask.any():
        raise CalibrationError("roi lies outside the frame")

    # Height model in analysis pixels: h(y) = a + b*y for feet (bbox bottom) at row y.
    (y0, h0), (y1, h1) = calib.person_height_px
    b = (h1 * ky - h0 * ky) / (y1 * ky - y0 * ky)
    a = h0 * ky - b * y0 * ky
    rows = np.arange(ah, dtype=np.float64) + 0.5

    def h_of(y: np.ndarray) -> np.ndarray:
        return np.maximum(a + b * y, MIN_PERSON_PX * ky)

    # Angle from the ROI's ground area (see _view_angle); pixel areas in full-res px.
    j = float(np.sum(roi_mask.sum(axis=1) / (h_of(rows) / ky) ** 2)) / (kx * ky)
    theta = _view_angle(j, calib.area_m2)
    extent = BODY_HEIGHT_M * math.cos(theta) + BODY_FOOTPRINT_M * math.sin(theta)

    # A pixel at row y belongs, on average, to a person whose silhouette centre is
    # there: its bbox bottom is half a height lower (y_b = y + h(y_b)/2, solved for
    # the linear model), and its ground point lies between the bottom (upright view)
    # and the centre (straight down): a fraction (H cos t / 2) / E of h below y.
    denom = max(1.0 - 0.5 * b, 0.2)
    y_bottom = (rows + 0.5 * a) / denom
    hb = h_of(y_bottom)
    ground_off = 0.5 * BODY_HEIGHT_M * math.cos(theta) / extent
    y_ground = np.clip(np.round(rows + ground_off * hb - 0.5), 0, ah - 1).astype(int)
    # Beyond the bottom edge the ROI row does not exist; keep the last row's columns.
    body_mask = (
        roi_mask[y_ground, :] & (rows + ground_off * hb < ah + 0.5 * hb)[:, None]
    )
    # Pixels of the ROI itself are also covered by bodies (feet, legs) of people in it.
    body_mask |= roi_mask
    # Silhouette area: fill * footprint width * length; the width in px is
    # D * (h / E) because the horizontal scale is h/E px per metre. In an
    # oblique view the length is h: people may look sheared towards the nadir
    # but shearing keeps area. Seen from nearly above, people lean away from
    # the nadir, radially: the part of h beyond the footprint is that lean along
    # the image column, and a person off to the side leans sideways by about the
    # same rate (|dh/dy|) per pixel of distance from the centre column, which the
    # row-only height model cannot show. We add that sideways lean (as the
    # hypotenuse with the vertical lean) with a weight rising from 0 at 45° to 1
    # at 75° of view angle, below which people stand upright in the image.
    width_px = BODY_FOOTPRINT_M * hb / extent
    lean_v = np.maximum(hb - width_px, 0.0)
    lean_w = float(np.clip((math.degrees(theta) - 45.0) / 30.0, 0.0, 1.0))
    cols = np.arange(aw, dtype=np.float64) + 0.5 - aw / 2
    lean_h = lean_w * abs(b) * np.abs(cols)[None, :]
    length = width_px[:, None] + np.hypot(lean_v[:, None], lean_h)
    width2d = np.broadcast_to(width_px[:, None], length.shape)
    hard = BODY_FOOTPRINT_M * math.sin(theta) / extent

    # Occlusion bands: horizontal strips about half a person tall, so the expected
    # person size is near constant inside each and coverage estimates are local.
    bands = np.full(ah, -1, np.int64)
    ys = np.nonzero(body_mask.any(axis=1))[0]
    if len(ys) == 0:
        raise CalibrationError("roi lies outside the frame")
    band, start = 0, ys[0]
    for y in ys:
        if y - start >= max(4.0, 0.5 * hb[start]):
            band, start = band + 1, y
        bands[y] = band
    yy, xx = np.nonzero(body_mask)
    by0, by1, bx0, bx1 = (
        int(yy.min()),
        int(yy.max()) + 1,
        int(xx.min()),
        int(xx.max()) + 1,
    )
    return _Geometry(
        full=(h, w),
        size=(ah, aw),
        scale=s,
        roi_mask=roi_mask,
        body_mask=body_mask,
        bbox=(by0, by1, bx0, bx1),
        body_w=np.ascontiguousarray(width2d[by0:by1, bx0:bx1]),
        body_l=np.ascontiguousarray(length[by0:by1, bx0:bx1]),
        person_h=hb,
        hard_fraction=float(np.clip(hard, 0.0, 1.0)),
        view_deg=math.degrees(theta),
        bands=bands,
        n_bands=band + 1,
    )


def analysis_size(calib: Calibration, height: int, width: int) -> tuple[int, int]:
    """Return the (h, w) at which frames of this size are analysed for this camera."""
    return _geometry(calib, int(height), int(width)).size


def _rescaled(calib: Calibration, sx: float, sy: float) -> Calibration:
    """Return the calibration expressed for an image scaled by sx, sy."""
    if sx == 1.0 and sy == 1.0:
        return calib
    (y0, h0), (y1, h1) = calib.person_height_px
    return Calibration(
        roi=tuple((x * sx, y * sy) for x, y in calib.roi),
        area_m2=calib.area_m2,
        person_height_px=((y0 * sy, h0 * sy), (y1 * sy, h1 * sy)),
        alert_density=calib.alert_density,
        crush_density=calib.crush_density,
    )


# ---------------------------------------------------------------------------------
# Per-camera state: a small running background
# ---------------------------------------------------------------------------------


def _ycrcb(frame: np.ndarray) -> np.ndarray:
    """Return a BGR or grey uint8 frame as YCrCb uint8."""
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2YCrCb)


@dataclass
class CameraState:
    """Small per-camera background: luma at ~320x180 and chroma at half that, uint8.

    A MOG2 model is ~30 MB per VGA camera; this is ~86 KB (~40 KB compressed). A new
    camera's background is, per pixel, the value most of its first samples agree
    on; the last WARM_AGE - 1 of them (~0.6 MB) are kept until at least half agree
    on most pixels (`support`), which under a packed crowd takes until it thins
    out; meanwhile the background is a guess and is used cautiously. Then it follows
    a sigma-delta running median (each update moves every pixel one grey level
    towards the frame), which is robust to people walking through, exact in
    uint8, and needs no variance image. Pixels currently seen as people are only
    refreshed on every 8th update, so a crowd that stands still is not learnt as
    ground quickly, while a parked object that leaves is eventually forgotten.
    Where it is coarser than the analysis resolution (near top-down views are
    analysed at up to 640 wide) it costs some accuracy on small people (see
    scripts/bench/bench_density.py); `size=analysis_size(...)` trades memory back.
    `width=160` (~22 KB) halves it again at a real cost in accuracy.
    """

    luma: np.ndarray  # (h, w) uint8
    chroma: np.ndarray  # (h/2, w/2, 2) uint8: Cr, Cb
    frame_shape: tuple[int, int]  # (h, w) of the frames it was built from
    age: int = 1  # frames of evidence behind the background
    # The camera's difference noise on bare ground (grey levels; sensor, compression
    # and shake together), measured where warm-up samples agreed or on frames with
    # few people. 0: not known yet.
    noise: float = 0.0
    # Share of pixels whose background is known: agreed on by at least half the
    # warm-up samples. 1.0 for a given background. Warm-up lasts until it is high.
    support: float = 1.0
    # While young: the samples seen so far at state resolution (luma, chroma); the
    # background is what most of them agree on. Dropped once warm.
    stack: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def from_background(
        cls,
        frame: np.ndarray,
        width: int = STATE_WIDTH,
        age: int = WARM_AGE,
        size: tuple[int, int] | None = None,
    ) -> CameraState:
        """Return a state whose background is this frame (e.g. a median or an empty scene)."""
        frame = _check_frame(frame)
        h, w = frame.shape[:2]
        if size is None:
            # Pixel budget of width x (9/16 width), whatever the aspect ratio.
            sw = int(min(w, width, round(math.sqrt(width * width * 9 / 16 * w / h))))
            sh = max(4, round(h * sw / w))
        else:
            sh, sw = size
        small = _ycrcb(cv2.resize(frame, (sw, sh), interpolation=cv2.INTER_AREA))
        chroma = cv2.resize(
            small[..., 1:],
            (max(2, sw // 2), max(2, sh // 2)),
            interpolation=cv2.INTER_AREA,
        )
        luma = small[..., 0].copy()
        stack = None if age >= WARM_AGE else (luma[None].copy(), chroma[None].copy())
        return cls(luma, chroma, (h, w), age=age, stack=stack)

    @property
    def warm(self) -> bool:
        """Return whether the background can be used: trusted, or a median of 3+ samples."""
        return self.age >= WARM_AGE or (self.stack is not None and len(self.stack[0]) >= 3)

    @property
    def nbytes(self) -> int:
        """Return the in-memory size of the background arrays in bytes (warm-up stack too)."""
        extra = 0 if self.stack is None else self.stack[0].nbytes + self.stack[1].nbytes
        return int(self.luma.nbytes + self.chroma.nbytes + extra)

    def background(self, size: tuple[int, int]) -> np.ndarray:
        """Return the background as YCrCb float32 at size (h, w)."""
        h, w = size
        y = cv2.resize(self.luma, (w, h), interpolation=cv2.INTER_LINEAR)
        c = cv2.resize(self.chroma, (w, h), interpolation=cv2.INTER_LINEAR)
        return np.dstack([y, c]).astype(np.float32)

    def update(
        self, frame_ycrcb: np.ndarray, people: np.ndarray | None, gain: float = 1.0
    ) -> None:
        """Move the background one step towards a YCrCb frame (people: bool mask at any size)."""
        sh, sw = self.luma.shape
        small = cv2.resize(frame_ycrcb, (sw, sh), interpolation=cv2.INTER_AREA)
        if self.stack is not None:
            self._learn_from_samples(small)
            return
        luma = self.luma.astype(np.int16)
        if abs(gain - 1.0) > 0.02:
            # Global light change (cloud, auto-exposure): rescale rather than relearn.
            luma = np.clip(np.round(luma * gain), 0, 255).astype(np.int16)
        # Young backgrounds converge faster (bigger steps), then settle to 1 level.
        step = 16 if self.age < WARM_AGE else 1
        dy = np.clip(small[..., 0].astype(np.int16) - luma, -step, step)
        cs = self.chroma.shape[:2]
        dc = np.clip(
            cv2.resize(
                small[..., 1:], (cs[1], cs[0]), interpolation=cv2.INTER_AREA
            ).astype(np.int16)
            - self.chroma.astype(np.int16),
            -step,
            step,
        )
        if people is not None and self.age >= WARM_AGE and self.age % 8 != 0:
            keep = (
                cv2.resize(
                    people.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_AREA
                )
                > 0
            )
            dy[keep] = 0
            keep_c = (
                cv2.resize(
                    keep.astype(np.uint8),
                    (cs[1], cs[0]),
                    interpolation=cv2.INTER_NEAREST,
                )
                > 0
            )
            dc[keep_c] = 0
        self.luma = np.clip(luma + dy, 0, 255).astype(np.uint8)
        self.chroma = np.clip(self.chroma.astype(np.int16) + dc, 0, 255).astype(
            np.uint8
        )
        self.age = min(self.age + 1, 2**31 - 1)

    def _learn_from_samples(self, small: np.ndarray) -> None:
        """Warm-up: keep the samples and make the background what most of them agree on.

        A camera starts with whatever its first sample shows, often a crowd.
        Following samples with big running steps printed everyone who passed into
        the background (counts 80-240 % off on a busy scene). Samples a minute
        apart show different people, so the value they agree on is the ground; it
        needs only a few, and keeping WARM_AGE - 1 of them costs ~0.6 MB for minutes.
        """
        cs = self.chroma.shape[:2]
        chroma = cv2.resize(small[..., 1:], (cs[1], cs[0]), interpolation=cv2.INTER_AREA)
        lumas = np.concatenate([self.stack[0], small[None, ..., 0]])[-(WARM_AGE - 1):]
        chromas = np.concatenate([self.stack[1], chroma[None]])[-(WARM_AGE - 1):]
        if len(lumas) >= 3:  # fewer are not used (see warm): keep the first sample
            # The value most samples agree on (see _modal_background): right even
            # where people cover a pixel in most samples, when a median is not.
            self.luma = _modal_background(list(lumas[..., None]))[..., 0]
            self.chroma = _modal_background(list(chromas))
            self.support, self.noise = _ground_seen(lumas, self.luma)
        self.age += 1
        # Through a dense crowd the samples seldom agree: keep the last few
        # (a rolling window, same memory) until they do, e.g. when it thins out.
        done = self.age >= WARM_AGE and self.support >= KNOWN_SUPPORT
        self.stack = None if done else (lumas, chromas)

    def to_bytes(self) -> bytes:
        """Serialise the state (zlib-compressed) for storage between calls."""
        h, w = self.luma.shape
        ch, cw = self.chroma.shape[:2]
        head = struct.pack(
            "<4sBHHHHIIIff",
            _STATE_MAGIC,
            _STATE_VERSION,
            h,
            w,
            ch,
            cw,
            self.frame_shape[0],
            self.frame_shape[1],
            self.age,
            self.noise,
            self.support,
        )
        k = 0 if self.stack is None else len(self.stack[0])
        body = self.luma.tobytes() + self.chroma.tobytes()
        if k:
            body += self.stack[0].tobytes() + self.stack[1].tobytes()
        return head + struct.pack("<B", k) + zlib.compress(body, 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> CameraState:
        """Restore a state written by to_bytes."""
        fmt = "<4sBHHHHIIIf"
        n = struct.calcsize(fmt)
        try:
            magic, ver, h, w, ch, cw, fh, fw, age, noise = struct.unpack(fmt, data[:n])
            if magic != _STATE_MAGIC or ver not in (1, 2, _STATE_VERSION):
                raise StateError("not a gridmap camera state of a known version")
            if ver >= 3:
                (support,) = struct.unpack("<f", data[n : n + 4])
                n += 4
            else:
                support = 1.0  # no warm-up agreement then: trust the background
                noise = 0.0  # it was the last frame's noise, not the ground's
            k = 0
            if ver >= 2:  # version 2 adds the warm-up samples
                (k,) = struct.unpack("<B", data[n : n + 1])
                n += 1
            raw = zlib.decompress(data[n:])
        except (struct.error, zlib.error) as exc:
            raise StateError(f"camera state is corrupt: {exc}") from None
        one = h * w + ch * cw * 2
        if len(raw) != one * (1 + k):
            raise StateError("camera state has the wrong size")
        luma = np.frombuffer(raw[: h * w], np.uint8).reshape(h, w).copy()
        chroma = np.frombuffer(raw[h * w : one], np.uint8).reshape(ch, cw, 2).copy()
        stack = None
        if k:
            lumas = np.frombuffer(raw[one : one + k * h * w], np.uint8).reshape(k, h, w)
            chromas = np.frombuffer(raw[one + k * h * w :], np.uint8).reshape(k, ch, cw, 2)
            stack = (lumas.copy(), chromas.copy())
        return cls(luma, chroma, (fh, fw), age=age, noise=float(noise),
                   support=float(support), stack=stack)


# ---------------------------------------------------------------------------------
# Foreground
# ---------------------------------------------------------------------------------


def _check_frame(frame: Any) -> np.ndarray:
    """Return frame as a uint8 HxW or HxWx3 array, or raise FrameError."""
    arr = np.asarray(frame)
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.number):
            raise FrameError(f"frame must be numeric, got dtype {arr.dtype}")
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise FrameError(f"frame must be HxW or HxWx3, got shape {arr.shape}")
    if arr.shape[0] < 8 or arr.shape[1] < 8:
        raise FrameError(f"frame is too small: {arr.shape}")
    return np.ascontiguousarray(arr)


def _robust_sigma(values: np.ndarray) -> float:
    """Return a noise sigma from the 10th percentile of |values|.

    For zero-mean Gaussian noise the 10th percentile of |x| is 0.126 sigma. Such a
    low quantile stays on the ground even when people and their shadows cover
    most of the area (dense crowds), where a median or MAD would not.
    """
    if values.size == 0:
        return 2.0
    return float(np.percentile(np.abs(values), 10)) / 0.126


def _local_ncc(
    a: np.ndarray, b: np.ndarray, k: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """Return local normalised cross-correlation of a and b and b's local std."""

    def box(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, (k, k))

    ma, mb = box(a), box(b)
    va = np.maximum(box(a * a) - ma * ma, 0)
    vb = np.maximum(box(b * b) - mb * mb, 0)
    cov = box(a * b) - ma * mb
    return cov / np.sqrt(va * vb + 1e-3), np.sqrt(vb)


def _global_gain(y: np.ndarray, by: np.ndarray, inside: np.ndarray) -> float:
    """Return the global light change (frame/background luma ratio) over the area.

    Auto-exposure and clouds scale all ground pixels by one factor, so the ground
    forms a sharp peak in the histogram of log-ratios, while people and shadows
    spread out. The peak (mode) stays right even when people cover most pixels,
    where a median would not.
    """
    sel = inside & (by > 8)
    if sel.sum() < 50:
        return 1.0
    lr = np.log((y[sel] + 1.0) / (by[sel] + 1.0))
    hist, edges = np.histogram(lr, bins=141, range=(-0.7, 0.7))
    hist = np.convolve(hist, np.ones(3), mode="same")
    peak = int(np.argmax(hist))
    return float(np.exp((edges[peak] + edges[peak + 1]) / 2))


def _shadow_mode(log_ratio: np.ndarray, cand: np.ndarray, n_inside: int) -> np.ndarray:
    """Return candidates whose luma ratio is at the scene's dominant shadow ratio.

    A peak counts only if it holds at least a quarter of the candidates and 0.3 %
    of the area; without cast shadows (overcast) there is usually no such peak.
    """
    lr = log_ratio[cand]
    hist, edges = np.histogram(lr, bins=48, range=(math.log(0.35), math.log(0.92)))
    win = 5  # bins of 0.02 in log ratio: a +-5 % window
    mass = np.convolve(hist, np.ones(win), mode="same")
    peak = int(np.argmax(mass))
    if mass[peak] < max(0.25 * lr.size, 0.003 * n_inside):
        return np.zeros_like(cand)
    centre = (edges[peak] + edges[peak + 1]) / 2
    core = cand & (np.abs(log_ratio - centre) < 0.12)
    # Penumbra: soft shadow edges blend ground and shadow, so their ratio lies
    # between the shadow ratio and 1. Grow the core into such pixels, 2 px.
    rim = cand & (log_ratio > centre)
    grown = cv2.dilate(core.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    return core | (grown & rim)


@dataclass
class _Foreground:
    mask: np.ndarray  # bool at analysis res, inside the bbox crop
    noise: float
    gain: float
    measured_noise: float = 0.0  # before the ground-noise bound


def _foreground(
    img: np.ndarray,
    bg: np.ndarray,
    inside: np.ndarray,
    others: Sequence[np.ndarray] = (),
    *,
    ground_noise: float = 0.0,
) -> _Foreground:
    """Return the people mask of img against bg (both YCrCb float32, same size).

    inside restricts the statistics (noise, gain) to the area we care about.
    others: earlier frames of a burst; a pixel that matches any of them is not a
    person who moved in (see the ghost test below). ground_noise: the noise this
    camera shows on bare ground against this background (0: not known).
    """
    y, by = img[..., 0], bg[..., 0]
    gain = _global_gain(y, by, inside)
    dy = y - by * gain
    dc = np.abs(img[..., 1] - bg[..., 1]) + np.abs(img[..., 2] - bg[..., 2])
    # The difference's noise, from its quietest tenth inside the area. When
    # people cover most of it (dense crowds) that tenth is people, and the
    # estimate grows until it hides them; the noise the camera showed on bare
    # ground bounds it (with a quarter to spare). Not the picture's own noise:
    # compression and shake add to the difference what a single picture hides.
    # A guessed background (a still image, a warm-up through a dense crowd) has
    # no such bound: there big differences are as often a wrong ground.
    measured = _robust_sigma(dy[inside])
    sigma = min(measured, 1.25 * ground_noise) if ground_noise > 0 else measured
    # Thresholds: 3.5 sigma of sensor/compression noise, never below what a human
    # would call "the same colour" (12 grey levels, 8 chroma levels).
    t_y = float(np.clip(3.5 * sigma, 12.0, 30.0))
    t_c = float(np.clip(2.5 * sigma, 8.0, 20.0))
    # Compression errs most at the ground's texture and edges, and a camera that
    # sways shifts them: a difference there of about half the local gradient is
    # not a person. Without a known ground noise the threshold is already the
    # crowd-grown estimate, and the margin must not push it past its ceiling.
    gradient = (np.abs(cv2.Sobel(by, cv2.CV_32F, 1, 0, ksize=3))
                + np.abs(cv2.Sobel(by, cv2.CV_32F, 0, 1, ksize=3))) / 4.0
    t_map = t_y + TEXTURE_MARGIN * cv2.dilate(gradient, np.ones((3, 3), np.uint8))
    if ground_noise <= 0:
        t_map = np.minimum(t_map, max(t_y, 30.0))
    fg = (np.abs(dy) > t_map) | (dc > t_c)
    # Ghosts: a short burst's median still holds people who lingered in most of
    # its frames; where they have since left, the current frame differs from the
    # median but equals the ground seen in some earlier frame. A person who moved
    # in differs from every earlier frame (three-frame differencing).
    for o in others:
        fg &= (np.abs(y - o[..., 0]) > t_y) | (
            np.abs(img[..., 1] - o[..., 1]) + np.abs(img[..., 2] - o[..., 2]) > t_c
        )
    # Shadows darken the ground by one factor set by sun and sky (0.35-0.92),
    # keep its chroma, and let its texture show through. Two cues, either
    # suffices: (a) the ratio sits at the scene's dominant shadow ratio (all
    # cast shadows share it, while clothing spreads over all ratios), and
    # (b) local correlation with the background texture. On textureless ground
    # with no dominant ratio we cannot tell a shadow from dark neutral
    # clothing and keep it (over-count a little rather than lose people).
    r = (y + 1.0) / (by * gain + 1.0)
    cand = fg & (r > 0.35) & (r < 0.97) & (dc < max(t_c, 14.0))
    if cand.sum() >= 20:
        shadow = _shadow_mode(np.log(r), cand, int(inside.sum()))
        ncc, texture = _local_ncc(y, by)
        shadow |= cand & (ncc > 0.5) & (texture > 1.5 * max(sigma, 2.0))
        fg &= ~shadow
    m = fg.astype(np.uint8)
    # Median 3x3 removes isolated noise pixels; closing 3x3 fills pinholes in bodies.
    m = cv2.medianBlur(m, 3)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8))
    return _Foreground(mask=m.astype(bool) & inside, noise=sigma, gain=gain,
                       measured_noise=measured)


def _spatial_background(img_bgr: np.ndarray, geo: _Geometry) -> np.ndarray:
    """Return a background guess for a lone still image: a large median filter.

    With no history, the ground is what dominates a neighbourhood a few people
    wide. The kernel follows the person size (three widths) per horizontal strip.
    Works for sparse to medium scenes; where people cover over half of a
    neighbourhood the estimate is biased low (documented limitation).
    """
    h = img_bgr.shape[0]
    out = np.empty_like(img_bgr)
    rows = np.arange(h)
    width = geo.person_h * BODY_FOOTPRINT_M / BODY_HEIGHT_M * 1.5
    k_rows = np.clip((3 * width).astype(int) | 1, 5, 101)
    for k in np.unique(k_rows):
        sel = rows[k_rows == k]
        pad = int(k)
        y0, y1 = max(0, sel.min() - pad), min(h, sel.max() + pad + 1)
        med = cv2.medianBlur(img_bgr[y0:y1], int(k))
        out[sel] = med[sel - y0]
    return out


# ---------------------------------------------------------------------------------
# Counting
# ---------------------------------------------------------------------------------


def _occlusion_factor(coverage: np.ndarray, hard: float) -> np.ndarray:
    """Return people-per-foreground-area multipliers k(c) for band coverages c.

    Model: a fraction `hard` of each silhouette (its own footprint seen from
    above) cannot overlap anybody else's; the rest overlaps at random (Boolean
    model). A pixel is free with probability (1 - x*hard) * exp(-x*(1-hard)),
    where x = people per expected silhouette area. We invert c -> x by bisection
    and return x / c, i.e. how much the plain area count must be scaled. Coverage
    is capped at 0.93 because beyond that the mask holds no more information.
    """
    c = np.clip(coverage, 1e-6, 0.93)
    lo = np.zeros_like(c)
    hi = np.full_like(c, 0.97 / hard if hard > 0.0103 else 94.0)
    hi = np.minimum(hi, 12.0)
    for _ in range(40):
        mid = (lo + hi) / 2
        cov = 1.0 - (1.0 - mid * hard) * np.exp(-mid * (1.0 - hard))
        below = cov < c
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return (lo + hi) / 2 / c


@dataclass
class _Counts:
    total: float
    blobs: float  # people counted as single/paired blobs
    area: float  # people counted from normalised area of merged blobs
    n_blobs: int
    coverage: float


@lru_cache(maxsize=128)
def _inv_area(geo: _Geometry, growth: float) -> np.ndarray:
    """Return 1 / expected foreground area (px²) of one person at each bbox pixel.

    Foreground masks come out fatter than the body: edge pixels partly covered
    by a person differ enough from the ground to pass the threshold (~0.25 px a
    side), and a mask made against a coarser background (the small per-camera
    state) is blurred by about one state pixel more. At 10-20 px per person that
    is a large share of the area, so the expected area includes the growth.
    """
    area = BODY_FILL * (geo.body_w + growth) * (geo.body_l + growth)
    return 1.0 / np.maximum(area, 1.0)


def _count(mask: np.ndarray, geo: _Geometry, growth: float = MASK_GROWTH_PX) -> _Counts:
    """Count people in a body-mask-restricted foreground mask (analysis res, bbox crop)."""
    y0, y1, x0, x1 = geo.bbox
    body = geo.body_mask[y0:y1, x0:x1]
    bands = geo.bands[y0:y1]
    inb = bands >= 0
    fg_rows = mask.sum(axis=1).astype(np.float64)
    body_rows = body.sum(axis=1).astype(np.float64)
    fg_band = np.bincount(bands[inb], weights=fg_rows[inb], minlength=geo.n_bands)
    body_band = np.bincount(bands[inb], weights=body_rows[inb], minlength=geo.n_bands)
    cov_band = fg_band / np.maximum(body_band, 1.0)
    k_band = _occlusion_factor(cov_band, geo.hard_fraction)
    inv = _inv_area(geo, round(growth, 2))
    k_row = np.where(inb, k_band[np.maximum(bands, 0)], 1.0)

    # Label on a slightly dilated mask so that pieces of one person (a head
    # split from a torso of ground-like colour) form one blob; the areas below
    # still come from the undilated mask.
    m8 = mask.astype(np.uint8)
    n, labels = cv2.connectedComponents(
        cv2.dilate(m8, np.ones((3, 3), np.uint8)), connectivity=8
    )
    labels[~mask] = 0
    coverage = float(fg_rows.sum() / max(body_rows.sum(), 1.0))
    if n <= 1:
        return _Counts(0.0, 0.0, 0.0, 0, coverage)
    lab = labels.ravel()
    w_plain = inv.ravel()
    w_occ = (inv * k_row[:, None]).ravel()
    a_plain = np.bincount(lab, weights=w_plain, minlength=n)[1:]
    a_occ = np.bincount(lab, weights=w_occ, minlength=n)[1:]
    # A blob holding about one or two people (normalised area 0.5-2.5) is counted
    # by rounding: this forgives a wrong body-area constant, loose shadows and
    # partial segmentation, which matter most when people stand apart. Smaller
    # pieces (a person cut by the ROI edge, a half-segmented person, noise) count
    # fractionally. Larger blobs are merged groups: occlusion-corrected area.
    small = a_plain < 0.5
    single = ~small & (a_plain < 2.5)
    merged = a_plain >= 2.5
    blob_count = float(
        a_plain[small].sum() + np.maximum(1.0, np.round(a_plain[single])).sum()
    )
    area_count = float(a_occ[merged].sum())
    return _Counts(
        blob_count + area_count, blob_count, area_count, int(n - 1), coverage
    )


# ---------------------------------------------------------------------------------
# HOG (optional)
# ---------------------------------------------------------------------------------

HOG_MIN_PERSON_PX = (
    48.0  # below this the 64x128 window (person ~96 px) needs >2x upscale
)
HOG_MAX_VIEW_DEG = 50.0  # the default detector is trained on upright side views


@lru_cache(maxsize=1)
def _hog() -> cv2.HOGDescriptor:
    """Return OpenCV's built-in (Dalal-Triggs) people detector; ships with OpenCV."""
    hog = cv2.HOGDescriptor()
    hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
    return hog


def _hog_usable(geo: _Geometry) -> bool:
    """Return whether HOG can see people here: oblique view and big enough people."""
    y0, y1 = geo.bbox[0], geo.bbox[1]
    tallest = float(geo.person_h[y0:y1].max()) / geo.scale
    return geo.view_deg <= HOG_MAX_VIEW_DEG and tallest >= HOG_MIN_PERSON_PX


def _hog_count(frame: np.ndarray, calib: Calibration, geo: _Geometry) -> int:
    """Count HOG detections whose feet are in the ROI and whose size fits the model.

    The geometric check (box height within 0.6-1.6x of the calibrated height at its
    feet row) removes most false positives on street furniture and texture.
    """
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    sx = sy = 1.0
    if calib.image_size is not None:
        sx = frame.shape[1] / calib.image_size[0]
        sy = frame.shape[0] / calib.image_size[1]
    cal = _rescaled(calib, sx, sy)
    roi = np.array(cal.roi, np.float32)
    y_lo = int(max(0, roi[:, 1].min() - cal.height_at(roi[:, 1].min())[()]))
    y_hi = int(min(frame.shape[0], roi[:, 1].max() + 1))
    x_lo, x_hi = (
        int(max(0, roi[:, 0].min())),
        int(min(frame.shape[1], roi[:, 0].max() + 1)),
    )
    if y_hi - y_lo < 64 or x_hi - x_lo < 32:
        return 0
    crop = frame[y_lo:y_hi, x_lo:x_hi]
    # Scale so that a mid-ROI person is ~96 px, the detector's training size.
    h_mid = float(cal.height_at((roi[:, 1].min() + roi[:, 1].max()) / 2))
    f = float(np.clip(96.0 / max(h_mid, 1.0), 0.25, 2.0))
    small = cv2.resize(
        crop,
        None,
        fx=f,
        fy=f,
        interpolation=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR,
    )
    if small.shape[0] < 128 or small.shape[1] < 64:
        return 0
    rects, weights = _hog().detectMultiScale(
        small, winStride=(8, 8), padding=(8, 8), scale=1.1
    )
    count = 0
    contour = roi.reshape(-1, 1, 2)
    for (x, y, w, h), score in zip(rects, np.ravel(weights), strict=False):
        if score < 0.3:
            continue
        # The person fills roughly the central 3/4 of a HOG box's height.
        feet_y = y_lo + (y + 0.88 * h) / f
        feet_x = x_lo + (x + w / 2) / f
        height = 0.75 * h / f
        expect = float(cal.height_at(feet_y))
        if not 0.6 <= height / expect <= 1.6:
            continue
        if cv2.pointPolygonTest(contour, (float(feet_x), float(feet_y)), False) >= 0:
            count += 1
    return count


# ---------------------------------------------------------------------------------
# Public estimate
# ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DensityEstimate:
    """People in the ROI, density (persons/m²), Fruin level and alert flags."""

    count: float
    density: float
    level: str
    crush_risk: bool
    alert: bool
    method: str  # e.g. "state+burst:blobs+area", "still:area+hog", "quiet"
    debug: dict = field(default_factory=dict, compare=False)

    def to_dict(self) -> dict:
        """Return the public fields as a JSON-ready dict."""
        return {
            "count": round(self.count, 1),
            "density": round(self.density, 4),
            "level": self.level,
            "crush_risk": self.crush_risk,
            "alert": self.alert,
            "method": self.method,
        }


def _result(
    count: float, calib: Calibration, method: str, debug: dict
) -> DensityEstimate:
    """Build a DensityEstimate, applying the place's thresholds."""
    count = max(0.0, float(count))
    density = count / calib.area_m2
    alert = calib.alert_density is not None and density >= calib.alert_density
    return DensityEstimate(
        count=count,
        density=density,
        level=fruin_level(density),
        crush_risk=density >= calib.crush_density,
        alert=bool(alert),
        method=method,
        debug=debug,
    )


# BT.601 YCrCb as an affine map of BGR, so it can run on float images (OpenCV's
# float conversion assumes 0..1 input); same definition as cv2.COLOR_BGR2YCrCb.
_YCRCB = np.array(
    [
        [0.114, 0.587, 0.299, 0.0],
        [-0.0813, -0.4187, 0.5, 128.0],
        [0.5, -0.3313, -0.1687, 128.0],
    ],
    np.float32,
)


def _prepare(frame: np.ndarray, geo: _Geometry) -> tuple[np.ndarray, np.ndarray]:
    """Return the frame at analysis res as BGR uint8 and YCrCb float32.

    Downscaling in float keeps sub-grey-level precision, which the noise
    estimate (a low quantile of differences) needs.
    """
    ah, aw = geo.size
    if frame.ndim == 2:
        frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    small = cv2.resize(frame.astype(np.float32), (aw, ah), interpolation=cv2.INTER_AREA)
    ycc = cv2.transform(small, _YCRCB)
    return np.clip(small + 0.5, 0, 255).astype(np.uint8), ycc


def estimate(
    frames: np.ndarray | Sequence[np.ndarray],
    calib: Calibration,
    state: CameraState | None = None,
    *,
    hog: bool | None = None,
) -> tuple[DensityEstimate, CameraState]:
    """Estimate people and density in the ROI of the last frame; return the new state.

    frames: one BGR frame (HxWx3), a burst as a list, or an array of shape (N,H,W,3).
    state: the camera's running background (None on first call). hog: force the
    HOG detector on/off; by default it runs only for still images (no background)
    where the view and person size suit it.
    """
    burst = _as_burst(frames)
    current = burst[-1]
    h, w = current.shape[:2]
    geo = _geometry(calib, h, w)
    y0, y1, x0, x1 = geo.bbox
    inside = geo.body_mask[y0:y1, x0:x1]
    small_bgr, cur = _prepare(current, geo)
    cur_c = cur[y0:y1, x0:x1]
    debug: dict[str, Any] = {
        "view_deg": round(geo.view_deg, 1),
        "analysis": list(geo.size[::-1]),
    }

    if state is not None and tuple(state.frame_shape) != (h, w):
        state = None  # camera resolution changed: old background is meaningless
    use_state = state is not None and state.warm
    masks: list[np.ndarray] = []
    sources: list[str] = []
    noise, gain = 0.0, 1.0
    growth = MASK_GROWTH_PX

    if use_state and len(burst) < 3:
        assert state is not None
        if _quiet(cur, state, geo):
            # Cheap check at state resolution found nothing in the ROI: skip the
            # costly steps (most cameras are idle most of the time).
            state.update(np.clip(cur + 0.5, 0, 255).astype(np.uint8), None)
            debug["quick_check"] = "quiet"
            return _result(0.0, calib, "quiet", debug), state
    if use_state:
        assert state is not None
        sh, sw = state.luma.shape
        if (sh, sw) != geo.size:
            # Compare at the state's resolution: blur the frame the same way the
            # background was, so fine ground texture does not show up as people.
            blurred = cv2.resize(
                cv2.resize(cur, (sw, sh), interpolation=cv2.INTER_AREA),
                geo.size[::-1],
                interpolation=cv2.INTER_LINEAR,
            )
        else:
            blurred = cur
        bg = state.background(geo.size)[y0:y1, x0:x1]
        known = state.support >= KNOWN_SUPPORT
        fgs = _foreground(blurred[y0:y1, x0:x1], bg, inside,
                          ground_noise=state.noise if known else 0.0)
        # Each state pixel spans `ratio` analysis pixels; blurring spreads a
        # person's mask by about one state pixel (see _inv_area).
        growth = max(
            growth, MASK_GROWTH_PX + STATE_BLUR_GROWTH * (geo.size[1] / sw - 1.0)
        )
        masks.append(fgs.mask)
        sources.append("state")
        noise, gain = fgs.noise, fgs.gain
    if len(burst) >= 3:
        # Temporal median of the burst: people who moved more than their own size
        # during the burst vanish from it; ones standing still stay (the state,
        # if warm, catches those).
        # With 4+ frames the current one is left out of the median, so it is not
        # compared partly with itself (which also hides the noise level).
        # An odd count keeps the median a real sample: the mean of two middle
        # values would leave half-contrast ghosts of people who passed.
        idx = (
            list(range(len(burst) - 1)) if len(burst) >= 4 else list(range(len(burst)))
        )
        idx = idx[1:] if len(idx) % 2 == 0 else idx
        prepared = [_prepare(f, geo) for f in burst[:-1]] + [(small_bgr, cur)]
        crops = [p[1][y0:y1, x0:x1] for p in prepared]
        earlier = crops[:-1]
        med = _median([crops[i] for i in idx])
        # The burst's frames agree on the ground where nobody moved: their spread
        # there is the noise against this median.
        _, ground = _ground_seen(np.stack([c[..., 0] for c in crops]), med[..., 0])
        fgb = _foreground(cur_c, med, inside, others=earlier, ground_noise=ground)
        masks.append(fgb.mask)
        sources.append("burst")
        noise = noise or fgb.noise
    still = not masks
    if still:
        bg_bgr = _spatial_background(small_bgr, geo)
        bg = _ycrcb(bg_bgr[y0:y1, x0:x1]).astype(np.float32)
        fgs = _foreground(cur_c, bg, inside)
        masks.append(fgs.mask)
        sources.append("still")
        noise = fgs.noise

    mask = masks[0] if len(masks) == 1 else _with_burst(masks[0], masks[1])
    counts = _count(mask, geo, growth)
    total = counts.total
    parts = []
    if counts.blobs > 0:
        parts.append("blobs")
    if counts.area > 0:
        parts.append("area")
    debug.update(
        coverage=round(counts.coverage, 4),
        blob_count=round(counts.blobs, 2),
        area_count=round(counts.area, 2),
        n_blobs=counts.n_blobs,
        noise=round(noise, 2),
        gain=round(gain, 3),
    )
    quiet = counts.coverage < 1e-3
    run_hog = (
        (still and _hog_usable(geo)) if hog is None else bool(hog and _hog_usable(geo))
    )
    if run_hog and not quiet and counts.coverage < 0.25:
        # Only in sparse, oblique scenes (where HOG is reliable) and only when the
        # foreground says something is there. Stationary people who blended into
        # the background are exactly what HOG can add, so we take the larger.
        n_hog = _hog_count(current, calib, geo)
        debug["hog_count"] = n_hog
        if n_hog > total:
            total = float(n_hog)
            parts.append("hog")
    method = "quiet" if quiet else "+".join(sources) + ":" + ("+".join(parts) or "none")

    # Update (or create) the state with the current frame; people are protected.
    if state is None:
        if len(burst) >= 3:
            med_full = _median([p[0] for p in prepared])
            state = CameraState.from_background(med_full, age=len(burst))
            state.frame_shape = (h, w)
        else:
            state = CameraState.from_background(current, age=1)
    else:
        people = np.zeros(geo.size, bool)
        people[y0:y1, x0:x1] = mask
        state.update(np.clip(cur + 0.5, 0, 255).astype(np.uint8), people, gain=gain)
    if use_state and counts.coverage < GROUND_NOISE_MAX_COVERAGE:
        # Few people: the quietest tenth is ground, so the measure is the ground's.
        measured = fgs.measured_noise
        state.noise = measured if state.noise <= 0 else 0.8 * state.noise + 0.2 * measured
    return _result(total, calib, method, debug), state


def _with_burst(seen: np.ndarray, other: np.ndarray) -> np.ndarray:
    """Return seen plus what other finds beyond it (other's outlines thinned by a pixel).

    The state's background shows everyone it has not absorbed; a burst finds
    whoever moved, absorbed or not (in a short clip, slow walkers are partly in
    the look-ahead background). Where both see a person, a plain union would
    draw each outline a pixel wider, so the burst's mask is eroded first.
    """
    thin = cv2.erode(other.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    return seen | thin


def _quiet(cur: np.ndarray, state: CameraState, geo: _Geometry) -> bool:
    """Return whether (almost) no ROI pixel differs from the background at state res.

    Luma only, at state resolution (~320x180): about a hundred microseconds. The 20-level threshold is far
    above sensor noise; 0.1 % of the ROI is well under one person anywhere in it.
    """
    sh, sw = state.luma.shape
    y = cv2.resize(cur[..., 0], (sw, sh), interpolation=cv2.INTER_AREA)
    roi = _state_mask(geo, sh, sw)
    diff = np.abs(y - state.luma.astype(np.float32)) > 20.0
    return float(diff[roi].mean()) < 1e-3 if roi.any() else True


@lru_cache(maxsize=64)
def _state_mask(geo: _Geometry, sh: int, sw: int) -> np.ndarray:
    """Return the body mask resampled to a state's resolution."""
    m = cv2.resize(
        geo.body_mask.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST
    )
    return m.astype(bool)


def _median(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """Return the per-pixel median of an odd or even number of same-shape arrays."""
    if len(arrays) == 3:
        # Three-way median with min/max: several times faster than np.median.
        a, b, c = arrays
        return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    stack = np.stack(arrays)
    if len(arrays) % 2:
        return np.partition(stack, len(arrays) // 2, axis=0)[len(arrays) // 2]
    return np.median(stack, axis=0).astype(stack.dtype)


def _as_burst(frames: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
    """Return frames as a non-empty list of uint8 frames of one size."""
    if isinstance(frames, np.ndarray):
        if frames.ndim == 4 or (frames.ndim == 3 and frames.shape[-1] not in (3, 4)):
            burst = [frames[i] for i in range(frames.shape[0])]
        else:
            burst = [frames]
    else:
        burst = list(frames)
    if not burst:
        raise FrameError("no frames given")
    burst = [_check_frame(f) for f in burst]
    shape = burst[-1].shape[:2]
    if any(f.shape[:2] != shape for f in burst):
        raise FrameError("all frames of a burst must have the same size")
    return burst


# ---------------------------------------------------------------------------------
# Video / CLI
# ---------------------------------------------------------------------------------

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
BOOTSTRAP_SAMPLES = 25


def _bootstrap_background(
    cap: cv2.VideoCapture, n_frames: int, calib: Calibration
) -> tuple[np.ndarray, float, float] | None:
    """Return the empty scene guessed from up to 25 frames spread over the clip, its support and noise.

    For a file we can look ahead, so estimates are good from the first frame
    instead of after a warm-up. Returned at analysis resolution (BGR uint8),
    with the share of pixels at least half the frames agree on and the noise
    there (see CameraState).
    """
    if n_frames < 5:
        return None
    idx = np.unique(
        np.linspace(0, n_frames - 1, min(BOOTSTRAP_SAMPLES, n_frames)).astype(int)
    )
    got = []
    for i in idx:
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(i))
        ok, frame = cap.read()
        if ok and frame is not None:
            geo = _geometry(calib, *frame.shape[:2])
            got.append(_prepare(frame, geo)[0])
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    if len(got) < 5 or any(g.shape != got[0].shape for g in got):
        return None
    background = _modal_background(got)
    lumas = np.stack([_ycrcb(g)[..., 0] for g in got])
    return (background, *_ground_seen(lumas, _ycrcb(background)[..., 0]))


_AGREE_TOL = 10  # grey levels within which two samples show the same thing


def _ground_seen(samples: np.ndarray, background: np.ndarray) -> tuple[float, float]:
    """Return (support, noise) of luma samples against their background.

    support: the share of pixels where at least half the samples match the
    background, i.e. where the ground was seen. noise: the samples' spread around
    the background there, which is what a frame's difference from it shows with
    nobody there (sensor noise, compression and shake alike); 0.0 when too
    little ground was seen to tell.
    """
    diff = samples.astype(np.int16) - background.astype(np.int16)
    near = np.abs(diff) <= _AGREE_TOL
    ground = near.sum(axis=0) * 2 >= len(samples)
    support = float(np.mean(ground))
    values = diff[:, ground][near[:, ground]].astype(np.float32)
    if values.size < 1000:
        return support, 0.0
    # RMS, not MAD: a clean camera's differences are mostly 0 and +-1 grey level.
    # Passers-by who happen to match the ground within the tolerance widen it, so
    # narrow the window to 3.5 sigma twice (the truncation then costs under 1 %).
    sigma = float(np.sqrt(np.mean(np.square(values))))
    for _ in range(2):
        kept = values[np.abs(values) <= max(3.5 * sigma, 1.0)]
        sigma = float(np.sqrt(np.mean(np.square(kept))))
    return support, sigma


def _modal_background(samples: Sequence[np.ndarray], tol: int = _AGREE_TOL) -> np.ndarray:
    """Return per pixel the mean of the largest group of samples that agree.

    The ground looks the same in every sample where it is visible (up to noise),
    while passers-by differ from each other, so the most-agreed value is the
    ground even where people cover it in most samples, when a median would
    already show a smear of them. (People who never move stay; nothing can
    tell them from ground in a clip.)
    """
    stack = np.stack(samples).astype(np.int16)
    best = np.zeros(stack.shape[1:3], np.int32)
    pick = np.zeros(stack.shape[1:3], np.int32)
    for i in range(len(stack)):
        agree = (np.abs(stack - stack[i]).max(axis=-1) <= tol).sum(axis=0)
        better = agree > best
        best[better] = agree[better]
        pick[better] = i
    ref = np.take_along_axis(stack, pick[None, ..., None], axis=0)[0]
    near = np.abs(stack - ref).max(axis=-1, keepdims=True) <= tol
    total = (stack * near).sum(axis=0)
    return np.round(total / np.maximum(near.sum(axis=0), 1)).astype(np.uint8)


def estimate_video(
    path: str | Path, calib: Calibration, every: int = 1
) -> Iterator[dict]:
    """Yield {"frame", "count", "density", "level", ...} for every `every`-th frame."""
    if every < 1:
        raise DensityError(f"every must be >= 1, got {every}")
    path = Path(path)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise FrameError(f"cannot read image {path}")
        est, _ = estimate(image, calib)
        yield {"frame": 0, **est.to_dict()}
        return
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FrameError(f"cannot open video {path}")
    try:
        n_frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        seeded = _bootstrap_background(cap, n_frames, calib)
        state = None
        # Frames of the file seen just before, ~BURST_SPACING_S apart: people the
        # look-ahead background absorbed (slow walkers in a short clip) still
        # moved between them, so each estimate also takes the burst's view.
        step = max(1, round(BURST_SPACING_S * fps / every)) if fps > 0 else 1
        recent: deque[np.ndarray] = deque(maxlen=(BURST_FRAMES - 1) * step + 1)
        i = 0
        while True:
            if i % every:
                if not cap.grab():
                    break
                i += 1
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            if state is None:
                h, w = frame.shape[:2]
                geo = _geometry(calib, h, w)
                # One file, one camera: keep the background at full analysis
                # resolution (tens of KB more than a live state, for finer masks).
                if seeded is not None and seeded[0].shape[:2] == geo.size:
                    state = CameraState.from_background(seeded[0], size=geo.size)
                    state.frame_shape = (h, w)
                    state.support, state.noise = seeded[1], seeded[2]
            recent.append(frame)
            burst = list(recent)[::-1][::step][::-1]  # the latest, step apart
            est, state = estimate(burst if len(burst) >= 3 else frame, calib, state)
            out = {"frame": i, **est.to_dict()}
            if fps > 0:
                out["t"] = round(i / fps, 3)
            yield out
            i += 1
    finally:
        cap.release()


def run_cli(
    path: str | Path, calibration_path: str | Path, every: int, out: IO[str]
) -> int:
    """Write one JSON line per sampled frame of a video or still image; return lines written."""
    try:
        text = Path(calibration_path).read_text("utf-8")
    except OSError as exc:
        raise CalibrationError(
            f"cannot read calibration {calibration_path}: {exc}"
        ) from None
    calib = Calibration.from_json(text)
    if not Path(path).exists():
        raise FrameError(f"no such file: {path}")
    n = 0
    for row in estimate_video(path, calib, every=every):
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


__all__ = [
    "CRUSH_DENSITY",
    "FRUIN_LEVELS",
    "FRUIN_THRESHOLDS",
    "MAX_AREA_M2",
    "MAX_DENSITY",
    "MIN_AREA_M2",
    "Calibration",
    "CalibrationError",
    "CameraState",
    "DensityError",
    "DensityEstimate",
    "FrameError",
    "StateError",
    "analysis_size",
    "estimate",
    "estimate_video",
    "fruin_level",
    "level_min_density",
    "run_cli",
]
