/* gridmap video wall: 1/4/9/16 live tiles (MJPEG relay, media server or refreshed
 * snapshots), dispatch orders for my unit (polled), and video patrol tours.
 * Every user-supplied string is rendered as text, never as HTML. */
(function () {
  "use strict";

  var LAYOUTS = [1, 4, 9, 16];
  // The smallest layout that shows n cameras (16 at most); an empty wall shows 4 free tiles.
  function fit(n) {
    if (!n) { return 4; }
    return LAYOUTS.filter(function (size) { return size >= n; })[0] || 16;
  }

  var C = window.VIDEOWALL || { i18n: {}, layout: null, cameras: [] };
  // A layout named in the URL wins; otherwise the wall fits the cameras it was opened with.
  var S = { layout: C.layout || fit((C.cameras || []).length), cameras: (C.cameras || []).slice(),
            page: 0, tour: null, tourTimer: null, since: null, orders: {}, snapTimers: [],
            orderId: null };

  function t(key) { return (C.i18n || {})[key] || key; }
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "class") { node.className = attrs[k]; }
      else if (k.slice(0, 2) === "on") { node.addEventListener(k.slice(2), attrs[k]); }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }
  function notice(text) {
    var box = $("vw-notice");
    if (!box) { return; }
    box.textContent = text;
    box.hidden = !text;
    clearTimeout(notice.timer);
    notice.timer = setTimeout(function () { box.hidden = true; }, 6000);
  }
  function api(method, url, body) {
    var opts = { method: method, headers: { Accept: "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { reason: text }; }
        if (r.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
        return { ok: r.ok, status: r.status, data: data };
      });
    });
  }

  // Why a call failed, in the reader's language (the server's message), else its status.
  function failure(res) { return (res.data && (res.data.message || res.data.reason)) || String(res.status); }

  // ------------------------------------------------------------------ tiles

  function stopTiles() {
    S.snapTimers.forEach(clearInterval);
    S.snapTimers = [];
    var grid = $("vw-grid");
    // Clearing src closes the MJPEG connection, which frees its relay slot.
    Array.prototype.forEach.call(grid.querySelectorAll("img"), function (img) {
      if (img.src.indexOf("blob:") === 0) { URL.revokeObjectURL(img.src); }  // a snapshot's copy
      img.removeAttribute("src");
    });
    Array.prototype.forEach.call(grid.querySelectorAll("video"), function (v) { v.pause(); v.removeAttribute("src"); v.load(); });
    grid.textContent = "";
  }

  // The latest snapshot, refreshed, with when it was taken: an offline camera keeps
  // its last picture, which may be hours old. Where there is none, a line of text
  // says so (not a broken picture).
  function snapshotMode(tile, info) {
    var body = tile.querySelector(".vw-body");
    body.textContent = "";
    tile.setAttribute("data-mode", "snapshot");
    var status = info.status && info.status !== "online" ? " · " + t("st_" + info.status) : "";
    tile.querySelector(".vw-mode").textContent = t("vw_snapshot") + status;
    var none = el("div", { class: "vw-nosnap", text: t("no_snapshot") });
    body.appendChild(none);
    tile.setAttribute("data-snapshot", "none");
    if (!info.snapshot_at) { return; }  // the sampler never stored one: don't ask
    var img = el("img", { class: "vw-frame", alt: info.name || info.gb_id });
    var taken = el("div", { class: "vw-taken" });
    img.hidden = true;
    body.insertBefore(img, none);
    body.appendChild(taken);
    function refresh() {
      fetch(info.snapshot_url, { cache: "no-store" }).then(function (r) {
        if (!r.ok) { return null; }
        var age = Number(r.headers.get("X-Snapshot-Age"));
        return r.blob().then(function (blob) { return { blob: blob, age: age }; });
      }).then(function (snap) {
        if (!tile.isConnected) { return; }
        if (!snap) {
          img.hidden = true; none.hidden = false; taken.textContent = "";
          tile.setAttribute("data-snapshot", "none");
          return;
        }
        var old = img.src;
        img.src = URL.createObjectURL(snap.blob);
        if (old) { URL.revokeObjectURL(old); }
        img.hidden = false; none.hidden = true;
        var at = new Date(Date.now() - snap.age * 1000);
        taken.textContent = t("snapshot_at").replace("{time}", window.gridmap.timeOfDay(at, C.lang));
        tile.setAttribute("data-snapshot", "ok");
      }).catch(function () { /* the next refresh tries again */ });
    }
    refresh();
    S.snapTimers.push(setInterval(refresh, (C.snapshot_s || 5) * 1000));
  }

  function liveMode(tile, info) {
    var body = tile.querySelector(".vw-body");
    body.textContent = "";
    if (info.mode === "external") {
      var video = el("video", { class: "vw-frame", autoplay: "", muted: "", playsinline: "" });
      video.muted = true;
      video.addEventListener("error", function () { snapshotMode(tile, info); });
      // HLS (.m3u8) plays natively only in Safari; elsewhere hls.js feeds it through MSE.
      var isHls = /\.m3u8(\?|$)/i.test(info.url);
      if (isHls && window.Hls && window.Hls.isSupported() && !video.canPlayType("application/vnd.apple.mpegurl")) {
        var hls = new window.Hls({ lowLatencyMode: true });
        hls.on(window.Hls.Events.ERROR, function (_e, data) {
          if (data && data.fatal) { hls.destroy(); snapshotMode(tile, info); }
        });
        hls.loadSource(info.url);
        hls.attachMedia(video);
        tile.setAttribute("data-player", "hls.js");
      } else {
        video.src = info.url;
        tile.setAttribute("data-player", "native");
      }
      body.appendChild(video);
      tile.setAttribute("data-mode", "external");
      tile.querySelector(".vw-mode").textContent = t("vw_external");
      return;
    }
    var img = el("img", { class: "vw-frame", alt: info.name });
    // Over the relay cap (503) or a dead stream (502) the tile falls back to snapshots.
    img.onerror = function () { img.onerror = null; img.removeAttribute("src"); snapshotMode(tile, info); };
    img.onload = function () { tile.setAttribute("data-live", "1"); };
    img.src = info.url;
    body.appendChild(img);
    tile.setAttribute("data-mode", "mjpeg");
    tile.querySelector(".vw-mode").textContent = t("vw_live");
  }

  function tile(gb) {
    var node = el("div", { class: "vw-tile", "data-gb-id": gb, "data-mode": "loading" }, [
      el("div", { class: "vw-tile-head" }, [
        el("span", { class: "vw-name", text: gb }),
        el("span", { class: "vw-mode", text: t("loading") }),
        el("button", { type: "button", class: "vw-finding", text: t("vw_finding"), "data-action": "finding" })
      ]),
      el("div", { class: "vw-body" })
    ]);
    api("GET", "/api/cameras/" + encodeURIComponent(gb) + "/live.json").then(function (res) {
      if (!res.ok) {
        node.setAttribute("data-mode", "none");
        node.querySelector(".vw-mode").textContent = t("vw_unavailable");
        return;
      }
      var info = res.data;
      node.querySelector(".vw-name").textContent = info.name;
      node.setAttribute("data-grid", info.grid_code || "");
      liveMode(node, info);
    });
    node.querySelector(".vw-finding").addEventListener("click", function () { recordFinding(node); });
    return node;
  }

  function render() {
    stopTiles();
    var grid = $("vw-grid");
    grid.setAttribute("data-layout", String(S.layout));
    var start = S.page * S.layout;
    var shown = S.cameras.slice(start, start + S.layout);
    shown.forEach(function (gb) { grid.appendChild(tile(gb)); });
    for (var i = shown.length; i < S.layout; i++) {
      grid.appendChild(el("div", { class: "vw-tile vw-empty" }, [el("div", { class: "vw-empty-hint", text: t("vw_empty_hint") })]));
    }
    grid.setAttribute("data-tiles", String(shown.length));
    // Cameras beyond the layout are said, never silently dropped (a tour pages through them).
    var hidden = S.tour ? 0 : S.cameras.length - shown.length;
    grid.setAttribute("data-not-shown", String(hidden));
    var more = $("vw-not-shown");
    if (more) {
      more.textContent = hidden > 0 ? t("vw_not_shown").replace("{n}", String(hidden)) : "";
      more.hidden = hidden <= 0;
    }
    Array.prototype.forEach.call(document.querySelectorAll(".vw-layout"), function (b) {
      b.classList.toggle("active", Number(b.getAttribute("data-layout")) === S.layout);
    });
  }

  function show(cameras, layout) {
    S.cameras = cameras.slice(0, 64);
    S.page = 0;
    if (layout) { S.layout = layout; }
    else if (S.cameras.length > S.layout) { S.layout = fit(S.cameras.length); }
    render();
  }

  function recordFinding(node) {
    var grid = node.getAttribute("data-grid");
    if (!grid) { notice(t("vw_unavailable")); return; }
    var note = window.prompt(t("vw_finding_note"));
    if (!note) { return; }
    var body = { grid_code: grid, note: note, gb_id: node.getAttribute("data-gb-id"), severity: "issue" };
    if (S.tour) { body.tour_id = S.tour.id; }
    api("POST", "/api/patrol/findings", body).then(function (res) {
      notice(res.ok ? t("vw_saved") : failure(res));
      if (res.ok) { node.setAttribute("data-finding", String(res.data.id)); }
    });
  }

  // ------------------------------------------------------------------ orders

  function orderItem(o, outgoing) {
    var state = o.state === "open" && o.my_state ? o.my_state : o.state;
    var li = el("li", { class: "vw-order vw-p-" + o.priority, "data-order": String(o.id), "data-state": state }, [
      el("div", { class: "vw-order-head" }, [
        el("span", { class: "vw-badge", text: t("vw_priority_" + o.priority) }),
        el("span", { class: "vw-order-from", text: (outgoing ? "#" + o.id : t("vw_from") + " " + o.from_unit) }),
        el("span", { class: "vw-order-state", text: t("vw_state_" + state) })
      ]),
      o.note ? el("div", { class: "vw-order-note", text: o.note }) : null
    ]);
    var actions = el("div", { class: "vw-order-actions" });
    actions.appendChild(el("button", { type: "button", text: t("vw_on_wall"), "data-action": "watch", onclick: function () { watchOrder(o.id); } }));
    if (!outgoing && o.state === "open" && o.my_state === "pending") {
      actions.appendChild(el("button", { type: "button", text: t("vw_ack"), "data-action": "ack", onclick: function () { step(o.id, "ack"); } }));
    }
    if (!outgoing && o.state === "open" && o.my_state !== "closed") {
      actions.appendChild(el("button", { type: "button", text: t("vw_close"), "data-action": "close", onclick: function () {
        var feedback = window.prompt(t("vw_feedback"));
        if (feedback !== null) { step(o.id, "close", { feedback: feedback }); }
      } }));
    }
    li.appendChild(actions);
    return li;
  }

  function renderInbox() {
    var list = $("vw-inbox");
    if (!list) { return; }
    list.textContent = "";
    var ids = Object.keys(S.orders).map(Number).sort(function (a, b) { return b - a; });
    ids.forEach(function (id) { list.appendChild(orderItem(S.orders[id], false)); });
    if (!ids.length) { list.appendChild(el("li", { class: "vw-none", text: t("vw_no_orders") })); }
    document.documentElement.setAttribute("data-inbox", String(ids.length));
  }

  function pollInbox() {
    var url = "/api/dispatch/inbox" + (S.since ? "?since=" + encodeURIComponent(S.since) : "");
    return api("GET", url).then(function (res) {
      if (!res.ok) { return; }
      var fresh = 0;
      res.data.orders.forEach(function (o) {
        if (!S.orders[o.id]) { fresh += 1; }
        S.orders[o.id] = o;
      });
      if (S.since && fresh) { notice(t("vw_new_order")); }
      S.since = res.data.server_time;
      renderInbox();
    });
  }

  function loadOutbox() {
    var list = $("vw-outbox");
    if (!list) { return; }
    api("GET", "/api/dispatch/outbox?limit=20").then(function (res) {
      if (!res.ok) { return; }
      list.textContent = "";
      res.data.orders.forEach(function (o) { list.appendChild(orderItem(o, true)); });
      if (!res.data.orders.length) { list.appendChild(el("li", { class: "vw-none", text: t("vw_no_orders") })); }
    });
  }

  function step(id, action, body) {
    api("POST", "/api/dispatch/" + id + "/" + action, body === undefined ? {} : body).then(function (res) {
      if (!res.ok) { notice(failure(res)); return; }
      var o = res.data;
      var mine = (o.targets || []).filter(function (x) { return x.unit === C.user.unit; })[0];
      if (S.orders[id]) {
        S.orders[id].state = o.state;
        S.orders[id].my_state = mine ? mine.state : S.orders[id].my_state;
      }
      renderInbox();
    });
  }

  function watchOrder(id) {
    api("GET", "/api/dispatch/" + id).then(function (res) {
      if (!res.ok) { notice(failure(res)); return; }
      S.orderId = id;
      stopTour();
      show(res.data.cameras.map(function (c) { return c.gb_id; }));
      document.documentElement.setAttribute("data-order", String(id));
    });
  }

  // ------------------------------------------------------------------ tours

  function loadTours(selectId) {
    var select = $("vw-tours");
    if (!select) { return; }
    api("GET", "/api/patrol/tours").then(function (res) {
      if (!res.ok) { return; }
      select.textContent = "";
      var tours = res.data.items;
      tours.forEach(function (tour) {
        select.appendChild(el("option", { value: String(tour.id), text: tour.name + " (" + tour.cameras + ")" }));
      });
      // No tour yet: say so, rather than an empty list and a button that does nothing.
      if (!tours.length) { select.appendChild(el("option", { value: "", text: t("vw_no_tours") })); }
      select.disabled = !tours.length;
      if (!S.tourTimer) { $("vw-tour-start").disabled = !tours.length; }
      if (selectId) { select.value = String(selectId); }
    });
  }

  function stopTour() {
    clearInterval(S.tourTimer);
    S.tourTimer = null;
    S.tour = null;
    var btn = $("vw-tour-start");
    if (btn) { btn.textContent = t("vw_start_tour"); }
    var status = $("vw-tour-status");
    if (status) { status.textContent = ""; }
    document.documentElement.removeAttribute("data-tour");
  }

  function startTour(id) {
    api("GET", "/api/patrol/tours/" + id).then(function (res) {
      if (!res.ok) { notice(failure(res)); return; }
      var tour = res.data;
      stopTour();
      S.tour = tour;
      S.cameras = tour.cameras.map(function (c) { return c.gb_id; });
      S.layout = tour.layout;
      S.page = 0;
      render();
      var pages = Math.max(1, Math.ceil(S.cameras.length / S.layout));
      function status() {
        $("vw-tour-status").textContent = tour.name + " · " + (S.page + 1) + "/" + pages;
        document.documentElement.setAttribute("data-tour", tour.id + ":" + S.page);
      }
      status();
      // Each page of the tour stays on the wall for dwell_s, then the next one comes.
      S.tourTimer = setInterval(function () { S.page = (S.page + 1) % pages; render(); status(); },
                                tour.dwell_s * 1000);
      $("vw-tour-start").textContent = t("vw_stop_tour");
      $("vw-tour-start").disabled = false;
    });
  }

  function saveTour() {
    if (!S.cameras.length) { notice(t("vw_tour_needs_cameras")); return; }
    var name = window.prompt(t("vw_tour_name"));
    if (!name) { return; }
    api("POST", "/api/patrol/tours", { name: name, gb_ids: S.cameras, dwell_s: 20, layout: S.layout }).then(function (res) {
      notice(res.ok ? t("vw_saved") : failure(res));
      if (res.ok) { loadTours(res.data.id); }
    });
  }

  // ------------------------------------------------------------------ camera search

  // Operators know cameras by name, not by their 20-digit IDs: a name typed in the
  // box lists the matching cameras of the caller's scope (the search API), as does
  // the start of an ID; picking one adds it to the wall. Whole IDs typed or pasted
  // still go up as they are.
  var ID_LIST = /^[0-9\s,;]+$/;
  var ID_PART = /^[0-9]{6,19}$/;  // the start of one GB ID: look it up like a name
  function isIdList(q) { return ID_LIST.test(q) && !ID_PART.test(q); }
  var suggest = { items: [], active: -1, timer: null, asked: "" };

  function closeSuggest() {
    var list = $("vw-suggest");
    suggest.items = [];
    suggest.active = -1;
    list.hidden = true;
    list.textContent = "";
    $("vw-ids").setAttribute("aria-expanded", "false");
    $("vw-ids").removeAttribute("aria-activedescendant");
  }

  function addCamera(gbId) {
    var cameras = S.cameras.filter(function (id) { return id !== gbId; }).concat([gbId]);
    $("vw-ids").value = "";
    closeSuggest();
    stopTour();
    show(cameras);
  }

  function highlight(index) {
    var options = $("vw-suggest").querySelectorAll("[role=option]");
    suggest.active = options.length ? (index + options.length) % options.length : -1;
    Array.prototype.forEach.call(options, function (o, i) {
      o.setAttribute("aria-selected", i === suggest.active ? "true" : "false");
    });
    if (suggest.active >= 0) {
      $("vw-ids").setAttribute("aria-activedescendant", options[suggest.active].id);
      options[suggest.active].scrollIntoView({ block: "nearest" });
    }
  }

  function showSuggestions(items) {
    var list = $("vw-suggest");
    list.textContent = "";
    suggest.items = items;
    suggest.active = -1;
    if (!items.length) {
      list.appendChild(el("li", { class: "vw-suggest-none", text: t("vw_no_match") }));
    }
    items.forEach(function (item, i) {
      var detail = [t("src_" + item.detail), t("st_" + item.kind), item.id].join(" · ");
      list.appendChild(el("li", { id: "vw-suggest-" + i, role: "option", "aria-selected": "false",
                                  "data-gb-id": item.id,
                                  onmousedown: function (e) { e.preventDefault(); addCamera(item.id); } },
                          [el("span", { text: item.name }), el("span", { class: "vw-suggest-id", text: detail })]));
    });
    list.hidden = false;
    $("vw-ids").setAttribute("aria-expanded", "true");
  }

  function lookUp() {
    var q = $("vw-ids").value.trim();
    if (q.length < 2 || isIdList(q)) { suggest.asked = ""; closeSuggest(); return; }
    if (q === suggest.asked) { return; }
    suggest.asked = q;
    api("GET", "/api/search?limit=20&q=" + encodeURIComponent(q)).then(function (res) {
      if (q !== $("vw-ids").value.trim()) { return; }  // the box changed meanwhile
      if (!res.ok) { closeSuggest(); notice(failure(res)); return; }
      showSuggestions(res.data.items.filter(function (item) { return item.type === "camera"; }).slice(0, 10));
    });
  }

  function initSearch() {
    var box = $("vw-ids");
    if (!box || !$("vw-suggest")) { return; }
    box.addEventListener("input", function () {
      clearTimeout(suggest.timer);
      suggest.timer = setTimeout(lookUp, 200);
    });
    box.addEventListener("keydown", function (e) {
      if ($("vw-suggest").hidden) { return; }
      if (e.key === "ArrowDown") { e.preventDefault(); highlight(suggest.active + 1); }
      else if (e.key === "ArrowUp") { e.preventDefault(); highlight(suggest.active - 1); }
      else if (e.key === "Escape") { closeSuggest(); }
    });
    box.addEventListener("blur", function () { setTimeout(closeSuggest, 150); });
  }

  // ------------------------------------------------------------------ start

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll(".vw-layout"), function (b) {
      b.addEventListener("click", function () { S.layout = Number(b.getAttribute("data-layout")); S.page = 0; render(); });
    });
    var pick = $("vw-pick");
    if (pick) {
      pick.addEventListener("submit", function (e) {
        e.preventDefault();
        var typed = $("vw-ids").value.trim();
        if (typed && !isIdList(typed)) {
          // A name or the start of an ID: the highlighted match, else the first one.
          var item = suggest.items[suggest.active] || suggest.items[0];
          if (item) { addCamera(item.id); }
          return;
        }
        var ids = typed.split(/[\s,;]+/).filter(function (s) { return /^[0-9]{20}$/.test(s); });
        closeSuggest();
        stopTour();
        show(ids);
      });
      initSearch();
    }
    var start = $("vw-tour-start");
    if (start) {
      start.addEventListener("click", function () {
        if (S.tourTimer) { stopTour(); render(); return; }
        var id = $("vw-tours").value;
        if (id) { startTour(id); }
      });
    }
    var save = $("vw-tour-save");
    if (save) { save.addEventListener("click", saveTour); }
    window.addEventListener("pagehide", stopTiles);
    render();
    if (C.page === "videowall") {
      pollInbox();
      setInterval(pollInbox, (C.poll_s || 5) * 1000);
      loadOutbox();
      setInterval(loadOutbox, 30000);
      loadTours(C.tour);
      if (C.order) { watchOrder(C.order); }
      if (C.tour) { startTour(C.tour); }
    }
    document.documentElement.setAttribute("data-videowall", "ready");
  }

  window.gridmapVideowall = { state: S, show: show, startTour: startTour, stopTour: stopTour, watchOrder: watchOrder };
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
