/* Grid editing page glue: pick a grid, redraw/split/merge/move an edge/reassign with
 * Geoman, save with the version it started from, show conflicts and problems, and
 * browse, compare and revert versions. Every server string is rendered as text.
 * window.gridEdit is the API the panel's buttons call (and the browser tests). */
(function () {
  "use strict";

  var S = {
    map: null, grids: null, byCode: {}, props: {}, selected: null, adjacent: null,
    editLayer: null, problems: null, overlay: null, drawMode: null, onLine: null, ready: false,
    canEdit: true, canEditTeam: true,
    editBaseline: null, workingLine: null
  };
  var question = null, leaveGuard = null;  // made by wire(): see unsavedEdits()

  function t(key, vars) {
    var text = window.gridmap ? window.gridmap.t(key) : key;
    Object.keys(vars || {}).forEach(function (k) { text = text.replace("{" + k + "}", vars[k]); });
    return text;
  }
  function $(id) { return document.getElementById(id); }
  function el(tag, attrs, children) { return window.gridmap.el(tag, attrs, children); }

  function message(text, kind) {
    var box = $("ge-message");
    box.textContent = text || "";
    box.className = "ge-message" + (kind ? " ge-" + kind : "");
  }

  function setBusy(busy) {
    document.documentElement.setAttribute("data-ge-busy", busy ? "1" : "0");
  }

  // ------------------------------------------------------------------ HTTP

  function api(method, url, body, headers) {
    var opts = { method: method, headers: Object.assign({ Accept: "application/json" }, headers || {}) };
    var csrf = document.querySelector('meta[name="csrf-token"]');
    if (csrf && method !== "GET") { opts.headers["X-CSRFToken"] = csrf.getAttribute("content"); }
    if (body instanceof FormData) {
      opts.body = body;  // the browser writes the multipart Content-Type with its boundary
    } else if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { reason: text }; }
        return { status: r.status, ok: r.ok, data: data };
      });
    }).catch(function () { return noAnswer(method); });
  }

  // No answer at all (offline, dropped connection): an answer of its own, status 0,
  // so every caller's usual refusal path clears busy, says so and keeps the user's edit.
  function noAnswer(method) {
    var key = method === "GET" ? "network_failed" : "ge_offline";
    return { status: 0, ok: false, offline: true, data: { message: t(key) } };
  }

  function ifMatch(version) { return { "If-Match": '"' + version + '"' }; }
  // Why a call failed, in the reader's language (the server's message).
  function serverSays(data) { return data && (data.message || data.reason); }

  function reason() {
    var value = ($("ge-reason").value || "").trim();
    return value;
  }

  // Outcome of every edit: success reloads, 409 offers a reload, 400 shows the problem.
  function handle(res) {
    setBusy(false);
    clearProblems();
    if (res.ok) {
      $("ge-conflict").hidden = true;
      var versions = res.data.versions || {};
      var code = S.selected && (res.data.moved && res.data.moved[S.selected]) || (S.selected);
      var v = versions[code];
      message([t("ge_saved", { v: v === undefined ? "" : v })].concat(gapNotes(res.data.team_gaps)).join("\n"), "ok");
      stopEditing();
      return reloadGrids().then(function () {
        if (code && S.byCode[code]) { return select(code); }
        S.selected = null;
        S.team = null;
        $("ge-team-box").hidden = true;
        showSelected();
      }).then(gaps).then(function () { return res; }, function () {
        message(t("ge_saved", { v: v === undefined ? "" : v }) + "\n" + t("load_failed"), "error");
        return res;
      });
    }
    if (res.status === 409) {
      $("ge-conflict").hidden = false;
      $("ge-conflict-text").textContent = t("ge_conflict");
      message(serverSays(res.data) || t("ge_conflict"), "error");
      document.documentElement.setAttribute("data-ge-conflict", "1");
      return Promise.resolve(res);
    }
    var details = (res.data && res.data.details) || {};
    var text = serverSays(res.data) || ("HTTP " + res.status);
    if (details.offending) {
      showProblems(details.offending);
      text += " — " + t("ge_problem");
    }
    if (details.candidates) { fillNeighbours(details.candidates); }
    message(text, "error");
    document.documentElement.setAttribute("data-ge-error", String(res.status));
    return Promise.resolve(res);
  }

  // A split leaves the new grid without a team, a merge may bring two leaders: say so.
  function gapNotes(gaps) {
    return Object.keys(gaps || {}).map(function (code) {
      var problems = gaps[code].map(function (p) { return t("team_" + p); }).join(t("list_sep"));
      return t("ge_new_gaps", { code: code, problems: problems });
    });
  }

  // ------------------------------------------------------------------ layers

  function gridStyle(feature) {
    var sel = S.selected && feature.properties.code === S.selected;
    return {
      color: sel ? "#d7301f" : "#35506b", weight: sel ? 3 : 0.8,
      fillColor: "#2b8cbe", fillOpacity: sel ? 0.05 : 0.15
    };
  }

  function reloadGrids() {
    return fetch("/api/grids.geojson", { headers: { Accept: "application/geo+json" } })
      .then(function (r) { if (!r.ok) { throw new Error("grids " + r.status); } return r.json(); })
      .then(function (data) {
        if (S.grids) { S.map.removeLayer(S.grids); }
        S.byCode = {}; S.props = {};
        S.grids = L.geoJSON(data, {
          style: gridStyle,
          pmIgnore: true,
          className: "ge-grid",
          onEachFeature: function (feature, layer) {
            var code = feature.properties.code;
            S.byCode[code] = layer; S.props[code] = feature.properties;
            layer.bindTooltip(feature.properties.name + " · " + code, { sticky: true });
            // While a line is drawn, clicks on the map are its points, not a choice.
            layer.on("click", function () { if (!S.drawMode) { pick(code); } });
            layer.on("add", function () {
              var node = layer.getElement && layer.getElement();
              if (!node) { return; }
              node.setAttribute("data-code", code);
              // Not a Tab stop each (the tooltip's focus handling would make 930 stops
              // before the panel); the panel's finder picks a grid by keyboard.
              node.setAttribute("tabindex", "-1");
            });
          }
        }).addTo(S.map);
        S.grids.bringToBack();
        document.documentElement.setAttribute("data-ge-grids", String(data.features.length));
        return data;
      });
  }

  function clearProblems() {
    if (S.problems) { S.map.removeLayer(S.problems); S.problems = null; }
  }

  function showProblems(geojson) {
    clearProblems();
    S.problems = L.geoJSON(geojson, {
      pmIgnore: true, className: "ge-problem",
      style: function () { return { color: "#e31a1c", weight: 3, fillColor: "#e31a1c", fillOpacity: 0.45, dashArray: "4 3" }; },
      pointToLayer: function (f, latlng) { return L.circleMarker(latlng, { radius: 9, color: "#e31a1c", className: "ge-problem" }); }
    }).addTo(S.map);
    var b = S.problems.getBounds();
    if (b.isValid()) { S.map.fitBounds(b.pad(0.5), { maxZoom: 17 }); }
    document.documentElement.setAttribute("data-ge-problems", String(S.problems.getLayers().length));
  }

  function showOverlay(features) {
    if (S.overlay) { S.map.removeLayer(S.overlay); }
    S.overlay = L.featureGroup().addTo(S.map);
    features.forEach(function (item) {
      if (!item.feature || !item.feature.geometry) { return; }
      L.geoJSON(item.feature, { pmIgnore: true, className: "ge-overlay ge-" + item.role, style: item.style })
        .addTo(S.overlay);
    });
    var b = S.overlay.getBounds();
    if (b.isValid()) { S.map.fitBounds(b.pad(0.3)); }
  }

  // ------------------------------------------------------------------ selection

  function showSelected() {
    var box = $("ge-selected");
    box.textContent = "";
    var code = S.selected;
    box.setAttribute("data-code", code || "");
    box.setAttribute("data-version", code && S.adjacent ? String(S.adjacent.version) : "");
    if (!code) { box.appendChild(el("span", { text: t("ge_pick") })); }
    else {
      box.appendChild(el("div", { class: "ge-name", text: S.adjacent ? S.adjacent.name : code }));
      box.appendChild(el("div", { class: "ge-code", text: code }));
      box.appendChild(el("div", { class: "ge-ver", text: t("ge_version") + " " + (S.adjacent ? S.adjacent.version : "") }));
    }
    ["ge-edit", "ge-split", "ge-merge", "ge-edge", "ge-reassign"].forEach(function (id) { $(id).disabled = !code; });
    if (S.grids) { S.grids.setStyle(gridStyle); }
  }

  function option(select, value, text) { select.appendChild(el("option", { value: value, text: text })); }

  function fillNeighbours(candidates) {
    var sel = $("ge-neighbour");
    var keep = sel.value;
    sel.textContent = "";
    option(sel, "", t("ge_none"));
    option(sel, "auto", t("ge_auto"));
    (candidates || []).forEach(function (c) {
      var code = typeof c === "string" ? c : c.code;
      var name = S.props[code] ? S.props[code].name : "";
      option(sel, code, name + " " + code);
    });
    sel.value = keep || "auto";
  }

  // A choice by the user (map, finder, gaps list): not in the middle of an edit, whose
  // boundary would otherwise be saved onto the newly chosen grid.
  function pick(code) {
    if (S.drawMode || S.editLayer) { message(t("ge_finish_first"), "error"); return; }
    select(code);
  }

  function select(code) {
    clearProblems();
    S.selected = code;
    S.adjacent = null;
    S.team = null;
    $("ge-team-box").hidden = true;
    showSelected();
    return api("GET", "/api/grids/" + code + "/adjacent").then(function (res) {
      if (!res.ok) { message(serverSays(res.data), "error"); return; }
      S.adjacent = res.data;
      var same = res.data.grids.filter(function (g) { return g.same_community; });
      fillNeighbours(same);
      [["ge-merge-with", same], ["ge-edge-with", same]].forEach(function (pair) {
        var sel = $(pair[0]); sel.textContent = "";
        option(sel, "", t("ge_choose"));
        pair[1].forEach(function (g) { option(sel, g.code, g.name + " " + g.code); });
      });
      var comm = $("ge-community"); comm.textContent = "";
      option(comm, "", t("ge_choose"));
      res.data.communities.forEach(function (c) { option(comm, c.code, c.name + " " + c.code); });
      showSelected();
      return Promise.all([history(code), loadTeam(code)]);
    });
  }

  // ------------------------------------------------------------------ editing

  function startEditing() {
    if (!S.canEdit || !S.selected || !S.adjacent) { return; }
    stopEditing();
    S.editLayer = L.geoJSON(S.adjacent.geometry, {
      className: "ge-editing",
      style: function () { return { color: "#d7301f", weight: 2, fillOpacity: 0.1 }; }
    }).addTo(S.map);
    S.editLayer.eachLayer(function (layer) {
      layer.pm.enable({ allowSelfIntersection: false, snappable: true });
    });
    S.editBaseline = JSON.stringify(editedGeometry().coordinates);  // as loaded, to tell a moved vertex
    $("ge-save").disabled = false;
    $("ge-cancel").disabled = false;
    document.documentElement.setAttribute("data-ge-editing", "1");
    syncLeaveGuard();
  }

  function stopEditing() {
    if (S.editLayer) {
      S.editLayer.eachLayer(function (layer) { if (layer.pm) { layer.pm.disable(); } });
      S.map.removeLayer(S.editLayer);
      S.editLayer = null;
    }
    S.editBaseline = null;
    stopDrawing();
    $("ge-save").disabled = true;
    $("ge-cancel").disabled = true;
    document.documentElement.setAttribute("data-ge-editing", "0");
  }

  // Leave line drawing: Geoman's disableDraw also drops the partly drawn line, and
  // without the pending pm:create handler no late line reaches split or moveEdge.
  function stopDrawing() {
    if (S.onLine) { S.map.off("pm:create", S.onLine); S.onLine = null; }
    if (S.drawMode) { S.map.pm.disableDraw(); S.drawMode = null; }
    S.workingLine = null;
    document.documentElement.setAttribute("data-ge-drawing", "");
    // Nothing left to ask about (dropped, saved, or the line finished): a focus that was
    // on the question goes on from Edit, not lost to the page.
    if (!S.editLayer && question.close() && !$("ge-edit").disabled) { $("ge-edit").focus(); }
    syncLeaveGuard();
  }

  // Cancel and Escape: whatever is being drawn or dragged is dropped, selection works again.
  function cancelEditing() {
    stopEditing();
    message("");
  }

  // ------------------------------------------------------------------ unsaved edits

  // Points of the line being drawn (Geoman's working layer; the hint line is not one).
  function drawnPoints() {
    var line = S.drawMode && (S.workingLine || (S.map.pm.Draw.Line && S.map.pm.Draw.Line._layer));
    return line && line.getLatLngs ? line.getLatLngs().length : 0;
  }

  // Something would be lost: a vertex moved (added, removed) since editing began, or a
  // line being drawn that has a point.
  function hasUnsavedEdit() {
    if (S.editLayer && S.editBaseline !== null) {
      return JSON.stringify(editedGeometry().coordinates) !== S.editBaseline;
    }
    return drawnPoints() > 0;
  }

  // While an edit or a drawing is open the browser is asked to warn before the tab is
  // closed or left, if by then it holds an unsaved change; otherwise no handler is set.
  function syncLeaveGuard() { leaveGuard.sync(!!(S.editLayer || S.drawMode)); }

  // The question in the panel (data-ge-confirm says whether it is asked). Keep editing
  // gives focus back where it was, else to Save or Cancel; discard drops the edit.
  function unsavedEdits() {
    leaveGuard = window.gridmap.leaveGuard(hasUnsavedEdit);
    question = window.gridmap.discardQuestion({
      box: $("ge-confirm"), keepButton: $("ge-confirm-keep"), discardButton: $("ge-confirm-discard"),
      stateAttr: "data-ge-confirm",
      fallbackFocus: function () {
        return ["ge-save", "ge-cancel"].map($).filter(function (b) { return !b.disabled; })[0] || null;
      },
      onDiscard: cancelEditing  // closes the question too
    });
  }
  // Escape, Cancel and every button that ends the edit: at once when nothing would be
  // lost, otherwise once the user agrees to drop it. ``then`` runs after the edit ended.
  function leaveEdit(then) {
    if (hasUnsavedEdit()) { question.ask(then); return; }
    question.close();
    if (!then) { cancelEditing(); } else { then(); }
  }

  function editedGeometry() {
    var polys = [];
    S.editLayer.eachLayer(function (layer) {
      // toGeoJSON(false): no rounding, so unmoved vertices come back bit for bit.
      var g = layer.toGeoJSON(false).geometry;
      if (g.type === "Polygon") { polys.push(g.coordinates); }
      else if (g.type === "MultiPolygon") { polys = polys.concat(g.coordinates); }
    });
    return { type: "MultiPolygon", coordinates: polys };
  }

  function requireReason() {
    if (!reason()) { message(t("ge_need_reason"), "error"); $("ge-reason").focus(); return false; }
    return true;
  }

  function currentVersion(code) {
    if (S.adjacent && S.adjacent.code === code) { return S.adjacent.version; }
    var p = S.props[code];
    if (p) { return p.version; }
    var n = S.adjacent && S.adjacent.grids.filter(function (g) { return g.code === code; })[0];
    return n ? n.version : undefined;
  }

  // The API the buttons call; each returns a promise of {status, ok, data}.
  function saveGeometry(code, geometry, opts) {
    opts = opts || {};
    setBusy(true);
    message(t("ge_working"));
    var body = { geometry: geometry, reason: opts.reason || reason() };
    var neighbour = opts.neighbour !== undefined ? opts.neighbour : $("ge-neighbour").value;
    if (neighbour) { body.neighbour = neighbour; }
    var version = opts.version !== undefined ? opts.version : currentVersion(code);
    return api("PUT", "/api/grids/" + code + "/geometry", body, ifMatch(version)).then(handle);
  }

  function split(code, line, opts) {
    opts = opts || {};
    setBusy(true);
    var version = opts.version !== undefined ? opts.version : currentVersion(code);
    return api("POST", "/api/grids/" + code + "/split", { line: line, reason: opts.reason || reason() },
      ifMatch(version)).then(handle);
  }

  function merge(codes, opts) {
    opts = opts || {};
    setBusy(true);
    var versions = {};
    codes.forEach(function (c) { versions[c] = currentVersion(c); });
    return api("POST", "/api/grids/merge", {
      codes: codes, versions: opts.versions || versions, keep: opts.keep || codes[0],
      reason: opts.reason || reason()
    }).then(handle);
  }

  function moveEdge(a, b, line, opts) {
    opts = opts || {};
    setBusy(true);
    var versions = {}; versions[a] = currentVersion(a); versions[b] = currentVersion(b);
    return api("POST", "/api/grids/edge", {
      a: a, b: b, line: line, versions: opts.versions || versions, reason: opts.reason || reason()
    }).then(handle);
  }

  function reassign(code, community, opts) {
    opts = opts || {};
    setBusy(true);
    var version = opts.version !== undefined ? opts.version : currentVersion(code);
    return api("POST", "/api/grids/" + code + "/reassign", { community: community, reason: opts.reason || reason() },
      ifMatch(version)).then(handle);
  }

  function revert(code, to, opts) {
    opts = opts || {};
    setBusy(true);
    var version = opts.version !== undefined ? opts.version : currentVersion(code);
    return api("POST", "/api/grids/" + code + "/revert", { to: to, reason: opts.reason || reason() },
      ifMatch(version)).then(handle);
  }

  function drawLine(mode, hint, done) {
    if (!S.canEdit) { return; }
    stopEditing();
    S.drawMode = mode;
    message(t(hint));
    S.map.once("pm:drawstart", function (e) { S.workingLine = e.workingLayer || null; });
    S.map.pm.enableDraw("Line", { snappable: true, snapDistance: 15 });
    S.onLine = function (e) {
      var line = e.layer.toGeoJSON(false).geometry;
      S.map.removeLayer(e.layer);
      stopDrawing();
      $("ge-cancel").disabled = true;
      done(line);
    };
    S.map.on("pm:create", S.onLine);
    $("ge-cancel").disabled = false;  // the way out of a line not yet finished
    document.documentElement.setAttribute("data-ge-drawing", mode);
    syncLeaveGuard();
  }

  // ------------------------------------------------------------------ history

  function history(code) {
    return api("GET", "/api/grids/" + code + "/versions").then(function (res) {
      var list = $("ge-history");
      list.textContent = "";
      if (!res.ok) { return; }
      var current = null;
      res.data.versions.forEach(function (v) { if (v.current) { current = v.version; } });
      res.data.versions.slice().reverse().forEach(function (v) {
        var label = "v" + v.version + " · " + (v.kind === "loaded" ? t("ge_loaded_state") : t("ge_kind_" + v.kind));
        if (v.current) { label += " (" + t("ge_current") + ")"; }
        if (v.retired) { label += " (" + t("ge_retired") + ")"; }
        var meta = [v.edited_by, v.valid_from && window.gridmap.dateTime(v.valid_from, {
          year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" }), v.reason].filter(Boolean).join(" · ");
        var item = el("li", { class: "ge-version", "data-version": String(v.version) }, [
          el("div", { class: "ge-version-label", text: label }),
          el("div", { class: "ge-version-meta", text: meta })
        ]);
        var buttons = el("div", { class: "ge-version-actions" });
        var show = el("button", { type: "button", text: t("ge_show") });
        show.addEventListener("click", function () { showVersion(code, v.version); });
        buttons.appendChild(show);
        if (current !== null && v.version !== current && !v.retired) {
          var cmp = el("button", { type: "button", class: "ge-compare", text: t("ge_compare") });
          cmp.addEventListener("click", function () { compare(code, v.version, current); });
          buttons.appendChild(cmp);
          if (S.canEdit) { buttons.appendChild(revertButton(code, v.version)); }
        }
        item.appendChild(buttons);
        list.appendChild(item);
      });
      document.documentElement.setAttribute("data-ge-history", String(res.data.versions.length));
      return res.data;
    });
  }

  function revertButton(code, n) {
    var rev = el("button", { type: "button", class: "ge-revert", text: t("ge_revert") });
    rev.addEventListener("click", function () {
      if (requireReason()) { leaveEdit(function () { revert(code, n); }); }
    });
    return rev;
  }

  function showVersion(code, n) {
    return api("GET", "/api/grids/" + code + "/versions/" + n).then(function (res) {
      if (!res.ok) { message(serverSays(res.data), "error"); return res; }
      showOverlay([{ feature: res.data, role: "version", style: function () { return { color: "#6a3d9a", weight: 3, fillOpacity: 0.1 }; } }]);
      return res;
    });
  }

  function compare(code, a, b) {
    return api("GET", "/api/grids/" + code + "/compare?a=" + a + "&b=" + b).then(function (res) {
      if (!res.ok) { message(serverSays(res.data), "error"); return res; }
      showOverlay([
        { feature: res.data.a, role: "a", style: function () { return { color: "#6a3d9a", weight: 2, dashArray: "5 4", fill: false }; } },
        { feature: res.data.b, role: "b", style: function () { return { color: "#1b7837", weight: 2, fill: false }; } },
        { feature: res.data.gained, role: "gained", style: function () { return { color: "#1b7837", weight: 0, fillColor: "#5aae61", fillOpacity: 0.5 }; } },
        { feature: res.data.lost, role: "lost", style: function () { return { color: "#b2182b", weight: 0, fillColor: "#d6604d", fillOpacity: 0.5 }; } }
      ]);
      message("Δ " + Math.round(res.data.difference.properties.area_m2) + " m²");
      document.documentElement.setAttribute("data-ge-compare", a + "-" + b);
      return res;
    });
  }

  // ------------------------------------------------------------------ team

  var ROLES = ["leader", "full_time", "part_time", "volunteer"];

  function loadTeam(code) {
    return api("GET", "/api/grids/" + code + "/team").then(function (res) {
      if (res.ok && S.selected === code) { renderTeam(res.data); }
      return res;
    });
  }

  function renderTeam(team) {
    S.team = team;
    $("ge-team-box").hidden = false;
    var problems = $("ge-team-problems");
    problems.textContent = "";
    if (!team.problems.length) {
      problems.appendChild(el("span", { class: "ge-team-ok", text: t("ge_team_complete") }));
    }
    team.problems.forEach(function (p) {
      problems.appendChild(el("span", { class: "ge-team-problem", "data-problem": p, text: t("team_" + p) }));
    });
    var list = $("ge-team");
    list.textContent = "";
    if (!team.members.length) { list.appendChild(el("li", { class: "ge-team-empty", text: t("ge_team_empty") })); }
    // Any other grid of the community (the code's first 12 digits), not only neighbours.
    var targets = Object.keys(S.props).filter(function (c) {
      return c !== team.code && c.slice(0, 12) === team.code.slice(0, 12);
    }).sort().map(function (c) { return { code: c, name: S.props[c].name }; });
    team.members.forEach(function (m) { list.appendChild(memberItem(m, targets)); });
    document.documentElement.setAttribute("data-ge-team", team.code + ":" + team.members.length + ":" + team.problems.join(","));
  }

  function memberItem(m, targets) {
    var who = el("div", { class: "ge-team-who" }, [
      el("span", { class: "ge-team-name", text: m.name }),
      el("span", { class: "ge-team-phone", text: m.phone })
    ]);
    var item = el("li", { class: "ge-team-member", "data-id": String(m.id), "data-role": m.role }, [who]);
    if (!S.canEditTeam) {
      item.appendChild(el("div", { class: "ge-team-actions" }, [el("span", { class: "ge-team-role-text", text: t(m.role) })]));
      return item;
    }
    item.appendChild(memberActions(m, targets));
    return item;
  }

  function memberActions(m, targets) {
    var role = el("select", { class: "ge-team-role", "aria-label": t("ge_team_role") });
    ROLES.forEach(function (r) { option(role, r, t(r)); });
    role.value = m.role;
    role.addEventListener("change", function () { changeMember(m, { role: role.value }); });
    var move = el("select", { class: "ge-team-move", "aria-label": t("ge_team_move") });
    option(move, "", t("ge_team_move"));
    targets.forEach(function (g) { option(move, g.code, g.name + " " + g.code); });
    move.disabled = !targets.length;
    move.addEventListener("change", function () { if (move.value) { moveMember(m, move.value); } });
    // Two clicks remove (no modal dialog on a map wall): the first one asks.
    var remove = el("button", { type: "button", class: "ge-team-remove", text: t("ge_team_remove") });
    remove.addEventListener("click", function () {
      if (remove.getAttribute("data-armed") !== "1") {
        remove.setAttribute("data-armed", "1");
        remove.textContent = t("ge_team_confirm");
        setTimeout(function () { remove.setAttribute("data-armed", "0"); remove.textContent = t("ge_team_remove"); }, 4000);
        return;
      }
      removeMember(m);
    });
    return el("div", { class: "ge-team-actions" }, [role, move, remove]);
  }

  function memberUrl(m) { return "/api/grids/" + S.team.code + "/team/" + m.id; }

  function teamDone(res) {
    setBusy(false);
    if (res.ok) {
      message(t("ge_team_saved"), "ok");
      renderTeam(res.data.team || res.data.from);
      return gaps().then(function () { return res; });
    }
    var text = serverSays(res.data) || ("HTTP " + res.status);
    var details = (res.data && res.data.details) || {};
    if (res.status === 409 && details.current_version) { text = t("ge_team_stale"); }
    else if (res.status === 409 && details.holder) { text = t("ge_team_taken_" + details.role); }
    message(text, "error");
    document.documentElement.setAttribute("data-ge-error", String(res.status));
    // Put the selects back as the server has them (offline: as they were last loaded).
    if (res.offline && S.team) { renderTeam(S.team); return Promise.resolve(res); }
    return (S.team ? loadTeam(S.team.code) : Promise.resolve()).then(function () { return res; });
  }

  function addMember(fields) {
    setBusy(true);
    return api("POST", "/api/grids/" + S.team.code + "/team", fields).then(teamDone);
  }

  function changeMember(m, changes) {
    setBusy(true);
    return api("PATCH", memberUrl(m), changes, ifMatch(m.version)).then(teamDone);
  }

  function removeMember(m) {
    setBusy(true);
    return api("DELETE", memberUrl(m), undefined, ifMatch(m.version)).then(teamDone);
  }

  function moveMember(m, to) {
    setBusy(true);
    return api("POST", memberUrl(m) + "/move", { to: to }, ifMatch(m.version)).then(teamDone);
  }

  // Grids or communities, now or as of a date (the end of that day), in three formats.
  function exportLinks() {
    var field = $("ge-as-of"), box = $("ge-export-links"), day = field.value;
    box.textContent = "";
    // Before the records begin nothing is known: say from when, offer no files.
    if (day && field.min && day < field.min) {
      box.appendChild(el("p", { class: "ge-export-note", role: "status",
                                text: t("ge_as_of_too_early").replace("{day}", field.min) }));
      return;
    }
    var asOf = day ? "&as_of=" + encodeURIComponent(day + "T23:59:59+08:00") : "";
    [["grid", "ge_export_grids"], ["community", "ge_export_communities"]].forEach(function (level) {
      var row = el("div", { class: "ge-export-row" }, [el("span", { text: t(level[1]) })]);
      [["geojson", "GeoJSON"], ["gpkg", "GeoPackage"], ["shp", "Shapefile"]].forEach(function (f) {
        row.appendChild(el("a", { class: "ge-export", download: "", "data-level": level[0], "data-format": f[0],
                                  href: "/api/grids/export." + f[0] + "?level=" + level[0] + asOf, text: f[1] }));
      });
      box.appendChild(row);
    });
  }

  // A roster file replaces the teams of the grids it names; every bad row is listed.
  function importRoster(file) {
    var form = new FormData();
    form.append("file", file);
    setBusy(true);
    return api("POST", "/api/teams/import", form)
      .then(function (res) {
        setBusy(false);
        if (res.ok) {
          message([t("ge_roster_done", res.data)].concat(gapNotes(res.data.team_gaps)).join("\n"), "ok");
          return Promise.all([gaps(), S.team ? loadTeam(S.team.code) : null]).then(function () { return res; });
        }
        var errors = (res.data.details && res.data.details.errors) || [];
        var lines = errors.slice(0, 12).map(function (e) {
          return (e.row ? t("ge_roster_row", { row: e.row }) + " " : "") + (e.field ? (e.field_label || e.field) + ": " : "") + (e.message || e.reason);
        });
        message([serverSays(res.data) || ("HTTP " + res.status)].concat(lines).join("\n"), "error");
        document.documentElement.setAttribute("data-ge-error", String(res.status));
        return res;
      });
  }

  function gaps() {
    return api("GET", "/api/teams/gaps?limit=30").then(function (res) {
      var list = $("ge-gaps");
      list.textContent = "";
      if (!res.ok) { return res; }
      if (!res.data.total) { list.appendChild(el("li", { class: "ge-gaps-none", text: t("ge_gaps_none") })); }
      res.data.grids.forEach(function (g) {
        var link = el("button", { type: "button", class: "ge-gap-link", text: g.name + " " + g.code });
        link.addEventListener("click", function () {
          if (S.byCode[g.code]) { S.map.fitBounds(S.byCode[g.code].getBounds(), { maxZoom: 16 }); }
          pick(g.code);
        });
        list.appendChild(el("li", { class: "ge-gap", "data-code": g.code }, [link, el("span", {
          class: "ge-gap-problems",
          text: g.problems.map(function (p) { return t("team_" + p); }).join(t("list_sep"))
        })]));
      });
      var more = res.data.total - res.data.grids.length;
      if (more > 0) { list.appendChild(el("li", { class: "ge-gaps-more", text: t("ge_gaps_more", { n: more }) })); }
      document.documentElement.setAttribute("data-ge-gaps", String(res.data.total));
      return res;
    });
  }

  // ------------------------------------------------------------------ finder

  // The keyboard's way to a grid (the outlines are no Tab stops): a 15-digit code or
  // a name, or part of one that only one grid has. Only the user's own grids are loaded.
  function findGrid(text) {
    var q = (text || "").trim();
    if (/^\d+$/.test(q)) {
      if (q.length !== 15) { return { error: t("ge_find_bad") }; }
      return S.byCode[q] ? { code: q } : { error: t("ge_find_none", { code: q }) };
    }
    if (!q) { return { error: t("ge_find_bad") }; }
    var codes = Object.keys(S.props);
    var exact = codes.filter(function (c) { return S.props[c].name === q; });
    var partial = exact.length ? exact : codes.filter(function (c) { return (S.props[c].name || "").indexOf(q) >= 0; });
    if (partial.length === 1) { return { code: partial[0] }; }
    if (!partial.length) { return { error: t("ge_find_no_name", { q: q }) }; }
    return { error: t("ge_find_many", { n: partial.length, q: q }) };
  }

  function pickTyped(e) {
    e.preventDefault();
    var found = findGrid($("ge-find").value);
    if (found.error) { message(found.error, "error"); return; }
    if (S.drawMode || S.editLayer) { pick(found.code); return; }  // says to finish first
    message("");
    S.map.fitBounds(S.byCode[found.code].getBounds(), { maxZoom: 16 });
    select(found.code);
  }

  // ------------------------------------------------------------------ wiring

  // Viewers and patrol leads may look, not edit: the guard would refuse them anyway.
  function offerOnlyWhatIsAllowed() {
    var cfg = window.GRIDMAP || {};
    S.canEdit = cfg.can_edit !== false;
    S.canEditTeam = cfg.can_edit_team !== false;
    $("ge-tools").hidden = !S.canEdit;
    $("ge-read-only").hidden = S.canEdit;
    $("ge-read-only").textContent = S.canEdit ? "" : t("ge_read_only");
    $("ge-team-add").hidden = !S.canEditTeam;
    $("ge-roster-import").hidden = !S.canEditTeam;
  }

  function label(id, key) { $(id).textContent = t(key); }

  function wire() {
    unsavedEdits();
    offerOnlyWhatIsAllowed();
    label("ge-title", "ge_title");
    label("ge-find-label", "ge_find"); label("ge-find-go", "ge_find_go");
    $("ge-find").setAttribute("placeholder", t("ge_find_hint"));
    $("ge-find-form").addEventListener("submit", pickTyped);
    label("ge-reason-label", "ge_reason");
    $("ge-reason").setAttribute("placeholder", t("ge_reason_hint"));
    label("ge-edit", "ge_edit"); label("ge-save", "ge_save"); label("ge-cancel", "ge_cancel");
    label("ge-confirm-text", "unsaved_discard_q");
    label("ge-confirm-discard", "unsaved_discard"); label("ge-confirm-keep", "unsaved_keep");
    label("ge-split", "ge_split"); label("ge-merge", "ge_merge"); label("ge-edge", "ge_edge");
    label("ge-reassign", "ge_reassign"); label("ge-neighbour-label", "ge_neighbour");
    label("ge-reload", "ge_reload"); label("ge-history-title", "ge_history");
    label("ge-team-title", "ge_team"); label("ge-team-add-btn", "ge_team_add");
    label("ge-gaps-title", "ge_gaps"); label("ge-roster", "ge_roster");
    label("ge-roster-import-label", "ge_roster_import");
    label("ge-export-title", "ge_export"); label("ge-as-of-label", "ge_as_of");
    var cfg = window.GRIDMAP || {};
    if (cfg.records_begin_day) { $("ge-as-of").min = cfg.records_begin_day; }
    $("ge-as-of").max = new Date(Date.now() + 8 * 3600e3).toISOString().slice(0, 10);  // today in Beijing
    $("ge-as-of").addEventListener("change", exportLinks);
    exportLinks();
    $("ge-roster-file").addEventListener("change", function () {
      var file = $("ge-roster-file").files[0];
      if (file) { importRoster(file).then(function () { $("ge-roster-file").value = ""; }); }
    });
    $("ge-team-new-name").setAttribute("placeholder", t("ge_team_name"));
    $("ge-team-new-phone").setAttribute("placeholder", t("ge_team_phone"));
    ROLES.forEach(function (r) { option($("ge-team-new-role"), r, t(r)); });
    $("ge-team-new-role").value = "volunteer";
    $("ge-team-add").addEventListener("submit", function (e) {
      e.preventDefault();
      if (!S.team) { return; }
      addMember({ role: $("ge-team-new-role").value, name: $("ge-team-new-name").value,
                  phone: $("ge-team-new-phone").value }).then(function (res) {
        if (res.ok) { $("ge-team-new-name").value = ""; $("ge-team-new-phone").value = ""; }
      });
    });
    fillNeighbours([]);
    // Keep map gestures off the panel.
    L.DomEvent.disableClickPropagation($("ge-panel"));
    L.DomEvent.disableScrollPropagation($("ge-panel"));

    $("ge-edit").addEventListener("click", function () { leaveEdit(startEditing); });
    $("ge-cancel").addEventListener("click", function () { leaveEdit(); });
    document.addEventListener("keydown", function (e) {
      if (e.key !== "Escape" || e.isComposing) { return; }
      // Escape while asked keeps editing (the safe answer); otherwise it ends the edit,
      // asking first when that would drop a change.
      if (question.shown()) { e.preventDefault(); question.keep(); return; }
      if (S.drawMode || S.editLayer) { leaveEdit(); }
    });
    $("ge-save").addEventListener("click", function () {
      if (!S.editLayer || !requireReason()) { return; }
      saveGeometry(S.selected, editedGeometry());
    });
    $("ge-split").addEventListener("click", function () {
      if (!requireReason()) { return; }
      var code = S.selected;
      leaveEdit(function () {
        drawLine("split", "ge_draw_line", function (line) { split(code, line); });
      });
    });
    $("ge-merge").addEventListener("click", function () {
      var other = $("ge-merge-with").value;
      if (!other || !requireReason()) { return; }
      var code = S.selected;
      leaveEdit(function () { merge([code, other]); });
    });
    $("ge-edge").addEventListener("click", function () {
      var other = $("ge-edge-with").value;
      if (!other || !requireReason()) { return; }
      var code = S.selected;
      leaveEdit(function () {
        drawLine("edge", "ge_draw_edge", function (line) { moveEdge(code, other, line); });
      });
    });
    $("ge-reassign").addEventListener("click", function () {
      var community = $("ge-community").value;
      if (!community || !requireReason()) { return; }
      var code = S.selected;
      leaveEdit(function () { reassign(code, community); });
    });
    $("ge-reload").addEventListener("click", reload);
  }

  function reload() {
    $("ge-conflict").hidden = true;
    document.documentElement.setAttribute("data-ge-conflict", "0");
    document.documentElement.setAttribute("data-ge-loading", "1");
    stopEditing();
    clearProblems();
    message("");
    var code = S.selected;
    return reloadGrids()
      .then(function () { return code ? select(code) : null; })
      .catch(function () { message(t("network_failed"), "error"); })
      .then(function () { document.documentElement.setAttribute("data-ge-loading", "0"); });
  }

  function init(map) {
    S.map = map;
    document.body.classList.add("page-grid-edit");
    wire();
    showSelected();
    reloadGrids().then(function (data) {
      if (S.grids && data.features.length) { map.fitBounds(S.grids.getBounds(), { padding: [10, 10] }); }
      S.ready = true;
      document.documentElement.setAttribute("data-ge-ready", "1");
      return gaps();
    }).catch(function (err) {
      message(t("load_failed") + ": " + err, "error");
    });
  }

  window.gridEdit = {
    init: init, select: select, reload: reload, startEditing: startEditing,
    saveGeometry: saveGeometry, split: split, merge: merge, moveEdge: moveEdge,
    reassign: reassign, revert: revert, history: history, compare: compare,
    showVersion: showVersion, loadTeam: loadTeam, addMember: addMember, changeMember: changeMember,
    removeMember: removeMember, moveMember: moveMember, gaps: gaps, importRoster: importRoster, state: S
  };
})();
