"""The video wall (1/4/9/16 live tiles, orders, patrol tours), live pages and the MJPEG relay."""

from __future__ import annotations

import threading
from urllib.parse import urlsplit, urlunsplit

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request
from sqlalchemy import text

from gridmap.errors import GridmapError, InvalidInput
from gridmap.validation import mask_url_userinfo
from video import registry
from video.urls import Credentials
from web import errors as web_errors
from web import i18n
from web.auth import current_actor
from web.database import get_session
from web.params import list_arg
from web.relay import BOUNDARY, Relay, RelayError, RelayPool, RelayRequest, stream

bp = Blueprint("videowall", __name__)

LAYOUTS = (1, 4, 9, 16)
_pool_lock = threading.Lock()


class RelayBusy(GridmapError):
    """Every live relay slot is in use; the caller should show snapshots instead."""


class StreamUnavailable(GridmapError):
    """The camera's stream could not be opened or sent no frame in time."""


web_errors.register_status(RelayBusy, 503)
web_errors.register_status(StreamUnavailable, 502)

i18n.register(
    {
        "video_wall": {"zh": "视频墙", "en": "Video wall"},
        "vw_layout": {"zh": "分屏", "en": "Layout"},
        "vw_cameras": {"zh": "摄像头名称或编号", "en": "Camera name or ID"},
        "vw_suggestions": {"zh": "匹配的摄像头", "en": "Matching cameras"},
        "vw_no_match": {"zh": "没有匹配的摄像头", "en": "No matching camera"},
        "vw_show": {"zh": "上墙", "en": "Show"},
        "vw_inbox": {"zh": "收到的调度", "en": "Orders for my unit"},
        "vw_outbox": {"zh": "发出的调度", "en": "Orders sent"},
        "vw_no_orders": {"zh": "暂无调度指令", "en": "No orders"},
        "vw_ack": {"zh": "签收", "en": "Acknowledge"},
        "vw_close": {"zh": "办结", "en": "Close"},
        "vw_feedback": {"zh": "办结反馈", "en": "Feedback"},
        "vw_on_wall": {"zh": "查看视频", "en": "Watch"},
        "vw_tours": {"zh": "视频巡查", "en": "Video patrol"},
        "vw_start_tour": {"zh": "开始巡查", "en": "Start tour"},
        "vw_stop_tour": {"zh": "停止巡查", "en": "Stop tour"},
        "vw_save_tour": {"zh": "保存为巡查线路", "en": "Save as tour"},
        "vw_tour_name": {"zh": "巡查线路名称", "en": "Tour name"},
        "vw_no_tours": {"zh": "暂无巡查线路", "en": "No tours yet"},
        "vw_tour_needs_cameras": {"zh": "请先把摄像头上墙，再保存为巡查线路",
                                  "en": "Put cameras on the wall first, then save them as a tour"},
        "vw_finding": {"zh": "记录发现", "en": "Record finding"},
        "vw_finding_note": {"zh": "巡查发现（记入该网格）", "en": "What did you see (recorded against the grid)?"},
        "vw_saved": {"zh": "已保存", "en": "Saved"},
        "vw_live": {"zh": "实时", "en": "Live"},
        "vw_snapshot": {"zh": "截图", "en": "Snapshot"},
        "vw_external": {"zh": "流媒体", "en": "Media server"},
        "vw_unavailable": {"zh": "视频不可用", "en": "Video unavailable"},
        "vw_new_order": {"zh": "新调度指令", "en": "New order"},
        "vw_priority_low": {"zh": "低", "en": "low"},
        "vw_priority_normal": {"zh": "一般", "en": "normal"},
        "vw_priority_high": {"zh": "高", "en": "high"},
        "vw_priority_urgent": {"zh": "紧急", "en": "urgent"},
        "vw_state_open": {"zh": "进行中", "en": "open"},
        "vw_state_closed": {"zh": "已办结", "en": "closed"},
        "vw_state_cancelled": {"zh": "已撤销", "en": "cancelled"},
        "vw_state_expired": {"zh": "已过期", "en": "expired"},
        "vw_state_pending": {"zh": "待签收", "en": "pending"},
        "vw_state_acknowledged": {"zh": "已签收", "en": "acknowledged"},
        "vw_back_to_map": {"zh": "返回地图", "en": "Back to the map"},
        "vw_from": {"zh": "来自", "en": "From"},
        "vw_not_shown": {"zh": "另有 {n} 个摄像头未上墙", "en": "{n} more cameras not on the wall"},
        "vw_empty_hint": {"zh": "空闲画面：在上方输入摄像头名称或编号上墙，或在调度指令上点“查看视频”",
                          "en": "Free tile: enter a camera name or IDs above, or press “Watch” on an order"},
    }
)


