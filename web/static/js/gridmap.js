/* gridmap browser glue: fetches data layers from the app's JSON endpoints and
 * renders every user-supplied string as text (never as HTML). */
(function () {
  "use strict";

  // CSRF and sign-in, for every same-origin fetch() on the page, so feature scripts
  // need not know. State-changing requests carry the token the server put in
  // <meta name="csrf-token">. A token gone stale (the user signed in again in
  // another tab) is fetched afresh from /api/me and the request sent once more.
  // A 401 shows a bar offering to sign in again in a new tab: what the user typed
  // on this page stays, to be sent once signed in (the page still gets the 401).
  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : null;
  }
  function setCsrfToken(token) {
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta && token) { meta.setAttribute("content", token); }
  }
  var plainFetch = window.fetch && (window.fetch.gridmapPlain || window.fetch);

  function withToken(input, init, token) {
    init = Object.assign({}, init || {});
    var headers = new Headers(init.headers || (typeof input === "object" && input.headers) || undefined);
    headers.set("X-CSRFToken", token);
    init.headers = headers;
    return init;
  }

  // The signed-in session's token, or null when signed out (which shows the bar).
  function freshToken() {
    return plainFetch.call(window, "/api/me", { headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) { signedOut(); return null; }
        if (!r.ok) { return null; }
        return r.json().then(function (me) { setCsrfToken(me.csrf_token); return me.csrf_token || null; });
      })
      .catch(function () { return null; });
  }

  (function installCsrfFetch() {
    if (!window.fetch || window.fetch.gridmapCsrf) { return; }
    var wrapped = function (input, init) {
      var method = ((init && init.method) || (input && input.method) || "GET").toUpperCase();
      var url = typeof input === "string" ? input : (input && input.url) || String(input);
      var sameOrigin = false;
      try { sameOrigin = new URL(url, window.location.href).origin === window.location.origin; } catch (e) { sameOrigin = false; }
      if (!sameOrigin) { return plainFetch.call(window, input, init); }
      var unsafe = ["GET", "HEAD", "OPTIONS"].indexOf(method) < 0;
      var given = new Headers((init && init.headers) || undefined).has("X-CSRFToken");
      var token = csrfToken();
      var first = unsafe && token && !given ? withToken(input, init, token) : init;
      // Sent again only when its body can be sent twice (text, form data; not a stream).
      var resendable = unsafe && !given && (typeof input === "string" || input instanceof URL) &&
                       !(init && init.body && typeof init.body.getReader === "function");
      return plainFetch.call(window, input, first).then(function (resp) {
        if (resp.status === 401) { signedOut(); return resp; }
        if (resp.status === 400 && resendable && resp.headers.get("X-Gridmap-Csrf") === "stale") {
          return freshToken().then(function (fresh) {
            return fresh ? plainFetch.call(window, input, withToken(input, init, fresh)) : resp;
          });
        }
        return resp;
      });
    };
    wrapped.gridmapCsrf = true;
    wrapped.gridmapPlain = plainFetch;
    window.fetch = wrapped;
  })();

  // The page's own catalog (map pages, the ledger and the video wall name it differently).
  function uiText(key) {
    var c = window.GRIDMAP || window.LEDGER || window.VIDEOWALL || {};
    return (c.i18n || {})[key] || key;
  }

  var signInBar = null;
  function signedOut() {
    if (!signInBar) { signInBar = signInBarNode(); document.body.appendChild(signInBar); }
    signInBar.querySelector(".gm-signin-text").textContent = uiText("gm_signed_out");
    signInBar.querySelector(".gm-signin-link").hidden = false;
    signInBar.style.background = "#fff4ce";
    signInBar.style.display = "flex";
  }

  // Back from the other tab: if signed in there, the page's token is renewed and the bar says so.
  function signedInAgain() {
    if (!signInBar || signInBar.style.display === "none" || signInBar.querySelector(".gm-signin-link").hidden) {
      return;
    }
    freshToken().then(function (fresh) {
      if (!fresh) { return; }
      signInBar.querySelector(".gm-signin-text").textContent = uiText("gm_signed_in_again");
      signInBar.querySelector(".gm-signin-link").hidden = true;
      signInBar.style.background = "#d9f2dd";
      setTimeout(function () { signInBar.style.display = "none"; }, 4000);
    });
  }

  function signInBarNode() {
    var next = window.location.pathname + window.location.search;
    var link = el("a", { class: "gm-signin-link", href: "/login?next=" + encodeURIComponent(next),
                         target: "_blank", rel: "noopener", text: uiText("gm_sign_in_tab") });
    var close = el("button", { type: "button", class: "gm-signin-close", "aria-label": uiText("gm_dismiss"),
                               text: "×" });
    var bar = el("div", { id: "gm-signin-bar", class: "gm-signin-bar", role: "alert" },
                 [el("span", { class: "gm-signin-text" }), link, close]);
    // Styled here, not in a sheet: the ledger and the video wall do not load gridmap.css.
    var st = bar.style;
    st.position = "fixed"; st.left = "0"; st.right = "0"; st.top = "0"; st.zIndex = "10000";
    st.display = "flex"; st.flexWrap = "wrap"; st.alignItems = "center"; st.gap = "8px 16px";
    st.padding = "10px 16px"; st.color = "#1d2b3a"; st.borderBottom = "2px solid #d9a400";
    st.font = "15px/1.4 sans-serif";
    link.style.fontWeight = "700"; link.style.color = "#1f4fa0";
    close.style.marginLeft = "auto"; close.style.minWidth = close.style.minHeight = "40px";
    close.style.font = "inherit"; close.style.fontSize = "20px"; close.style.background = "transparent";
    close.style.border = "0"; close.style.cursor = "pointer";
    // (display, not the hidden attribute: the inline display:flex would outrank it)
    close.addEventListener("click", function () { st.display = "none"; });
    window.addEventListener("focus", signedInAgain);
    return bar;
  }

  var state = { map: null, layers: {}, counts: {}, control: null, errors: [] };

  function cfg() { return window.GRIDMAP || { lang: "zh", i18n: {} }; }
  function t(key) { var m = cfg().i18n || {}; return m[key] || key; }

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "text") { node.textContent = attrs[k]; }
      else if (k === "class") { node.className = attrs[k]; }
      else { node.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) { if (c) { node.appendChild(c); } });
    return node;
  }

  function fmt(n) {
    if (typeof n !== "number") { return String(n); }
    return n.toLocaleString(cfg().lang === "en" ? "en-US" : "zh-CN");
  }

  function tooltipFor(props) {
    return el("div", { class: "gm-tip" }, [
      el("div", { class: "gm-tip-name", text: props.name }),
      el("div", { class: "gm-tip-code", text: props.code })
    ]);
  }

  function countsTable(props) {
    var rows = ["houses", "residents", "key_persons", "key_places", "components"];
    var table = el("table", { class: "gm-counts" });
    rows.forEach(function (key) {
      if (props[key] === undefined) { return; }
      table.appendChild(el("tr", { "data-key": key }, [
        el("th", { text: t(key) }), el("td", { text: fmt(props[key]) })
      ]));
    });
    return el("div", { class: "gm-popup" }, [
      el("div", { class: "gm-popup-title", text: props.name }),
      el("div", { class: "gm-popup-sub", text: [props.code, props.town, props.community].filter(Boolean).join(" · ") }),
      el("div", { class: "gm-popup-kind", text: t(props.kind) }),
      table
    ]);
  }

  var GRID_COLORS = { urban: "#2b8cbe", rural: "#74c476", special: "#fd8d3c" };
  var TOWN_LINE = "#b2182b";
  var styles = {
    grids: function (f) {
      var fill = GRID_COLORS[f.properties.kind] || "#999";
      return { color: "#35506b", weight: 0.8, fillColor: fill, fillOpacity: 0.18 };
    },
    towns: function () { return { color: TOWN_LINE, weight: 2.5, fill: false, dashArray: "6 4" }; },
    communities: function () { return { color: "#6a51a3", weight: 1.2, fill: false }; }
  };

  // A phone's map is small: controls that stay open on a desk start folded there.
  function onPhone() {
    return !!(window.matchMedia && window.matchMedia("(max-width: 600px)").matches);
  }

  function layerControl(map) {
    if (!state.control) {
      state.control = L.control.layers(null, null, { collapsed: onPhone(), position: "topright" }).addTo(map);
    }
    return state.control;
  }

  function remoteGeoJson(map, url, options) {
    var kind = options.kind;
    var layer = L.geoJSON(null, {
      style: styles[kind] || undefined,
      interactive: options.interactive !== false,
      className: "gm-" + kind,
      onEachFeature: function (feature, lyr) {
        if (options.interactive === false) { return; }
        lyr.bindTooltip(tooltipFor(feature.properties), { sticky: true });
        lyr.on("click", function (e) {
          L.popup({ maxWidth: 320 }).setLatLng(e.latlng).setContent(countsTable(feature.properties)).openOn(map);
        });
        lyr.on("add", function () {
          var node = lyr.getElement && lyr.getElement();
          if (!node) { return; }
          // Not a Tab stop each (the tooltip's focus handling makes 930 grids 930 stops
          // before the page's controls); the search and the lists reach them by keyboard.
          node.setAttribute("tabindex", "-1");
          if (feature.properties.code) {
            node.setAttribute("data-code", feature.properties.code);
            if (feature.properties.kind) { node.setAttribute("data-kind", feature.properties.kind); }
          }
        });
      }
    }).addTo(map);
    state.layers[kind] = layer;
    layerControl(map).addOverlay(layer, options.name);
    fetch(url, { headers: { Accept: "application/geo+json" } })
      .then(function (r) { if (!r.ok) { throw new Error(r.status + " " + url); } return r.json(); })
      .then(function (data) {
        layer.addData(data);
        state.counts[kind] = data.features.length;
        if (options.fit && data.features.length) { map.fitBounds(layer.getBounds(), { padding: [10, 10] }); }
        if (options.legend && kind === "grids") { gridLegend(map, data.features); }
        document.documentElement.setAttribute("data-loaded-" + kind, String(data.features.length));
      })
      .catch(function (err) {
        state.errors.push(String(err));
        document.documentElement.setAttribute("data-failed-" + kind, "1");
        notify(t("load_failed") + ": " + kind);
      });
    return layer;
  }

  // What the grid colours mean, with how many grids of each kind are drawn.
  function gridLegend(map, features) {
    var counts = {};
    features.forEach(function (f) { counts[f.properties.kind] = (counts[f.properties.kind] || 0) + 1; });
    var rows = Object.keys(GRID_COLORS).filter(function (k) { return counts[k]; }).map(function (k) {
      var swatch = el("span", { class: "gm-legend-swatch" });
      swatch.style.background = GRID_COLORS[k];
      return el("div", { class: "gm-legend-row", "data-kind": k },
                [swatch, el("span", { text: t(k) + " " + fmt(counts[k]) })]);
    });
    var line = el("span", { class: "gm-legend-line" });
    line.style.borderColor = TOWN_LINE;
    rows.push(el("div", { class: "gm-legend-row" }, [line, el("span", { text: t("town") })]));
    foldingLegend(map, { id: "gm-legend", className: "gm-legend", title: t("legend"), rows: rows,
                         openFrom: 601 });
  }

  // A map legend in the bottom right corner: its title and rows, folded to the
  // title on screens narrower than openFrom pixels (a phone, where the map is small).
  function foldingLegend(map, options) {
    var Ctl = L.Control.extend({
      onAdd: function () {
        var box = el("details", { class: options.className, id: options.id },
                     [el("summary", { text: options.title })].concat(options.rows));
        box.open = window.matchMedia("(min-width: " + options.openFrom + "px)").matches;
        L.DomEvent.disableClickPropagation(box);
        return box;
      }
    });
    return new Ctl({ position: "bottomright" }).addTo(map);
  }

  // Times read on Yanzhou's clock, whatever the browser's zone (a wall's kiosk PC
  // often runs on UTC): the API's RFC 3339 instants, shown as the district reads them.
  var TZ = "Asia/Shanghai";

  // A date and time in the page's language on Yanzhou's clock; opts as toLocaleString's.
  function dateTime(value, opts, lang) {
    var d = value instanceof Date ? value : new Date(value);
    if (isNaN(d.getTime())) { return String(value); }
    return d.toLocaleString((lang || cfg().lang) === "en" ? "en-GB" : "zh-CN",
                            Object.assign({ timeZone: TZ, hour12: false }, opts));
  }

  // A time of day, with the month and day when it is not today's (how old a picture is).
  function timeOfDay(value, lang) {
    var d = value instanceof Date ? value : new Date(value);
    if (isNaN(d.getTime())) { return String(value); }
    var day = { timeZone: TZ, year: "numeric", month: "2-digit", day: "2-digit" };
    var opts = { hour: "2-digit", minute: "2-digit" };
    if (d.toLocaleDateString("en-GB", day) !== new Date().toLocaleDateString("en-GB", day)) {
      opts.month = "2-digit"; opts.day = "2-digit";
    }
    return dateTime(d, opts, lang);
  }

  // ---------------------------------------------------------------- unsaved changes
  // "Discard unsaved changes?" asked inside a page's panel (no window.confirm: a
  // map-wall kiosk may block it). The page's markup holds the box (role=alertdialog,
  // hidden) with its two buttons; the page decides what counts as unsaved and what
  // discarding restores. While asked, focus is on "keep editing", the safe answer
  // (the page's Escape should give it too: q.shown() ? q.keep() : ...).
  //   box, keepButton, discardButton: the elements (clicks are wired here). Without
  //     a box (a read-only page) nothing is ever asked.
  //   onDiscard(): drop the unsaved changes (the box still shows, nothing pending).
  //   returnWithin: focus given back on keep only to an element inside this one.
  //   fallbackFocus(): where focus goes on keep when where it was is gone (or null).
  //   stateAttr: an attribute on <html> set to "1" while asked, "0" once closed.
  // Returns:
  //   ask(then): show the question (focus remembered); ``then`` runs on discard.
  //   shown(): whether it is being asked.
  //   close(): hide it, forgetting ``then``; true when focus was in it.
  //   keep(): close, focus back where it was (else fallbackFocus()).
  //   discard(): onDiscard(), close, run ``then``.
  //   proceed(): the question is moot (the changes were saved meanwhile): close and
  //     run ``then`` if it was asked.
  function discardQuestion(o) {
    var box = o.box, pending = null, returnFocus = null;
    function shown() { return !!(box && !box.hidden); }
    function flag(value) { if (o.stateAttr) { document.documentElement.setAttribute(o.stateAttr, value); } }
    function ask(then) {
      if (!box) { return; }
      if (!shown()) { returnFocus = document.activeElement; }
      pending = then || null;
      box.hidden = false;
      flag("1");
      o.keepButton.focus();
    }
    function close() {
      var had = !!(box && box.contains(document.activeElement));
      if (box) { box.hidden = true; }
      pending = null;
      returnFocus = null;
      flag("0");
      return had;
    }
    function keep() {
      var back = returnFocus;
      close();
      var ok = back && back !== document.body && document.contains(back) && !(box && box.contains(back)) &&
               (!o.returnWithin || o.returnWithin.contains(back));
      var to = ok ? back : (o.fallbackFocus ? o.fallbackFocus() : null);
      if (to) { to.focus(); }
    }
    function discard() {
      var then = pending;
      pending = null;
      returnFocus = null;
      if (o.onDiscard) { o.onDiscard(); }
      close();
      if (then) { then(); }
    }
    function proceed() {
      var then = pending;
      close();
      if (then) { then(); }
    }
    if (box) {
      o.keepButton.addEventListener("click", keep);
      o.discardButton.addEventListener("click", discard);
    }
    return { ask: ask, shown: shown, close: close, keep: keep, discard: discard, proceed: proceed };
  }

  // The browser asks before the tab is closed or left while isDirty() says something
  // is unsaved. sync(on) sets the beforeunload handler (on: default isDirty()) or takes
  // it off: an idle page keeps no handler and stays eligible for the back/forward cache.
  function leaveGuard(isDirty) {
    var on = false;
    function warn(event) {
      if (!isDirty()) { return undefined; }
      event.preventDefault();
      event.returnValue = uiText("unsaved_discard_q");  // older browsers want a (any) text
      return event.returnValue;
    }
    function sync(wanted) {
      var needed = arguments.length ? !!wanted : !!isDirty();
      if (needed === on) { return; }
      window[needed ? "addEventListener" : "removeEventListener"]("beforeunload", warn);
      on = needed;
    }
    return { sync: sync };
  }

  function notify(text) {
    var box = document.getElementById("gm-notice");
    if (!box) { box = el("div", { id: "gm-notice", class: "gm-notice" }); document.body.appendChild(box); }
    box.textContent = text;
  }

  function languageControl(map) {
    var Ctl = L.Control.extend({
      onAdd: function () {
        var other = cfg().lang === "en" ? "zh" : "en";
        var a = el("a", { class: "gm-lang", href: "?lang=" + other, text: t("switch_language") });
        var box = el("div", { class: "leaflet-bar gm-lang-box" }, [a]);
        return box;
      }
    });
    new Ctl({ position: "topleft" }).addTo(map);
  }

  function titleControl(map) {
    var Ctl = L.Control.extend({
      onAdd: function () { return el("h1", { class: "gm-title", text: t("app_title") }); }
    });
    new Ctl({ position: "topleft" }).addTo(map);
  }

  function userControl(map) {
    var user = cfg().user;
    if (!user) { return; }
    var Ctl = L.Control.extend({
      onAdd: function () {
        var links = el("div", { class: "gm-user-links", id: "gm-user-links" }, [
          el("a", { class: "gm-lang", href: "/matters", text: t("mt_nav") }),
          el("a", { class: "gm-lang", href: "/videowall", text: t("video_wall") }),
          el("a", { class: "gm-lang", href: "/cameras", text: t("lg_nav") }),
          el("a", { class: "gm-lang", href: "/logout", text: t("sign_out") })
        ]);
        var toggle = el("button", { type: "button", class: "gm-user-name",
                                    "aria-controls": "gm-user-links",
                                    text: user.unit + " · " + user.username });
        var box = el("div", { class: "leaflet-bar gm-lang-box gm-user" }, [toggle, links]);
        function setOpen(open) {
          box.setAttribute("data-open", open ? "true" : "false");
          toggle.setAttribute("aria-expanded", open ? "true" : "false");
        }
        // On a phone the open menu would cover a third of the small map: it starts
        // folded there, one tap away; on a desk it starts open as before.
        setOpen(!onPhone());
        toggle.addEventListener("click", function () {
          setOpen(box.getAttribute("data-open") !== "true");
        });
        L.DomEvent.disableClickPropagation(box);  // a tap here is not a tap on the map
        return box;
      }
    });
    new Ctl({ position: "bottomleft" }).addTo(map);
  }

  // Leaflet and its plugins write their controls' hover titles and screen-reader
  // labels in English, and some rewrite them later (the replay's play button, the
  // date button's time zone). Each known English text maps to a catalog key; the
  // controls are translated when the map starts and whenever they change.
  var LEAFLET_TEXT = {
    "Zoom in": "lf_zoom_in", "Zoom out": "lf_zoom_out", "Layers": "lf_layers",
    "Close popup": "lf_close_popup",
    "Backward": "td_backward", "Forward": "td_forward", "Play": "td_play",
    "Play Reverse": "td_play_reverse", "Pause": "td_pause", "Loop": "td_loop",
    "Date": "td_date", "UTC Time": "td_utc_time", "Local Time": "td_local_time"
  };
  var LOCALIZED_ATTRS = ["title", "aria-label"];

  function localizeNode(node) {
    if (!node || node.nodeType !== 1) { return; }
    var cls = node.classList;
    if (cls.contains("timecontrol-play")) {
      // The player marks playing by a class only; its title should say what a click does.
      var key = cls.contains("pause") ? "td_pause" : cls.contains("reverse") ? "td_play_reverse" : "td_play";
      if (node.getAttribute("title") !== t(key)) { node.setAttribute("title", t(key)); }
      return;
    }
    LOCALIZED_ATTRS.forEach(function (attr) {
      var value = node.getAttribute(attr);
      var key = value && LEAFLET_TEXT[value];
      if (key && t(key) !== value) { node.setAttribute(attr, t(key)); }
    });
  }

  function localizeTree(root) {
    if (!root || root.nodeType !== 1) { return; }
    localizeNode(root);
    root.querySelectorAll("[title], [aria-label], .timecontrol-play").forEach(localizeNode);
  }

  function localizeControls(map) {
    var box = map._controlContainer || map.getContainer();
    localizeTree(box);
    if (window.MutationObserver) {
      new MutationObserver(function (records) {
        records.forEach(function (r) {
          if (r.type === "attributes") { localizeNode(r.target); }
          else { Array.prototype.forEach.call(r.addedNodes, localizeTree); }
        });
      }).observe(box, { subtree: true, childList: true, attributes: true,
                        attributeFilter: LOCALIZED_ATTRS.concat(["class"]) });
    }
    map.on("popupopen", function (e) { localizeTree(e.popup.getElement()); });
    // Geoman's drawing hints ("Click to place first vertex") have their own catalog.
    if (map.pm && map.pm.setLang) { map.pm.setLang(cfg().lang === "en" ? "en" : "zh"); }
  }

  function init(map) {
    state.map = map;
    localizeControls(map);
    document.documentElement.lang = cfg().lang === "en" ? "en" : "zh-CN";
    document.title = t("app_title");
    // The map is the page's main content (its controls, title and panels live in it).
    map.getContainer().setAttribute("role", "main");
    map.getContainer().setAttribute("aria-label", t("app_title"));
    titleControl(map);
    languageControl(map);
    userControl(map);
    // Credit Leaflet in plain text: no link out of the isolated network, and no
    // flag in a government command center's map (Leaflet 1.9's default prefix).
    if (map.attributionControl) { map.attributionControl.setPrefix("Leaflet"); }
    // Metric only: folium's scale bar also shows feet, which nobody here reads.
    L.control.scale({ imperial: false, position: "bottomleft", maxWidth: 160 }).addTo(map);
  }

  window.gridmap = { init: init, remoteGeoJson: remoteGeoJson, state: state, el: el, t: t, onPhone: onPhone,
                     csrfToken: csrfToken, foldingLegend: foldingLegend, timeOfDay: timeOfDay,
                     dateTime: dateTime, TZ: TZ, discardQuestion: discardQuestion, leaveGuard: leaveGuard };
})();
