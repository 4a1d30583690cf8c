/* Crowd page: refreshes the live heat layer, the per-grid choropleth and the alert
 * list from the JSON endpoints without reloading; folium draws the layers' shells. */
(function () {
  "use strict";

  // folium's HeatMapWithTime template calls jQuery's $.extend({}, a, b) (shallow) and
  // nothing else of jQuery; this app serves no jQuery, so provide exactly that.
  if (!window.$) {
    window.$ = { extend: function () { return Object.assign.apply(Object, arguments); } };
  }

  var HEAT_MS = 30000, GRIDS_MS = 60000, ALERTS_MS = 20000;
  var LEVELS = ["A", "B", "C", "D", "E", "F"];
  var COLORS = { A: "#1a9850", B: "#91cf60", C: "#d9ef8b", D: "#fee08b", E: "#fc8d59", F: "#d73027" };
  var S = { map: null, heat: null, replay: null, grids: null, points: null, alerts: null,
            loaded: {}, busy: {} };

  function cfg() { return window.GRIDMAP || { lang: "zh", i18n: {} }; }
  function crowd() { return cfg().crowd || {}; }
  function el() { return window.gridmap.el.apply(null, arguments); }
  function t(key) { return window.gridmap.t(key); }
  function tf(key, values) {
    return t(key).replace(/\{(\w+)\}/g, function (m, k) { return values[k] === undefined ? m : values[k]; });
  }
  function setFlag(name, value) { document.documentElement.setAttribute("data-" + name, String(value)); }
  function fmtTime(iso) {
    if (!iso) { return ""; }
    return window.gridmap.dateTime(iso, { month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit" });
  }
  function fmtDensity(d) { return (Math.round(d * 100) / 100).toFixed(2) + " " + t("crowd_per_m2"); }

  function getJson(url) {
    return fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) { if (!r.ok) { throw new Error(r.status + " " + url); } return r.json(); });
  }

  function postJson(url, body) {
    var headers = { "Content-Type": "application/json", Accept: "application/json" };
    // Ready for Flask-WTF's CSRFProtect: it reads X-CSRFToken; pages will carry the token here.
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) { headers["X-CSRFToken"] = meta.getAttribute("content"); }
    return fetch(url, { method: "POST", headers: headers, credentials: "same-origin", body: JSON.stringify(body || {}) })
      .then(function (r) {
        return r.json().catch(function () { return {}; }).then(function (data) {
          if (!r.ok) { var err = new Error((data.message || data.reason) || String(r.status)); err.status = r.status; throw err; }
          return data;
        });
      });
  }

  function badge(level) {
    var b = el("span", { class: "crowd-badge", text: level, title: t("crowd_level_" + level) });
    b.style.background = COLORS[level] || "#999";
    if (level === "C" || level === "D") { b.style.color = "#333"; }
    return b;
  }

  function markLoaded(key) {
    S.loaded[key] = true;
    if (S.loaded.heat && S.loaded.grids && S.loaded.alerts) { setFlag("crowd-ready", 1); }
  }

  function failed(key) {
    return function (err) {
      setFlag("crowd-failed-" + key, 1);
      setStatus(t("load_failed") + " (" + String(err.message || err) + ")");
    };
  }

  function setStatus(text, keep) {
    if (keep) { S.status = text; }  // the standing line; messages replace it until the next action
    document.getElementById("crowd-status").textContent = text;
  }

  // Run one refresh at a time per layer: a slow response never races the next timer.
  function every(key, ms, fn) {
    function tick() {
      if (S.busy[key]) { return; }
      S.busy[key] = true;
      fn().then(function () { markLoaded(key); }, failed(key))
        .then(function () { S.busy[key] = false; });
    }
    tick();
    setInterval(tick, ms);
  }

  // ---------------------------------------------------------------- live heat

  function pointTip(p) {
    return el("div", {}, [
      el("div", { class: "gm-tip-name", text: p.name }),
      el("div", { text: t("crowd_source_" + p.kind) + " · " + p.key }),
      el("div", {}, [badge(p.level), document.createTextNode(" " + fmtDensity(p.density) + " · " +
        t("crowd_people") + " " + p.count)])
    ]);
  }

  function refreshHeat() {
    return getJson("/api/crowd/heat.geojson").then(function (data) {
      // The endpoint gives [lon, lat, weight]; Leaflet wants [lat, lon, weight].
      var pts = (data.points || []).map(function (p) { return [p[1], p[0], p[2]]; });
      S.heat.setLatLngs(pts);
      S.points.clearLayers();
      (data.features || []).forEach(function (f) {
        var c = f.geometry.coordinates;
        L.circleMarker([c[1], c[0]], { radius: 4, weight: 1, color: "#fff", fillOpacity: 0.9,
                                       fillColor: COLORS[f.properties.level] || "#999" })
          .bindTooltip(pointTip(f.properties)).addTo(S.points);
      });
      if (!S.fitted && pts.length && !S.userMoved) {
        // First data: show where the monitored places are (until the user pans/zooms).
        S.fitted = true;
        S.map.fitBounds(L.latLngBounds(pts.map(function (p) { return [p[0], p[1]]; })),
                        { padding: [40, 40], maxZoom: 15 });
      }
      setFlag("crowd-heat", pts.length);
      setStatus(tf("crowd_updated", { t: window.gridmap.dateTime(new Date(), { hour: "2-digit", minute: "2-digit", second: "2-digit" }) }) +
                " · " + tf("crowd_points_n", { n: pts.length }), true);
    });
  }

  // ---------------------------------------------------------------- choropleth

  function gridTip(p) {
    return el("div", {}, [
      el("div", { class: "gm-tip-name", text: p.name }),
      el("div", { class: "gm-tip-code", text: p.code }),
      el("div", {}, [badge(p.level), document.createTextNode(" " + t("crowd_level_" + p.level))]),
      el("div", { text: t("crowd_density") + " " + fmtDensity(p.density) + " · " + t("crowd_peak") + " " + fmtDensity(p.max_density) }),
      el("div", { text: t("crowd_people") + " " + p.people + " · " + tf("crowd_points_n", { n: p.sources }) })
    ]);
  }

  function refreshGrids() {
    return getJson("/api/crowd/grids.geojson").then(function (data) {
      S.grids.clearLayers();
      S.grids.addData(data);
      setFlag("crowd-grids", data.features.length);
    });
  }

  // ---------------------------------------------------------------- alerts

  function alertPopup(a) {
    var box = el("div", { class: "crowd-popup" }, [
      el("div", { class: "gm-popup-title", text: a.place }),
      el("div", { class: "gm-popup-sub", text: tf("crowd_raised", { t: fmtTime(a.raised_at) }) + " · " + t("crowd_state_" + a.state) })
    ]);
    if (a.has_snapshot) {
      box.appendChild(el("div", { text: t("crowd_snapshot") }));
      box.appendChild(el("img", { src: "/api/alerts/" + a.id + "/snapshot.jpg", alt: t("crowd_snapshot") }));
    }
    if (a.nearest_cameras && a.nearest_cameras.length) {
      box.appendChild(el("div", { text: t("crowd_nearest") }));
      var list = el("ul", {});
      a.nearest_cameras.forEach(function (c) {
        list.appendChild(el("li", { text: c.name + " · " + Math.round(c.distance_m) + " m" + (c.sees_point ? " · " + t("crowd_sees") : "") }));
      });
      box.appendChild(list);
    }
    return box;
  }

  function act(a, action, note) {
    var url = "/api/alerts/" + a.id + "/" + action;
    return postJson(url, note ? { note: note } : {}).then(function () {
      setStatus(S.status || "");
      return refreshAlerts();
    }).catch(function (err) {
      setStatus(t("crowd_action_failed") + ": " + err.message);
      return refreshAlerts();
    });
  }

  function alertItem(a) {
    var place = el("span", { class: "crowd-alert-place", text: a.place, role: "button", tabindex: "0" });
    place.addEventListener("click", function () {
      S.map.setView([a.lat, a.lon], Math.max(S.map.getZoom(), 16));
      L.popup({ maxWidth: 320 }).setLatLng([a.lat, a.lon]).setContent(alertPopup(a)).openOn(S.map);
    });
    var meta = [
      el("div", { class: "crowd-meta", text: tf("crowd_raised", { t: fmtTime(a.raised_at) }) + " · " + t("crowd_state_" + a.state) }),
      el("div", { class: "crowd-meta", text: t("crowd_source_" + a.source_kind) + " · " + a.source_name }),
      el("div", { class: "crowd-meta", text: t("crowd_density") + " " + fmtDensity(a.density) + " · " + t("crowd_peak") + " " + fmtDensity(a.peak_density) })
    ];
    if (a.cleared_at) { meta.push(el("div", { class: "crowd-meta", text: t("crowd_cleared") })); }
    if (a.crush_risk) { meta.push(el("div", { class: "crowd-crush", text: t("crowd_crush") })); }
    var note = el("input", { type: "text", maxlength: "1000", placeholder: t("crowd_note"), "aria-label": t("crowd_note") });
    var actions = el("div", { class: "crowd-actions" }, [note]);
    if (a.state === "open") {
      var ack = el("button", { type: "button", class: "crowd-ack", text: t("crowd_ack") });
      ack.addEventListener("click", function () { ack.disabled = true; act(a, "ack", note.value.trim()); });
      actions.appendChild(ack);
    }
    var close = el("button", { type: "button", class: "crowd-close", text: t("crowd_close") });
    close.addEventListener("click", function () {
      if (!note.value.trim()) { setStatus(t("crowd_note_required")); note.focus(); return; }
      close.disabled = true;
      act(a, "close", note.value.trim());
    });
    actions.appendChild(close);
    return el("li", { class: "crowd-alert", "data-alert-id": String(a.id), "data-state": a.state }, [
      el("div", { class: "crowd-alert-head" }, [badge(a.peak_level), place])
    ].concat(meta).concat([actions]));
  }

  function refreshAlerts() {
    return getJson("/api/alerts?state=active&limit=100").then(function (page) {
      var list = document.getElementById("crowd-alerts");
      var focused = document.activeElement && list.contains(document.activeElement);
      if (!focused) {  // never wipe a note the operator is typing
        list.textContent = "";
        if (!page.items.length) { list.appendChild(el("li", { class: "crowd-empty", text: t("crowd_no_alerts") })); }
        page.items.forEach(function (a) { list.appendChild(alertItem(a)); });
      }
      S.alerts.clearLayers();
      page.items.forEach(function (a) {
        L.circleMarker([a.lat, a.lon], { radius: 9, weight: 2, color: "#67000d", fillColor: COLORS[a.peak_level] || "#d73027", fillOpacity: 0.9 })
          .bindTooltip(el("div", { text: a.place }))
          .on("click", function (e) { L.popup({ maxWidth: 320 }).setLatLng(e.latlng).setContent(alertPopup(a)).openOn(S.map); })
          .addTo(S.alerts);
      });
      setFlag("crowd-alerts", page.items.length);
      S.alertCount = page.items.length;
      panelTitle();
    });
  }

  // The panel's title says how many alerts are open, so a folded panel still tells.
  function panelTitle() {
    var head = document.getElementById("crowd-panel-title");
    head.textContent = t("crowd_alerts") + (S.alertCount ? " (" + S.alertCount + ")" : "");
    head.setAttribute("aria-expanded",
                      document.getElementById("crowd-panel").classList.contains("collapsed") ? "false" : "true");
  }

  // ---------------------------------------------------------------- controls

  function legend(map) {
    var Ctl = L.Control.extend({
      onAdd: function () {
        var box = el("div", { class: "crowd-legend" }, [el("div", { text: t("crowd_level") })]);
        LEVELS.forEach(function (level) {
          var sw = el("span", { class: "crowd-swatch" });
          sw.style.background = COLORS[level];
          box.appendChild(el("div", { class: "crowd-legend-row" }, [sw, el("span", { text: t("crowd_level_" + level) })]));
        });
        return box;
      }
    });
    new Ctl({ position: "bottomright" }).addTo(map);
  }

  function panelControl(map) {
    var panel = document.getElementById("crowd-panel");
    // The alert panel is a Leaflet control, so it stacks under the layer list.
    var Ctl = L.Control.extend({
      onAdd: function () {
        // Folded to its title on a phone, where the open list covers the small map.
        panel.classList.toggle("collapsed", window.gridmap.onPhone());
        panelTitle();
        document.getElementById("crowd-panel-title").addEventListener("click", function () {
          panel.classList.toggle("collapsed");
          panelTitle();
        });
        L.DomEvent.disableClickPropagation(panel);
        L.DomEvent.disableScrollPropagation(panel);
        return panel;
      }
    });
    new Ctl({ position: "topright" }).addTo(map);
    if (window.gridmap.onPhone()) {
      // On a phone the folded layer list opens on a tap and folds again when the
      // finger leaves it: stacked above the panel, its folding would move the panel
      // away under the tap meant for the panel's title. So the panel goes first.
      panel.parentNode.insertBefore(panel, panel.parentNode.firstChild);
    }
  }

  // The replay's frames come from /api/crowd/replay when it is switched on (again
  // after a minute); the page only carries the empty steps and their labels.
  function loadReplay() {
    if (S.busy.replay || (S.replayAt && Date.now() - S.replayAt < 60000)) { return; }
    S.busy.replay = true;
    getJson(crowd().replay_url).then(function (data) {
      var n = S.replay.data.length;
      var frames = data.frames.slice(-n);
      while (frames.length < n) { frames.unshift([]); }  // steps are fixed by the slider
      S.replay.data = frames;
      var ctl = window[crowd().replay_control];
      if (ctl && data.index.length === n) { ctl.index = data.index; }
      var td = S.map.timeDimension;
      if (td && !S.replayAt) {
        td.setCurrentTime(n);  // start at the latest step: "how did we get here"
      } else if (td && S.map.hasLayer(S.replay)) {
        S.replay._getDataForTime(td.getCurrentTime());
      }
      S.replayAt = Date.now();
      setFlag("crowd-replay", frames.length);
    }, failed("replay")).then(function () { S.busy.replay = false; });
  }

  // leaflet-timedimension writes the replay speed as "1fps" (English) under its speed
  // slider; the page's language says it instead, now and at every change.
  function localizeReplaySpeed() {
    var ctl = window[crowd().replay_control];
    if (!ctl) { return; }
    ctl._getDisplaySpeed = function (fps) { return tf("crowd_fps", { n: fps }); };
    var label = ctl.getContainer && ctl.getContainer() &&
                ctl.getContainer().querySelector(".timecontrol-speed .speed");
    if (label && ctl._player) {
      label.textContent = ctl._getDisplaySpeed(Math.round(10000 / (ctl._player.getTransitionTime() || 1000)) / 10);
    }
  }

  function showReplayControl(on) {
    var ctl = window[crowd().replay_control];
    if (ctl && ctl.getContainer()) { ctl.getContainer().style.display = on ? "" : "none"; }
  }

  function init(map) {
    S.map = map;
    document.body.classList.add("page-crowd");
    document.title = t("crowd_title") + " · " + t("app_title");
    S.heat = window[crowd().heat_layer];
    S.replay = window[crowd().replay_layer];
    map.createPane("crowdGrids").style.zIndex = 350;  // under the heat and the markers
    S.grids = L.geoJSON(null, {
      pane: "crowdGrids",
      style: function (f) {
        return { color: "#4d4d4d", weight: 0.6, fillColor: COLORS[f.properties.level] || "#bbb", fillOpacity: 0.45 };
      },
      onEachFeature: function (f, lyr) { lyr.bindTooltip(gridTip(f.properties), { sticky: true }); }
    }).addTo(map);
    S.points = L.layerGroup().addTo(map);
    S.alerts = L.layerGroup().addTo(map);
    var control = (window.gridmap.state && window.gridmap.state.control) ||
                  L.control.layers(null, null, { collapsed: window.gridmap.onPhone(), position: "topright" }).addTo(map);
    control.addOverlay(S.grids, t("crowd_grids"));
    control.addOverlay(S.heat, t("crowd_heat"));
    if (S.replay) { control.addOverlay(S.replay, t("crowd_replay")); }
    control.addOverlay(S.points, t("crowd_points"));
    control.addOverlay(S.alerts, t("crowd_alert_points"));
    localizeReplaySpeed();
    showReplayControl(false);
    // Live heat and replay share one colour scale; showing both at once would mislead.
    // Deferred: the layer control is still adding the other checked layers when these
    // events fire, and would undo a change made inside its own loop.
    map.on("overlayadd", function (e) {
      setTimeout(function () {
        if (e.layer === S.replay && map.hasLayer(S.replay)) {
          if (map.hasLayer(S.heat)) { map.removeLayer(S.heat); }
          showReplayControl(true);
          loadReplay();
        }
        if (e.layer === S.heat && map.hasLayer(S.heat) && S.replay && map.hasLayer(S.replay)) {
          map.removeLayer(S.replay);
        }
      }, 0);
    });
    map.on("overlayremove", function (e) {
      setTimeout(function () {
        if (e.layer === S.replay && !map.hasLayer(S.replay)) {
          showReplayControl(false);
          if (!map.hasLayer(S.heat)) { S.heat.addTo(map); }
        }
      }, 0);
    });
    legend(map);
    panelControl(map);
    map.once("dragstart zoomstart", function () { S.userMoved = true; });
    every("heat", HEAT_MS, refreshHeat);
    every("grids", GRIDS_MS, refreshGrids);
    every("alerts", ALERTS_MS, refreshAlerts);
  }

  window.gridmapCrowd = { init: init, state: S, refresh: { heat: refreshHeat, grids: refreshGrids, alerts: refreshAlerts } };
})();