def relay_pool() -> RelayPool:
    """Return this app's relay cap (created on first use from RELAY_MAX)."""
    with _pool_lock:
        pool = current_app.extensions.get("gridmap.relays")
        if pool is None:
            pool = RelayPool(int(current_app.config.get("RELAY_MAX", 8)))
            current_app.extensions["gridmap.relays"] = pool
        return pool


def external_live_url(gb_id: str) -> str | None:
    """Return the media-server URL configured for a camera (per camera, then template)."""
    per_camera = current_app.config.get("LIVE_URLS") or {}
    if gb_id in per_camera:
        return _without_login(str(per_camera[gb_id]))
    template = current_app.config.get("LIVE_URL_TEMPLATE")
    return _without_login(template.replace("{gb_id}", gb_id)) if template else None


def _without_login(url: str) -> str | None:
    """Return ``url`` without a user:password@ part; None if a login would still show.

    create_app refuses such settings; this keeps a login set on a running app
    (a test, a shell) out of live.json too, which every viewer reads.
    """
    try:
        parts = urlsplit(url)
        if "@" in parts.netloc:
            url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    except ValueError:  # not a URL at all (an unclosed "[", say)
        return None
    return url if mask_url_userinfo(url) == url else None


def _layout(raw: str | None) -> int | None:
    """Return the layout the URL asks for (1, 4, 9 or 16), else None: the wall fits its cameras."""
    try:
        value = int(raw or 0)
    except ValueError:
        return None
    return value if value in LAYOUTS else None


def _page_config(extra: dict) -> dict:
    pool = relay_pool()
    actor = current_actor()
    return {
        "lang": g.lang,
        "i18n": i18n.catalog(g.lang),
        "user": {"username": actor.username, "role": actor.role, "unit": actor.unit_name,
                 "tier": actor.tier},
        "relay": {"cap": pool.cap, "fps": current_app.config.get("RELAY_FPS", 2.0)},
        "poll_s": 5,
        "snapshot_s": 5,
        **extra,
    }


