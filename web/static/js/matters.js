/* Matters pages: the workbench (/matters: open matters on the map, a filterable list,
 * the intake form with duplicate suggestions) and one matter (/matters/<id>: the five
 * steps, deadlines, actions, timeline, attachments, cameras and video dispatch).
 * Everything comes from the matters JSON API; every user-supplied string is put in
 * the page with textContent (gridmap.el), never as HTML. */
(function () {
  "use strict";

  var TZ = window.gridmap.TZ;  // Yanzhou's clock, whatever the browser's zone
  var PAGE = 50;
  var STEPS = ["report", "transfer", "handle", "verify", "close"];
  // How far along the five steps each state is: [index of the step, whether it is done].
  var STEP_OF = { reported: [0, true], transferred: [1, true], handling: [2, false],
                  handled: [2, true], verified: [3, true], closed: [4, true] };
  // Dark enough for white chip text (WCAG AA, 4.5:1).
  var STATE_COLORS = { reported: "#6c67ab", transferred: "#1f6f9a", handling: "#137a3f",
                       handled: "#4a7a12", verified: "#8c6d31", closed: "#6b6b6b" };
  var FLAG_COLORS = { overdue: "#c0392b", due_soon: "#a85a00" };
  var DEADLINES = ["accept_due", "finish_due", "feedback_due"];
  // The states in which each 1-2-3 clock runs (as gridmap.matters.deadline_flags has it).
  var CLOCK_RUNS = { accept_due: ["transferred"], finish_due: ["transferred", "handling"],
                     feedback_due: ["transferred", "handling", "handled"] };
  // Actions whose note the domain needs, so the form asks before sending.
  var NOTE_REQUIRED = { "return": true, escalate: true, handle: true, reject: true, comment: true, supervise: true };
  var S = { map: null, page: null, layer: null, list: [], total: 0, offset: 0, categories: [],
            catIndex: {}, pick: null, duplicateOf: null, dupTimer: null, qTimer: null,
            detail: null, camLayer: null, matterMarker: null, units: null, listToken: 0 };

  // ------------------------------------------------------------------ helpers

  function cfg() { return window.GRIDMAP || { lang: "zh", i18n: {} }; }
  function opts() { return cfg().matters || {}; }
  function en() { return cfg().lang === "en"; }
  function el() { return window.gridmap.el.apply(null, arguments); }
  function t(key) { return window.gridmap.t(key); }
  function tf(key, values) {
    return t(key).replace(/\{(\w+)\}/g, function (m, k) { return values[k] === undefined ? m : values[k]; });
  }
  function $(id) { return document.getElementById(id); }
  function flag(name, value) { document.documentElement.setAttribute("data-mt-" + name, String(value)); }
  function text(value) { return value === null || value === undefined ? "" : String(value); }

  function request(method, url, body) {
    var init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (body instanceof FormData) {
      init.body = body;  // the browser sets the multipart boundary
    } else if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    // gridmap.js adds X-CSRFToken (from <meta name="csrf-token">) to same-origin writes,
    // renews a stale one by itself, and on a 401 shows a bar offering to sign in again
    // in a new tab. So a 401 here is an error like any other: the page stays, with
    // everything typed in it, to be sent again once signed in (no redirect to /login).
    return fetch(url, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (data) {
        if (!r.ok) {
          var err = new Error(text(data.message || data.reason) || String(r.status));
          err.status = r.status; err.data = data; err.write = method !== "GET";
          throw err;
        }
        return data;
      });
    }, function () {
      // No answer at all (offline, the server down, the connection cut): the browser's
      // own words ("Failed to fetch") would mean nothing to the operator.
      var err = new Error(t(method === "GET" ? "network_failed" : "mt_network"));
      err.status = 0; err.network = true;
      throw err;
    });
  }
  // What to show when a request failed: the server's reason, or a plain sentence when
  // the request never got an answer or the sign-in is gone (what was typed is kept).
  function failText(err) {
    if (err && err.network) { return err.message; }
    if (err && err.status === 401) { return text(err.message) + (err.write ? " " + t("mt_kept") : ""); }
    return tf("mt_failed", { r: err && err.message });
  }
  function getJson(url) { return request("GET", url); }
  function postJson(url, body) { return request("POST", url, body); }
  function itemsOf(data) {
    if (Array.isArray(data)) { return data; }
    return (data && (data.items || data.categories || data.units || data.cameras || data.features)) || [];
  }

  var dateFormat = null;
  function dateParts(iso) {
    var d = new Date(iso);
    if (isNaN(d.getTime())) { return null; }
    dateFormat = dateFormat || new Intl.DateTimeFormat("en-US", {
      timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit",
      hour: "2-digit", minute: "2-digit", hourCycle: "h23" });
    var p = {};
    dateFormat.formatToParts(d).forEach(function (x) { p[x.type] = x.value; });
    return p;
  }
  // A date-time field's wall-clock value ("2026-12-01T18:00") read on Yanzhou's clock,
  // as every time on the page is shown, not the browser's zone: China keeps UTC+8
  // all year, so the offset is fixed.
  function yanzhouInstant(value) { return value + (value.length === 16 ? ":00" : "") + "+08:00"; }
  // Chinese conventions: 2025年11月26日 14:05 (the year left out in lists when it is this one).
  function fmtDate(iso, short) {
    if (!iso) { return ""; }
    var p = dateParts(iso);
    if (!p) { return text(iso); }
    var now = dateParts(new Date().toISOString());
    var year = !(short && now && now.year === p.year);
    if (en()) { return (year ? p.year + "-" : "") + p.month + "-" + p.day + " " + p.hour + ":" + p.minute; }
    return (year ? p.year + "年" : "") + Number(p.month) + "月" + Number(p.day) + "日 " + p.hour + ":" + p.minute;
  }
  function fmtSpan(ms) {
    var minutes = Math.max(1, Math.round(Math.abs(ms) / 60000));
    if (minutes >= 48 * 60) { return tf("mt_days", { n: Math.round(minutes / 1440) }); }
    if (minutes >= 60) { return tf("mt_hours", { n: Math.round(minutes / 60) }); }
    return tf("mt_minutes", { n: minutes });
  }

  function categoryName(c) {
    if (!c) { return ""; }
    if (typeof c === "string") {
      var known = S.catIndex[c];
      return known ? categoryName(known) : c;
    }
    return text((en() ? c.name_en : c.name_zh) || c.name_zh || c.name || c.code);
  }
  function unitName(u) { return u ? text(u.name || u) : ""; }
  function stateLabel(s) { return t("mt_state_" + s); }

  // Flags come as {overdue: [...], due_soon: [...]} (or plain booleans on map features).
  function flagsOf(m) {
    var f = m.flags || {};
    function on(v) { return Array.isArray(v) ? v.length > 0 : !!v; }
    return { overdue: on(f.overdue) || on(m.overdue), due_soon: on(f.due_soon) || on(m.due_soon) };
  }
  function flagHas(m, kind, deadline) {
    var list = (m.flags || {})[kind];
    if (!Array.isArray(list)) { return false; }
    var short = deadline.replace(/_due$/, "");
    return list.indexOf(deadline) >= 0 || list.indexOf(short) >= 0;
  }

  function chip(textValue, cls, color) {
    var c = el("span", { class: "mt-chip " + (cls || ""), text: textValue });
    if (color) { c.style.background = color; }
    return c;
  }
  function badges(m) {
    var out = [];
    var f = flagsOf(m);
    if (f.overdue) { out.push(chip(t("mt_overdue"), "mt-badge-overdue")); }
    else if (f.due_soon) { out.push(chip(t("mt_due_soon"), "mt-badge-due-soon")); }
    if (m.urgency === "urgent") { out.push(chip(t("mt_urgent"), "mt-badge-urgent")); }
    if (m.escalated) { out.push(chip(t("mt_escalated"), "mt-badge-escalated")); }
    return out;
  }
  function stateChip(state) { return chip(stateLabel(state), "mt-state mt-state-" + state, STATE_COLORS[state]); }

  function message(node, value, kind) {
    node.textContent = value || "";
    node.className = "mt-msg" + (kind ? " mt-msg-" + kind : "");
  }

  function fillStatic() {
    document.querySelectorAll("[data-t]").forEach(function (n) { n.textContent = t(n.getAttribute("data-t")); });
  }
  function option(value, label, selected) {
    var o = el("option", { value: value, text: label });
    if (selected) { o.selected = true; }
    return o;
  }
  function fillSelect(sel, pairs) {
    sel.textContent = "";
    pairs.forEach(function (p) { sel.appendChild(option(p[0], p[1], p[2])); });
  }

  function layoutMap(map, cls) {
    document.body.classList.add("mt-page", cls);
    document.documentElement.lang = en() ? "en" : "zh-CN";
    // The stylesheet moves the map beside (or above, on phones) the panel.
    setTimeout(function () { map.invalidateSize(); }, 0);
    window.addEventListener("resize", function () { map.invalidateSize(); });
  }

  function addOverlay(layer, name) {
    var control = window.gridmap.state.control;
    if (control) { control.addOverlay(layer, name); }
  }

  // ------------------------------------------------------------------ categories

  function flattenCategories(nodes, depth, out) {
    (nodes || []).forEach(function (n) {
      S.catIndex[n.code] = n;
      out.push({ node: n, depth: depth, leaf: !(n.children && n.children.length) });
      flattenCategories(n.children, depth + 1, out);
    });
    return out;
  }

  function loadCategories() {
    return getJson("/api/matters/categories").then(function (data) {
      S.categories = flattenCategories(itemsOf(data), 0, []);
      flag("categories", S.categories.length);
      return S.categories;
    });
  }

  // A select of the tree: top levels as groups, deeper levels indented; in the intake
  // form only the leaves are choosable, in the filter every level is (a code prefix).
  function categorySelect(sel, leavesOnly, firstLabel) {
    sel.textContent = "";
    sel.appendChild(option("", firstLabel));
    var group = null;
    S.categories.forEach(function (c) {
      var label = categoryName(c.node);
      if (c.depth === 0 && !c.leaf && leavesOnly) {
        group = el("optgroup", { label: label });
        sel.appendChild(group);
        return;
      }
      if (c.depth === 0) { group = null; }
      var pad = new Array(Math.max(0, c.depth - (leavesOnly ? 1 : 0)) + 1).join("\u3000");
      var o = option(c.node.code, pad + label);
      if (leavesOnly && !c.leaf) { o.disabled = true; }
      (group || sel).appendChild(o);
    });
  }

  // ------------------------------------------------------------------ matters layer (map)

  function pointStyle(p) {
    var f = flagsOf(p);
    var color = f.overdue ? FLAG_COLORS.overdue : f.due_soon ? FLAG_COLORS.due_soon : STATE_COLORS[p.state] || "#555";
    return { radius: p.urgency === "urgent" ? 8 : 6, weight: 2, color: "#fff", fillColor: color, fillOpacity: 0.92 };
  }

  function matterSummary(p) {
    return el("div", { class: "mt-pop" }, [
      el("div", { class: "mt-pop-head" }, [el("span", { class: "mt-ref", text: p.ref }), stateChip(p.state)].concat(badges(p))),
      el("div", { class: "mt-pop-title", text: p.title }),
      el("div", { class: "mt-meta", text: [categoryName(p.category || p.category_code), text(p.address)].filter(Boolean).join(" · ") }),
      el("a", { class: "mt-link", href: "/matters/" + encodeURIComponent(p.id), text: t("mt_open_detail") })
    ]);
  }

  // A dot on the map is not a Tab stop: Leaflet's tooltip focus handling makes every
  // one focusable (hundreds before the panel's controls), and the list and the
  // panel already reach every matter and camera by keyboard.
  function notATabStop(lyr) {
    function mark() {
      var node = lyr.getElement && lyr.getElement();
      if (node) { node.setAttribute("tabindex", "-1"); }
    }
    lyr.on("add", mark);
    mark();
    return lyr;
  }

  function makeMattersLayer(map) {
    S.byId = {};
    S.layer = L.geoJSON(null, {
      pointToLayer: function (f, latlng) { return L.circleMarker(latlng, pointStyle(f.properties)); },
      onEachFeature: function (f, lyr) {
        var p = f.properties || {};
        if (p.id === undefined && f.id !== undefined) { p.id = f.id; }
        S.byId[p.id] = lyr;
        lyr.bindTooltip(el("div", {}, [el("div", { class: "gm-tip-name", text: p.title }),
                                       el("div", { class: "gm-tip-code", text: p.ref })]));
        lyr.bindPopup(function () { return matterSummary(p); }, { maxWidth: 300 });
        notATabStop(lyr);
      }
    }).addTo(map);
    addOverlay(S.layer, t("mt_layer"));
  }

  // What the dots' colours and sizes mean: a flag (overdue, due soon) outranks the state.
  function addLegend(map) {
    function row(color, label, cls) {
      var dot = el("span", { class: "mt-legend-dot" + (cls ? " " + cls : "") });
      dot.style.background = color;
      return el("div", { class: "mt-legend-row" }, [dot, el("span", { text: label })]);
    }
    var rows = [row(FLAG_COLORS.overdue, t("mt_overdue")), row(FLAG_COLORS.due_soon, t("mt_due_soon"))];
    // The layer shows open matters only: a closed one has no dot to explain.
    Object.keys(STATE_COLORS).filter(function (s) { return s !== "closed"; })
      .forEach(function (s) { rows.push(row(STATE_COLORS[s], stateLabel(s))); });
    rows.push(row("#555", t("mt_legend_urgent"), "mt-legend-big"));
    // Folded on a phone, where the map is a strip above the list.
    window.gridmap.foldingLegend(map, { id: "mt-legend", className: "mt-legend", title: t("mt_legend"),
                                        rows: rows, openFrom: 700 });
  }

  function loadLayer() {
    return getJson("/api/matters.geojson").then(function (data) {
      S.layer.clearLayers();
      S.byId = {};
      S.layer.addData(data);
      flag("layer", (data.features || []).length);
    }).catch(function (err) { flag("layer-failed", 1); window.gridmap.state.errors.push(String(err)); });
  }

  // ------------------------------------------------------------------ list + filters

  function filterQuery() {
    var params = new URLSearchParams();
    var state = $("mt-f-state").value, due = $("mt-f-flag").value;
    if (state) { params.set("state", state); }
    if (due === "overdue") { params.set("overdue", "1"); }
    if (due === "due_soon") {
      // The API filters overdue only; due-soon matters are open, not overdue, and flagged.
      params.set("overdue", "0");
      if (!state) { params.set("state", "open"); }
    }
    if ($("mt-f-category").value) { params.set("category", $("mt-f-category").value); }
    if ($("mt-f-area").value) { params.set("area", $("mt-f-area").value); }
    var q = $("mt-f-q").value.trim();
    if (q) { params.set("q", q); }
    return params;
  }

  function listItem(m) {
    var li = el("li", { class: "mt-item", "data-id": String(m.id), "data-ref": text(m.ref), "data-state": text(m.state) });
    var f = flagsOf(m);
    if (f.overdue) { li.classList.add("mt-item-overdue"); } else if (f.due_soon) { li.classList.add("mt-item-due-soon"); }
    li.appendChild(el("div", { class: "mt-item-head" }, [el("span", { class: "mt-ref", text: m.ref }), stateChip(m.state)].concat(badges(m))));
    li.appendChild(el("a", { class: "mt-item-title", href: "/matters/" + encodeURIComponent(m.id), text: m.title }));
    li.appendChild(el("div", { class: "mt-meta", text: [categoryName(m.category || m.category_code), text(m.address)].filter(Boolean).join(" · ") }));
    var unit = unitName(m.current_unit) || text(m.current_unit_name);
    li.appendChild(el("div", { class: "mt-meta mt-meta-2", text: [fmtDate(m.reported_at, true), unit].filter(Boolean).join(" · ") }));
    li.addEventListener("click", function (e) {
      if (e.target.tagName === "A") { return; }
      focusMatter(m);
    });
    return li;
  }

  function focusMatter(m) {
    var lyr = S.byId && S.byId[m.id];
    if (lyr) { S.map.setView(lyr.getLatLng(), Math.max(S.map.getZoom(), 16)); lyr.openPopup(); return; }
    if (typeof m.lon === "number" && typeof m.lat === "number") { S.map.setView([m.lat, m.lon], Math.max(S.map.getZoom(), 16)); }
  }

  function loadList(more) {
    var token = ++S.listToken;
    var params = filterQuery();
    var dueSoon = $("mt-f-flag").value === "due_soon";
    params.set("limit", String(dueSoon ? 200 : PAGE));
    params.set("offset", String(more ? S.offset : 0));
    flag("list-loading", 1);
    return getJson("/api/matters?" + params.toString()).then(function (data) {
      if (token !== S.listToken) { return; }
      var items = itemsOf(data);
      var list = $("mt-list");
      if (!more) { list.textContent = ""; S.list = []; S.offset = 0; }
      var total = typeof data.total === "number" ? data.total : items.length;
      S.offset += items.length;
      var moreLeft = S.offset < total && items.length > 0;
      if (dueSoon) { items = items.filter(function (m) { return flagsOf(m).due_soon; }); }
      items.forEach(function (m) { S.list.push(m); list.appendChild(listItem(m)); });
      S.total = dueSoon ? S.list.length : total;
      $("mt-count").textContent = S.total ? tf("mt_count", { n: S.total.toLocaleString(en() ? "en-US" : "zh-CN") }) + (dueSoon && moreLeft ? "+" : "") : t("mt_none");
      $("mt-more").hidden = !moreLeft;
      flag("list", S.list.length);
      flag("list-loading", 0);
    }).catch(function (err) {
      if (token !== S.listToken) { return; }
      flag("list-loading", 0);
      $("mt-count").textContent = failText(err);
    });
  }

  function setupFilters() {
    var states = opts().states || [];
    fillSelect($("mt-f-state"), [["", t("mt_all")]].concat(states.map(function (s) { return [s, stateLabel(s)]; })));
    fillSelect($("mt-f-flag"), [["", t("mt_all")], ["overdue", t("mt_f_overdue")], ["due_soon", t("mt_f_due_soon")]]);
    fillSelect($("mt-f-area"), [["", t("mt_all")]]);
    ["mt-f-state", "mt-f-flag", "mt-f-category", "mt-f-area"].forEach(function (id) {
      $(id).addEventListener("change", function () { loadList(false); });
    });
    $("mt-f-q").addEventListener("input", function () {
      clearTimeout(S.qTimer);
      S.qTimer = setTimeout(function () { loadList(false); }, 300);
    });
    $("mt-filters").addEventListener("submit", function (e) { e.preventDefault(); loadList(false); });
    $("mt-more").addEventListener("click", function () { loadList(true); });
    $("mt-refresh").addEventListener("click", function () { loadList(false); loadLayer(); });
    // Areas: the towns/streets the caller can see (the same scoped layer as the map's).
    getJson("/api/areas/towns.geojson").then(function (data) {
      var sel = $("mt-f-area");
      (data.features || []).map(function (f) { return f.properties || {}; })
        .sort(function (a, b) { return text(a.code).localeCompare(text(b.code)); })
        .forEach(function (p) { if (p.code) { sel.appendChild(option(p.code, text(p.name) || p.code)); } });
    }).catch(function () { /* the filter still works without area choices */ });
  }

  // ------------------------------------------------------------------ intake form

  function showTab(which) {
    var list = which === "list";
    $("mt-list-view").hidden = !list;
    $("mt-new-view").hidden = list;
    $("mt-tab-list").classList.toggle("mt-tab-on", list);
    $("mt-tab-new").classList.toggle("mt-tab-on", !list);
    $("mt-tab-list").setAttribute("aria-selected", String(list));
    $("mt-tab-new").setAttribute("aria-selected", String(!list));
    document.body.classList.toggle("mt-picking", !list);
    if (!list && S.pick) { S.pick.addTo(S.map); }
    if (list && S.pick) { S.pick.remove(); }
    // The address names the tab (?new=1), so a reload or a sign-in link comes back to it.
    if (window.history && history.replaceState) {
      var params = new URLSearchParams(location.search);
      if (list) { params.delete("new"); } else { params.set("new", "1"); }
      var query = params.toString();
      history.replaceState(history.state, "", location.pathname + (query ? "?" + query : "") + location.hash);
    }
  }

  // A coordinate field: {value} for a whole decimal literal ("116.796837", "-0.5"),
  // {empty}, or {bad} for anything else ("116.796837abc" is not 116.796837). Full-width
  // digits and points from a Chinese input method count as the ASCII ones.
  var DECIMAL = /^[-+]?(\d+(\.\d*)?|\.\d+)$/;
  function coord(id) {
    var raw = $(id).value.trim()
      .replace(/[\uFF10-\uFF19]/g, function (c) { return String.fromCharCode(c.charCodeAt(0) - 0xFEE0); })
      .replace(/[\uFF0E\u3002]/g, ".").replace(/[\uFF0D\u2212]/g, "-").replace(/\uFF0B/g, "+");
    if (!raw) { return { empty: true }; }
    var value = Number(raw);
    if (!DECIMAL.test(raw) || !isFinite(value)) { return { bad: true }; }
    return { value: value };
  }
  function readLonLat() {
    var lon = coord("mt-lon"), lat = coord("mt-lat");
    if (lon.value === undefined || lat.value === undefined) { return null; }
    return { lon: lon.value, lat: lat.value };
  }
  // Marks the malformed coordinate fields (aria-invalid) and returns the first of them
  // with the message naming them, or null when both are numbers or empty.
  function badCoords() {
    var bad = [];
    [["mt-lon", "mt_lon"], ["mt-lat", "mt_lat"]].forEach(function (f) {
      var wrong = !!coord(f[0]).bad;
      if (wrong) { $(f[0]).setAttribute("aria-invalid", "true"); } else { $(f[0]).removeAttribute("aria-invalid"); }
      if (wrong) { bad.push(f); }
    });
    if (!bad.length) { return null; }
    return { first: $(bad[0][0]), text: tf("mt_bad_coord", { f: bad.map(function (f) { return t(f[1]); }).join(t("list_sep")) }) };
  }

  function placePick(lon, lat) {
    var ll = [lat, lon];
    if (!S.pick) {
      S.pick = L.circleMarker(ll, { radius: 9, color: "#b2182b", weight: 3, fillColor: "#fff", fillOpacity: 0.9 });
    }
    S.pick.setLatLng(ll).addTo(S.map);
  }

  function locationChanged() {
    var bad = badCoords(), msg = $("mt-form-msg");
    if (bad) { message(msg, bad.text, "error"); msg.setAttribute("data-coord", "1"); }
    else if (msg.getAttribute("data-coord")) { message(msg, ""); msg.removeAttribute("data-coord"); }
    var p = readLonLat();
    if (p) { placePick(p.lon, p.lat); }
    scheduleDuplicates();
    updateWorkers();
  }

  // A grid worker's report names the worker: the team of the grid at the spot.
  function updateWorkers() {
    var row = $("mt-worker-row"), sel = $("mt-worker");
    row.hidden = $("mt-source").value !== "grid_worker";
    var p = readLonLat();
    if (row.hidden || !p) {
      fillSelect(sel, [["", t(row.hidden ? "mt_worker_none" : "mt_worker_pick")]]);
      return Promise.resolve();
    }
    var token = S.workerToken = (S.workerToken || 0) + 1;
    return getJson("/api/grids/at?team=1&lon=" + p.lon + "&lat=" + p.lat).then(function (grid) {
      if (token !== S.workerToken) { return; }
      fillSelect(sel, [["", t("mt_worker_none")]].concat(grid.team.members.map(function (m) {
        return [String(m.id), t(m.role) + " " + m.name];
      })));
      flag("workers", grid.team.members.length);
    }).catch(function () {
      if (token === S.workerToken) { fillSelect(sel, [["", t("mt_worker_none")]]); flag("workers", 0); }
    });
  }

  function scheduleDuplicates() {
    clearTimeout(S.dupTimer);
    S.dupTimer = setTimeout(checkDuplicates, 250);
  }

  function checkDuplicates() {
    var p = readLonLat(), category = $("mt-category").value, box = $("mt-dups");
    if (!p || !category) { box.hidden = true; box.textContent = ""; return null; }
    var token = S.dupToken = (S.dupToken || 0) + 1;
    return postJson("/api/matters/duplicates", { category: category, lon: p.lon, lat: p.lat }).then(function (data) {
      if (token !== S.dupToken) { return; }
      renderDuplicates(itemsOf(data));
    }).catch(function (err) {
      if (token !== S.dupToken) { return; }
      box.hidden = false;
      box.textContent = "";
      box.appendChild(el("div", { class: "mt-msg mt-msg-error", text: failText(err) }));
      flag("dups", -1);
    });
  }

  function renderDuplicates(items) {
    var box = $("mt-dups");
    box.textContent = "";
    box.hidden = false;
    if (S.duplicateOf && !items.some(function (d) { return d.id === S.duplicateOf.id; })) { S.duplicateOf = null; }
    if (!items.length) {
      box.appendChild(el("div", { class: "mt-hint", text: t("mt_no_dups") }));
      flag("dups", 0);
      return;
    }
    box.appendChild(el("div", { class: "mt-dups-title", text: t("mt_dups") }));
    var list = el("ul", { class: "mt-dups-list" });
    items.forEach(function (d) {
      var marked = S.duplicateOf && S.duplicateOf.id === d.id;
      var btn = el("button", { type: "button", class: "mt-btn mt-btn-quiet mt-dup-mark", "data-id": String(d.id),
                               text: marked ? t("mt_unmark_dup") : t("mt_mark_dup") });
      btn.addEventListener("click", function () {
        S.duplicateOf = marked ? null : d;
        renderDuplicates(items);
      });
      var meta = [fmtDate(d.reported_at, true), typeof d.distance_m === "number" ? tf("mt_distance", { m: Math.round(d.distance_m) }) : ""]
        .filter(Boolean).join(" · ");
      list.appendChild(el("li", { class: "mt-dup" + (marked ? " mt-dup-on" : ""), "data-id": String(d.id) }, [
        el("div", { class: "mt-item-head" }, [el("span", { class: "mt-ref", text: d.ref }), d.state ? stateChip(d.state) : null]),
        el("a", { class: "mt-item-title", href: "/matters/" + encodeURIComponent(d.id), target: "_blank", rel: "noopener", text: d.title }),
        el("div", { class: "mt-meta", text: meta }),
        btn
      ]));
    });
    box.appendChild(list);
    if (S.duplicateOf) { box.appendChild(el("div", { class: "mt-msg mt-msg-warn", text: tf("mt_dup_of", { ref: S.duplicateOf.ref }) })); }
    flag("dups", items.length);
  }

  function setupIntake() {
    var sources = opts().sources || ["other"];
    fillSelect($("mt-source"), sources.map(function (s) { return [s, t("mt_src_" + s), s === "grid_worker"]; }));
    fillSelect($("mt-urgency"), [["routine", t("mt_routine")], ["urgent", t("mt_urgent")]]);
    $("mt-submit").textContent = t("mt_submit");
    $("mt-tab-list").textContent = t("mt_tab_list");
    $("mt-tab-new").textContent = t("mt_tab_new");
    $("mt-tab-list").addEventListener("click", function () { showTab("list"); });
    $("mt-tab-new").addEventListener("click", function () { showTab("new"); });
    $("mt-category").addEventListener("change", scheduleDuplicates);
    $("mt-source").addEventListener("change", updateWorkers);
    updateWorkers();
    $("mt-lon").addEventListener("change", locationChanged);
    $("mt-lat").addEventListener("change", locationChanged);
    S.map.on("click", function (e) {
      if ($("mt-new-view").hidden) { return; }
      $("mt-lon").value = e.latlng.lng.toFixed(6);
      $("mt-lat").value = e.latlng.lat.toFixed(6);
      locationChanged();
    });
    $("mt-intake").addEventListener("submit", function (e) { e.preventDefault(); submitIntake(); });
  }

  function submitIntake() {
    var msg = $("mt-form-msg");
    msg.removeAttribute("data-coord");
    var bad = badCoords();
    if (bad) { message(msg, bad.text, "error"); msg.setAttribute("data-coord", "1"); bad.first.focus(); return null; }
    var p = readLonLat();
    var missing = [];
    if (!$("mt-category").value) { missing.push(t("mt_category")); }
    if (!p) { missing.push(t("mt_location")); }
    if (!$("mt-title-input").value.trim()) { missing.push(t("mt_field_title")); }
    if (missing.length) { message(msg, tf("mt_need", { f: missing.join(t("list_sep")) }), "error"); return null; }
    var payload = {
      source: $("mt-source").value, category: $("mt-category").value, lon: p.lon, lat: p.lat,
      title: $("mt-title-input").value.trim(), description: $("mt-description").value.trim(),
      address: $("mt-address").value.trim(), urgency: $("mt-urgency").value,
      reporter_name: $("mt-reporter-name").value.trim(), reporter_phone: $("mt-reporter-phone").value.trim()
    };
    var ref = $("mt-source-ref").value.trim();
    if (ref) { payload.source_ref = ref; }
    if (payload.source === "grid_worker" && $("mt-worker").value) { payload.reported_by_worker = Number($("mt-worker").value); }
    if (S.duplicateOf) { payload.duplicate_of = S.duplicateOf.id; }
    Object.keys(payload).forEach(function (k) { if (payload[k] === "") { delete payload[k]; } });
    var files = $("mt-photos").files;
    var body = payload;
    if (files && files.length) {
      // One multipart request: the matter and its photos are stored together or not at all.
      body = new FormData();
      Object.keys(payload).forEach(function (k) { body.append(k, String(payload[k])); });
      Array.prototype.forEach.call(files, function (f) { body.append("photos", f, f.name); });
    }
    $("mt-submit").disabled = true;
    message(msg, t("mt_submitting"));
    return postJson("/api/matters", body).then(function (m) {
      message(msg, "");
      var done = el("div", { class: "mt-msg mt-msg-ok" }, [
        document.createTextNode(tf("mt_filed", { ref: text(m.ref) }) + " "),
        el("a", { class: "mt-link", href: "/matters/" + encodeURIComponent(m.id), text: t("mt_open_detail") })
      ]);
      msg.appendChild(done);
      flag("filed", text(m.ref));
      resetIntake();
      $("mt-count").textContent = "";
      return Promise.all([loadList(false), loadLayer()]);
    }).catch(function (err) {
      message(msg, failText(err), "error");
      flag("filed", "error");
    }).then(function () { $("mt-submit").disabled = false; });
  }

  function resetIntake() {
    ["mt-source-ref", "mt-title-input", "mt-description", "mt-address", "mt-reporter-name",
     "mt-reporter-phone", "mt-lon", "mt-lat", "mt-photos"].forEach(function (id) { $(id).value = ""; });
    $("mt-urgency").value = "routine";
    S.duplicateOf = null;
    $("mt-dups").hidden = true;
    $("mt-dups").textContent = "";
    if (S.pick) { S.pick.remove(); S.pick = null; }
    updateWorkers();
  }

  function initList(map) {
    S.map = map; S.page = "list";
    layoutMap(map, "mt-page-list");
    fillStatic();
    $("mt-title").textContent = t("mt_title");
    $("mt-more").textContent = t("mt_more");
    $("mt-refresh").textContent = t("mt_refresh");
    $("mt-f-q").placeholder = t("mt_f_q_hint");
    document.title = t("mt_title") + " · " + t("app_title");
    makeMattersLayer(map);
    addLegend(map);
    setupFilters();
    setupIntake();
    fillSelect($("mt-f-category"), [["", t("mt_all")]]);
    fillSelect($("mt-category"), [["", t("mt_choose")]]);
    var cats = loadCategories().then(function () {
      categorySelect($("mt-f-category"), false, t("mt_all"));
      categorySelect($("mt-category"), true, t("mt_choose"));
    }).catch(function (err) { message($("mt-form-msg"), failText(err), "error"); });
    Promise.all([cats, loadList(false), loadLayer()]).then(function () { flag("ready", 1); });
    if (/[?&]new=1/.test(location.search)) { showTab("new"); }
  }

  // ------------------------------------------------------------------ detail page

  function renderHeader(d) {
    var box = $("mt-header");
    box.textContent = "";
    box.appendChild(el("div", { class: "mt-item-head" }, [el("span", { class: "mt-ref", id: "mt-ref", text: d.ref }), stateChip(d.state)].concat(badges(d))));
    box.appendChild(el("h1", { class: "mt-h1", id: "mt-matter-title", text: d.title }));
    var src = t("mt_src_" + d.source) + (d.source_ref ? " " + d.source_ref : "");
    box.appendChild(el("div", { class: "mt-meta", id: "mt-category-name", text: [categoryName(d.category), src].filter(Boolean).join(" · ") }));
    document.title = text(d.ref) + " · " + t("mt_detail_title");
  }

  function renderSteps(d) {
    var strip = $("mt-steps");
    strip.textContent = "";
    var at = STEP_OF[d.state] || [0, false];
    STEPS.forEach(function (step, i) {
      var cls = "mt-step";
      if (i < at[0] || (i === at[0] && at[1])) { cls += " mt-step-done"; }
      if (i === at[0]) { cls += " mt-step-current"; }
      if (i === at[0] + 1 && at[1] && d.state !== "closed") { cls += " mt-step-next"; }
      strip.appendChild(el("li", { class: cls, "data-step": step }, [
        el("span", { class: "mt-step-dot", text: String(i + 1) }),
        el("span", { class: "mt-step-name", text: t("mt_step_" + step) })
      ]));
    });
    strip.setAttribute("data-state", text(d.state));
    strip.setAttribute("data-reached", String(at[0]));
  }

  function fact(dl, key, value) {
    if (value === "" || value === null || value === undefined) { return; }
    dl.appendChild(el("dt", { text: t(key) }));
    dl.appendChild(el("dd", { "data-key": key, text: value }));
  }

  function renderFacts(d) {
    var box = $("mt-facts");
    box.textContent = "";
    var dl = el("dl", { class: "mt-facts" });
    fact(dl, "mt_reported_at", fmtDate(d.reported_at));
    fact(dl, "mt_current_unit", unitName(d.current_unit));
    fact(dl, "mt_handling_unit", unitName(d.handling_unit));
    fact(dl, "mt_address", text(d.address));
    fact(dl, "mt_grid", text(d.grid_code));
    var w = d.reported_by_worker;
    if (w) { fact(dl, "mt_worker", t(w.role) + " " + w.name + (w.left ? " " + t("mt_worker_left") : "")); }
    if (d.rating) { fact(dl, "mt_rating", "★".repeat(d.rating) + "☆".repeat(Math.max(0, 5 - d.rating)) + " " + d.rating + "/5"); }
    box.appendChild(dl);
    var extra = [];
    if (d.redo_count) { extra.push(chip(tf("mt_redo", { n: d.redo_count }), "mt-badge-redo")); }
    if (extra.length) { box.appendChild(el("div", { class: "mt-chips" }, extra)); }
    if (d.description) { box.appendChild(el("p", { class: "mt-description", id: "mt-description-text", text: d.description })); }
  }

  function renderDeadlines(d) {
    var dl = $("mt-deadlines");
    dl.textContent = "";
    var deadlines = d.deadlines || {};
    var now = Date.now();
    DEADLINES.forEach(function (key) {
      var due = deadlines[key];
      if (!due) { return; }
      var dd = el("dd", { "data-key": key }, [el("span", { text: fmtDate(due) })]);
      var ms = new Date(due).getTime() - now;
      var open = CLOCK_RUNS[key].indexOf(d.state) >= 0;
      if (flagHas(d, "overdue", key)) { dd.appendChild(chip(t("mt_overdue"), "mt-badge-overdue")); }
      else if (flagHas(d, "due_soon", key)) { dd.appendChild(chip(t("mt_due_soon"), "mt-badge-due-soon")); }
      if (open && isFinite(ms)) {
        dd.appendChild(el("span", { class: "mt-span" + (ms < 0 ? " mt-late" : ""), text: tf(ms < 0 ? "mt_late" : "mt_left", { d: fmtSpan(ms) }) }));
      }
      dl.appendChild(el("dt", { text: t("mt_" + key) }));
      dl.appendChild(dd);
    });
    if (!dl.children.length) { dl.appendChild(el("dd", { class: "mt-hint", text: "—" })); }
  }

  function renderContact(d) {
    var sec = $("mt-contact-sec"), box = $("mt-contact");
    box.textContent = "";
    var r = d.reporter;
    if (!r || (!r.name && !r.phone && !r.email)) { sec.hidden = true; return; }
    sec.hidden = false;
    if (r.name) { box.appendChild(el("span", { class: "mt-contact-name", text: r.name })); }
    if (r.phone) {
      box.appendChild(document.createTextNode(" "));
      box.appendChild(el("a", { class: "mt-contact-phone", href: "tel:" + String(r.phone).replace(/[^0-9+]/g, ""), text: r.phone }));
    }
    if (r.email) {
      box.appendChild(document.createTextNode(" "));
      box.appendChild(el("span", { class: "mt-contact-email", text: r.email }));
    }
  }

  // A note the system wrote ("智能流转") comes with a code: shown in the reader's language.
  function eventNote(e) {
    var sys = e.system_note;
    if (!sys || !sys.code) { return e.note; }
    var key = "mt_note_" + sys.code;
    return t(key) === key ? e.note : tf(key, sys);
  }

  function renderTimeline(d) {
    var list = $("mt-timeline");
    list.textContent = "";
    (d.events || []).slice().reverse().forEach(function (e) {
      var head = [t("mt_act_" + e.action)];
      if (e.to_state && e.to_state !== e.from_state) { head.push("→ " + stateLabel(e.to_state)); }
      var who = [text(e.unit && (e.unit.name || e.unit)), text(e.username)].filter(Boolean).join(" ");
      var to = e.to_unit ? t("mt_to") + " " + unitName(e.to_unit) : "";
      list.appendChild(el("li", { class: "mt-event", "data-action": text(e.action) }, [
        el("div", { class: "mt-event-head" }, [
          el("span", { class: "mt-event-action", text: head.join(" ") }),
          el("time", { class: "mt-event-time", datetime: text(e.at), text: fmtDate(e.at, true) })
        ]),
        el("div", { class: "mt-meta", text: [who, to].filter(Boolean).join(" · ") }),
        e.note ? el("div", { class: "mt-event-note", text: eventNote(e) }) : null
      ]));
    });
    var sups = d.supervisions || [];
    $("mt-sup-sec").hidden = !sups.length;
    var sl = $("mt-supervisions");
    sl.textContent = "";
    sups.forEach(function (s) {
      sl.appendChild(el("li", { class: "mt-event" }, [
        el("div", { class: "mt-event-head" }, [
          el("span", { class: "mt-event-action", text: t("mt_sup_" + s.kind) }),
          el("time", { class: "mt-event-time", text: fmtDate(s.at, true) })
        ]),
        el("div", { class: "mt-meta", text: [unitName(s.by_unit), s.to_unit ? t("mt_to") + " " + unitName(s.to_unit) : "",
                                              s.respond_by ? t("mt_respond_by") + " " + fmtDate(s.respond_by, true) : ""].filter(Boolean).join(" · ") }),
        s.note ? el("div", { class: "mt-event-note", text: s.note }) : null
      ]));
    });
  }

  function attachmentUrl(a) { return "/api/matters/" + encodeURIComponent(S.id) + "/attachments/" + encodeURIComponent(a.id); }

  function renderAttachments(d) {
    var box = $("mt-attachments");
    box.textContent = "";
    var items = d.attachments || [];
    if (!items.length) { box.appendChild(el("p", { class: "mt-hint", text: t("mt_no_attachments") })); }
    items.forEach(function (a) {
      var url = attachmentUrl(a);
      var isImage = /^image\//.test(text(a.content_type));
      var label = text(a.filename) || t("mt_attachments");
      var link = el("a", { class: "mt-att", href: url, target: "_blank", rel: "noopener", "data-id": String(a.id), "data-kind": text(a.kind), title: label });
      if (isImage) { link.appendChild(el("img", { class: "mt-thumb", src: url, alt: label, loading: "lazy" })); }
      link.appendChild(el("span", { class: "mt-att-name", text: label }));
      link.appendChild(el("span", { class: "mt-meta", text: fmtDate(a.created_at, true) }));
      box.appendChild(link);
    });
    flag("attachments", items.length);
  }

  // ---- actions: one button per allowed action, each opening a small form

  function closeActionForm() {
    var f = $("mt-action-form");
    f.hidden = true; f.textContent = "";
    f.removeAttribute("data-action"); f.removeAttribute("data-stale");
  }

  function actionNames(d) {
    return (d.allowed_actions || []).map(function (a) { return typeof a === "string" ? a : a.action; });
  }

  // Where focus goes once the form is gone (its buttons are removed with it): the
  // button of the action that opened it, else the first step button, else the message.
  function focusAfterForm(action) {
    var box = $("mt-actions");
    var b = (action && box.querySelector("button[data-action='" + action + "']")) || box.querySelector("button");
    if (b) { b.focus(); return; }
    var msg = $("mt-msg");
    msg.setAttribute("tabindex", "-1");
    msg.focus();
  }

  // Cancel, Escape: nothing is sent, the form goes, focus returns to its step button.
  function dismissActionForm() {
    var form = $("mt-action-form");
    if (form.hidden || S.sending) { return; }
    var action = form.getAttribute("data-action");
    closeActionForm();
    focusAfterForm(action);
  }

  function field(label, input) { return el("label", { class: "mt-field" }, [el("span", { text: label }), input]); }

  function loadTransferUnits() {
    if (S.transferUnits) { return Promise.resolve(S.transferUnits); }
    return getJson("/api/matters/units").then(function (data) { S.transferUnits = itemsOf(data); return S.transferUnits; });
  }

  function unitSelect(units, blankLabel, selectedId) {
    var sel = el("select", { name: "unit_id" });
    if (blankLabel !== null) { sel.appendChild(option("", blankLabel)); }
    units.forEach(function (u) { sel.appendChild(option(String(u.id), text(u.name), u.id === selectedId)); });
    return sel;
  }

  // The note being written in the open form (carried over when another action's form opens).
  function typedNote() {
    var form = $("mt-action-form"), area = form.querySelector("textarea[name=note]");
    return !form.hidden && area ? area.value : "";
  }

  function openAction(action) {
    var d = S.detail;
    var form = $("mt-action-form");
    var carried = typedNote();
    form.textContent = "";
    form.hidden = false;
    form.setAttribute("data-action", action);
    form.removeAttribute("data-stale");
    form.appendChild(el("h3", { class: "mt-action-title", text: t("mt_act_" + action) }));
    var controls = {};
    var pending = Promise.resolve();
    if (action === "transfer" || action === "reopen") {
      var holder = el("div", { class: "mt-field-holder" });
      form.appendChild(holder);
      pending = loadTransferUnits().then(function (units) {
        var current = d.handling_unit && d.handling_unit.id;
        controls.unit = unitSelect(units, action === "reopen" ? t("mt_unit_same") : t("mt_choose"),
                                   action === "reopen" ? null : current);
        holder.appendChild(field(t("mt_unit"), controls.unit));
      }).catch(function (err) { holder.appendChild(el("div", { class: "mt-msg mt-msg-error", text: failText(err) })); });
    }
    if (action === "rate") {
      controls.rating = el("select", { name: "rating" });
      [5, 4, 3, 2, 1].forEach(function (n) { controls.rating.appendChild(option(String(n), "★".repeat(n) + " " + n)); });
      form.appendChild(field(t("mt_rating"), controls.rating));
      controls.by = el("select", { name: "by" });
      fillSelect(controls.by, [["callback", t("mt_by_callback")], ["citizen", t("mt_by_citizen")]]);
      form.appendChild(field(t("mt_rating_by"), controls.by));
    }
    if (action === "supervise") {
      controls.kind = el("select", { name: "kind" });
      fillSelect(controls.kind, (opts().supervision_kinds || ["instant"]).map(function (k) { return [k, t("mt_sup_" + k)]; }));
      form.appendChild(field(t("mt_sup_kind"), controls.kind));
      controls.respond = el("input", { name: "respond_by", type: "datetime-local" });
      form.appendChild(field(t("mt_respond_by"), controls.respond));
    }
    controls.note = el("textarea", { name: "note", rows: "2", maxlength: "2000" });
    controls.note.value = carried;
    form.appendChild(field(t("mt_note"), controls.note));
    var confirm = el("button", { type: "button", id: "mt-action-confirm", class: "mt-btn", text: t("mt_confirm") });
    var cancel = el("button", { type: "button", class: "mt-btn mt-btn-quiet mt-action-cancel", text: t("mt_cancel") });
    form.appendChild(el("div", { class: "mt-row" }, [confirm, cancel]));
    cancel.addEventListener("click", dismissActionForm);
    confirm.addEventListener("click", function () {
      pending.then(function () { sendAction(action, controls, confirm); });
    });
    controls.note.focus();
  }

  // The action the form was written for is no longer possible (someone else moved the
  // matter on): say so, and keep the note, to copy or to carry into another action.
  function actionGone(action) {
    var form = $("mt-action-form");
    var note = typedNote();
    form.textContent = "";
    form.hidden = false;
    form.setAttribute("data-action", action);
    form.setAttribute("data-stale", "1");
    form.appendChild(el("h3", { class: "mt-action-title", text: t("mt_act_" + action) }));
    form.appendChild(el("div", { id: "mt-action-gone", class: "mt-msg mt-msg-warn", role: "alert",
                                 text: tf("mt_act_gone", { a: t("mt_act_" + action) }) }));
    var area = el("textarea", { name: "note", rows: "3", maxlength: "2000" });
    area.value = note;
    form.appendChild(field(t("mt_note"), area));
    var close = el("button", { type: "button", class: "mt-btn mt-btn-quiet mt-action-cancel", text: t("mt_close") });
    close.addEventListener("click", dismissActionForm);
    form.appendChild(el("div", { class: "mt-row" }, [close]));
  }

  function sendAction(action, c, button) {
    if (S.sending) { return null; }
    var payload = { version: S.detail.version };
    var note = c.note.value.trim();
    if (note) { payload.note = note; }
    if (NOTE_REQUIRED[action] && !note) { message($("mt-msg"), t("mt_note_required"), "error"); return null; }
    if (c.unit) {
      if (c.unit.value) { payload.unit_id = Number(c.unit.value); }
      else if (action === "transfer") { message($("mt-msg"), tf("mt_need", { f: t("mt_unit") }), "error"); return null; }
    }
    if (c.rating) { payload.rating = Number(c.rating.value); payload.by = c.by.value; }
    if (c.kind) {
      payload.kind = c.kind.value;
      if (c.respond.value) { payload.respond_by = yanzhouInstant(c.respond.value); }
    }
    button.disabled = true;
    S.sending = true;
    message($("mt-msg"), t("mt_submitting"));
    return postJson("/api/matters/" + encodeURIComponent(S.id) + "/actions/" + encodeURIComponent(action), payload)
      .then(function (d) {
        S.sending = false;
        closeActionForm();
        message($("mt-msg"), tf("mt_done", { a: t("mt_act_" + action) }), "ok");
        if (d && d.state && d.allowed_actions) { renderDetail(d); return null; }
        return loadDetail();
      })
      .then(function () {
        // The confirm button went with the form: focus the step button (or the next one),
        // unless the user has moved on meanwhile.
        var at = document.activeElement;
        if ($("mt-action-form").hidden && (!at || at === document.body)) { focusAfterForm(action); }
      })
      .catch(function (err) {
        S.sending = false;
        button.disabled = false;
        // A disabled button lets go of focus: give it back rather than leave it on <body>.
        var lost = !document.activeElement || document.activeElement === document.body;
        if (err.status === 409) {
          // A stale version or a step someone else already took: offer the fresh state.
          $("mt-conflict").hidden = false;
          flag("conflict", 1);
          message($("mt-msg"), text(err.message), "error");
          if (lost) { $("mt-reload").focus(); }
          return;
        }
        message($("mt-msg"), failText(err), "error");
        if (lost && button.isConnected) { button.focus(); }
      });
  }

  function renderActions(d) {
    var box = $("mt-actions");
    box.textContent = "";
    var actions = actionNames(d);
    actions.forEach(function (name) {
      var b = el("button", { type: "button", class: "mt-btn mt-action mt-action-" + name, "data-action": name, text: t("mt_act_" + name) });
      b.addEventListener("click", function () { openAction(name); });
      box.appendChild(b);
    });
    if (!actions.length) { box.appendChild(el("p", { class: "mt-hint", text: t("mt_no_actions") })); }
    // An open form whose action is still allowed stays as it is (it sends the fresh
    // version); one whose action is gone closes, or keeps its note and says why.
    var form = $("mt-action-form");
    var open = form.getAttribute("data-action");
    if (!form.hidden && !form.getAttribute("data-stale") && actions.indexOf(open) < 0) {
      if (typedNote().trim()) { actionGone(open); } else { closeActionForm(); }
    }
  }

  // The conflict bar's reload: fresh data, and the form being written stays open with
  // its note (or says its action is no longer possible); focus goes back to the note.
  function reloadAfterConflict() {
    return loadDetail().then(function (ok) {
      if (!ok) { return; }  // the reason is shown, the bar and the form stay
      var form = $("mt-action-form");
      var area = !form.hidden && form.querySelector("textarea[name=note]");
      message($("mt-msg"), !form.hidden && !form.getAttribute("data-stale") ? t("mt_reloaded") : "");
      if (area) { area.focus(); } else { focusAfterForm(null); }
    });
  }

  function renderDetail(d) {
    S.detail = d;
    $("mt-conflict").hidden = true;
    flag("conflict", 0);
    renderHeader(d);
    renderSteps(d);
    renderActions(d);
    renderFacts(d);
    renderDeadlines(d);
    renderContact(d);
    renderAttachments(d);
    renderTimeline(d);
    if (typeof d.lon === "number" && typeof d.lat === "number") {
      var ll = [d.lat, d.lon];
      if (!S.matterMarker) {
        S.matterMarker = notATabStop(L.circleMarker(ll, { radius: 10, weight: 3, color: "#fff", fillOpacity: 1 })).addTo(S.map);
        S.map.setView(ll, 17);
      }
      S.matterMarker.setLatLng(ll).setStyle({ fillColor: pointStyle(d).fillColor });
      S.matterMarker.bindTooltip(el("div", {}, [el("div", { class: "gm-tip-name", text: d.title }), el("div", { class: "gm-tip-code", text: d.ref })]));
    }
    updateDispatchButton();
    flag("state", d.state);
    flag("version", d.version);
    flag("loaded", 1);
  }

  function loadDetail() {
    return getJson("/api/matters/" + encodeURIComponent(S.id)).then(function (d) { renderDetail(d); return true; }).catch(function (err) {
      message($("mt-msg"), err.status === 404 ? t("mt_not_found") : failText(err), "error");
      flag("loaded", "error");
      return false;
    });
  }

  // ---- cameras, snapshots and video dispatch

  function cameraItem(cam) {
    var li = el("li", { class: "mt-cam", "data-gb": text(cam.gb_id) });
    var snap;
    if (cam.snapshot_at) {
      // Only a camera with a stored picture has a snapshot: asking the others would just 404.
      snap = el("img", { class: "mt-cam-snap", alt: text(cam.name), loading: "lazy",
                         src: cam.snapshot_url || "/api/cameras/" + encodeURIComponent(cam.gb_id) + "/snapshot.jpg" });
      snap.addEventListener("error", function () { snap.replaceWith(el("div", { class: "mt-cam-nosnap", text: t("no_snapshot") })); });
    } else {
      snap = el("div", { class: "mt-cam-nosnap", text: t("no_snapshot") });
    }
    var dot = el("span", { class: "patrol-dot mt-dot st-" + text(cam.status || "unknown"), title: t("st_" + (cam.status || "unknown")) });
    var meta = [typeof cam.distance_m === "number" ? tf("mt_distance", { m: Math.round(cam.distance_m) }) : "",
                cam.source ? t("src_" + cam.source) : "", cam.sees_point || cam.sees ? t("sees_here") : ""].filter(Boolean).join(" · ");
    var attach = el("button", { type: "button", class: "mt-btn mt-btn-quiet mt-attach-snap", text: t("mt_attach_snapshot") });
    attach.addEventListener("click", function () { attachSnapshot(cam, attach); });
    if (!cam.snapshot_at) { attach.disabled = true; }  // no picture to attach
    li.appendChild(snap);
    li.appendChild(el("div", { class: "mt-cam-text" }, [
      el("div", { class: "mt-cam-name" }, [dot, el("span", { text: cam.name })]),
      el("div", { class: "mt-meta", text: text(cam.gb_id) }),
      el("div", { class: "mt-meta", text: meta }),
      el("div", { class: "mt-row" }, [attach, el("a", { class: "mt-link", href: "/cameras/" + encodeURIComponent(cam.gb_id) + "/live", target: "_blank", rel: "noopener", text: t("open_live") })])
    ]));
    li.addEventListener("mouseenter", function () { if (cam._marker) { cam._marker.openTooltip(); } });
    return li;
  }

  function attachSnapshot(cam, button) {
    button.disabled = true;
    var body = { camera_id: cam.gb_id };  // the API names a camera by its GB ID
    return postJson("/api/matters/" + encodeURIComponent(S.id) + "/attachments", body).then(function () {
      message($("mt-msg"), t("mt_snapshot_attached"), "ok");
      return loadDetail();
    }).catch(function (err) {
      message($("mt-msg"), failText(err), "error");
    }).then(function () { button.disabled = !cam.snapshot_at; });
  }

  function loadCameras() {
    return getJson("/api/matters/" + encodeURIComponent(S.id) + "/cameras").then(function (data) {
      var cams = itemsOf(data);
      var list = $("mt-cameras");
      list.textContent = "";
      if (!S.camLayer) {
        S.camLayer = L.featureGroup().addTo(S.map);
        addOverlay(S.camLayer, t("mt_cameras_layer"));
      }
      S.camLayer.clearLayers();
      if (!cams.length) { list.appendChild(el("li", { class: "mt-hint", text: t("mt_no_cameras") })); }
      cams.forEach(function (cam) {
        if (typeof cam.lon === "number" && typeof cam.lat === "number") {
          cam._marker = L.circleMarker([cam.lat, cam.lon], { radius: 6, weight: 1, color: "#fff", fillColor: "#35506b", fillOpacity: 0.9 })
            .bindTooltip(el("div", {}, [el("div", { class: "gm-tip-name", text: cam.name }), el("div", { class: "gm-tip-code", text: cam.gb_id })]));
          notATabStop(cam._marker).addTo(S.camLayer);
        }
        list.appendChild(cameraItem(cam));
      });
      if (cams.length && S.matterMarker) {
        var bounds = S.camLayer.getBounds().extend(S.matterMarker.getLatLng());
        S.map.fitBounds(bounds, { padding: [30, 30], maxZoom: 18 });
        S.matterMarker.bringToFront();
      }
      S.cameraCount = cams.length;
      updateDispatchButton();
      flag("cameras", cams.length);
    }).catch(function (err) {
      $("mt-cameras").textContent = "";
      $("mt-cameras").appendChild(el("li", { class: "mt-msg mt-msg-error", text: failText(err) }));
      flag("cameras", -1);
    });
  }

  // Dispatch needs a unit, an open matter and at least one camera that sees it.
  function updateDispatchButton() {
    $("mt-dispatch").disabled = !$("mt-dispatch-unit").value || !S.detail ||
      S.detail.state === "closed" || !S.cameraCount;
  }

  function setupDispatch() {
    var sel = $("mt-dispatch-unit"), btn = $("mt-dispatch");
    btn.textContent = t("mt_dispatch");
    fillSelect(sel, [["", t("mt_choose")]]);
    getJson("/api/dispatch/units?kind=dispatch").then(function (data) {
      var units = itemsOf(data);
      var handling = S.detail && S.detail.handling_unit && S.detail.handling_unit.id;
      units.forEach(function (u) { sel.appendChild(option(String(u.id), text(u.name), u.id === handling)); });
      updateDispatchButton();
    }).catch(function () { /* a unit that may not dispatch keeps the button off */ });
    sel.addEventListener("change", updateDispatchButton);
    btn.addEventListener("click", function () {
      var minutes = parseInt($("mt-dispatch-minutes").value, 10);
      var body = { unit_ids: [Number(sel.value)], minutes: isFinite(minutes) ? minutes : 240 };
      btn.disabled = true;
      postJson("/api/matters/" + encodeURIComponent(S.id) + "/dispatch", body).then(function (res) {
        var id = res && (typeof res.order === "object" && res.order ? res.order.id : res.order);
        message($("mt-msg"), tf("mt_dispatched", { id: text(id) }), "ok");
        flag("dispatched", text(id));
        return loadDetail();
      }).catch(function (err) {
        message($("mt-msg"), failText(err), "error");
      }).then(updateDispatchButton);
    });
  }

  function setupUpload() {
    var input = $("mt-upload");
    input.addEventListener("change", function () {
      if (!input.files || !input.files.length) { return; }
      var body = new FormData();
      body.append("kind", "photo");
      body.append("file", input.files[0], input.files[0].name);
      message($("mt-msg"), t("mt_submitting"));
      postJson("/api/matters/" + encodeURIComponent(S.id) + "/attachments", body).then(function () {
        message($("mt-msg"), "");
        input.value = "";
        return loadDetail();
      }).catch(function (err) { message($("mt-msg"), failText(err), "error"); });
    });
  }

  function initDetail(map) {
    S.map = map; S.page = "detail";
    S.id = opts().id;
    layoutMap(map, "mt-page-detail");
    fillStatic();
    $("mt-back").textContent = "← " + t("mt_back");
    $("mt-reload").textContent = t("mt_reload");
    $("mt-reload").addEventListener("click", reloadAfterConflict);
    $("mt-action-form").addEventListener("keydown", function (e) {
      if (e.key === "Escape") { e.preventDefault(); e.stopPropagation(); dismissActionForm(); }
    });
    setupUpload();
    var detail = loadDetail();
    detail.then(setupDispatch);
    Promise.all([detail, loadCameras()]).then(function () { flag("ready", 1); });
  }

  window.gridmapMatters = {
    initList: initList, initDetail: initDetail, state: S,
    reload: function () { return S.page === "detail" ? loadDetail() : Promise.all([loadList(false), loadLayer()]); },
    checkDuplicates: checkDuplicates, fmtDate: fmtDate
  };
})();
