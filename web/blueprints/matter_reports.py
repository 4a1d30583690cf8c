"""Matter reports: the monthly bulletin page, statistics, the look-back and grid patrols.

The bulletin's charts are inline SVG drawn here on the server, so the page prints
to PDF as it is (no script, no chart library) and shows the same numbers as
``GET /api/matters/stats``. Every figure is limited to the caller's matters.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from flask import Blueprint, Response, g, jsonify, render_template, request
from markupsafe import Markup, escape

from gridmap import grid_patrols, matter_stats
from gridmap.errors import InvalidInput
from web import i18n
from web.auth import current_actor
from web.database import get_session
from web.params import json_object

bp = Blueprint("matter_reports", __name__)

i18n.register({
    "mb_title": {"zh": "事项办理月度通报", "en": "Monthly matters bulletin"},
    "mb_month": {"zh": "月份", "en": "Month"},
    "mb_show": {"zh": "查看", "en": "Show"},
    "mb_print": {"zh": "打印 / 导出 PDF", "en": "Print / save as PDF"},
    "mb_scope": {"zh": "统计范围", "en": "Scope"},
    "mb_generated": {"zh": "生成时间", "en": "Generated"},
    "mb_overview": {"zh": "总体情况", "en": "Overview"},
    "mb_total": {"zh": "受理事项", "en": "Matters received"},
    "mb_completed": {"zh": "办结", "en": "Completed"},
    "mb_completion_rate": {"zh": "办结率", "en": "Completion rate"},
    "mb_on_time_rate": {"zh": "按期办结率", "en": "On-time rate"},
    "mb_satisfaction_rate": {"zh": "满意率", "en": "Satisfaction rate"},
    "mb_urgent": {"zh": "紧急事项", "en": "Urgent"},
    "mb_redone": {"zh": "退回重办", "en": "Redone"},
    "mb_daily": {"zh": "每日受理量", "en": "Matters per day"},
    "mb_sources": {"zh": "事项来源", "en": "Sources"},
    "mb_units": {"zh": "各单位办理情况", "en": "By handling unit"},
    "mb_unit": {"zh": "承办单位", "en": "Unit"},
    "mb_received": {"zh": "受理", "en": "Received"},
    "mb_open": {"zh": "在办", "en": "Open"},
    "mb_rated": {"zh": "评价数", "en": "Rated"},
    "mb_rates_chart": {"zh": "办结率 / 按期率 / 满意率", "en": "Completion / on-time / satisfaction"},
    "mb_hotspots": {"zh": "热点分析", "en": "Hot spots"},
    "mb_hot_grids": {"zh": "高发网格", "en": "Busiest grids"},
    "mb_hot_categories": {"zh": "高发类别", "en": "Most frequent categories"},
    "mb_areas": {"zh": "领域分布", "en": "By sector"},
    "mb_towns": {"zh": "镇街分布", "en": "By town/street"},
    "mb_grid": {"zh": "网格", "en": "Grid"},
    "mb_category": {"zh": "类别", "en": "Category"},
    "mb_count": {"zh": "数量", "en": "Count"},
    "mb_repeats": {"zh": "重复事项（同类 50 米内多次发生）",
                   "en": "Repeat matters (same category within 50 m, several times)"},
    "mb_first_last": {"zh": "首次 / 最近", "en": "First / last"},
    "mb_lookback": {"zh": "回头看清单", "en": "Look-back list"},
    "mb_lookback_none": {"zh": "本月尚未开展回头看", "en": "No look-back has been run for this month"},
    "mb_reason": {"zh": "原因", "en": "Reason"},
    "mb_unresolved": {"zh": "未办结", "en": "Unresolved"},
    "mb_unsatisfied": {"zh": "不满意", "en": "Unsatisfied"},
    "mb_struck": {"zh": "已销号", "en": "Struck off"},
    "mb_state": {"zh": "状态", "en": "State"},
    "mb_ref": {"zh": "编号", "en": "Ref"},
    "mb_matter": {"zh": "事项", "en": "Matter"},
    "mb_none": {"zh": "无", "en": "None"},
    "mb_page": {"zh": "第 {n} 页", "en": "Page {n}"},
    "ms_reported": {"zh": "上报", "en": "Reported"},
    "ms_transferred": {"zh": "转办", "en": "Transferred"},
    "ms_handling": {"zh": "处置中", "en": "Handling"},
    "ms_handled": {"zh": "已处置", "en": "Handled"},
    "ms_verified": {"zh": "已核实", "en": "Verified"},
    "ms_closed": {"zh": "结案", "en": "Closed"},
    "msrc_hotline_12345": {"zh": "12345 热线", "en": "12345 hotline"},
    "msrc_grid_worker": {"zh": "网格员", "en": "Grid workers"},
    "msrc_emergency_110": {"zh": "110", "en": "110 police"},
    "msrc_emergency_119": {"zh": "119", "en": "119 fire"},
    "msrc_emergency_120": {"zh": "120", "en": "120 ambulance"},
    "msrc_emergency_122": {"zh": "122", "en": "122 traffic"},
    "msrc_video_patrol": {"zh": "视频巡查", "en": "Video patrol"},
    "msrc_crowd_alert": {"zh": "人群告警", "en": "Crowd alerts"},
    "msrc_open311": {"zh": "市民应用", "en": "Citizen app (Open311)"},
    "msrc_other": {"zh": "其他", "en": "Other"},
})

PALETTE = ("#1f5fa6", "#1a9850", "#fdae61", "#d73027", "#7570b3", "#66a61e", "#e7298a",
           "#a6761d", "#666666", "#17becf")
FONT = "font-family:'Noto Sans CJK SC','Noto Sans SC',sans-serif"


# --------------------------------------------------------------------------- SVG charts


def hbar_chart(items: Sequence[tuple[str, float]], *, label: str, width: int = 520, bar: int = 18,
               fmt: str = "{:,.0f}", maximum: float | None = None,
               color: str = PALETTE[0]) -> Markup:
    """Return a horizontal bar chart as inline SVG (labels escaped)."""
    if not items:
        return Markup("")
    label_w, value_w = 170, 70
    span = width - label_w - value_w
    top = maximum if maximum is not None else max(v for _, v in items) or 1
    height = len(items) * (bar + 6) + 4
    parts = [f'<svg class="mb-chart" role="img" aria-label="{escape(label)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" style="{FONT}" '
             'xmlns="http://www.w3.org/2000/svg">']
    for i, (label, value) in enumerate(items):
        y = 2 + i * (bar + 6)
        w = max(0.0, span * (value / top)) if top else 0.0
        parts.append(
            f'<text x="{label_w - 6}" y="{y + bar - 5}" font-size="12" text-anchor="end">'
            f'{escape(label)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w:.1f}" height="{bar}" fill="{color}"/>'
            f'<text x="{label_w + w + 4:.1f}" y="{y + bar - 5}" font-size="12">'
            f'{escape(fmt.format(value))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def column_chart(items: Sequence[tuple[str, float]], *, label: str, width: int = 700,
                 height: int = 180) -> Markup:
    """Return a column chart (e.g. matters per day) as inline SVG."""
    if not items:
        return Markup("")
    top = max(v for _, v in items) or 1
    # The right margin leaves room for half the last day's label, centred on its column.
    left, right, bottom = 36, 18, 22
    step = (width - left - right) / len(items)
    parts = [f'<svg class="mb-chart" role="img" aria-label="{escape(label)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" style="{FONT}" '
             'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="{left - 4}" y="12" font-size="11" text-anchor="end">{top:,.0f}</text>',
             f'<text x="{left - 4}" y="{height - bottom}" font-size="11" text-anchor="end">0</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - right}" y2="{height - bottom}" '
             'stroke="#999"/>']
    plot = height - bottom - 8
    for i, (label, value) in enumerate(items):
        h = plot * value / top
        x = left + i * step
        parts.append(f'<rect x="{x + 1:.1f}" y="{height - bottom - h:.1f}" '
                     f'width="{max(1.0, step - 2):.1f}" height="{h:.1f}" fill="{PALETTE[0]}">'
                     f'<title>{escape(label)}: {value:,.0f}</title></rect>')
        if i % 5 == 0:
            parts.append(f'<text x="{x + step / 2:.1f}" y="{height - 6}" font-size="10" '
                         f'text-anchor="middle">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def rates_chart(units: Sequence[dict], labels: Sequence[str], *, label: str,
                width: int = 700) -> Markup:
    """Return grouped bars of completion/on-time/satisfaction rates per unit, as SVG."""
    if not units:
        return Markup("")
    keys = ("completion_rate", "on_time_rate", "satisfaction_rate")
    label_w, bar, gap = 200, 7, 8
    span = width - label_w - 50
    row_h = bar * 3 + gap
    height = len(units) * row_h + 26
    parts = [f'<svg class="mb-chart" role="img" aria-label="{escape(label)}" '
             f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" style="{FONT}" '
             'xmlns="http://www.w3.org/2000/svg">']
    for j, label in enumerate(labels):
        parts.append(f'<rect x="{label_w + j * 150}" y="2" width="10" height="10" '
                     f'fill="{PALETTE[j]}"/><text x="{label_w + j * 150 + 14}" y="11" '
                     f'font-size="11">{escape(label)}</text>')
    for i, u in enumerate(units):
        y = 22 + i * row_h
        parts.append(f'<text x="{label_w - 6}" y="{y + bar * 2}" font-size="11" '
                     f'text-anchor="end">{escape(u["unit"]["name"])}</text>')
        for j, key in enumerate(keys):
            value = u.get(key)
            w = span * (value or 0)
            parts.append(f'<rect x="{label_w}" y="{y + j * bar}" width="{w:.1f}" '
                         f'height="{bar - 1}" fill="{PALETTE[j]}"/>')
            text = "—" if value is None else f"{value * 100:.1f}%"
            parts.append(f'<text x="{label_w + w + 3:.1f}" y="{y + j * bar + bar - 1}" '
                         f'font-size="8">{text}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


# --------------------------------------------------------------------------- pages and API


def _month(default_offset: int = 0) -> date:
    return matter_stats.parse_month(request.args.get("month"), default_offset=default_offset)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


@bp.get("/matters/bulletin")
def bulletin_page() -> Response:
    """Serve the printable monthly bulletin (?month=YYYY-MM, default last month)."""
    actor = current_actor()
    month = _month(-1)
    data = matter_stats.bulletin(get_session(), actor, month)
    lang = g.lang
    name_key = "name_en" if lang == "en" else "name_zh"
    s = data["summary"]
    charts = {
        "daily": column_chart([(d["day"][5:], d["count"]) for d in s["by_day"]],
                              label=i18n.translate("mb_daily")),
        "sources": hbar_chart([(i18n.translate(f"msrc_{x['source']}"), x["count"])
                               for x in s["by_source"]], label=i18n.translate("mb_sources")),
        "rates": rates_chart(data["units"][:15], [i18n.translate("mb_completion_rate"),
                                                  i18n.translate("mb_on_time_rate"),
                                                  i18n.translate("mb_satisfaction_rate")],
                             label=i18n.translate("mb_rates_chart")),
        "categories": hbar_chart([(c[name_key], c["count"])
                                  for c in data["hotspots"]["categories"]], color=PALETTE[3],
                                 label=i18n.translate("mb_hot_categories")),
        "areas": hbar_chart([(c[name_key], c["count"]) for c in data["hotspots"]["areas"]],
                            color=PALETTE[4], label=i18n.translate("mb_areas")),
        "towns": hbar_chart([(t["name"] or t["code"], t["count"])
                             for t in data["hotspots"]["towns"]], color=PALETTE[1],
                            label=i18n.translate("mb_towns")),
    }
    html = render_template(
        "matter_bulletin.html", data=data, charts=charts, month=f"{month:%Y-%m}",
        prev_month=f"{matter_stats.shift_month(month, -1):%Y-%m}",
        next_month=f"{matter_stats.shift_month(month, 1):%Y-%m}", lang=lang,
        name_key=name_key, pct=_pct, actor=actor,
    )
    resp = Response(html, mimetype="text/html")
    resp.headers["Cache-Control"] = "no-cache"
    return resp


@bp.get("/api/matters/stats")
def stats():
    """Monthly statistics of the caller's matters.
    ---
    get:
      summary: Month totals, per-unit rates, hot spots, repeats and the overdue scan
      parameters:
        - {in: query, name: month, schema: {type: string, pattern: '^\\d{4}-\\d{2}$'},
           description: 'YYYY-MM (default: this month)'}
      responses:
        200: {description: '{month, summary, units, hotspots, repeats, overdue}'}
        400: {description: Bad month}
    """
    actor = current_actor()
    month = _month(0)
    session = get_session()
    data = matter_stats.bulletin(session, actor, month)
    data.pop("lookback")
    data["month"] = f"{month:%Y-%m}"
    data["overdue"] = matter_stats.overdue_scan(session, actor=actor)
    return jsonify(data)


@bp.get("/api/matters/lookback")
def lookback():
    """A month's look-back list.
    ---
    get:
      summary: The look-back (回头看) list of a month, struck-off matters marked
      parameters:
        - {in: query, name: month, schema: {type: string}, description: 'YYYY-MM (default: last month)'}
      responses:
        200: {description: '{month, total, open, struck, items}'}
    """
    return jsonify(matter_stats.lookback_list(get_session(), current_actor(), _month(-1)))


@bp.post("/api/matters/lookback/run")
def run_lookback():
    """Run the monthly look-back.
    ---
    post:
      summary: List last month's unresolved and unsatisfied matters and re-assign them
      description: District-center operators only. Idempotent per month.
      parameters:
        - {in: query, name: month, schema: {type: string}, description: 'YYYY-MM (default: last month)'}
      responses:
        200: {description: '{month, listed, unresolved, unsatisfied, reopened, transferred, struck}'}
        403: {description: Not an operator of the district center}
    """
    body = request.get_json(silent=True) if request.is_json else None
    raw = body.get("month") if isinstance(body, dict) else None
    month = matter_stats.parse_month(raw if raw is not None else request.args.get("month"),
                                     default_offset=-1)
    session = get_session()
    result = matter_stats.run_lookback(session, current_actor(), month)
    session.commit()
    return jsonify(result)


@bp.get("/api/grids/<code>/patrols")
def patrols(code: str):
    """A grid's patrol records.
    ---
    get:
      summary: Patrols of a grid per worker and day, with the matters each worker reported
      parameters:
        - {in: query, name: day, schema: {type: string, format: date}}
        - {in: query, name: from, schema: {type: string, format: date}}
        - {in: query, name: to, schema: {type: string, format: date}}
        - {in: query, name: worker, schema: {type: integer}}
      responses:
        200: {description: '{from, to, total, items}'}
        404: {description: Grid outside the caller's area}
    """
    worker = request.args.get("worker")
    if worker is not None and not (worker.isdigit() and len(worker) < 10):
        raise InvalidInput("worker must be a grid worker's id")
    return jsonify(grid_patrols.list_patrols(
        get_session(), current_actor(), grid_code=code,
        worker_id=int(worker) if worker else None, day=request.args.get("day"),
        date_from=request.args.get("from"), date_to=request.args.get("to")))


@bp.post("/api/grids/<code>/patrols")
def record_patrol(code: str):
    """Record a patrol.
    ---
    post:
      summary: Record one patrol of a grid by one of its workers
      requestBody:
        content:
          application/json:
            schema:
              type: object
              required: [worker_id, started_at, ended_at]
              properties:
                worker_id: {type: integer}
                started_at: {type: string, format: date-time}
                ended_at: {type: string, format: date-time}
                distance_m: {type: number}
                places_visited: {type: integer}
                note: {type: string}
      responses:
        201: {description: The recorded patrol}
        400: {description: Worker not of this grid, times not sane, bad numbers}
        404: {description: Grid outside the caller's area}
    """
    session = get_session()
    patrol = grid_patrols.record_patrol(session, current_actor(), code, json_object())
    session.commit()
    return jsonify(patrol), 201