@bp.get("/videowall")
def videowall() -> Response:
    """Serve the video wall: ?layout=1|4|9|16, &cameras=<gb ids>, &order=<id> or &tour=<id>.

    Without a layout the page picks the smallest one that shows all the cameras given.
    """
    cameras = [c for c in list_arg("cameras") if c.isascii() and c.isdigit() and len(c) == 20]
    order = request.args.get("order", "")
    tour = request.args.get("tour", "")
    config = _page_config({
        "page": "videowall",
        "layout": _layout(request.args.get("layout")),
        "cameras": cameras[:64],
        "order": int(order) if order.isdigit() and len(order) < 12 else None,
        "tour": int(tour) if tour.isdigit() and len(tour) < 9 else None,
    })
    html = render_template("videowall.html", config=config, lang=g.lang)
    resp = Response(html, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/cameras/<gb_id>/live")
def live_page(gb_id: str) -> Response:
    """Serve one camera's live view (linked from the patrol page and the map wall)."""
    camera = registry.get(get_session(), gb_id)  # the scope decides: 404 outside it
    config = _page_config({"page": "live", "layout": 1, "cameras": [gb_id],
                           "camera": {k: camera[k] for k in ("gb_id", "name", "grid_code",
                                                             "status", "department")}})
    html = render_template("live.html", config=config, camera=camera, lang=g.lang)
    resp = Response(html, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/api/cameras/<gb_id>/live.json")
def live_info(gb_id: str):
    """How to show a camera live.
    ---
    get:
      summary: The camera's live source for a wall tile (relay, media server or snapshots)
      responses:
        200: {description: '{gb_id, name, grid_code, status, snapshot_at, mode, url, snapshot_url,
              relay}'}
        404: {description: Unknown camera or outside your scope}
    """
    camera = registry.get(get_session(), gb_id)
    external = external_live_url(gb_id)
    pool = relay_pool()
    return jsonify({
        "gb_id": gb_id,
        "name": camera["name"],
        "grid_code": camera["grid_code"],
        "status": camera["status"],
        "snapshot_at": camera["snapshot_at"],
        "mode": "external" if external else "mjpeg",
        "url": external or f"/cameras/{gb_id}/live.mjpeg",
        "snapshot_url": f"/api/cameras/{gb_id}/snapshot.jpg",
        "relay": {"active": pool.active, "cap": pool.cap},
    })


@bp.get("/api/relay/status")
def relay_status():
    """Live relay usage.
    ---
    get:
      summary: How many MJPEG relays run now, and the cap
      responses:
        200: {description: '{active, cap}'}
    """
    pool = relay_pool()
    return jsonify({"active": pool.active, "cap": pool.cap})


def _stream_source(gb_id: str) -> tuple[str, Credentials | None]:
    session = get_session()
    url = session.execute(
        text("SELECT COALESCE(sub_url, main_url) FROM cameras WHERE gb_id = :g"), {"g": gb_id}
    ).scalar_one()
    creds = registry.stream_credentials(session, gb_id)
    return url, (Credentials(*creds) if creds else None)


@bp.get("/cameras/<gb_id>/live.mjpeg")
def live_mjpeg(gb_id: str) -> Response:
    """Relay a camera as low-fps MJPEG (multipart/x-mixed-replace); 503 over the cap."""
    registry.get(get_session(), gb_id)  # the scope decides: 404 outside it
    cfg = current_app.config
    pool = relay_pool()
    if not pool.try_acquire():
        raise RelayBusy(f"all {pool.cap} live relays are in use; showing snapshots",
                        retry_after_s=10)
    try:
        url, creds = _stream_source(gb_id)
        # Give the connection back to the pool: the relay may wait seconds for a frame.
        get_session().rollback()
        open_s, read_s = 5.0, 5.0
        from gridmap.config import var_dir

        relay = Relay(RelayRequest(url=url, fps=float(cfg.get("RELAY_FPS", 2.0)),
                                   credentials=creds, open_timeout_s=open_s,
                                   read_timeout_s=read_s, demo_root=var_dir() / "streams"))
        del creds
        first = relay.next_frame(open_s + read_s + 5.0)
        if first is None:
            relay.close()
            raise StreamUnavailable("the stream could not be opened or sent no frame",
                                    gb_id=gb_id)
    except (StreamUnavailable, RelayError, OSError, InvalidInput) as exc:
        pool.release()
        if isinstance(exc, StreamUnavailable):
            raise
        raise StreamUnavailable("the live relay could not start", gb_id=gb_id) from None
    except BaseException:
        pool.release()
        raise
    body = stream(relay, first, pool, read_timeout_s=10.0,
                  max_seconds=float(cfg.get("RELAY_MAX_SECONDS", 1800)))
    resp = Response(body, mimetype=f"multipart/x-mixed-replace; boundary={BOUNDARY}")
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["X-Accel-Buffering"] = "no"  # an nginx in front must not buffer frames
    return resp


@bp.after_request
def _retry_after(response: Response) -> Response:
    """Tell clients over the relay cap when to try again (the wall polls anyway)."""
    if response.status_code == 503 and request.endpoint == "videowall.live_mjpeg":
        response.headers["Retry-After"] = "10"
    return response
