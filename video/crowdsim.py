"""Synthetic crowd clips with a known number of people, for testing video/density.py.

A pinhole camera looks at a flat textured ground plane (asphalt road with a zebra
crossing, or a paved square). People are built in 3-D from a few body parts
(legs, torso, head), each part being the convex hull of sampled cross-section
rings, so the same code renders high oblique and near top-down views with true
perspective, self-occlusion order and foreshortening. Each person casts a ground
shadow along a fixed sun direction. The region of interest is a quadrilateral on
the ground, so its image polygon and its area in m² are exact, and the ground
truth of each frame is the number of people whose feet are inside it.

Everything is deterministic for a given seed. Nothing here is used at run time
by the estimator; it only exists so tests and benchmarks have clips with truth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

# Nominal adult used to calibrate person_height_px (the estimator's notion of
# "an adult"); the simulated people vary around it.
NOMINAL_HEIGHT_M = 1.70
NOMINAL_SHOULDER_M = 0.45
MIN_SPACING_M = 0.45  # people do not stand inside each other (hard-core distance)


class SimError(ValueError):
    """Parameters that cannot produce a clip (unknown view, ROI off-screen...)."""


@dataclass(frozen=True)
class Camera:
    """A pinhole camera at height_m above flat ground, pitched down by pitch_deg."""

    width: int
    height: int
    focal_px: float
    height_m: float
    pitch_deg: float

    def _axes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        t = np.deg2rad(self.pitch_deg)
        right = np.array([1.0, 0.0, 0.0])
        forward = np.array([0.0, np.cos(t), -np.sin(t)])
        down = np.cross(forward, right)
        centre = np.array([0.0, 0.0, self.height_m])
        return centre, right, down, forward

    def project(self, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project world points (..., 3) to pixels (..., 2); also return depth."""
        c, r, d, f = self._axes()
        v = pts - c
        z = v @ f
        zc = np.maximum(z, 1e-3)
        u = self.focal_px * (v @ r) / zc + self.width / 2
        w = self.focal_px * (v @ d) / zc + self.height / 2
        return np.stack([u, w], axis=-1), z

    def ground_of_pixels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ground X, Y for every pixel and a mask of pixels that see ground."""
        c, r, d, f = self._axes()
        u, w = np.meshgrid(
            (np.arange(self.width) + 0.5 - self.width / 2) / self.focal_px,
            (np.arange(self.height) + 0.5 - self.height / 2) / self.focal_px,
        )
        ray = u[..., None] * r + w[..., None] * d + f
        dz = ray[..., 2]
        ok = dz < -1e-3
        t = np.where(ok, -c[2] / np.where(ok, dz, -1.0), 0.0)
        return c[0] + t * ray[..., 0], c[1] + t * ray[..., 1], ok


@dataclass(frozen=True)
class ViewSpec:
    """A camera plus a ground-plane ROI quadrilateral (metres) and a ground style."""

    camera: Camera
    roi_ground: tuple[tuple[float, float], ...]
    ground: str  # "road" or "square"


def _view(name: str, width: int, height: int) -> ViewSpec:
    """Return a named view scaled to the requested image size."""
    if name == "oblique":
        # Street camera on a 9 m pole, 38° down, 62° horizontal field of view:
        # people are ~25 px tall at the far edge and ~75 px near (at 640 px).
        cam = Camera(width, height, width / (2 * np.tan(np.deg2rad(31))), 9.0, 38.0)
        roi = ((-5.5, 9.0), (5.5, 9.0), (7.0, 17.0), (-7.0, 17.0))
        return ViewSpec(cam, roi, "road")
    if name == "topdown":
        # Near top-down camera on a building above a square (20 m up, 75° down,
        # 56° HFOV): people are ~14-20 px across at 640 px and lean away from
        # the nadir near the edges.
        cam = Camera(width, height, width / (2 * np.tan(np.deg2rad(28))), 20.0, 75.0)
        roi = ((-7.0, 1.0), (7.0, 1.0), (7.0, 9.5), (-7.0, 9.5))
        return ViewSpec(cam, roi, "square")
    raise SimError(f"unknown view {name!r}; use 'oblique' or 'topdown'")


@dataclass
class Clip:
    """Frames (BGR uint8), per-frame true counts in the ROI, and the calibration."""

    frames: list[np.ndarray]
    counts: list[int]
    calibration: dict
    background: np.ndarray
    fps: float
    view: str
    meta: dict = field(default_factory=dict)

    @property
    def mean_count(self) -> float:
        """Return the mean true count over the clip."""
        return float(np.mean(self.counts)) if self.counts else 0.0

    @property
    def mean_density(self) -> float:
        """Return the mean true density (persons/m²) over the clip."""
        return self.mean_count / float(self.calibration["area_m2"])


def _noise_field(
    rng: np.random.Generator, size: int, scales: Sequence[int]
) -> np.ndarray:
    """Return a size x size multi-octave value-noise texture in about [-1, 1]."""
    out = np.zeros((size, size), np.float32)
    for s in scales:
        small = rng.standard_normal((max(2, size // s), max(2, size // s))).astype(
            np.float32
        )
        out += cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC) / len(
            scales
        )
    return out / (np.abs(out).max() + 1e-6)


def _render_background(view: ViewSpec, rng: np.random.Generator) -> np.ndarray:
    """Render the static scene: textured ground (road or paving) and a far facade."""
    cam = view.camera
    gx, gy, ok = cam.ground_of_pixels()
    tex_size, tex_m = 512, 8.0  # texture tile repeats every 8 m
    fine = _noise_field(rng, tex_size, (4, 16))
    coarse = _noise_field(rng, tex_size, (64, 128))
    mx = ((gx / tex_m) % 1.0 * tex_size).astype(np.float32)
    my = ((gy / tex_m) % 1.0 * tex_size).astype(np.float32)
    f = cv2.remap(fine, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    co = cv2.remap(coarse, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP)
    if view.ground == "road":
        base = np.array([92.0, 94.0, 96.0]) + rng.uniform(-10, 10)
        lum = base[None, None, :] * (1 + 0.10 * f[..., None] + 0.08 * co[..., None])
        # Zebra crossing: 0.5 m white bars every 1 m across the road, and kerbs.
        zebra = (np.abs(gy - 14.0) < 3.0) & ((gx % 1.0) < 0.5)
        lane = (np.abs(gx) < 0.08) & ((gy % 6.0) < 3.0)
        kerb = np.abs(np.abs(gx) - 10.5) < 0.15
        paint = zebra | lane
        lum[paint] = lum[paint] * 0.25 + np.array([200.0, 205.0, 205.0]) * 0.75
        lum[kerb] = np.array([150.0, 150.0, 145.0])
        side = np.abs(gx) > 10.5
        lum[side] = lum[side] * np.array([1.05, 1.15, 1.25])
    else:
        base = np.array([120.0, 135.0, 150.0]) + rng.uniform(-12, 12)
        lum = base[None, None, :] * (1 + 0.07 * f[..., None] + 0.10 * co[..., None])
        # 0.6 m square paving slabs with darker joints, and a planter strip.
        joint = ((gx % 0.6) < 0.03) | ((gy % 0.6) < 0.03)
        lum[joint] *= 0.78
        strip = (gy % 9.0) < 0.6
        lum[strip] = lum[strip] * np.array([0.7, 0.95, 0.8])
    img = np.clip(lum, 0, 255)
    # Above the horizon (oblique views only): a facade with windows.
    sky = ~ok
    if sky.any():
        yy, xx = np.nonzero(sky)
        facade = np.full((len(yy), 3), (110.0, 120.0, 135.0))
        win = ((xx // 18) % 2 == 0) & ((yy // 14) % 2 == 0)
        facade[win] = (70.0, 70.0, 60.0)
        img[yy, xx] = facade
    return img.astype(np.uint8)


@dataclass
class _People:
    pos: np.ndarray  # (n, 2) ground metres
    heading: np.ndarray  # (n,) radians
    speed: np.ndarray  # (n,) m/s
    height: np.ndarray
    shoulder: np.ndarray
    phase: np.ndarray
    top: np.ndarray  # (n, 3) BGR
    bottom: np.ndarray
    hair: np.ndarray
    skin: np.ndarray


def _clothes(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Return varied top and trouser colours, including ground-like greys."""
    if n == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    hsv = np.stack(
        [rng.integers(0, 180, n), rng.integers(30, 230, n), rng.integers(40, 235, n)],
        axis=1,
    ).astype(np.uint8)
    top = cv2.cvtColor(hsv[None], cv2.COLOR_HSV2BGR)[0].astype(np.float64)
    grey = rng.random(n) < 0.25  # a quarter wear grey/black/white, hard for colour cues
    top[grey] = rng.integers(20, 230, (int(grey.sum()), 1)) + rng.integers(
        -6, 7, (int(grey.sum()), 3)
    )
    dark = rng.integers(25, 90, (n, 1)) + rng.integers(-10, 10, (n, 3))
    jeans = np.array([120.0, 80.0, 50.0]) + rng.integers(-25, 25, (n, 3))
    bottom = np.where(rng.random((n, 1)) < 0.4, jeans, dark)
    return np.clip(top, 0, 255), np.clip(bottom, 0, 255)


