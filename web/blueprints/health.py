"""Camera health: snapshots, on-demand sampling, history, live status and roll-ups."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from flask import Blueprint, current_app, jsonify, request, send_file

from gridmap.errors import InvalidInput, NotFound
from video import health, registry
from video.sampler import SamplerConfig, sample_now, snapshot_paths
from web.database import get_session
from web.params import int_arg
from web.scope import camera_filters, current_prefix

bp = Blueprint("health", __name__, url_prefix="/api")

_prober_lock = threading.Lock()


def _prober():
    """Return this app's small probe pool for on-demand samples (created lazily)."""
    with _prober_lock:
        prober = current_app.extensions.get("gridmap.prober")
        if prober is None:
            from video.probe import Prober

            prober = Prober(processes=1, threads_per_process=4)
            current_app.extensions["gridmap.prober"] = prober
        return prober


@bp.get("/cameras/<gb_id>/snapshot.jpg")
def snapshot(gb_id: str):
    """The latest snapshot.
    ---
    get:
      summary: The camera's latest sampled JPEG (or its thumbnail with thumb=1)
      parameters:
        - {in: query, name: thumb, schema: {type: integer, enum: [0, 1]}}
      responses:
        200: {description: 'JPEG; header X-Snapshot-Age gives its age in seconds'}
        404: {description: Unknown camera, outside scope, or never sampled}
    """
    registry.get(get_session(), gb_id, prefix=current_prefix())  # scope check
    latest, thumb = snapshot_paths(SamplerConfig().snapshots(), gb_id)
    path = thumb if int_arg("thumb", 0, maximum=1) else latest
    if not path.exists():
        raise NotFound("no snapshot yet", gb_id=gb_id)
    age = max(0, int(time.time() - path.stat().st_mtime))
    resp = send_file(path, mimetype="image/jpeg", max_age=0)
    resp.headers["X-Snapshot-Age"] = str(age)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.post("/cameras/<gb_id>/sample")
def sample(gb_id: str):
    """Sample a camera now.
    ---
    post:
      summary: Open the stream now (same timeouts as the sampler), store and return the result
      responses:
        200: {description: Health class, latencies and whether a snapshot was stored}
        404: {description: Unknown camera or outside scope}
    """
    session = get_session()
    registry.get(session, gb_id, prefix=current_prefix())
    result = sample_now(session, gb_id, _prober())
    session.commit()
    return jsonify(result)


@bp.get("/cameras/<gb_id>/health")
def camera_health(gb_id: str):
    """Health history.
    ---
    get:
      summary: Status, status history and the latest samples of a camera
      responses:
        200: {description: '{status, status_since, history, samples}'}
        404: {description: Unknown camera or outside scope}
    """
    return jsonify(health.camera_health(get_session(), gb_id, prefix=current_prefix()))


@bp.get("/cameras/status.json")
def status_json():
    """Live status changes.
    ---
    get:
      summary: Compact camera statuses, only those changed since a previous server_time
      parameters:
        - {in: query, name: since, schema: {type: string, format: date-time}}
      responses:
        200: {description: '{server_time, statuses, rows: [[gb_id, status index]]}'}
        400: {description: Malformed since}
    """
    raw = request.args.get("since")
    since = None
    if raw:
        try:
            since = datetime.fromisoformat(raw)
        except ValueError:
            raise InvalidInput("since must be an ISO 8601 timestamp") from None
        if since.tzinfo is None:
            raise InvalidInput("since must include a time zone")
    body = health.status_changes(get_session(), since, camera_filters())
    resp = jsonify(body)
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/health/rollup")
def health_rollup():
    """Online rates.
    ---
    get:
      summary: Camera counts by status and online rate per town, community, grid or source
      parameters:
        - {in: query, name: level, schema: {type: string, enum: [town, community, grid, source]}}
      responses:
        200: {description: List of groups}
        400: {description: Unknown level}
    """
    level = request.args.get("level", "town")
    return jsonify(health.rollup(get_session(), level, camera_filters()))


def shutdown_prober(app) -> None:
    """Stop the on-demand probe pool (app teardown in tests)."""
    prober = app.extensions.pop("gridmap.prober", None)
    if prober is not None:
        prober.close()



