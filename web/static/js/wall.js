/* Map wall: towns, communities and grids as vector layers, 8,600 cameras clustered
 * with supercluster and drawn on one canvas, live status polling, search, side
 * panels and a touring wall mode. Every data string is rendered as text. */
(function () {
  "use strict";

  var G = window.gridmap;
  var el = G.el;
  var t = G.t;
  var W = {};
  var S = {
    map: null, mode: "desk", dark: false, colorMode: "status",
    layers: {}, specs: {}, on: {}, areas: {}, grid: { byCode: {}, labels: [] },
    cam: null, filters: { sources: null, statuses: null, tagMask: null, tags: [] },
    panel: null, since: null, polls: 0, statusVersion: 0, objectUrl: null,
    tour: { views: [], i: 0, timer: null, on: false }, searchSeq: 0, touched: false,
    loaded: {}, highlight: null, fresh: {}
  };

  var STATUS_COLORS = { unknown: "#9aa3ad", online: "#1a9850", offline: "#d73027",
                        no_signal: "#5b3a8c", frozen: "#3b8bd0", degraded: "#f4a30b" };
  var SOURCE_COLORS = { skynet: "#1f77b4", sharp_eyes: "#2ca02c", environment: "#17becf",
                        water: "#0b4f8a", housing: "#8c564b", urban_management: "#ff7f0e",
                        traffic: "#d62728", education: "#9467bd", other: "#7f7f7f" };
  var KIND_FILL = { urban: "#2b8cbe", rural: "#74c476", special: "#fd8d3c" };
  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var TZ = G.TZ;  // the command centre's clock, whatever the browser's zone
  var SEARCH_OK = /^[\p{L}\p{N} \-·.()（）#/、+]+$/u;

  // ------------------------------------------------------------------ formatting

  function lang() { return (window.GRIDMAP || {}).lang === "en" ? "en" : "zh"; }
  function tf(key, vars) {
    return t(key).replace(/\{(\w+)\}/g, function (m, k) { return vars[k] !== undefined ? vars[k] : m; });
  }
  function fmtNum(n) {
    return typeof n === "number" ? n.toLocaleString(lang() === "en" ? "en-US" : "zh-CN") : String(n);
  }
  function fmtPct(rate) { return rate === null || rate === undefined ? t("wall_not_checked") : (rate * 100).toFixed(1) + "%"; }

  var partsFormat = null;
  try {
    partsFormat = new Intl.DateTimeFormat("en-GB", { timeZone: TZ, year: "numeric", month: "numeric",
      day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23" });
  } catch (e) { partsFormat = null; }

  function dateParts(d) {
    if (!partsFormat) {
      return { year: d.getFullYear(), month: d.getMonth() + 1, day: d.getDate(),
               hour: pad(d.getHours()), minute: pad(d.getMinutes()), second: pad(d.getSeconds()) };
    }
    var out = {};
    partsFormat.formatToParts(d).forEach(function (p) { out[p.type] = p.value; });
    return out;
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }

  /* 2026年11月26日 15:30 in Chinese, 26 Nov 2026 15:30 in English (Beijing time). */
  function fmtDateTime(value, seconds) {
    if (value === null || value === undefined || value === "") { return ""; }
    var d = value instanceof Date ? value : new Date(value);
    if (isNaN(d.getTime())) { return String(value); }
    var p = dateParts(d);
    var hm = p.hour + ":" + p.minute + (seconds ? ":" + p.second : "");
    if (lang() === "en") { return Number(p.day) + " " + MONTHS[Number(p.month) - 1] + " " + p.year + " " + hm; }
    return p.year + "年" + Number(p.month) + "月" + Number(p.day) + "日 " + hm;
  }
  function fmtAge(seconds) {
    var s = Math.max(0, Math.round(Number(seconds) || 0));
    if (s < 60) { return tf("wall_age_s", { n: s }); }
    if (s < 3600) { return tf("wall_age_m", { n: Math.floor(s / 60) }); }
    if (s < 86400) { return tf("wall_age_h", { n: Math.floor(s / 3600) }); }
    return tf("wall_age_d", { n: Math.floor(s / 86400) });
  }
  function sourceLabel(s) { return t("src_" + s); }
  function statusLabel(s) { return t("st_" + s); }
  // A coded value's name in the page's language, or the value itself where it has none.
  function labelOr(prefix, value) { var k = prefix + value; var v = t(k); return v === k ? value : v; }
  function tagLabel(tag) { return labelOr("wall_tag_", tag); }
  function placeLabel(kind) { return labelOr("wall_place_", kind); }

  function getJson(url) {
    // No extra headers: the page preloads the default layers and fetch() must match them.
    return fetch(url).then(function (r) {
      if (r.status === 404) { return null; }
      if (!r.ok) { throw new Error(r.status + " " + url); }
      return r.json();
    });
  }
  function mark(name) { try { performance.mark(name); } catch (e) { /* older browsers */ } }
  function setFlag(name, value) { document.documentElement.setAttribute("data-" + name, String(value)); }
  function afterPaint(fn) { requestAnimationFrame(function () { setTimeout(fn, 0); }); }

  // ------------------------------------------------------------------ datum (GCJ-02)

  /* GCJ-02 forward transform (the published Krasovsky-ellipsoid formula) and its
   * fixed-point inverse. Used only when the base tiles are GCJ-02 (AMap/Gaode):
   * overlays are stored in WGS-84 and shifted for drawing, clicks are shifted back. */
  var datum = (function () {
    var A = 6378245.0;
    var EE = 0.00669342162296594323;
    var PI = Math.PI;
    function offsets(x, y) {
      var common = 2 * Math.sin(6 * x * PI) + 2 * Math.sin(2 * x * PI);
      var dLat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x)) +
        (common + 2 * Math.sin(y * PI) + 4 * Math.sin(y / 3 * PI) +
         16 * Math.sin(y / 12 * PI) + 32 * Math.sin(y / 30 * PI)) * 20 / 3;
      var dLon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x)) +
        (common + 2 * Math.sin(x * PI) + 4 * Math.sin(x / 3 * PI) +
         15 * Math.sin(x / 12 * PI) + 30 * Math.sin(x / 30 * PI)) * 20 / 3;
      return [dLon, dLat];  // metres
    }
    function wgs84ToGcj02(lon, lat) {
      var d = offsets(lon - 105, lat - 35);
      var rad = lat * PI / 180;
      var magic = 1 - EE * Math.sin(rad) * Math.sin(rad);
      var latArc = (A * (1 - EE)) / Math.pow(magic, 1.5) * PI / 180;  // metres per degree
      var lonArc = A * Math.cos(rad) / Math.sqrt(magic) * PI / 180;
      return [lon + d[0] / lonArc, lat + d[1] / latArc];
    }
    function gcj02ToWgs84(lon, lat) {
      var x = lon, y = lat;
      for (var i = 0; i < 12; i++) {
        var g = wgs84ToGcj02(x, y);
        var dx = g[0] - lon, dy = g[1] - lat;
        x -= dx; y -= dy;
        if (Math.abs(dx) < 1e-10 && Math.abs(dy) < 1e-10) { break; }
      }
      return [x, y];
    }
    return { wgs84ToGcj02: wgs84ToGcj02, gcj02ToWgs84: gcj02ToWgs84 };
  })();

  function shifted() { return W.datum === "gcj02"; }
  /* WGS-84 lon/lat -> the map's LatLng (shifted onto GCJ-02 tiles when needed). */
  function toMap(lon, lat) {
    if (shifted()) { var p = datum.wgs84ToGcj02(lon, lat); return L.latLng(p[1], p[0]); }
    return L.latLng(lat, lon);
  }
  /* The map's LatLng (e.g. a click) -> WGS-84 {lon, lat} for the API. */
  function fromMap(ll) {
    if (shifted()) { var p = datum.gcj02ToWgs84(ll.lng, ll.lat); return { lon: p[0], lat: p[1] }; }
    return { lon: ll.lng, lat: ll.lat };
  }
  function coordsToLatLng(c) { return toMap(c[0], c[1]); }
  function bboxBounds(b) { return L.latLngBounds(toMap(b[0], b[1]), toMap(b[2], b[3])); }

  // ------------------------------------------------------------------ styles

  function gridStyle(f) {
    var fill = KIND_FILL[f.properties.kind] || "#999";
    var choropleth = S.on.coverage || S.on.online_rate;
    return S.dark
      ? { color: "#5d8fbf", weight: 0.8, opacity: 0.8, fillColor: fill, fillOpacity: choropleth ? 0 : 0.07 }
      : { color: "#35506b", weight: 0.8, opacity: 0.9, fillColor: fill, fillOpacity: choropleth ? 0 : 0.14 };
  }
  var SELECTED_STYLE = { color: "#ffb000", weight: 4, opacity: 1, fillOpacity: 0.28, fillColor: "#ffd54f" };
  function boundaryStyle(level) {
    if (level === "town") {
      return S.dark ? { color: "#ff8a80", weight: 2.5, dashArray: "8 5", fill: false }
                    : { color: "#b2182b", weight: 2.5, dashArray: "6 4", fill: false };
    }
    return S.dark ? { color: "#b39ddb", weight: 1, opacity: 0.7, fill: false }
                  : { color: "#6a51a3", weight: 1.1, opacity: 0.8, fill: false };
  }
  function ramp(v) {
    if (v === null || v === undefined || isNaN(v)) { return "#bdbdbd"; }
    var stops = ["#d73027", "#fc8d59", "#fee08b", "#91cf60", "#1a9850"];
    return stops[Math.max(0, Math.min(4, Math.floor(v * 5 - 1e-9)))];
  }

  // ------------------------------------------------------------------ boundaries

  function addBoundaries(spec) {
    var level = spec.options.level;
    var byCode = {};
    var layer = L.geoJSON(null, {
      coordsToLatLng: coordsToLatLng,
      renderer: S.renderers.areas,
      interactive: false,
      style: function () { return boundaryStyle(level); },
      onEachFeature: function (f, lyr) { byCode[f.properties.code] = lyr; }
    });
    S.areas[level] = { layer: layer, byCode: byCode, labels: [] };
    S.layers[spec.key] = layer;
    return getJson(spec.url).then(function (data) {
      layer.addData(data || { type: "FeatureCollection", features: [] });
      if (S.on[spec.key]) { layer.addTo(S.map); }
      var labels = [];
      layer.eachLayer(function (lyr) {
        var p = lyr.feature.properties;
        labels.push({ code: p.code, name: p.name, at: labelPoint(lyr) });
      });
      S.areas[level].labels = labels;
      setFlag("wall-" + spec.key, labels.length);
      S.loaded[spec.key] = true;
      if (level === "town") { buildTour(); fitDistrict(); }
      updateLabels();
      checkReady();
    });
  }

  function fitDistrict() {
    var towns = S.areas.town && S.areas.town.layer;
    if (!towns || S.touched || !towns.getLayers().length) { return; }
    S.map.fitBounds(towns.getBounds(), { padding: [12, 12], animate: false });
  }

  // ------------------------------------------------------------------ grids

  function addGrids(spec) {
    var layer = L.geoJSON(null, {
      coordsToLatLng: coordsToLatLng,
      style: gridStyle,
      // Canvas, not SVG: re-rendering 930 SVG paths on every zoom was the wall's
      // largest main-thread cost; Leaflet's canvas keeps clicks, hover and tooltips.
      renderer: S.renderers.grids,
      onEachFeature: function (f, lyr) {
        var p = f.properties;
        S.grid.byCode[p.code] = lyr;
        lyr.bindTooltip(function () {
          return el("div", { class: "wall-tip" }, [
            el("div", { class: "wall-tip-name", text: p.name }),
            el("div", { class: "wall-tip-code", text: p.code })
          ]);
        }, { sticky: true, direction: "top", offset: [0, -8] });
        lyr.on("click", function (e) {
          L.DomEvent.stopPropagation(e);
          if (cameraClick(e.containerPoint)) { return; }
          selectGrid(p.code, { fit: false });
        });
        lyr.on("mouseover", function () { if (S.grid.selected !== p.code) { lyr.setStyle({ weight: 2.2 }); } });
        lyr.on("mouseout", function () { if (S.grid.selected !== p.code) { layer.resetStyle(lyr); } });
      }
    });
    S.layers.grids = layer;
    return getJson(spec.url).then(function (data) {
      S.grid.data = data || { type: "FeatureCollection", features: [] };
      if (S.on.grids) { layer.addTo(S.map); }
      layer.addData(S.grid.data);
      var labels = [];
      layer.eachLayer(function (lyr) {
        var p = lyr.feature.properties;
        labels.push({ code: p.code, name: p.name, at: labelPoint(lyr) });
      });
      S.grid.labels = labels;
      afterPaint(function () {
        mark("wall:grids-drawn");
        setFlag("wall-grids", S.grid.data.features.length);
        S.loaded.grids = true;
        updateLabels();
        checkReady();
      });
    });
  }

  function selectGrid(code, opts) {
    var lyr = S.grid.byCode[code];
    clearSelection();
    S.grid.selected = code;
    if (lyr) {
      lyr.setStyle(SELECTED_STYLE);
      if (S.on.grids) { lyr.bringToFront(); }
      setFlag("wall-selected-grid", code);
    }
    openGridPanel(code);  // first: the fit aims beside it (fitUncovered)
    if (opts && opts.fit && lyr) {
      fitUncovered(lyr.getBounds(), { padding: 60, maxZoom: 17 });
    } else if (opts && opts.bbox && !lyr) {
      fitUncovered(bboxBounds(opts.bbox), { padding: 60, maxZoom: 17 });
    }
  }

  function clearSelection() {
    var prev = S.grid.selected && S.grid.byCode[S.grid.selected];
    if (prev) { S.layers.grids.resetStyle(prev); }
    S.grid.selected = null;
    setFlag("wall-selected-grid", "");
    S.highlightLayer.clearLayers();
    if (S.cam) { S.cam.selected = -1; S.cam.highlight = null; redrawCameras(); }
  }

  // ------------------------------------------------------------------ labels

  var FONT = "'Noto Sans CJK SC', 'Noto Sans SC', sans-serif";
  var LABEL_STYLES = {
    town: { font: "700 17px", fill: ["#9e1a28", "#ffb3ad"], lines: function (i) { return [i.name]; } },
    community: { font: "500 12px", fill: ["#4a3a86", "#d1c4e9"], lines: function (i) { return [i.name]; } },
    grid: { font: "600 12px", sub: "500 10px", fill: ["#1d2b3a", "#e3edf7"],
            lines: function (i) { return [i.name, i.code]; } }
  };

  /* Labels of the towns, communities and grids on one canvas: hundreds of DOM markers
   * cost more than the rest of a zoom; text drawn on a canvas never runs as markup.
   * Labels that would overlap an already placed one are skipped (towns win). */
  function drawLabels(ctx, layer) {
    var map = S.map, z = map.getZoom(), origin = layer._topLeft, bounds = layer._bounds;
    var big = S.dark ? 1.3 : 1;
    var placed = [];
    var drawn = [];
    function visible(spec, key) {
      var o = (spec && spec.options) || {};
      return S.on[key] && spec && (o.labels_min_zoom === undefined || z >= o.labels_min_zoom) &&
             (o.labels_max_zoom === undefined || z < o.labels_max_zoom + 1);
    }
    function group(items, kind, cap) {
      var style = LABEL_STYLES[kind];
      var main = style.font.replace(/(\d+)px/, function (m, n) { return Math.round(n * big) + "px"; }) + " " + FONT;
      var sub = style.sub ? style.sub.replace(/(\d+)px/, function (m, n) { return Math.round(n * big) + "px"; }) + " " + FONT : main;
      var size = parseInt(main.match(/(\d+)px/)[1], 10);
      var shown = 0;
      for (var n = 0; n < items.length && shown < cap; n++) {
        var item = items[n];
        if (!bounds.contains(item.at)) { continue; }
        var lines = style.lines(item);
        var p = map.latLngToLayerPoint(item.at).subtract(origin);
        ctx.font = main;
        var w = ctx.measureText(lines[0]).width;
        if (lines[1]) { ctx.font = sub; w = Math.max(w, ctx.measureText(lines[1]).width); }
        var h = size * 1.25 * lines.length;
        var box = [p.x - w / 2 - 3, p.y - h / 2 - 2, p.x + w / 2 + 3, p.y + h / 2 + 2];
        var clash = false;
        for (var k = 0; k < placed.length && !clash; k++) {
          var o = placed[k];
          clash = box[0] < o[2] && box[2] > o[0] && box[1] < o[3] && box[3] > o[1];
        }
        if (clash) { continue; }
        placed.push(box);
        shown++;
        for (var l = 0; l < lines.length; l++) {
          ctx.font = l === 0 ? main : sub;
          var y = p.y - h / 2 + size * 1.25 * (l + 0.5);
          ctx.strokeText(lines[l], p.x, y);
          ctx.fillText(lines[l], p.x, y);
          drawn.push(lines[l]);
        }
      }
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "middle";
    ctx.lineJoin = "round";
    ctx.lineWidth = 3;
    ctx.strokeStyle = S.dark ? "rgba(0, 0, 0, 0.85)" : "rgba(255, 255, 255, 0.9)";
    var shade = S.dark ? 1 : 0;
    if (S.areas.town && visible(S.specs.towns, "towns")) {
      ctx.fillStyle = LABEL_STYLES.town.fill[shade];
      group(S.areas.town.labels, "town", 50);
    }
    if (S.areas.community && visible(S.specs.communities, "communities")) {
      ctx.fillStyle = LABEL_STYLES.community.fill[shade];
      group(S.areas.community.labels, "community", 200);
    }
    if (visible(S.specs.grids, "grids")) {
      ctx.fillStyle = LABEL_STYLES.grid.fill[shade];
      group(S.grid.labels, "grid", 250);
    }
    S.labelsDrawn = drawn;
  }

  function updateLabels() { if (S.labelCanvas) { S.labelCanvas.redraw(); } }

  /* The polygon's centroid (inside for the compact shapes of grids), else its bbox centre. */
  function labelPoint(lyr) {
    try { return lyr.getCenter(); } catch (e) { return lyr.getBounds().getCenter(); }
  }

  // ------------------------------------------------------------------ cameras

  /* A canvas over the view (plus padding) that follows pans for free, scales during
   * zoom animations and is redrawn by ``options.draw(ctx, layer)`` on moveend. */
  var CanvasOverlay = L.Layer.extend({
    options: { pane: "overlayPane", padding: 0.15, className: "", draw: null },

    initialize: function (options) { L.setOptions(this, options); },

    onAdd: function (map) {
      this._canvas = L.DomUtil.create("canvas", this.options.className + " leaflet-zoom-animated");
      this.getPane().appendChild(this._canvas);
      this._ctx = this._canvas.getContext("2d");
      map.on("moveend viewreset resize", this._reset, this);
      map.on("zoomanim", this._onAnimZoom, this);
      map.on("zoom", this._onZoom, this);
      this._reset();
    },

    onRemove: function (map) {
      map.off("moveend viewreset resize", this._reset, this);
      map.off("zoomanim", this._onAnimZoom, this);
      map.off("zoom", this._onZoom, this);
      L.DomUtil.remove(this._canvas);
      this._canvas = null;
      if (this.options.removed) { this.options.removed(); }
    },

    _onAnimZoom: function (e) { this._updateTransform(e.center, e.zoom); },
    _onZoom: function () { this._updateTransform(this._map.getCenter(), this._map.getZoom()); },

    _updateTransform: function (center, zoom) {
      // Scale the last drawing around its top-left until moveend redraws it.
      var scale = this._map.getZoomScale(zoom, this._zoom);
      var offset = this._map._latLngToNewLayerPoint(this._topLeftLatLng, zoom, center);
      L.DomUtil.setTransform(this._canvas, offset, scale);
    },

    _reset: function () {
      var map = this._map;
      var size = map.getSize();
      var min = size.multiplyBy(-this.options.padding).round();
      var max = size.multiplyBy(1 + this.options.padding).round();
      var topLeft = map.containerPointToLayerPoint(min);
      var ratio = window.devicePixelRatio || 1;
      var w = max.x - min.x, h = max.y - min.y;
      this._topLeft = topLeft;
      this._topLeftLatLng = map.layerPointToLatLng(topLeft);
      this._zoom = map.getZoom();
      this._bounds = L.latLngBounds(map.containerPointToLatLng(L.point(min.x, max.y)),
                                    map.containerPointToLatLng(L.point(max.x, min.y)));
      L.DomUtil.setPosition(this._canvas, topLeft);
      this._canvas.width = Math.round(w * ratio);
      this._canvas.height = Math.round(h * ratio);
      this._canvas.style.width = w + "px";
      this._canvas.style.height = h + "px";
      this._ratio = ratio;
      this.redraw();
    },

    redraw: function () {
      if (!this._canvas) { return; }
      this._ctx.setTransform(this._ratio, 0, 0, this._ratio, 0, 0);
      this._ctx.clearRect(0, 0, this._canvas.width, this._canvas.height);
      this.options.draw(this._ctx, this);
    }
  });

  /* Every camera on one canvas: supercluster answers "what is visible at this zoom"
   * and only those clusters and points are drawn; hit-testing is done here too. */
  var CameraCanvas = CanvasOverlay.extend({
    options: { pane: "wallCameras", className: "wall-camera-canvas",
               draw: function (ctx, layer) { layer.drawCameras(ctx); },
               removed: function () { S.cam.hits = []; } },

    drawCameras: function (ctx) {
      var map = this._map, cam = S.cam, origin = this._topLeft;
      var hits = [];
      if (!cam.index) { cam.hits = hits; return; }
      var b = this._bounds;
      var z = Math.round(map.getZoom());
      var items = cam.index.getClusters([Math.max(-180, b.getWest()), Math.max(-85, b.getSouth()),
                                         Math.min(180, b.getEast()), Math.min(85, b.getNorth())], z);
      var big = S.dark ? 1.35 : 1;
      var dotR = (z >= 17 ? 6 : z >= 15 ? 5 : 4) * big;
      var keys = S.colorMode === "status" ? W.statuses : W.sources;
      var palette = S.colorMode === "status" ? STATUS_COLORS : SOURCE_COLORS;
      var font = "600 " + Math.round(12 * big) + "px sans-serif";
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      for (var n = 0; n < items.length; n++) {
        var f = items[n];
        var c = f.geometry.coordinates;
        var p = map.latLngToLayerPoint([c[1], c[0]]).subtract(origin);
        var props = f.properties;
        if (props.cluster) {
          var count = props.point_count;
          // At most ~2/3 of the clustering radius across, so neighbours rarely overlap.
          var r = (11 + Math.min(13, Math.log(count) * 2.2)) * big;
          var start = -Math.PI / 2;
          ctx.lineWidth = 5 * big;
          for (var k = 0; k < keys.length; k++) {
            var part = props["c" + k];
            if (!part) { continue; }
            var end = start + 2 * Math.PI * part / count;
            ctx.beginPath();
            ctx.strokeStyle = palette[keys[k]];
            ctx.arc(p.x, p.y, r, start, end);
            ctx.stroke();
            start = end;
          }
          ctx.beginPath();
          ctx.fillStyle = S.dark ? "rgba(10, 22, 36, 0.92)" : "rgba(255, 255, 255, 0.92)";
          ctx.arc(p.x, p.y, r - 2.5 * big, 0, 2 * Math.PI);
          ctx.fill();
          ctx.fillStyle = S.dark ? "#e8f1fb" : "#1d2b3a";
          ctx.font = font;
          ctx.fillText(count >= 1000 ? (count / 1000).toFixed(1) + "k" : String(count), p.x, p.y + 0.5);
          hits.push({ x: p.x, y: p.y, r: r + 2, cluster: props.cluster_id, lat: c[1], lng: c[0] });
        } else {
          var i = props.i;
          ctx.beginPath();
          ctx.arc(p.x, p.y, dotR, 0, 2 * Math.PI);
          ctx.fillStyle = colorOf(i);
          ctx.fill();
          ctx.lineWidth = 1.5;
          ctx.strokeStyle = S.dark ? "#0b1622" : "#ffffff";
          ctx.stroke();
          hits.push({ x: p.x, y: p.y, r: dotR + 3, i: i });
        }
      }
      // Highlighted cameras (a grid's "show cameras", nearby) are drawn unclustered on top.
      var rings = [];
      if (cam.highlight) { cam.highlight.forEach(function (i) { rings.push([i, "#00bcd4", dotR + 4]); }); }
      if (cam.selected >= 0) { rings.push([cam.selected, "#ffb000", dotR + 6]); }
      for (var h = 0; h < rings.length; h++) {
        var j = rings[h][0];
        var q = map.latLngToLayerPoint([cam.mlat[j], cam.mlng[j]]).subtract(origin);
        ctx.beginPath();
        ctx.arc(q.x, q.y, dotR, 0, 2 * Math.PI);
        ctx.fillStyle = colorOf(j);
        ctx.fill();
        ctx.beginPath();
        ctx.lineWidth = 3;
        ctx.strokeStyle = rings[h][1];
        ctx.arc(q.x, q.y, rings[h][2], 0, 2 * Math.PI);
        ctx.stroke();
        hits.push({ x: q.x, y: q.y, r: dotR + 3, i: j });
      }
      cam.hits = hits;
    },

    /* The topmost cluster or camera under a container point, or null. */
    hitAt: function (containerPoint) {
      if (!this._canvas) { return null; }
      var p = this._map.containerPointToLayerPoint(containerPoint).subtract(this._topLeft);
      var hits = S.cam.hits;
      for (var n = hits.length - 1; n >= 0; n--) {
        var dx = hits[n].x - p.x, dy = hits[n].y - p.y;
        if (dx * dx + dy * dy <= hits[n].r * hits[n].r) { return hits[n]; }
      }
      return null;
    },

    /* Canvas pixel colour at a container point (tests read what is really drawn). */
    pixelAt: function (containerPoint) {
      var p = this._map.containerPointToLayerPoint(containerPoint).subtract(this._topLeft);
      var d = this._ctx.getImageData(Math.round(p.x * this._ratio), Math.round(p.y * this._ratio), 1, 1).data;
      return [d[0], d[1], d[2], d[3]];
    }
  });

  function colorOf(i) {
    var cam = S.cam;
    return S.colorMode === "status" ? STATUS_COLORS[W.statuses[cam.st[i]]] || "#999"
                                    : SOURCE_COLORS[W.sources[cam.src[i]]] || "#999";
  }

  function addCameras(spec) {
    S.cam = { n: 0, ids: [], lon: null, lat: null, mlng: null, mlat: null, src: null, st: null,
              byId: {}, index: null, hits: [], selected: -1, highlight: null };
    var layer = new CameraCanvas();
    S.layers.cameras = layer;
    S.cameraLayer = layer;
    return getJson(spec.url).then(function (data) {
      var rows = (data && data.rows) || [];
      var n = rows.length, cam = S.cam;
      var srcMap = (data.sources || []).map(function (s) { return W.sources.indexOf(s); });
      var stMap = (data.statuses || []).map(function (s) { return W.statuses.indexOf(s); });
      cam.n = n;
      cam.lon = new Float64Array(n); cam.lat = new Float64Array(n);
      cam.mlng = new Float64Array(n); cam.mlat = new Float64Array(n);
      cam.src = new Uint8Array(n); cam.st = new Uint8Array(n); cam.sector = new Uint8Array(n);
      for (var i = 0; i < n; i++) {
        var row = rows[i];
        cam.ids.push(row[0]);
        cam.byId[row[0]] = i;
        cam.lon[i] = row[1]; cam.lat[i] = row[2];
        var ll = toMap(row[1], row[2]);
        cam.mlng[i] = ll.lng; cam.mlat[i] = ll.lat;
        cam.src[i] = Math.max(0, srcMap[row[3]]);
        cam.st[i] = Math.max(0, stMap[row[4]]);
        cam.sector[i] = row[5];
      }
      buildIndex();
      if (S.on.cameras) { layer.addTo(S.map); }
      renderLegend();
      afterPaint(function () {
        mark("wall:cameras-drawn");
        setFlag("wall-cameras", n);
        S.loaded.cameras = true;
        checkReady();
        startPolling();
        if (W.focus_camera && !S.focused) {
          S.focused = true;  // once: a later reload of the layer must not pull the view back
          openCamera(W.focus_camera, { fly: true });
        }
      });
    });
  }

  function passes(i) {
    var f = S.filters, cam = S.cam;
    if (f.sources && !f.sources[cam.src[i]]) { return false; }
    if (f.statuses && !f.statuses[cam.st[i]]) { return false; }
    if (f.tagMask && !f.tagMask[i]) { return false; }
    return true;
  }

  function buildIndex() {
    var cam = S.cam, feats = [];
    for (var i = 0; i < cam.n; i++) {
      if (!passes(i)) { continue; }
      feats.push({ type: "Feature", properties: { i: i },
                   geometry: { type: "Point", coordinates: [cam.mlng[i], cam.mlat[i]] } });
    }
    var dim = S.colorMode === "status" ? cam.st : cam.src;
    var kinds = S.colorMode === "status" ? W.statuses.length : W.sources.length;
    var index = new Supercluster({
      radius: 72 * (S.dark ? 1.35 : 1), maxZoom: 16, minPoints: 3,
      map: function (p) { var o = {}; o["c" + dim[p.i]] = 1; return o; },
      reduce: function (acc, p) {
        for (var k = 0; k < kinds; k++) {
          var key = "c" + k;
          if (p[key]) { acc[key] = (acc[key] || 0) + p[key]; }
        }
      }
    });
    index.load(feats);
    cam.index = index;
    cam.shown = feats.length;
    setFlag("wall-cameras-shown", feats.length);
  }

  var rebuildTimer = null;
  function rebuildSoon() {
    clearTimeout(rebuildTimer);
    rebuildTimer = setTimeout(function () { buildIndex(); redrawCameras(); }, 120);
  }
  function redrawCameras() { if (S.cameraLayer && S.cameraLayer._canvas) { S.cameraLayer.redraw(); } }

  function cameraClick(containerPoint) {
    if (!S.on.cameras || !S.cameraLayer) { return false; }
    var hit = S.cameraLayer.hitAt(containerPoint);
    if (!hit) { return false; }
    S.touched = true;
    stopTour();
    if (hit.cluster !== undefined) {
      var zoom = Math.min(S.map.getMaxZoom(), S.cam.index.getClusterExpansionZoom(hit.cluster));
      S.map.setView([hit.lat, hit.lng], zoom);
    } else {
      openCamera(S.cam.ids[hit.i], { fly: false });
    }
    return true;
  }

  function setTagFilter(tags) {
    S.filters.tags = tags;
    if (!tags.length) { S.filters.tagMask = null; rebuildSoon(); return; }
    getJson("/api/cameras/layer.json?tag=" + encodeURIComponent(tags.join(","))).then(function (data) {
      var mask = new Uint8Array(S.cam.n);
      ((data && data.rows) || []).forEach(function (row) {
        var i = S.cam.byId[row[0]];
        if (i !== undefined) { mask[i] = 1; }
      });
      S.filters.tagMask = mask;
      rebuildSoon();
    }).catch(function () { G.state.errors.push("tag filter"); });
  }

  // ------------------------------------------------------------------ live status

  function startPolling() {
    if (S.pollTimer) { return; }
    // The first poll (no ?since) returns every status and the server's clock.
    S.pollTimer = setTimeout(poll, 50);
  }

  function poll() {
    var feed = W.features.status_feed;
    var url;
    if (feed) {
      url = "/api/cameras/status.json";
      if (S.since) {
        // Overlap the window: a change stamped just before the last server_time can
        // commit after it was read; re-applying an unchanged status is a no-op.
        var since = new Date(new Date(S.since).getTime() - 30000);
        url += "?since=" + encodeURIComponent(isNaN(since.getTime()) ? S.since : since.toISOString());
      }
    } else {
      url = "/api/cameras/layer.json";  // no status feed yet: diff the full layer
    }
    tracked("cameras", getJson(url)).then(function (body) {
      if (body) {
        var rows = feed ? body.rows : body.rows.map(function (r) { return [r[0], r[4]]; });
        applyStatuses(body.statuses || [], rows || []);
        if (body.server_time) { S.since = body.server_time; }
      }
      S.polls++;
      setFlag("wall-polls", S.polls);
      setLive(true);
    }).catch(function () { setLive(false); }).then(function () {
      S.pollTimer = setTimeout(poll, W.poll_s * 1000 * (feed ? 1 : 3));
    });
  }

  function applyStatuses(names, rows) {
    var cam = S.cam, changed = 0;
    var map = names.map(function (s) { return W.statuses.indexOf(s); });
    for (var n = 0; n < rows.length; n++) {
      var i = cam.byId[rows[n][0]];
      var s = map[rows[n][1]];
      if (i === undefined || s === undefined || s < 0) { continue; }
      if (cam.st[i] !== s) { cam.st[i] = s; changed++; }
    }
    if (!changed) { return; }
    S.statusVersion++;
    S.lastChanged = changed;
    if (S.colorMode === "status" || S.filters.statuses) { rebuildSoon(); } else { redrawCameras(); }
    renderLegend();
    refreshPanelStatuses();
    setFlag("wall-status-version", S.statusVersion);
  }

  function setLive(ok) {
    var box = document.getElementById("wall-live");
    box.textContent = "";
    box.className = "wall-live " + (ok ? "ok" : "stale");
    box.appendChild(el("span", { class: "wall-live-dot" }));
    box.appendChild(el("span", { text: ok ? tf("wall_updated", { t: fmtDateTime(new Date(), true).split(" ").pop() })
                                         : t("load_failed") }));
  }

  // ------------------------------------------------------------------ optional layers

  function addChoropleth(spec) {
    var layer = L.geoJSON(null, {
      coordsToLatLng: coordsToLatLng, renderer: S.renderers.fill, interactive: false,
      style: function (f) {
        return { stroke: false, fillColor: ramp(f.properties[spec.options.property]),
                 fillOpacity: 0.55 * fade(spec.key) };
      }
    });
    S.layers[spec.key] = layer;
    layer.wallRestyle = function () { layer.setStyle(layer.options.style); };
    layer.wallLoad = loadAndRefresh(spec, layer, function () {
      if (layer.wallLoaded) { return null; }
      layer.wallLoaded = true;
      return getJson(spec.url).then(function (data) { if (data) { layer.addData(data); } })
        .catch(function (err) { layer.wallLoaded = false; throw err; });  // switched on again: tried again
    });
  }

  function addGridValues(spec) {
    var values = {};
    var layer = L.geoJSON(null, {
      coordsToLatLng: coordsToLatLng, renderer: S.renderers.fill, interactive: false,
      style: function (f) {
        var v = values[f.properties.code];
        var missing = v === undefined || v === null;
        // Grids without a figure: grey ("not measured") unless the layer says to leave them out.
        return { stroke: false, fillColor: ramp(v),
                 fillOpacity: (missing ? (spec.options.missing === "none" ? 0 : 0.2) : 0.55) * fade(spec.key) };
      }
    });
    S.layers[spec.key] = layer;
    layer.wallRestyle = function () { layer.setStyle(layer.options.style); };
    function refresh() {
      return getJson(spec.url).then(function (rows) {
        values = {};
        (Array.isArray(rows) ? rows : (rows && rows.items) || []).forEach(function (r) {
          values[r.key] = r[spec.options.property];
        });
        if (!layer.getLayers().length && S.grid.data) { layer.addData(S.grid.data); }
        layer.setStyle(layer.options.style);
      });
    }
    layer.wallLoad = loadAndRefresh(spec, layer, refresh);
  }

  function addBboxLayer(spec) {
    var color = spec.options.color || "#e6550d";
    var layer = L.geoJSON(null, {
      coordsToLatLng: coordsToLatLng, renderer: S.renderers.bbox, interactive: false,
      style: function () {
        var dim = fade(spec.key);
        return { color: color, weight: 1, opacity: dim, fillColor: color, fillOpacity: 0.25 * dim };
      }
    });
    var seq = 0;
    S.layers[spec.key] = layer;
    layer.wallRestyle = function () { layer.setStyle(layer.options.style); };
    layer.wallLoad = function () {
      var map = S.map;
      if (map.getZoom() < spec.min_zoom) { seq++; layer.clearLayers(); clearStale(spec.key); return; }
      var b = map.getBounds();
      var sw = fromMap(b.getSouthWest()), ne = fromMap(b.getNorthEast());
      var mine = ++seq;
      var bbox = [sw.lon, sw.lat, ne.lon, ne.lat].map(function (v) { return v.toFixed(5); }).join(",");
      tracked(spec.key, getJson(spec.url + "?bbox=" + bbox)).then(function (data) {
        if (mine !== seq || !data) { return; }
        layer.clearLayers();
        layer.addData(data);
      }).catch(function () { /* marked as not updated; the next move tries again */ });
    };
    S.map.on("moveend", function () { if (S.on[spec.key]) { layer.wallLoad(); } });
  }

  function addGeneric(spec) {
    var color = spec.options.color || "#e31a1c";
    var layer = L.geoJSON(null, {
      coordsToLatLng: coordsToLatLng,
      renderer: S.renderers.top,
      pointToLayer: function (f, ll) {
        // A feature may carry its own colour (e.g. a matter by state and deadline).
        var own = f.properties && /^#[0-9a-fA-F]{6}$/.test(f.properties.color || "") ? f.properties.color : color;
        var dim = fade(spec.key);
        return L.circleMarker(ll, { renderer: S.renderers.top, radius: 8, color: "#fff", weight: 2, opacity: dim,
                                    fillColor: own, fillOpacity: 0.95 * dim, className: "wall-" + spec.key });
      },
      style: function () {
        var dim = fade(spec.key);
        return { color: color, weight: 2, opacity: dim, fillOpacity: 0.2 * dim, className: "wall-" + spec.key };
      },
      onEachFeature: function (f, lyr) {
        var p = f.properties || {};
        var title = p.title || p.name;
        if (title) { lyr.bindTooltip(el("div", { text: String(title) })); }
        lyr.on("click", function (e) { L.DomEvent.stopPropagation(e); showFeaturePanel(spec, f); });
      }
    });
    S.layers[spec.key] = layer;
    function refresh() {
      return getJson(spec.url).then(function (data) {
        layer.wallData = data;
        layer.clearLayers();
        if (data) { layer.addData(data); }
        setFlag("wall-" + spec.key, data ? (data.features || []).length : 0);
      });
    }
    // Faded or not is in each feature's style: draw the last data again.
    layer.wallRestyle = function () {
      if (!layer.wallData) { return; }
      layer.clearLayers();
      layer.addData(layer.wallData);
    };
    layer.wallLoad = loadAndRefresh(spec, layer, refresh);
  }

  /* First load (counted for "ready" when the layer is on by default), then a timer.
   * A later refresh that fails (timer, or the layer switched on again) keeps the layer
   * as last drawn, marked as not updated (see "freshness"), and is tried again at the
   * next tick; its rejection is handled here, never left uncaught. */
  function loadAndRefresh(spec, layer, refresh) {
    function again() {
      var next = tracked(spec.key, refresh());
      if (next && typeof next.catch === "function") { next.catch(function () { /* next tick */ }); }
    }
    return function () {
      if (layer.wallFirst) { again(); } else {
        var first = tracked(spec.key, refresh());
        if (first) {
          layer.wallFirst = first.catch(function (err) { G.state.errors.push(String(err)); })
            .then(function () { S.loaded[spec.key] = true; checkReady(); });
        }
      }
      if (spec.refresh_s && !layer.wallTimer) {
        layer.wallTimer = setInterval(function () { if (S.on[spec.key]) { again(); } }, spec.refresh_s * 1000);
      }
    };
  }

  function addHeat(spec) {
    if (typeof L.heatLayer !== "function") { return; }
    var layer = L.heatLayer([], { radius: 22, blur: 18, pane: "wallFill" });
    S.layers[spec.key] = layer;
    function refresh() {
      return getJson(spec.url).then(function (data) {
        var pts = ((data && data.points) || []).map(function (p) {
          var ll = toMap(p[0], p[1]);
          return [ll.lat, ll.lng, p[2] === undefined ? 1 : p[2]];
        });
        layer.setLatLngs(pts);
      });
    }
    // The heat has a canvas of its own (once shown): wall.css fades it.
    layer.wallRestyle = function () {
      if (layer._canvas) { layer._canvas.classList.toggle("wall-stale-layer", isStale(spec.key)); }
    };
    layer.wallLoad = loadAndRefresh(spec, layer, refresh);
  }

  // ------------------------------------------------------------------ freshness

  /* Each layer that loads data (and the camera status feed, under "cameras") keeps the
   * time of its last load that succeeded. When a load fails, what is drawn stays, but
   * marked: a line in the notice under the top bar ("... not updated · last updated
   * 10:42", or "... could not be loaded" when it never loaded), the layer drawn faded
   * and its entry in the layer list flagged. The next load that succeeds clears all
   * three. The notice is a role=status region rewritten only when what it says
   * changes, so a screen reader hears each change once, not every failed refresh. */
  var STALE_FADE = 0.35;

  function freshness(key) {
    return S.fresh[key] || (S.fresh[key] = { at: null, failed: false, tries: 0, settled: 0 });
  }
  /* Drawn from data that a later load failed to replace. */
  function isStale(key) { var f = S.fresh[key]; return !!(f && f.failed && f.at); }
  function fade(key) { return isStale(key) ? STALE_FADE : 1; }

  /* Record the outcome of a load (a promise; anything else is passed through) and
   * return a promise with the same outcome. An answer to an older try that arrives
   * after a newer one's is not recorded. */
  function tracked(key, loading) {
    if (!loading || typeof loading.then !== "function") { return loading; }
    var f = freshness(key);
    var mine = ++f.tries;
    function settle(ok) {
      if (mine <= f.settled) { return; }
      f.settled = mine;
      var was = isStale(key);
      if (ok) { f.at = new Date(); f.failed = false; } else { f.failed = true; }
      if (isStale(key) !== was) { markLayer(key); }
      renderStale();
    }
    return loading.then(function (value) { settle(true); return value; },
                        function (err) { settle(false); throw err; });
  }

  /* Nothing of the layer is drawn any more (a bbox layer zoomed out): nothing is stale. */
  function clearStale(key) {
    var f = S.fresh[key];
    if (!f) { return; }
    f.settled = f.tries;  // answers still on their way are not recorded
    if (!f.failed) { return; }
    var was = isStale(key);
    f.failed = false;
    if (was) { markLayer(key); }
    renderStale();
  }

  function markLayer(key) {
    var layer = S.layers[key];
    if (layer && layer.wallRestyle) { layer.wallRestyle(); }
    var input = document.querySelector('.wall-layers input[data-layer="' + key + '"]');
    if (input && input.parentNode) { input.parentNode.classList.toggle("wall-layer-stale", isStale(key)); }
  }

  /* The notice's lines: each layer switched on whose latest load failed. */
  function staleLines() {
    var lines = [], keys = [];
    W.layers.forEach(function (spec) {
      var f = S.fresh[spec.key];
      if (!f || !f.failed || !S.on[spec.key]) { return; }
      keys.push(spec.key);
      lines.push(f.at ? tf("wall_stale", { layer: t(spec.title), t: G.timeOfDay(f.at, lang()) })
                      : tf("wall_stale_never", { layer: t(spec.title) }));
    });
    return { keys: keys, lines: lines };
  }

  function renderStale() {
    var box = document.getElementById("wall-stale");
    var now = staleLines();
    setFlag("wall-stale", now.keys.join(" "));
    if (!box) { return; }
    var text = now.lines.join("\n");
    if (box.wallText === text) { return; }  // unchanged: not announced again
    box.wallText = text;
    box.textContent = "";
    now.lines.forEach(function (line) { box.appendChild(el("div", { class: "wall-stale-item", text: line })); });
  }

  var RENDERERS = {
    boundaries: addBoundaries, grids: addGrids, cameras: addCameras, choropleth: addChoropleth,
    grid_values: addGridValues, bbox: addBboxLayer, geojson: addGeneric, heat: addHeat
  };

  function setLayer(key, on) {
    S.on[key] = on;
    var layer = S.layers[key];
    if (layer) {
      if (on && !S.map.hasLayer(layer)) {
        layer.addTo(S.map);
        if (layer.wallLoad) { layer.wallLoad(); }
      } else if (!on && S.map.hasLayer(layer)) {
        S.map.removeLayer(layer);
      }
    }
    if (key === "coverage" || key === "online_rate") {
      if (S.layers.grids) { S.layers.grids.setStyle(gridStyle); reapplySelection(); }
    }
    if (key === "grids" && on) { reapplySelection(); }
    setFlag("wall-layer-" + key, on ? "on" : "off");
    updateLabels();
    renderLegend();
    renderStale();  // a layer switched off is not reported; switched on again, it is
  }

  function reapplySelection() {
    var lyr = S.grid.selected && S.grid.byCode[S.grid.selected];
    if (lyr) { lyr.setStyle(SELECTED_STYLE); lyr.bringToFront(); }
  }

  // ------------------------------------------------------------------ controls

  // On a phone the top bar spans the screen (wall.css): the map's top controls
  // start below it, at its height as it wraps, or the bar would cover them; the
  // stale-data notice under it pushes them down as well while it shows.
  // The observer reports the heights after layout (reading offsetHeight here
  // would force a layout of the whole page while it loads: 60 ms on the wall PC),
  // and a variable is written only when its height changes.
  function keepControlsBelowBar(bar, notice) {
    if (!window.ResizeObserver) { return; }
    var heights = {};
    var observer = new ResizeObserver(function (entries) {
      entries.forEach(function (entry) {
        var name = entry.target === bar ? "--wall-bar-h" : "--wall-stale-h";
        var box = entry.borderBoxSize;
        var h = Math.round(box && box.length ? box[0].blockSize : entry.contentRect.height);
        if (h !== heights[name]) { heights[name] = h; document.body.style.setProperty(name, h + "px"); }
      });
    });
    observer.observe(bar);
    if (notice) { observer.observe(notice); }
  }

  function layerControl() {
    var Ctl = L.Control.extend({
      options: { position: "topright" },
      onAdd: function () {
        var box = el("div", { class: "wall-control wall-layers" });
        var head = el("button", { type: "button", class: "wall-control-head", text: t("wall_layers") });
        var body = el("div", { class: "wall-control-body" });
        // Folded on a phone, where the open list would cover most of the map.
        function fold(folded) {
          box.classList.toggle("collapsed", folded);
          head.setAttribute("aria-expanded", folded ? "false" : "true");
        }
        fold(G.onPhone());
        head.addEventListener("click", function () { fold(!box.classList.contains("collapsed")); });
        box.appendChild(head);
        box.appendChild(body);
        W.layers.slice().reverse().forEach(function (spec) {
          var input = el("input", { type: "checkbox", "data-layer": spec.key });
          input.checked = !!S.on[spec.key];
          input.addEventListener("change", function () { setLayer(spec.key, input.checked); });
          var text = t(spec.title) + (spec.min_zoom ? " (≥" + spec.min_zoom + ")" : "");
          body.appendChild(el("label", { class: "wall-check wall-layer-item" }, [input, el("span", { text: text })]));
          if (spec.kind === "cameras") { body.appendChild(cameraFilters()); }
        });
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    new Ctl().addTo(S.map);
  }

  function cameraFilters() {
    var box = el("div", { class: "wall-filters" });
    var modes = el("div", { class: "wall-filter-row" }, [el("span", { class: "wall-filter-title", text: t("wall_color_by") })]);
    ["status", "source"].forEach(function (m) {
      var r = el("input", { type: "radio", name: "wall-color", value: m, "data-color-mode": m });
      r.checked = S.colorMode === m;
      r.addEventListener("change", function () { if (r.checked) { setColorMode(m); } });
      modes.appendChild(el("label", { class: "wall-check" }, [r, el("span", { text: t("wall_color_" + m) })]));
    });
    box.appendChild(modes);
    box.appendChild(filterGroup("status", W.statuses, statusLabel, STATUS_COLORS));
    box.appendChild(filterGroup("source", W.sources, sourceLabel, SOURCE_COLORS));
    if (W.tags.length) {
      var tags = el("details", { class: "wall-filter-group" }, [el("summary", { text: t("wall_filter_tag") })]);
      W.tags.forEach(function (tag) {
        var c = el("input", { type: "checkbox", "data-filter": "tag", value: tag });
        c.addEventListener("change", function () {
          var chosen = Array.prototype.slice.call(tags.querySelectorAll("input:checked")).map(function (x) { return x.value; });
          setTagFilter(chosen);
        });
        tags.appendChild(el("label", { class: "wall-check" }, [c, el("span", { text: tagLabel(tag) })]));
      });
      box.appendChild(tags);
    }
    return box;
  }

  function filterGroup(kind, keys, label, palette) {
    var group = el("details", { class: "wall-filter-group" }, [el("summary", { text: t("wall_filter_" + kind) })]);
    keys.forEach(function (key, idx) {
      var c = el("input", { type: "checkbox", "data-filter": kind, value: key });
      c.checked = true;
      c.addEventListener("change", function () {
        var boxes = group.querySelectorAll("input");
        var all = true, flags = [];
        Array.prototype.forEach.call(boxes, function (b, j) { flags[j] = b.checked; all = all && b.checked; });
        S.filters[kind === "status" ? "statuses" : "sources"] = all ? null : flags;
        rebuildSoon();
      });
      var sw = el("span", { class: "wall-swatch" });
      sw.style.background = palette[key];
      group.appendChild(el("label", { class: "wall-check" }, [c, sw, el("span", { text: label(key) })]));
      void idx;
    });
    return group;
  }

  function setColorMode(mode) {
    S.colorMode = mode;
    if (S.cam && S.cam.n) { buildIndex(); redrawCameras(); }
    renderLegend();
  }

  function legendControl() {
    var Ctl = L.Control.extend({
      options: { position: "bottomleft" },
      onAdd: function () {
        var box = el("div", { class: "wall-control wall-legend", id: "wall-legend" });
        L.DomEvent.disableClickPropagation(box);
        return box;
      }
    });
    new Ctl().addTo(S.map);
  }

  function legendRow(color, text, shape) {
    var sw = el("span", { class: "wall-swatch " + (shape || "") });
    if (shape === "line" || shape === "dash") { sw.style.borderColor = color; } else { sw.style.background = color; }
    return el("div", { class: "wall-legend-row" }, [sw, el("span", { text: text })]);
  }

  function renderLegend() {
    var box = document.getElementById("wall-legend");
    if (!box) { return; }
    box.textContent = "";
    // Folded to its title on a phone, where the open legend covers a third of the map.
    if (S.legendFolded === undefined) { S.legendFolded = G.onPhone(); }
    var head = el("button", { type: "button", class: "wall-legend-title", text: t("wall_legend"),
                              "aria-expanded": S.legendFolded ? "false" : "true" });
    head.addEventListener("click", function () { S.legendFolded = !S.legendFolded; renderLegend(); });
    box.classList.toggle("collapsed", S.legendFolded);
    box.appendChild(head);
    if (S.on.cameras && S.cam && S.cam.n) {
      var counts = {};
      if (S.colorMode === "status") {
        for (var i = 0; i < S.cam.n; i++) { counts[S.cam.st[i]] = (counts[S.cam.st[i]] || 0) + 1; }
      }
      var keys = S.colorMode === "status" ? W.statuses : W.sources;
      var group = el("div", { class: "wall-legend-group" }, [
        el("div", { class: "wall-legend-sub", text: t("cameras") + " · " + t("wall_color_" + S.colorMode) })]);
      keys.forEach(function (k, idx) {
        var label = S.colorMode === "status" ? statusLabel(k) + " " + fmtNum(counts[idx] || 0) : sourceLabel(k);
        group.appendChild(legendRow(S.colorMode === "status" ? STATUS_COLORS[k] : SOURCE_COLORS[k], label));
      });
      box.appendChild(group);
    }
    var areas = el("div", { class: "wall-legend-group" });
    if (S.on.towns) { areas.appendChild(legendRow(boundaryStyle("town").color, t("towns"), "dash")); }
    if (S.on.communities) { areas.appendChild(legendRow(boundaryStyle("community").color, t("communities"), "line")); }
    if (S.on.grids) {
      ["urban", "rural", "special"].forEach(function (k) { areas.appendChild(legendRow(KIND_FILL[k], t(k))); });
    }
    box.appendChild(areas);
    W.layers.forEach(function (spec) {
      if (!S.on[spec.key]) { return; }
      if (spec.kind === "grid_values" && spec.options.flag) {
        // A yes/no layer (every listed grid has the flag): one swatch, not a ramp.
        box.appendChild(legendRow(ramp(0), t(spec.options.legend || spec.title)));
      } else if (spec.kind === "choropleth" || spec.kind === "grid_values") {
        var scale = el("div", { class: "wall-legend-group" }, [
          el("div", { class: "wall-legend-sub", text: t(spec.options.legend || spec.title) })]);
        var bar = el("div", { class: "wall-ramp" });
        [0.1, 0.3, 0.5, 0.7, 0.9].forEach(function (v) { var s = el("span"); s.style.background = ramp(v); bar.appendChild(s); });
        scale.appendChild(bar);
        scale.appendChild(el("div", { class: "wall-ramp-labels" }, [el("span", { text: "0%" }), el("span", { text: "100%" })]));
        box.appendChild(scale);
      } else if (spec.kind === "bbox" || spec.kind === "geojson") {
        var text = t(spec.title);
        if (spec.min_zoom && S.map.getZoom() < spec.min_zoom) { text += " · " + tf("wall_zoom_hint", { z: spec.min_zoom }); }
        box.appendChild(legendRow(spec.options.color || "#e31a1c", text));
      }
    });
  }

  function coordsControl() {
    var Ctl = L.Control.extend({
      options: { position: "bottomright" },
      onAdd: function () { return el("div", { class: "wall-control wall-coords", id: "wall-coords" }); }
    });
    new Ctl().addTo(S.map);
  }

  // ------------------------------------------------------------------ search

  function searchControl() {
    var Ctl = L.Control.extend({
      options: { position: "topleft" },
      onAdd: function () {
        var input = el("input", { type: "search", id: "wall-search", class: "wall-search-input",
                                  placeholder: t("wall_search_placeholder"), autocomplete: "off",
                                  maxlength: "60", "aria-label": t("wall_search_placeholder") });
        var hint = el("div", { class: "wall-search-hint", id: "wall-search-hint" });
        var list = el("ul", { class: "wall-search-results", id: "wall-search-results" });
        var box = el("div", { class: "wall-control wall-search" }, [input, hint, list]);
        var timer = null;
        input.addEventListener("input", function () {
          clearTimeout(timer);
          timer = setTimeout(function () { runSearch(input.value); }, 220);
        });
        input.addEventListener("keydown", function (e) {
          if (e.key === "Enter") {
            clearTimeout(timer);
            var first = list.querySelector("button");
            if (first && S.searchQuery === normalizeQuery(input.value)) { first.click(); } else { runSearch(input.value, true); }
          } else if (e.key === "Escape") {
            input.value = ""; list.textContent = ""; hint.textContent = "";
          }
        });
        input.addEventListener("focus", stopTour);
        L.DomEvent.disableClickPropagation(box);
        L.DomEvent.disableScrollPropagation(box);
        return box;
      }
    });
    new Ctl().addTo(S.map);
  }

  function normalizeQuery(raw) { return (raw || "").normalize("NFKC").replace(/\s+/g, " ").trim(); }

  function runSearch(raw, pickFirst) {
    var q = normalizeQuery(raw);
    var list = document.getElementById("wall-search-results");
    var hint = document.getElementById("wall-search-hint");
    list.textContent = "";
    hint.textContent = "";
    S.searchQuery = null;
    if (!q) { return; }
    // The server refuses the same inputs with a 400; say why here instead of asking it.
    if (q.length > 40) { hint.textContent = t("wall_search_too_long"); return; }
    if (!SEARCH_OK.test(q)) { hint.textContent = t("wall_search_invalid"); return; }
    var mine = ++S.searchSeq;
    hint.textContent = t("searching");
    fetch("/api/search?limit=20&q=" + encodeURIComponent(q)).then(function (r) {
      return r.json().then(function (body) { return { ok: r.ok, body: body }; });
    }).then(function (res) {
      if (mine !== S.searchSeq) { return; }
      if (!res.ok) { hint.textContent = (res.body.message || res.body.reason) || t("load_failed"); return; }
      S.searchQuery = q;
      hint.textContent = res.body.count ? "" : t("wall_search_none");
      res.body.items.forEach(function (item) {
        var btn = el("button", { type: "button", class: "wall-result", "data-type": item.type, "data-id": item.id }, [
          el("span", { class: "wall-result-type type-" + item.type, text: t("wall_type_" + item.type) }),
          el("span", { class: "wall-result-text" }, [
            el("span", { class: "wall-result-name", text: item.name }),
            el("span", { class: "wall-result-detail", text: resultDetail(item) })
          ])
        ]);
        btn.addEventListener("click", function () { pickResult(item); });
        list.appendChild(el("li", {}, [btn]));
      });
      setFlag("wall-search-count", res.body.count);
      if (pickFirst && res.body.items.length) { pickResult(res.body.items[0]); }
    }).catch(function () { if (mine === S.searchSeq) { hint.textContent = t("load_failed"); } });
  }

  function resultDetail(item) {
    if (item.type === "camera") { return item.id + " · " + sourceLabel(item.detail) + " · " + statusLabel(item.kind); }
    if (item.type === "place") { return placeLabel(item.kind) + (item.detail ? " · " + item.detail : ""); }
    if (item.type === "grid") { return item.id + " · " + (item.detail || ""); }
    if (item.type === "town" || item.type === "community") {
      return item.id + (item.detail ? " · " + item.detail : "");
    }
    return item.detail || "";
  }

  function pickResult(item) {
    S.touched = true;
    stopTour();
    document.getElementById("wall-search-results").textContent = "";
    if (item.type === "grid") {
      if (!S.on.grids) { setLayer("grids", true); syncCheckbox("grids"); }
      selectGrid(item.id, { fit: true, bbox: item.bbox });
    } else if (item.type === "camera") {
      if (!S.on.cameras) { setLayer("cameras", true); syncCheckbox("cameras"); }
      openCamera(item.id, { fly: true, lon: item.lon, lat: item.lat });
    } else if (item.type === "town" || item.type === "community") {
      clearSelection();
      var area = S.areas[item.type] && S.areas[item.type].byCode[item.id];
      var outline = area ? L.geoJSON(area.feature, { coordsToLatLng: coordsToLatLng, interactive: false,
                                                      renderer: S.renderers.highlight, className: "wall-area-highlight",
                                                      style: { color: "#ffb000", weight: 4, fillOpacity: 0.06 } })
                         : L.rectangle(bboxBounds(item.bbox), { renderer: S.renderers.highlight, color: "#ffb000", weight: 3, fill: false });
      S.highlightLayer.addLayer(outline);
      showAreaPanel(item);
      fitUncovered(outline.getBounds(), { padding: 40 });
    } else {
      clearSelection();
      var at = toMap(item.lon, item.lat);
      var ring = L.circleMarker(at, { renderer: S.renderers.highlight, radius: 14, color: "#ffb000", weight: 4, fill: false });
      ring.bindTooltip(el("div", { class: "wall-tip" }, [el("div", { class: "wall-tip-name", text: item.name }),
                                                          el("div", { class: "wall-tip-code", text: resultDetail(item) })]),
                       { permanent: true, direction: "top", offset: [0, -14] });
      S.highlightLayer.addLayer(ring);
      centreUncovered(at, 17);
    }
  }

  function syncCheckbox(key) {
    var box = document.querySelector('input[data-layer="' + key + '"]');
    if (box) { box.checked = !!S.on[key]; }
  }

  // ------------------------------------------------------------------ the map's uncovered part

  // What covers the map: the top bar, and while it is open the panel (on a desk down
  // the right, on a phone a sheet across the bottom). A fit or a centring aims at the
  // rest, or "zoom to" on a phone put the grid under the sheet. The sheet counts at
  // the height it may grow to (wall.css), as its content is still loading then.
  function coveredEdges() {
    var map = S.map.getContainer().getBoundingClientRect();
    var bar = document.getElementById("wall-bar");
    var edges = { top: bar ? Math.max(0, bar.getBoundingClientRect().bottom - map.top) : 0, right: 0, bottom: 0 };
    var panel = document.getElementById("wall-panel");
    if (!panel || panel.hidden) { return edges; }
    var box = panel.getBoundingClientRect();
    if (box.width >= map.width - 1) {
      edges.bottom = Math.max(box.height, Math.min(0.6 * map.height, map.height - edges.top));
    } else {
      edges.right = Math.max(0, map.right - box.left);
    }
    // A map too small for what covers it (a tiny window): aim at the whole map instead.
    if (map.height - edges.top - edges.bottom < 80 || map.width - edges.right < 80) {
      return { top: 0, right: 0, bottom: 0 };
    }
    return edges;
  }

  function fitUncovered(bounds, opts) {
    var c = coveredEdges();
    var pad = c.bottom ? Math.min(opts.padding, 16) : opts.padding;  // a phone's strip of map is short
    S.map.fitBounds(bounds, { paddingTopLeft: [pad, pad + c.top],
                              paddingBottomRight: [pad + c.right, pad + c.bottom],
                              maxZoom: opts.maxZoom, animate: opts.animate });
  }

  // A tapped camera stays where it is unless the panel now covers it.
  function revealUncovered(at) {
    var c = coveredEdges(), size = S.map.getSize(), p = S.map.latLngToContainerPoint(at);
    var margin = 24;
    if (p.x > size.x - c.right - margin || p.y > size.y - c.bottom - margin || p.y < c.top + margin) {
      centreUncovered(at, S.map.getZoom());
    }
  }

  function centreUncovered(at, zoom) {
    var c = coveredEdges();
    var shift = L.point(c.right / 2, (c.bottom - c.top) / 2);
    S.map.setView(S.map.unproject(S.map.project(at, zoom).add(shift), zoom), zoom);
  }

  // ------------------------------------------------------------------ side panel

  function panelBody(kind, id) {
    var panel = document.getElementById("wall-panel");
    var body = document.getElementById("wall-panel-body");
    if (S.objectUrl) { URL.revokeObjectURL(S.objectUrl); S.objectUrl = null; }
    clearInterval(S.snapshotTimer);
    body.textContent = "";
    panel.hidden = false;
    panel.setAttribute("data-kind", kind);
    document.body.classList.add("wall-panel-open");
    S.panel = { kind: kind, id: id, token: {} };
    setFlag("wall-panel", "loading");
    return body;
  }

  function closePanel() {
    document.getElementById("wall-panel").hidden = true;
    document.body.classList.remove("wall-panel-open");
    clearInterval(S.snapshotTimer);
    S.panel = null;
    setFlag("wall-panel", "");
    clearSelection();
  }

  function section(title, children, cls) {
    return el("section", { class: "wall-section " + (cls || "") },
              [el("h3", { text: title })].concat(children || []));
  }

  function kvTable(rows, cls) {
    var table = el("table", { class: "wall-kv " + (cls || "") });
    rows.forEach(function (r) {
      if (r[1] === undefined || r[1] === null || r[1] === "") { return; }
      var td = el("td");
      if (r[1] instanceof Node) { td.appendChild(r[1]); } else { td.textContent = r[1]; }
      table.appendChild(el("tr", r[2] ? { "data-key": r[2] } : {}, [el("th", { text: r[0] }), td]));
    });
    return table;
  }

  function stale(token) { return !S.panel || S.panel.token !== token; }

  function openGridPanel(code) {
    var body = panelBody("grid", code);
    var token = S.panel.token;
    body.appendChild(el("div", { class: "wall-loading", text: t("loading") }));
    Promise.all([getJson("/api/grids/" + encodeURIComponent(code)),
                 getJson("/api/areas/" + encodeURIComponent(code) + "/cameras")]).then(function (res) {
      if (stale(token)) { return; }
      var grid = res[0], cams = (res[1] && res[1].items) || [];
      body.textContent = "";
      if (!grid) { body.appendChild(el("p", { text: t("load_failed") })); return; }
      body.appendChild(el("header", { class: "wall-panel-head" }, [
        el("div", { class: "wall-panel-kind", text: t("wall_type_grid") + " · " + t(grid.kind) }),
        el("h2", { class: "wall-panel-title", text: grid.name }),
        el("div", { class: "wall-panel-code", text: grid.code }),
        el("div", { class: "wall-panel-sub", text: [grid.town_name, grid.community_name].filter(Boolean).join(" · ") })
      ]));
      var show = el("button", { type: "button", class: "wall-btn wall-action", "data-action": "show-cameras",
                                text: t("wall_show_cameras") + " (" + cams.length + ")" });
      show.addEventListener("click", function () { showGridCameras(code, cams); });
      var zoom = el("button", { type: "button", class: "wall-btn wall-action", text: t("wall_zoom_to") });
      zoom.addEventListener("click", function () {
        var lyr = S.grid.byCode[code];
        if (lyr) { fitUncovered(lyr.getBounds(), { padding: 60, maxZoom: 17 }); }
      });
      body.appendChild(el("div", { class: "wall-actions" }, [show, zoom]));
      body.appendChild(section(t("wall_base_counts"), [kvTable(
        ["houses", "residents", "key_persons", "key_places", "components"].map(function (k) {
          return [t(k), fmtNum(grid[k]), k];
        }), "wall-counts wall-num")]));
      var cats = grid.key_person_categories || {};
      var catKeys = Object.keys(cats);
      if (catKeys.length) {
        body.appendChild(section(t("wall_key_person_categories"), [kvTable(catKeys.map(function (k) {
          return [categoryLabel(k), fmtNum(cats[k])];
        }), "wall-num")]));
      }
      body.appendChild(section(t("team"), [teamProblems(grid.team_problems || []),
                                           teamList(grid.workers || [])]));
      var camBox = el("div", { class: "wall-grid-cameras" });
      body.appendChild(section(t("wall_grid_cameras"), [camBox], "wall-section-cameras"));
      S.panel.cams = cams;
      S.panel.camBox = camBox;
      renderGridCameras();
      extraSections(body, "grid", { code: code }, token);
      setFlag("wall-panel", "grid:" + code);
    }).catch(function () { if (!stale(token)) { body.textContent = t("load_failed"); } });
  }

  // Key-person categories are stored by their Chinese names (geodata/generator.py);
  // wall.py names the known ones in each language, any other shows as stored.
  function categoryLabel(name) { return labelOr("wall_kpc_", name); }

  // A grid without its "1+1" (after a split, a vacancy) is flagged where the team is listed.
  function teamProblems(problems) {
    return el("div", { class: "wall-team-problems" }, problems.map(function (p) {
      return el("span", { class: "wall-team-problem", "data-problem": p, text: t("team_" + p) });
    }));
  }

  function teamList(workers) {
    if (!workers.length) { return el("p", { class: "wall-muted", text: t("wall_no_workers") }); }
    var list = el("ul", { class: "wall-team" });
    workers.forEach(function (w) {
      list.appendChild(el("li", { "data-role": w.role }, [
        el("span", { class: "wall-team-role", text: t(w.role) }),
        el("span", { class: "wall-team-name", text: w.name }),
        el("a", { class: "wall-team-phone", href: "tel:" + String(w.phone).replace(/[^0-9+]/g, ""), text: w.phone })
      ]));
    });
    return list;
  }

  function liveStatus(gb, fallback) {
    var i = S.cam ? S.cam.byId[gb] : undefined;
    return i === undefined ? fallback : W.statuses[S.cam.st[i]];
  }

  /* Counts and online rate from the live statuses (online / checked, as the roll-up). */
  function renderGridCameras() {
    var p = S.panel;
    if (!p || !p.camBox) { return; }
    var box = p.camBox, cams = p.cams;
    box.textContent = "";
    if (!cams.length) { box.appendChild(el("p", { class: "wall-muted", text: t("wall_no_grid_cameras") })); return; }
    var counts = {}, online = 0, checked = 0;
    cams.forEach(function (c) {
      var s = liveStatus(c.gb_id, c.status);
      counts[s] = (counts[s] || 0) + 1;
      if (s !== "unknown") { checked++; }
      if (s === "online") { online++; }
    });
    var rate = checked ? online / checked : null;
    box.appendChild(kvTable([
      [t("cameras"), tf("wall_cameras_total", { n: fmtNum(cams.length) }), "cameras"],
      [t("wall_online_rate"), fmtPct(rate), "online_rate"]
    ], "wall-num"));
    var chips = el("div", { class: "wall-chips" });
    W.statuses.forEach(function (s) {
      if (!counts[s]) { return; }
      var chip = el("span", { class: "wall-chip", "data-status": s }, [el("span", { class: "wall-dot" }),
                                                                       el("span", { text: statusLabel(s) + " " + counts[s] })]);
      chip.firstChild.style.background = STATUS_COLORS[s];
      chips.appendChild(chip);
    });
    box.appendChild(chips);
    var list = el("ul", { class: "wall-camlist" });
    cams.slice(0, 60).forEach(function (c) {
      var s = liveStatus(c.gb_id, c.status);
      var dot = el("span", { class: "wall-dot" });
      dot.style.background = STATUS_COLORS[s];
      var btn = el("button", { type: "button", class: "wall-camlink", "data-gb-id": c.gb_id },
                   [dot, el("span", { text: c.name })]);
      btn.addEventListener("click", function () { openCamera(c.gb_id, { fly: true }); });
      list.appendChild(el("li", {}, [btn]));
    });
    box.appendChild(list);
  }

  function showGridCameras(code, cams) {
    if (!S.on.cameras) { setLayer("cameras", true); syncCheckbox("cameras"); }
    var set = [];
    cams.forEach(function (c) { var i = S.cam.byId[c.gb_id]; if (i !== undefined) { set.push(i); } });
    S.cam.highlight = set;
    var lyr = S.grid.byCode[code];
    if (lyr) { fitUncovered(lyr.getBounds(), { padding: 60, maxZoom: 17 }); }
    redrawCameras();
    setFlag("wall-highlighted", set.length);
  }

  function openCamera(gb, opts) {
    opts = opts || {};
    var i = S.cam ? S.cam.byId[gb] : undefined;
    if (S.grid.selected) { clearSelection(); }
    S.highlightLayer.clearLayers();
    if (S.cam) { S.cam.selected = i === undefined ? -1 : i; S.cam.highlight = null; }
    redrawCameras();
    var body = panelBody("camera", gb);
    var at = i !== undefined ? L.latLng(S.cam.mlat[i], S.cam.mlng[i])
                             : (opts.lon !== undefined ? toMap(opts.lon, opts.lat) : null);
    // After the panel opened: the camera goes beside it, not under it.
    if (at && opts.fly) {
      centreUncovered(at, Math.max(S.map.getZoom(), 18));
    } else if (at) {
      revealUncovered(at);
    }
    var token = S.panel.token;
    body.appendChild(el("div", { class: "wall-loading", text: t("loading") }));
    var wantHealth = W.features.health;
    Promise.all([getJson("/api/cameras/" + encodeURIComponent(gb)),
                 wantHealth ? getJson("/api/cameras/" + encodeURIComponent(gb) + "/health").catch(function () { return null; })
                            : Promise.resolve(null)]).then(function (res) {
      if (stale(token)) { return; }
      var cam = res[0], health = res[1];
      body.textContent = "";
      if (!cam) { body.appendChild(el("p", { text: t("load_failed") })); return; }
      S.panel.camera = cam;
      body.appendChild(el("header", { class: "wall-panel-head" }, [
        el("div", { class: "wall-panel-kind", text: t("wall_type_camera") }),
        el("h2", { class: "wall-panel-title", text: cam.name }),
        el("div", { class: "wall-panel-code", text: cam.gb_id })
      ]));
      if (W.features.snapshot) { body.appendChild(snapshotSection(cam, health, token)); }
      var status = el("span", { class: "wall-status", "data-status": "" });
      S.panel.statusEl = status;
      S.panel.health = health;
      paintCameraStatus();
      var gridLink = null;
      if (cam.grid_code) {
        gridLink = el("button", { type: "button", class: "wall-linkbtn", text: cam.grid_code });
        gridLink.addEventListener("click", function () { selectGrid(cam.grid_code, { fit: true }); });
      }
      body.appendChild(kvTable([
        [t("wall_status"), status, "status"],
        [t("wall_source"), sourceLabel(cam.source), "source"],
        [t("wall_owner"), cam.department, "owner"],
        [t("wall_grid"), gridLink, "grid"],
        [t("wall_tags"), (cam.tags || []).map(tagLabel).join(t("list_sep")), "tags"],
        [t("wall_last_sample"), health && health.last_sample_at ? fmtDateTime(health.last_sample_at) : null, "last_sample"],
        [t("wall_position"), Number(cam.lon).toFixed(6) + ", " + Number(cam.lat).toFixed(6), "position"]
      ], "wall-camera-info"));
      var actions = el("div", { class: "wall-actions" });
      if (W.features.live_view) {
        actions.appendChild(el("a", { class: "wall-btn wall-action", target: "_blank", rel: "noopener",
                                      href: "/cameras/" + encodeURIComponent(cam.gb_id) + "/live", text: t("open_live"),
                                      "data-action": "live" }));
      } else {
        actions.appendChild(el("button", { type: "button", class: "wall-btn wall-action", disabled: "disabled",
                                           title: t("wall_live_unavailable"), text: t("open_live"), "data-action": "live" }));
      }
      var nearbyBtn = el("button", { type: "button", class: "wall-btn wall-action", "data-action": "nearby", text: t("wall_nearby") });
      var nearbyBox = el("div", { class: "wall-nearby" });
      nearbyBtn.addEventListener("click", function () {
        loadNearby(nearbyBox, cam.lon, cam.lat, cam.gb_id, token);
      });
      actions.appendChild(nearbyBtn);
      body.appendChild(actions);
      body.appendChild(nearbyBox);
      if (health) { body.appendChild(historySection(health)); }
      extraSections(body, "camera", { gb_id: cam.gb_id }, token);
      setFlag("wall-panel", "camera:" + gb);
    }).catch(function () { if (!stale(token)) { body.textContent = t("load_failed"); } });
  }

  function paintCameraStatus() {
    var p = S.panel;
    if (!p || !p.statusEl || !p.camera) { return; }
    var s = liveStatus(p.camera.gb_id, p.camera.status);
    var box = p.statusEl;
    box.textContent = "";
    box.setAttribute("data-status", s);
    var dot = el("span", { class: "wall-dot" });
    dot.style.background = STATUS_COLORS[s];
    box.appendChild(dot);
    box.appendChild(el("span", { text: statusLabel(s) }));
    var since = p.health && p.health.status === s && p.health.status_since;
    if (since) { box.appendChild(el("span", { class: "wall-muted", text: " " + tf("wall_status_since", { t: fmtDateTime(since) }) })); }
  }

  function snapshotSection(cam, health, token) {
    var box = el("div", { class: "wall-snapshot" });
    var caption = el("div", { class: "wall-snapshot-age" });
    var sec = section(t("wall_snapshot"), [box, caption], "wall-section-snapshot");
    // Without a stored picture there is no snapshot: don't ask (and don't log a 404).
    if (health && !health.snapshot_at) {
      box.appendChild(el("div", { class: "wall-nosnap", text: t("no_snapshot") }));
      return sec;
    }
    function load() {
      fetch("/api/cameras/" + encodeURIComponent(cam.gb_id) + "/snapshot.jpg", { cache: "no-store" }).then(function (r) {
        if (!r.ok) { return null; }
        var age = r.headers.get("X-Snapshot-Age");
        return r.blob().then(function (blob) { return { blob: blob, age: age }; });
      }).then(function (snap) {
        if (stale(token)) { return; }
        box.textContent = "";
        if (!snap) { box.appendChild(el("div", { class: "wall-nosnap", text: t("no_snapshot") })); caption.textContent = ""; return; }
        if (S.objectUrl) { URL.revokeObjectURL(S.objectUrl); }
        S.objectUrl = URL.createObjectURL(snap.blob);
        box.appendChild(el("img", { class: "wall-snapshot-img", alt: cam.name, src: S.objectUrl }));
        caption.textContent = snap.age !== null ? tf("wall_snapshot_age", { age: fmtAge(snap.age) }) : "";
        setFlag("wall-snapshot", cam.gb_id);
      }).catch(function () {
        if (!stale(token)) { box.textContent = ""; box.appendChild(el("div", { class: "wall-nosnap", text: t("no_snapshot") })); }
      });
    }
    load();
    S.snapshotTimer = setInterval(function () { if (!stale(token)) { load(); } }, 30000);
    return sec;
  }

  function historySection(health) {
    var items = health.history || [];
    if (!items.length) { return section(t("wall_health_history"), [el("p", { class: "wall-muted", text: t("wall_no_history") })]); }
    var list = el("ol", { class: "wall-history" });
    items.slice(0, 20).forEach(function (h) {
      var dot = el("span", { class: "wall-dot" });
      dot.style.background = STATUS_COLORS[h.status] || "#999";
      list.appendChild(el("li", {}, [
        el("span", { class: "wall-history-time", text: fmtDateTime(h.changed_at) }), dot,
        el("span", { text: statusLabel(h.status) + (h.error ? " · " + h.error : "") })
      ]));
    });
    return section(t("wall_health_history"), [list], "wall-section-history");
  }

  function loadNearby(box, lon, lat, selfId, token) {
    box.textContent = t("searching");
    var url = "/api/cameras/nearby?radius=300&limit=12&lon=" + Number(lon).toFixed(6) + "&lat=" + Number(lat).toFixed(6);
    // Around a spot, the cameras whose view sector covers it come first: those can see it.
    if (!selfId) { url += "&sees=1"; }
    getJson(url).then(function (res) {
      if (token && stale(token)) { return; }
      var items = ((res && res.items) || []).filter(function (c) { return c.gb_id !== selfId; });
      box.textContent = "";
      var sec = section(selfId ? t("wall_nearby") : t("wall_nearby_here"), [], "wall-section-nearby");
      if (!items.length) { sec.appendChild(el("p", { class: "wall-muted", text: t("wall_no_nearby") })); }
      var list = el("ul", { class: "wall-camlist" });
      var set = [];
      items.forEach(function (c) {
        var i = S.cam.byId[c.gb_id];
        if (i !== undefined) { set.push(i); }
        var dot = el("span", { class: "wall-dot" });
        dot.style.background = STATUS_COLORS[liveStatus(c.gb_id, c.status)];
        var btn = el("button", { type: "button", class: "wall-camlink", "data-gb-id": c.gb_id }, [
          dot, el("span", { text: c.name }),
          el("span", { class: "wall-muted", text: " " + Math.round(c.distance_m) + " m" }),
          !selfId && c.sees_point ? el("span", { class: "wall-sees", text: " · " + t("sees_here") }) : null]);
        btn.addEventListener("click", function () { openCamera(c.gb_id, { fly: true }); });
        list.appendChild(el("li", {}, [btn]));
      });
      sec.appendChild(list);
      if (items.length) {
        // The camera itself and its neighbours, or the spot's cameras, on the video wall
        // (another screen, so another tab), nearest or seeing first.
        var ids = (selfId ? [selfId] : []).concat(items.map(function (c) { return c.gb_id; })).slice(0, 16);
        sec.appendChild(el("a", { class: "wall-btn wall-action", target: "_blank", rel: "noopener",
                                  "data-action": "videowall", href: "/videowall?cameras=" + ids.join(","),
                                  text: t("wall_to_videowall") + " (" + ids.length + ")" }));
      }
      box.appendChild(sec);
      S.cam.highlight = set;
      redrawCameras();
    }).catch(function () { box.textContent = t("load_failed"); });
  }

  function nearbyHere(latlng) {
    var p = fromMap(latlng);  // the click is in the map's datum; the API wants WGS-84
    var body = panelBody("nearby", "");
    var token = S.panel.token;
    S.highlightLayer.clearLayers();
    S.highlightLayer.addLayer(L.circleMarker(latlng, { renderer: S.renderers.highlight, radius: 8, color: "#ffb000", weight: 3 }));
    body.appendChild(el("header", { class: "wall-panel-head" }, [
      el("h2", { class: "wall-panel-title", text: t("wall_nearby_here") }),
      el("div", { class: "wall-panel-code", text: p.lon.toFixed(6) + ", " + p.lat.toFixed(6) })]));
    var box = el("div");
    body.appendChild(box);
    loadNearby(box, p.lon, p.lat, null, token);
    setFlag("wall-panel", "nearby");
  }

  function showAreaPanel(item) {
    var body = panelBody(item.type, item.id);
    body.appendChild(el("header", { class: "wall-panel-head" }, [
      el("div", { class: "wall-panel-kind", text: t("wall_type_" + item.type) + (item.kind ? " · " + t("wall_kind_" + item.kind) : "") }),
      el("h2", { class: "wall-panel-title", text: item.name }),
      el("div", { class: "wall-panel-code", text: item.id }),
      el("div", { class: "wall-panel-sub", text: item.detail || "" })]));
    var box = el("div");
    body.appendChild(box);
    var token = S.panel.token;
    getJson("/api/areas/" + encodeURIComponent(item.id) + "/cameras").then(function (res) {
      if (stale(token)) { return; }
      S.panel.cams = (res && res.items) || [];
      S.panel.camBox = box;
      renderGridCameras();
    });
    setFlag("wall-panel", item.type + ":" + item.id);
  }

  /* A feature of a registry layer (an alert, later a matter or an order): its fields as text. */
  function showFeaturePanel(spec, feature) {
    var p = feature.properties || {};
    var body = panelBody(spec.key, String(feature.id || ""));
    body.appendChild(el("header", { class: "wall-panel-head" }, [
      el("div", { class: "wall-panel-kind", text: t(spec.title) }),
      el("h2", { class: "wall-panel-title", text: String(p.title || p.name || feature.id || "") })]));
    body.appendChild(kvTable(Object.keys(p).filter(function (k) {
      return k !== "title" && k !== "name" && (typeof p[k] !== "object" || p[k] === null);
    }).map(function (k) {
      var v = p[k];
      var text = typeof v === "string" && /^\d{4}-\d\d-\d\dT/.test(v) ? fmtDateTime(v) : (v === null ? "" : String(v));
      return [t(k), text, k];
    }), "wall-feature"));
    setFlag("wall-panel", spec.key + ":" + (feature.id || ""));
  }

  function extraSections(body, target, ids, token) {
    (W.sections || []).forEach(function (sec) {
      if (sec.target !== target) { return; }
      var url = sec.url.replace(/\{(\w+)\}/g, function (m, k) { return encodeURIComponent(ids[k] || ""); });
      var box = section(t(sec.title), [], "wall-section-extra");
      box.setAttribute("data-section", sec.key);
      box.hidden = true;
      body.appendChild(box);
      getJson(url).then(function (data) {
        if (stale(token) || data === null) { return; }
        var items = Array.isArray(data) ? data : data.items;
        if (Array.isArray(items)) {
          var list = el("ul", { class: "wall-extra-list" });
          items.slice(0, 30).forEach(function (it) {
            list.appendChild(el("li", {}, [
              el("span", { class: "wall-extra-title", text: String(it.title || it.name || "") }),
              el("span", { class: "wall-muted", text: [it.status ? String(it.status) : "", it.time ? fmtDateTime(it.time) : ""].filter(Boolean).join(" · ") })]));
          });
          box.appendChild(list);
        } else {
          box.appendChild(kvTable(Object.keys(data).filter(function (k) { return typeof data[k] !== "object"; })
                                  .map(function (k) { return [t(k), String(data[k])]; })));
        }
        box.hidden = false;
      }).catch(function () { /* an optional section that fails stays hidden */ });
    });
  }

  function refreshPanelStatuses() {
    if (!S.panel) { return; }
    if (S.panel.camBox) { renderGridCameras(); }
    if (S.panel.statusEl) { paintCameraStatus(); }
  }

  // ------------------------------------------------------------------ wall mode and tour

  function buildTour() {
    var towns = S.areas.town;
    if (!towns.layer.getLayers().length) { return; }  // no area in scope (a department)
    var whole = W.scope_prefix ? t("wall_whole_scope") : t("wall_whole_district");
    var views = [{ name: whole, bounds: towns.layer.getBounds(), code: null }];
    towns.layer.getLayers().slice().sort(function (a, b) {
      return a.feature.properties.code < b.feature.properties.code ? -1 : 1;
    }).forEach(function (lyr) {
      views.push({ name: lyr.feature.properties.name, bounds: lyr.getBounds(), code: lyr.feature.properties.code });
    });
    S.tour.views = views;
    if (S.mode === "wall") { startTour(); }
  }

  function showView(i) {
    var v = S.tour.views[i];
    if (!v) { return; }
    S.highlightLayer.clearLayers();
    if (v.code && S.areas.town.byCode[v.code]) {
      S.highlightLayer.addLayer(L.geoJSON(S.areas.town.byCode[v.code].feature, {
        coordsToLatLng: coordsToLatLng, interactive: false, renderer: S.renderers.highlight,
        style: { color: "#ffd54f", weight: 4, fill: false } }));
    }
    S.map.flyToBounds(v.bounds, { padding: [30, 30], duration: 1.6 });
    document.getElementById("wall-caption").textContent = v.name;
    setFlag("wall-tour-view", i);
  }

  function startTour() {
    if (!S.tour.views.length) { return; }
    stopTour();
    S.tour.on = true;
    showView(S.tour.i % S.tour.views.length);
    S.tour.timer = setInterval(function () {
      S.tour.i = (S.tour.i + 1) % S.tour.views.length;
      showView(S.tour.i);
    }, W.dwell_s * 1000);
    tourButton();
  }

  function stopTour() {
    if (S.tour.timer) { clearInterval(S.tour.timer); }
    S.tour.timer = null;
    S.tour.on = false;
    tourButton();
  }

  function tourButton() {
    var btn = document.getElementById("wall-tour");
    if (btn) { btn.textContent = t(S.tour.on ? "wall_tour_stop" : "wall_tour_start"); }
  }

  function setMode(mode) {
    S.mode = mode === "wall" ? "wall" : "desk";
    S.dark = S.mode === "wall";
    document.body.classList.toggle("wall-dark", S.dark);
    document.getElementById("wall-mode").textContent = t(S.dark ? "wall_mode_desk" : "wall_mode_wall");
    if (S.layers.grids) { S.layers.grids.setStyle(gridStyle); reapplySelection(); }
    ["town", "community"].forEach(function (level) {
      if (S.areas[level]) { S.areas[level].layer.setStyle(boundaryStyle(level)); }
    });
    if (S.cam && S.cam.n) { buildIndex(); }  // bigger dots on the wall: cluster wider too
    redrawCameras();
    updateLabels();
    renderLegend();
    try {
      var url = new URL(window.location.href);
      if (S.dark) { url.searchParams.set("mode", "wall"); } else { url.searchParams.delete("mode"); }
      window.history.replaceState(null, "", url.toString());
    } catch (e) { /* file:// or old browsers: the URL just stays */ }
    if (S.dark) { startTour(); } else { stopTour(); document.getElementById("wall-caption").textContent = ""; }
    syncLanguageLink();
    setFlag("wall-mode", S.mode);
    setTimeout(function () { S.map.invalidateSize(); }, 0);
  }

  /* The glue's language link is "?lang=xx"; keep the wall's other options (mode, dwell). */
  function syncLanguageLink() {
    var link = S.langLink = S.langLink || document.querySelector("a.gm-lang[href^='?lang=']");
    if (!link) { return; }
    try {
      var url = new URL(window.location.href);
      url.searchParams.set("lang", lang() === "en" ? "zh" : "en");
      link.setAttribute("href", url.search);
    } catch (e) { /* keep the glue's plain link */ }
  }

  function tickClock() {
    var box = document.getElementById("wall-clock");
    if (box) { box.textContent = fmtDateTime(new Date()); }
    renderStale();  // a last update no longer today's gets its date
  }

  // ------------------------------------------------------------------ init

  function checkReady() {
    if (S.ready) { return; }
    var need = W.layers.filter(function (s) { return s.default_on; }).map(function (s) { return s.key; });
    if (need.every(function (k) { return S.loaded[k]; })) {
      S.ready = true;
      mark("wall:ready");
      setFlag("wall-ready", 1);
    }
  }

  function pane(name, z, events) {
    var p = S.map.createPane(name);
    p.style.zIndex = String(z);
    if (!events) { p.style.pointerEvents = "none"; }
    return p;
  }

  function init(map) {
    W = (window.GRIDMAP || {}).wall || {};
    W.layers = W.layers || [];
    W.features = W.features || {};
    W.tags = W.tags || [];
    S.map = map;
    // Opened on a camera: the district-wide first view must not replace its close-up.
    if (W.focus_camera) { S.touched = true; }
    document.body.classList.add("page-wall");
    document.title = t("wall_title");
    pane("wallFill", 340);
    pane("wallAreas", 350);
    pane("wallGrids", 400, true);
    pane("wallBbox", 420);
    pane("wallCameras", 450);
    pane("wallLabels", 460);
    pane("wallHighlight", 470);
    pane("wallTop", 480);  // alerts and other point layers: above the cameras
    S.renderers = {
      fill: L.canvas({ pane: "wallFill", padding: 0.15 }),
      areas: L.canvas({ pane: "wallAreas", padding: 0.15 }),
      grids: L.canvas({ pane: "wallGrids", padding: 0.15 }),
      bbox: L.canvas({ pane: "wallBbox", padding: 0.15 }),
      highlight: L.svg({ pane: "wallHighlight", padding: 0.3 }),
      top: L.svg({ pane: "wallTop", padding: 0.3 })
    };
    S.labelCanvas = new CanvasOverlay({ pane: "wallLabels", className: "wall-label-canvas",
                                        draw: drawLabels }).addTo(map);
    S.highlightLayer = L.layerGroup().addTo(map);

    W.layers.forEach(function (spec) {
      S.specs[spec.key] = spec;
      S.on[spec.key] = !!spec.default_on;
      spec.options = spec.options || {};
    });
    searchControl();
    layerControl();
    legendControl();
    coordsControl();
    W.layers.forEach(function (spec) {
      var add = RENDERERS[spec.kind];
      var loading = tracked(spec.key, add ? add(spec) : null);  // default-on layers fetch now, the rest when enabled
      var lazy = S.layers[spec.key];
      if (spec.default_on && lazy && lazy.wallLoad) { setLayer(spec.key, true); }
      if (loading) {
        loading.catch(function (err) {
          G.state.errors.push(String(err));
          setFlag("wall-failed-" + spec.key, 1);  // the stale notice says "could not be loaded"
        });
      }
    });

    document.getElementById("wall-bar-title").textContent = t("wall_title");
    keepControlsBelowBar(document.getElementById("wall-bar"), document.getElementById("wall-stale"));
    document.getElementById("wall-panel-close").addEventListener("click", closePanel);
    document.getElementById("wall-panel-close").setAttribute("title", t("wall_close"));
    document.getElementById("wall-mode").addEventListener("click", function () { setMode(S.dark ? "desk" : "wall"); });
    document.getElementById("wall-tour").addEventListener("click", function () { if (S.tour.on) { stopTour(); } else { startTour(); } });
    tourButton();
    tickClock();
    setInterval(tickClock, 10000);

    map.on("click", function (e) { cameraClick(e.containerPoint); });
    map.on("contextmenu", function (e) { nearbyHere(e.latlng); });
    map.on("moveend", function () {
      updateLabels();
      // Only zoom-limited layers change the legend ("zoom to 15+") when the view moves.
      if (W.layers.some(function (l) { return l.min_zoom && S.on[l.key]; })) { renderLegend(); }
    });
    map.on("mousedown wheel", function () { S.touched = true; });
    map.getContainer().addEventListener("pointerdown", function () { if (S.tour.on && S.ready) { stopTour(); } });
    var pending = null;
    map.on("mousemove", function (e) {
      // One readout and hit-test per frame, however fast the pointer moves.
      var queued = pending !== null;
      pending = e;
      if (queued) { return; }
      requestAnimationFrame(function () {
        var ev = pending;
        pending = null;
        var p = fromMap(ev.latlng);
        var coords = document.getElementById("wall-coords");
        if (coords) { coords.textContent = t("wall_coords") + " " + p.lon.toFixed(5) + ", " + p.lat.toFixed(5); }
        var hit = S.on.cameras && S.cameraLayer && S.cameraLayer.hitAt(ev.containerPoint);
        map.getContainer().classList.toggle("wall-over-camera", !!hit);
      });
    });
    setMode(W.mode === "wall" ? "wall" : "desk");
    renderLegend();
    setTimeout(function () { map.invalidateSize(); }, 0);
  }

  /* Hooks for tests and the benchmark (read-only views of what is drawn). */
  var api = {
    cameraIndex: function (gb) { return S.cam ? S.cam.byId[gb] : undefined; },
    cameraColor: function (gb) { var i = api.cameraIndex(gb); return i === undefined ? null : colorOf(i); },
    cameraStatus: function (gb) { var i = api.cameraIndex(gb); return i === undefined ? null : W.statuses[S.cam.st[i]]; },
    cameraPoint: function (gb) {
      var i = api.cameraIndex(gb);
      if (i === undefined || !S.cameraLayer._canvas) { return null; }
      var p = S.map.latLngToContainerPoint([S.cam.mlat[i], S.cam.mlng[i]]);
      return { x: p.x, y: p.y };
    },
    pixelAt: function (x, y) { return S.cameraLayer.pixelAt(L.point(x, y)); },
    drawnCameras: function () { return S.cam ? S.cam.hits.length : 0; },
    labels: function () { return (S.labelsDrawn || []).slice(); },
    gridsDrawn: function () {
      var g = S.layers.grids;
      return g && S.map.hasLayer(g) ? g.getLayers().length : 0;
    },
    gridStyle: function (code) { var l = S.grid.byCode[code]; return l ? L.extend({}, l.options) : null; },
    /* RGBA of the grid canvas at a WGS-84 point (what is really painted there). */
    gridPixel: function (lon, lat) {
      var r = S.renderers.grids;
      if (!r._container || !S.map.hasLayer(S.layers.grids)) { return [0, 0, 0, 0]; }
      var p = S.map.latLngToLayerPoint(toMap(lon, lat)).subtract(r._bounds.min);
      var ratio = window.devicePixelRatio || 1;
      var d = r._ctx.getImageData(Math.round(p.x * ratio), Math.round(p.y * ratio), 1, 1).data;
      return [d[0], d[1], d[2], d[3]];
    },
    toScreen: function (lon, lat) { var p = S.map.latLngToContainerPoint(toMap(lon, lat)); return { x: p.x, y: p.y }; },
    fromScreen: function (x, y) { return fromMap(S.map.containerPointToLatLng(L.point(x, y))); },
    openGrid: function (code) { openGridPanel(code); },
    setView: function (lon, lat, zoom) { S.touched = true; S.map.setView(toMap(lon, lat), zoom, { animate: false }); },
    fmtDateTime: fmtDateTime,
    fmtAge: fmtAge,
    /* A layer's last good load (ISO time or null) and whether its latest load failed. */
    freshness: function (key) {
      var f = S.fresh[key];
      return f ? { at: f.at ? f.at.toISOString() : null, failed: f.failed, stale: isStale(key) } : null;
    }
  };

  window.gridmapWall = { init: init, state: S, datum: datum, api: api, toMap: toMap, fromMap: fromMap };
})();