def _spawn(
    rng: np.random.Generator, n: int, lo: np.ndarray, hi: np.ndarray, walking: float
) -> _People:
    """Place n people uniformly with a hard-core spacing inside the box lo..hi."""
    pts: list[np.ndarray] = []
    tries = 0
    while len(pts) < n and tries < n * 200:
        tries += 1
        p = rng.uniform(lo, hi)
        if pts and np.min(np.hypot(*(np.asarray(pts) - p).T)) < MIN_SPACING_M:
            continue
        pts.append(p)
    pos = np.asarray(pts, np.float64).reshape(-1, 2)
    m = len(pos)
    # Flows along the street/square axes with spread, as real pedestrians do.
    main = rng.choice(
        [0.0, np.pi, np.pi / 2, -np.pi / 2], m, p=[0.35, 0.35, 0.15, 0.15]
    )
    heading = main + rng.normal(0, 0.35, m)
    speed = np.where(rng.random(m) < walking, rng.uniform(0.8, 1.6, m), 0.0)
    top, bottom = _clothes(rng, m)
    hair = np.clip(
        rng.integers(10, 70, (m, 1)) + rng.integers(-8, 8, (m, 3)), 0, 255
    ).astype(float)
    old = rng.random(m) < 0.15
    hair[old] = rng.integers(140, 200, (int(old.sum()), 1))
    skin = np.array([120.0, 150.0, 200.0]) * rng.uniform(0.6, 1.1, (m, 1))
    return _People(
        pos=pos,
        heading=heading,
        speed=speed,
        height=np.clip(rng.normal(NOMINAL_HEIGHT_M, 0.09, m), 1.45, 1.98),
        shoulder=rng.uniform(0.38, 0.50, m),
        phase=rng.uniform(0, 2 * np.pi, m),
        top=top,
        bottom=bottom,
        hair=hair,
        skin=np.clip(skin, 0, 255),
    )


