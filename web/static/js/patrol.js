/* Patrol lead page: "cameras near me" from the phone's position or a tap. */
(function () {
  "use strict";
  var el = function () { return window.gridmap.el.apply(null, arguments); };
  var t = function (k) { return window.gridmap.t(k); };
  var DIRS = { zh: ["北", "东北", "东", "东南", "南", "西南", "西", "西北"],
               en: ["N", "NE", "E", "SE", "S", "SW", "W", "NW"] };
  var state = { map: null, here: null, markers: null, items: [], opener: null };

  function lang() { return (window.GRIDMAP || {}).lang === "en" ? "en" : "zh"; }
  function compass(deg) { return DIRS[lang()][Math.round(((deg % 360) + 360) % 360 / 45) % 8]; }
  function distance(m) { return m < 1000 ? Math.round(m) + " m" : (m / 1000).toFixed(2) + " km"; }

  function setStatus(text) { document.getElementById("patrol-status").textContent = text; }

  // The viewer is a modal dialog over the whole screen: it takes the focus when it
  // opens (its heading), keeps Tab inside, closes on Escape, and gives the focus
  // back to the list item (or whatever else) that opened it.
  function openViewer(item) {
    var viewer = document.getElementById("patrol-viewer");
    if (viewer.hidden) {
      var from = document.activeElement;
      state.opener = { gbId: item.gb_id, node: from && from !== document.body && !viewer.contains(from) ? from : null };
    }
    var body = document.getElementById("patrol-viewer-body");
    body.textContent = "";
    var img = el("div", { class: "patrol-nosnap", text: t("no_snapshot") });
    if (item.snapshot_at) {
      img = el("img", { class: "patrol-snapshot", alt: item.name });
      img.addEventListener("error", function () { img.replaceWith(el("div", { class: "patrol-nosnap", text: t("no_snapshot") })); });
      img.src = "/api/cameras/" + encodeURIComponent(item.gb_id) + "/snapshot.jpg";
    }
    body.appendChild(el("h2", { id: "patrol-viewer-title", tabindex: "-1", text: item.name }));
    body.appendChild(img);
    body.appendChild(el("p", { class: "patrol-meta", text: item.gb_id + " · " + t("src_" + item.source) + " · " + t("st_" + item.status) }));
    body.appendChild(el("p", { class: "patrol-meta", text: distance(item.distance_m) + " · " + compass(item.bearing) + " " + Math.round(item.bearing) + "°" }));
    if (item.snapshot_at) {
      // How fresh the picture is matters more at an incident than what it shows:
      // the time it was taken, not of the last attempt (an offline camera keeps its
      // last picture).
      body.appendChild(el("p", { class: "patrol-meta patrol-taken",
                                 text: t("snapshot_at").replace("{time}", window.gridmap.timeOfDay(item.snapshot_at, lang())) }));
    }
    // The actions sit at the bottom of the screen, under the thumb.
    var back = el("button", { type: "button", class: "patrol-btn patrol-btn-secondary patrol-back", text: t("back_to_list") });
    back.addEventListener("click", closeViewer);
    body.appendChild(el("div", { class: "patrol-actions" }, [
      back,
      el("a", { class: "patrol-btn patrol-live", href: "/cameras/" + encodeURIComponent(item.gb_id) + "/live", text: t("open_live") })
    ]));
    viewer.hidden = false;
    document.getElementById("patrol-viewer-title").focus();
  }

  function closeViewer() {
    var viewer = document.getElementById("patrol-viewer");
    if (viewer.hidden) { return; }
    viewer.hidden = true;
    var from = state.opener;
    state.opener = null;
    if (!from) { return; }
    // Back where it was opened; if the list was drawn again meanwhile, the camera's item as it is now.
    var back = from.node && from.node.isConnected ? from.node
      : document.querySelector('#patrol-list button.patrol-item[data-gb-id="' + CSS.escape(from.gbId) + '"]');
    if (back) { back.focus(); }
  }

  function viewerKeys(e) {
    var viewer = document.getElementById("patrol-viewer");
    if (viewer.hidden) { return; }
    if (e.key === "Escape" && !e.isComposing) { e.preventDefault(); closeViewer(); return; }
    if (e.key !== "Tab") { return; }
    var stops = Array.prototype.filter.call(
      viewer.querySelectorAll("button, a[href], input, select, textarea, [tabindex]"),
      function (n) { return n.tabIndex >= 0 && !n.disabled && n.getClientRects().length; });
    if (!stops.length) { return; }
    var first = stops[0], last = stops[stops.length - 1];
    var at = document.activeElement;
    if (e.shiftKey && (at === first || !viewer.contains(at))) {
      e.preventDefault(); last.focus();
    } else if (!e.shiftKey && (at === last || !viewer.contains(at))) {
      e.preventDefault(); first.focus();
    }
  }

  function render(items) {
    var list = document.getElementById("patrol-list");
    list.textContent = "";
    state.markers.clearLayers();
    if (!items.length) { list.appendChild(el("li", { class: "patrol-empty", text: t("no_cameras") })); }
    items.forEach(function (item) {
      // Ask for a thumbnail only when the sampler has stored one.
      var thumb = el("img", { class: "patrol-thumb", alt: "" });
      if (item.snapshot_at) {
        thumb.addEventListener("error", function () { thumb.classList.add("patrol-thumb-missing"); thumb.removeAttribute("src"); });
        thumb.src = "/api/cameras/" + encodeURIComponent(item.gb_id) + "/snapshot.jpg?thumb=1";
      }
      var btn = el("button", { type: "button", class: "patrol-item" + (item.sees_point ? " sees" : ""), "data-gb-id": item.gb_id }, [
        thumb,
        el("span", { class: "patrol-item-text" }, [
          el("span", { class: "patrol-name", text: item.name }),
          el("span", { class: "patrol-dist", text: distance(item.distance_m) + " · " + compass(item.bearing) + " " + Math.round(item.bearing) + "°" }),
          el("span", { class: "patrol-src", text: t("src_" + item.source) + (item.sees_point ? " · " + t("sees_here") : "") })
        ]),
        el("span", { class: "patrol-dot st-" + item.status, title: t("st_" + item.status) })
      ]);
      btn.addEventListener("click", function () { openViewer(item); });
      list.appendChild(el("li", {}, [btn]));
      L.circleMarker([item.lat, item.lon], { radius: 6, color: "#fff", weight: 1.5, fillColor: item.sees_point ? "#d7301f" : "#2b8cbe", fillOpacity: 0.95 })
        .on("click", function () { openViewer(item); }).addTo(state.markers);
    });
  }

  // The grid at the spot and whom to call there: its leader and full-time worker.
  function showGrid(lat, lon) {
    var box = document.getElementById("patrol-grid");
    var url = "/api/grids/at?team=1&lon=" + lon.toFixed(6) + "&lat=" + lat.toFixed(6);
    return fetch(url).then(function (r) { return r.ok ? r.json() : null; }).then(function (grid) {
      box.textContent = "";
      box.hidden = !grid;
      document.documentElement.setAttribute("data-patrol-grid", grid ? grid.code : "");
      if (!grid) { return; }
      box.appendChild(el("div", { class: "patrol-grid-name", text: t("grid_here") + " · " + grid.name }));
      var posts = grid.team.members.filter(function (m) { return m.role === "leader" || m.role === "full_time"; });
      posts.forEach(function (m) {
        box.appendChild(el("div", { class: "patrol-contact", "data-role": m.role }, [
          el("span", { class: "patrol-contact-who", text: t(m.role) + " " + m.name }),
          el("a", { class: "patrol-btn patrol-call", href: "tel:" + String(m.phone).replace(/[^0-9+]/g, ""), text: t("call") })
        ]));
      });
      grid.team.problems.forEach(function (p) {
        box.appendChild(el("div", { class: "patrol-contact-gap", text: t("team_" + p) }));
      });
    }).catch(function () { box.hidden = true; });
  }

  var NEARBY_LIMIT = 20;

  function search(lat, lon) {
    state.here = [lat, lon];
    if (state.hereMarker) { state.hereMarker.setLatLng(state.here); }
    else { state.hereMarker = L.circleMarker(state.here, { radius: 9, color: "#fff", weight: 3, fillColor: "#1a9850", fillOpacity: 1 }).addTo(state.map); }
    state.map.setView(state.here, Math.max(state.map.getZoom(), 16));
    setStatus(t("searching"));
    showGrid(lat, lon);
    var url = "/api/cameras/nearby?sees=1&radius=500&limit=" + NEARBY_LIMIT + "&lon=" + lon.toFixed(6) + "&lat=" + lat.toFixed(6);
    fetch(url).then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (res) {
        // The server's word (localized; "please sign in" on a 401): the list of the last
        // search stays, as it does when the network fails.
        if (!res.ok) { setStatus(((res.body || {}).message || (res.body || {}).reason) || t("load_failed")); return; }
        state.items = res.body.items;
        // count is what came back, at most the limit: a full answer is the nearest
        // few, not all there are in range. The status line is the sheet's live
        // region: a screen reader hears this line, not the list drawn below it.
        setStatus(!res.body.count ? t("no_cameras")
          : t(res.body.count >= NEARBY_LIMIT ? "found_nearest_n" : "found_n").replace("{n}", res.body.count));
        render(res.body.items);
        document.documentElement.setAttribute("data-nearby-count", String(res.body.count));
      })
      .catch(function () { setStatus(t("load_failed")); });
  }

  function locate() {
    if (!navigator.geolocation) { setStatus(t("geo_unavailable")); return; }
    setStatus(t("locating"));
    navigator.geolocation.getCurrentPosition(
      function (pos) { search(pos.coords.latitude, pos.coords.longitude); },
      function () { setStatus(t("geo_denied")); },
      { enableHighAccuracy: true, timeout: 10000, maximumAge: 30000 });
  }

  function init(map) {
    state.map = map;
    state.markers = L.layerGroup().addTo(map);
    document.body.classList.add("page-patrol");
    var btn = document.getElementById("patrol-locate");
    btn.textContent = t("locate_me");
    btn.addEventListener("click", locate);
    var viewer = document.getElementById("patrol-viewer");
    viewer.setAttribute("role", "dialog");
    viewer.setAttribute("aria-modal", "true");
    viewer.setAttribute("aria-label", t("patrol_viewer"));
    document.addEventListener("keydown", viewerKeys);
    var close = document.getElementById("patrol-viewer-close");
    close.setAttribute("aria-label", t("patrol_viewer_close"));
    close.addEventListener("click", closeViewer);
    map.on("click", function (e) { search(e.latlng.lat, e.latlng.lng); });
    setStatus(t("tap_hint"));
    setTimeout(function () { map.invalidateSize(); }, 0);
    locate();
  }

  window.gridmapPatrol = { init: init, search: search, state: state };
})();