def _ring(
    cx: np.ndarray,
    cy: np.ndarray,
    z: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    heading: np.ndarray,
    k: int = 10,
) -> np.ndarray:
    """Return (n, k, 3) points of horizontal ellipses (half-axes a across, b along heading)."""
    t = np.linspace(0, 2 * np.pi, k, endpoint=False)
    ca, sa = np.cos(heading)[:, None], np.sin(heading)[:, None]
    across = a[:, None] * np.cos(t)[None]
    along = b[:, None] * np.sin(t)[None]
    x = cx[:, None] + along * ca - across * sa
    y = cy[:, None] + along * sa + across * ca
    return np.stack([x, y, np.broadcast_to(z[:, None], x.shape)], axis=-1)


def _body_parts(p: _People, t: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return [(points (n, m, 3), colours (n, 3))] for legs, torso, head, in draw order."""
    h, w, hd = p.height, p.shoulder, p.heading
    x, y = p.pos[:, 0], p.pos[:, 1]
    ca, sa = np.cos(hd), np.sin(hd)
    swing = 0.28 * np.sin(p.phase + t * 2 * np.pi * 0.9 * (p.speed > 0)) * (p.speed > 0)
    hip = 0.48 * h
    parts = []
    for side in (-1.0, 1.0):
        ox, oy = -sa * 0.09 * side, ca * 0.09 * side
        fx, fy = x + ox + ca * swing * side, y + oy + sa * swing * side
        r = np.full_like(h, 0.075)
        foot = _ring(fx, fy, np.full_like(h, 0.04), r, r * 1.4, hd, 8)
        top = _ring(x + ox, y + oy, hip, r * 1.3, r * 1.3, hd, 8)
        parts.append((np.concatenate([foot, top], axis=1), p.bottom))
    torso = np.concatenate(
        [
            _ring(x, y, hip, w * 0.40, np.full_like(h, 0.12), hd),
            _ring(x, y, 0.80 * h, w * 0.5, np.full_like(h, 0.13), hd),
        ],
        axis=1,
    )
    parts.append((torso, p.top))
    neck = _ring(x, y, 0.84 * h, np.full_like(h, 0.06), np.full_like(h, 0.06), hd, 6)
    parts.append(
        (np.concatenate([neck, neck + np.array([0.0, 0.0, 0.04])], axis=1), p.skin)
    )
    hc = h - 0.11
    head = [
        _ring(x, y, hc + dz, np.full_like(h, r), np.full_like(h, r * 1.15), hd, 8)
        for dz, r in ((-0.07, 0.07), (0.0, 0.095), (0.06, 0.075), (0.1, 0.03))
    ]
    parts.append((np.concatenate(head, axis=1), p.hair))
    return parts


def _render_frame(
    view: ViewSpec,
    bg: np.ndarray,
    p: _People,
    t: float,
    sun: np.ndarray,
    rng: np.random.Generator,
    noise: float,
) -> np.ndarray:
    """Draw shadows then people far-to-near onto a copy of the background."""
    cam = view.camera
    parts = _body_parts(p, t)
    # Shadows: every body point slid along the sun direction onto the ground.
    allpts = np.concatenate([pts for pts, _ in parts], axis=1)
    sh = allpts.copy()
    sh[..., 0] += allpts[..., 2] * sun[0]
    sh[..., 1] += allpts[..., 2] * sun[1]
    sh[..., 2] = 0.0
    sh_px, _ = cam.project(sh)
    shadow = np.zeros(bg.shape[:2], np.uint8)
    for i in range(len(p.pos)):
        hull = cv2.convexHull(np.round(sh_px[i]).astype(np.int32))
        cv2.fillConvexPoly(shadow, hull, 255, lineType=cv2.LINE_AA)
    shadow = cv2.GaussianBlur(shadow, (5, 5), 0).astype(np.float32) / 255.0
    img = bg.astype(np.float32) * (1.0 - 0.45 * shadow[..., None])
    img = np.clip(img, 0, 255).astype(np.uint8)
    # Painter's order: far people first, so near ones occlude them.
    _, depth = cam.project(np.c_[p.pos, np.full(len(p.pos), 1.0)])
    order = np.argsort(-depth)
    projected = [(cam.project(pts)[0], col) for pts, col in parts]
    light = np.array([1.0, 0.82])  # lit / shaded side of each part
    for i in order:
        if depth[i] <= 0.5:
            continue
        for px, col in projected:
            hull = cv2.convexHull(np.round(px[i]).astype(np.int32))
            c = col[i] * light[int(i % 2)]
            cv2.fillConvexPoly(
                img, hull, tuple(float(v) for v in c), lineType=cv2.LINE_AA
            )
    out = img.astype(np.float32)
    out += rng.normal(0, noise, out.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def _inside(poly: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Return which points lie inside a convex polygon given counter/clockwise."""
    n = len(poly)
    sign = None
    inside = np.ones(len(pts), bool)
    for i in range(n):
        a, b = poly[i], poly[(i + 1) % n]
        cross = (b[0] - a[0]) * (pts[:, 1] - a[1]) - (b[1] - a[1]) * (pts[:, 0] - a[0])
        s = np.sign(cross)
        if sign is None:
            sign = np.sign(
                np.sum(
                    (b[0] - a[0]) * (poly[:, 1] - a[1])
                    - (b[1] - a[1]) * (poly[:, 0] - a[0])
                )
            )
        inside &= s == sign
    return inside


def _polygon_area(poly: np.ndarray) -> float:
    """Return the area of a simple polygon (shoelace)."""
    x, y = poly[:, 0], poly[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2)


def calibration_for(view: ViewSpec) -> dict:
    """Return the calibration JSON dict a technician would measure for this view."""
    cam = view.camera
    roi_g = np.asarray(view.roi_ground, float)
    roi_px, _ = cam.project(np.c_[roi_g, np.zeros(len(roi_g))])
    # Measure a nominal adult's bounding-box height at two ground depths on the ROI's
    # centre line, as a technician would by clicking on two people.
    near_y, far_y = roi_g[:, 1].min() + 0.5, roi_g[:, 1].max() - 0.5
    cx = float(roi_g[:, 0].mean())
    rows = []
    for gy in (near_y, far_y):
        nominal = _People(
            pos=np.array([[cx, gy]]),
            heading=np.zeros(1),
            speed=np.zeros(1),
            height=np.array([NOMINAL_HEIGHT_M]),
            shoulder=np.array([NOMINAL_SHOULDER_M]),
            phase=np.zeros(1),
            top=np.zeros((1, 3)),
            bottom=np.zeros((1, 3)),
            hair=np.zeros((1, 3)),
            skin=np.zeros((1, 3)),
        )
        pts = np.concatenate([pts for pts, _ in _body_parts(nominal, 0.0)], axis=1)[0]
        px, _ = cam.project(pts)
        rows.append(
            [round(float(px[:, 1].max()), 1), round(float(np.ptp(px[:, 1])), 1)]
        )
    return {
        "roi": [[round(float(u), 1), round(float(v), 1)] for u, v in roi_px],
        "area_m2": round(_polygon_area(roi_g), 2),
        "person_height_px": rows,
    }


def make_clip(
    view: str = "oblique",
    n_people: int = 20,
    n_frames: int = 20,
    *,
    width: int = 640,
    height: int = 360,
    fps: float = 5.0,
    seed: int = 0,
    walking: float = 0.85,
    noise: float = 3.0,
) -> Clip:
    """Generate a clip with about n_people in the ROI on average, deterministic by seed."""
    if n_people < 0 or n_frames < 1:
        raise SimError("n_people must be >= 0 and n_frames >= 1")
    rng = np.random.default_rng(seed)
    spec = _view(view, width, height)
    bg = _render_background(spec, rng)
    roi_g = np.asarray(spec.roi_ground, float)
    margin = 3.0
    lo, hi = roi_g.min(axis=0) - margin, roi_g.max(axis=0) + margin
    # Scale the crowd in the larger spawn box so the ROI holds n_people on average.
    n_total = int(np.round(n_people * np.prod(hi - lo) / _polygon_area(roi_g)))
    people = _spawn(rng, n_total, lo, hi, walking)
    sun = np.array([0.45, -0.35]) * rng.uniform(0.7, 1.3)
    frames, counts = [], []
    span = hi - lo
    for k in range(n_frames):
        t = k / fps
        frames.append(_render_frame(spec, bg, people, t, sun, rng, noise))
        counts.append(int(_inside(roi_g, people.pos).sum()))
        step = (
            people.speed[:, None]
            * np.c_[np.cos(people.heading), np.sin(people.heading)]
            / fps
        )
        people.pos = lo + (people.pos + step - lo) % span
    return Clip(
        frames=frames,
        counts=counts,
        calibration=calibration_for(spec),
        background=bg,
        fps=fps,
        view=view,
        meta={"n_total": n_total, "seed": seed, "roi_ground": roi_g.tolist()},
    )


def write_video(
    frames: Sequence[np.ndarray], path: str | Path, fps: float = 5.0
) -> Path:
    """Write frames to an MP4 (H.264 'avc1' if available, else 'mp4v') and return the path."""
    path = Path(path)
    h, w = frames[0].shape[:2]
    for fourcc in ("avc1", "mp4v"):
        writer = cv2.VideoWriter(
            str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (w, h)
        )
        if writer.isOpened():
            for f in frames:
                writer.write(f)
            writer.release()
            if path.exists() and path.stat().st_size > 0:
                return path
        writer.release()
    raise SimError(f"no MP4 encoder available to write {path}")


def degrade(
    frame: np.ndarray, rng: np.random.Generator, quality: int = 60, shake_px: int = 0
) -> np.ndarray:
    """Return the frame as a street camera delivers it: shaken by up to shake_px, JPEG-coded.

    Clean renders flatter an estimator: real streams are compressed (blocking and
    ringing at edges) and cameras on poles sway in the wind.
    """
    if shake_px:
        dx, dy = rng.integers(-shake_px, shake_px + 1, 2)
        shift = np.float32([[1, 0, dx], [0, 1, dy]])
        frame = cv2.warpAffine(frame, shift, (frame.shape[1], frame.shape[0]),
                               borderMode=cv2.BORDER_REPLICATE)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("cannot JPEG-encode the frame")
    return cv2.imdecode(buf, cv2.IMREAD_COLOR)
