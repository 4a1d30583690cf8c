/* gridmap camera ledger: a paged, filtered table over /api/cameras, a camera's
 * details with an edit form, ledger import with its row-by-row report, and export
 * of what the table shows. Every stored string is rendered as text, never as HTML. */
(function () {
  "use strict";

  var C = window.LEDGER || { i18n: {}, areas: {}, page_size: 50 };
  var el = window.gridmap.el;
  // Query parameters of the list, each kept in the address; sort is not a filter, so
  // the export leaves it out.
  var FILTERS = ["q", "area", "source", "status", "tag", "sector", "sort"];
  function box(name) { return $("lg-" + (name === "area" ? "town" : name)); }
  var S = { offset: 0, total: 0, items: {}, current: null, request: 0, detailRequest: 0, opener: null,
            loaded: null, baseline: null, newBaseline: null };

  function t(key, vars) {
    var text = (C.i18n || {})[key] || key;
    Object.keys(vars || {}).forEach(function (k) { text = text.split("{" + k + "}").join(vars[k]); });
    return text;
  }
  function $(id) { return document.getElementById(id); }
  function locale() { return C.lang === "en" ? "en-GB" : "zh-CN"; }
  function count(n) { return Number(n).toLocaleString(locale()); }
  function when(iso) {
    if (!iso) { return ""; }
    return window.gridmap.dateTime(iso, { year: "numeric", month: "2-digit", day: "2-digit",
                                          hour: "2-digit", minute: "2-digit" }, C.lang);
  }
  function label(prefix, value) {
    var key = prefix + value;
    return (C.i18n || {})[key] ? t(key) : value;
  }
  function areaName(item) {
    var names = C.areas || {};
    var town = names[item.town_code], community = names[item.community_code];
    if (!town && !community) { return item.grid_code || ""; }
    return [town, community].filter(Boolean).join(" / ");
  }

  // Answers as {ok, status, data}; the server's errors carry a message in the page's language.
  function api(method, url, body, json) {
    var opts = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (json) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    } else if (body !== undefined) {
      opts.body = body;  // FormData: the browser writes the multipart header
    }
    return fetch(url, opts).then(function (r) {
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        return { ok: r.ok, status: r.status, data: data };
      });
    });
  }
  function reasonOf(answer) {
    var d = answer.data || {};
    return d.message || d.reason || ("HTTP " + answer.status);
  }
  // The reason given when the request never got an answer (fetch rejected): each write
  // action says what did not happen ("not saved: ..."), not that something failed to load.
  function networkReason() { return t("lg_network_failed"); }

  // ------------------------------------------------------------------ filters and URL

  function filters() {
    var out = {};
    FILTERS.forEach(function (name) {
      var value = (box(name).value || "").trim();
      if (value && !(name === "sort" && value === "gb_id")) { out[name] = value; }
    });
    return out;
  }
  function query(params) {
    return Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
    }).join("&");
  }
  function fromUrl() {
    var params = new URLSearchParams(window.location.search);
    FILTERS.forEach(function (name) {
      var field = box(name);
      var value = params.get(name) || "";
      if (field.tagName === "SELECT" && !field.querySelector('option[value="' + CSS.escape(value) + '"]')) {
        value = field.options[0].value;
      }
      field.value = value;
    });
    var offset = parseInt(params.get("offset") || "0", 10);
    S.offset = isFinite(offset) && offset > 0 ? offset - (offset % C.page_size) : 0;
  }
  function toUrl(push) {
    var params = filters();
    if (S.offset) { params.offset = S.offset; }
    if (C.lang === "en") { params.lang = "en"; }
    var url = window.location.pathname + (Object.keys(params).length ? "?" + query(params) : "");
    if (url !== window.location.pathname + window.location.search) {
      window.history[push ? "pushState" : "replaceState"](null, "", url);
    }
  }
  function updateExports() {
    var params = filters();
    delete params.sort;
    params.datum = $("lg-export-datum").value;
    Array.prototype.forEach.call(document.querySelectorAll(".lg-export a[data-format]"), function (a) {
      var these = Object.assign({}, params);
      if (a.dataset.headers) { these.headers = a.dataset.headers; }
      a.setAttribute("href", "/api/cameras/export." + a.dataset.format + "?" + query(these));
    });
  }

  // ------------------------------------------------------------------ the table

  function statusBadge(status) {
    return el("span", { class: "lg-badge lg-st-" + status, text: label("st_", status) });
  }
  function row(item) {
    var open = el("button", { type: "button", class: "lg-open", "data-gb": item.gb_id, text: item.name });
    open.addEventListener("click", function () { openRow(item.gb_id); });
    return el("tr", { "data-gb": item.gb_id }, [
      el("td", { class: "lg-id", text: item.gb_id }),
      el("td", null, [open]),
      el("td", { text: label("src_", item.source) }),
      el("td", { text: item.department }),
      el("td", null, [statusBadge(item.status)]),
      el("td", { text: areaName(item) }),
      el("td", { text: item.snapshot_at ? when(item.snapshot_at) : t("no_snapshot") }),
      el("td", { class: "lg-cred", text: item.has_credentials ? "🔒" : "",
                 title: item.has_credentials ? t("lg_has_credentials") : "" }),
      el("td", { class: "lg-sector", text: item.heading === null || item.fov === null
        ? t("lg_sector_unknown") : item.heading + "° / " + item.fov + "°" })
    ]);
  }
  // Redraw a camera's row (if the page shows it) from the camera as stored now.
  function refreshRow(cam) {
    var old = document.querySelector('#lg-rows tr[data-gb="' + CSS.escape(cam.gb_id) + '"]');
    if (!old) { return; }
    S.items[cam.gb_id] = cam;
    var fresh = row(cam);
    fresh.classList.toggle("lg-selected", old.classList.contains("lg-selected"));
    old.replaceWith(fresh);
  }
  function load(push) {
    toUrl(push);
    updateExports();
    var params = filters();
    params.offset = S.offset;
    params.limit = C.page_size;
    var ticket = ++S.request;  // a slow answer to an older query must not overwrite a newer one
    $("lg-total").textContent = t("loading");
    return api("GET", "/api/cameras?" + query(params)).then(function (answer) {
      if (ticket !== S.request) { return; }
      var body = $("lg-rows");
      body.textContent = "";
      if (!answer.ok) {
        $("lg-total").textContent = t("lg_failed", { reason: reasonOf(answer) });
        return;
      }
      var page = answer.data;
      S.total = page.total;
      S.items = {};
      page.items.forEach(function (item) { S.items[item.gb_id] = item; body.appendChild(row(item)); });
      if (!page.items.length) {
        body.appendChild(el("tr", { class: "lg-empty" }, [el("td", { colspan: "9", text: t("lg_none") })]));
      }
      $("lg-total").textContent = t("lg_total", { n: count(page.total) });
      var pages = Math.max(1, Math.ceil(page.total / C.page_size));
      var number = Math.floor(S.offset / C.page_size) + 1;
      $("lg-page").textContent = t("lg_page", { page: count(number), pages: count(pages) });
      $("lg-prev").disabled = S.offset <= 0;
      $("lg-next").disabled = S.offset + C.page_size >= page.total;
      document.documentElement.dataset.lgReady = "1";
    }, function () {
      if (ticket === S.request) { $("lg-total").textContent = t("load_failed"); }
    });
  }

  // ------------------------------------------------------------------ one camera

  function fact(term, value, attrs) {
    return [el("dt", { text: term }), el("dd", Object.assign({ text: value }, attrs || {}))];
  }
  function sectorText(cam) {
    if (cam.heading === null && cam.fov === null && cam.range_m === null) { return t("lg_sector_unknown"); }
    function part(v, unit) { return v === null || v === undefined ? "—" : v + unit; }
    return [part(cam.heading, "°"), part(cam.fov, "°"), part(cam.range_m, " m")].join(" / ");
  }
  function renderDetail(cam, keepForm) {
    $("lg-detail-title").textContent = cam.name;
    var facts = [].concat(
      fact(t("lg_gb_id"), cam.gb_id, { class: "lg-id" }),
      fact(t("lg_source"), label("src_", cam.source)),
      fact(t("lg_department"), cam.department),
      fact(t("lg_status"), label("st_", cam.status)),
      fact(t("lg_location"), cam.lon.toFixed(6) + ", " + cam.lat.toFixed(6)),
      fact(t("lg_area"), areaName(cam)),
      fact(t("lg_grid"), cam.grid_code || "—"),
      fact(t("lg_sector"), sectorText(cam)),
      fact(t("lg_tags"), (cam.tags || []).map(function (tag) { return label("tag_", tag); }).join(t("lg_list_sep")) || "—"),
      fact(t("lg_main_url"), cam.main_url || "—", { class: "lg-url", "data-field": "main_url" }),
      fact(t("lg_sub_url"), cam.sub_url || "—", { class: "lg-url", "data-field": "sub_url" }),
      fact(t("lg_credentials"), cam.has_credentials ? t("lg_has_credentials") : t("lg_no_credentials")),
      fact(t("lg_snapshot"), cam.snapshot_at ? when(cam.snapshot_at) : t("no_snapshot"))
    );
    var body = $("lg-detail-body");
    body.textContent = "";
    if (cam.snapshot_at) {
      var img = el("img", { class: "lg-thumb", alt: cam.name });
      img.addEventListener("error", function () { img.remove(); });
      img.src = "/api/cameras/" + encodeURIComponent(cam.gb_id) + "/snapshot.jpg?thumb=1";
      body.appendChild(img);
    }
    body.appendChild(el("dl", { class: "lg-facts" }, facts));
    body.appendChild(el("p", { class: "lg-actions" }, [
      el("a", { href: "/cameras/" + encodeURIComponent(cam.gb_id) + "/live", text: t("lg_live") }),
      el("a", { href: "/videowall?layout=1&cameras=" + encodeURIComponent(cam.gb_id), text: t("lg_to_wall") }),
      el("a", { href: "/wall?camera=" + encodeURIComponent(cam.gb_id), text: t("lg_on_map") })
    ]));
    if (C.can_sample) {
      var check = el("button", { type: "button", id: "lg-sample", text: t("lg_sample") });
      check.addEventListener("click", function () { sampleNow(cam.gb_id); });
      body.appendChild(el("p", { class: "lg-sample" }, [
        check, el("span", { id: "lg-sample-result", role: "status", "aria-live": "polite" })
      ]));
    }
    if (!keepForm) { fillForm(cam); }
  }
  // What the edit form shows for a camera as stored (a new login is never prefilled).
  function formValues(cam) {
    var out = { name: cam.name };
    ["lon", "lat", "heading", "fov", "range_m"].forEach(function (key) { out[key] = shown(cam, key); });
    out.tags = tagNames(cam.tags);
    out.main_url = cam.main_url || "";
    out.sub_url = cam.sub_url || "";
    out.login_user = "";
    out.login_password = "";
    return out;
  }
  // Fill the edit form from the camera as stored: what it holds now is what was loaded,
  // so no change is unsaved. A question about dropping changes is moot then (a save
  // went through while it was asked): what the user asked for goes ahead.
  function fillForm(cam) {
    var form = $("lg-edit");
    if (!form) { return; }
    var values = formValues(cam);
    Object.keys(values).forEach(function (key) { form.elements[key].value = values[key]; });
    $("lg-edit-status").textContent = "";
    syncLoginHint();
    syncClearLogin();
    S.loaded = JSON.stringify(values);
    S.baseline = snapshot(form);
    syncLeaveGuard();
    question.proceed();
  }
  // Who registered and changed the camera, and when (the audit trail; field names only).
  function loadHistory(gbId) {
    return api("GET", "/api/cameras/" + encodeURIComponent(gbId) + "/changes").then(function (answer) {
      if (!answer.ok || !S.current || S.current.gb_id !== gbId) { return; }
      var items = answer.data.items || [];
      var list = el("ol", { class: "lg-history", id: "lg-history" });
      items.forEach(function (item) {
        var what = [];
        ((item.detail || {}).fields || []).forEach(function (f) { what.push(label("lg_field_", f)); });
        if ((item.detail || {}).login) { what.push(t("lg_act_login")); }
        // The stored login removed by the change: on request, or because a stream
        // address moved to another scheme, host or port without a login.
        var removed = (item.detail || {}).login_cleared ? t("lg_login_cleared_note")
          : (item.detail || {}).login_dropped ? t("lg_login_dropped_note") : "";
        list.appendChild(el("li", null, [
          el("time", { datetime: item.at, text: when(item.at) }),
          el("span", { text: " " + (item.username || "—") + " " + label("lg_act_", item.action)
                              + (what.length ? t("lg_colon") + what.join(t("lg_list_sep")) : "") }),
          removed ? el("span", { class: "lg-history-note", text: " (" + removed + ")" }) : null
        ]));
      });
      if (!items.length) { list.appendChild(el("li", { text: t("lg_history_none") })); }
      var old = $("lg-history-box");
      if (old) { old.remove(); }
      $("lg-detail-body").appendChild(el("section", { id: "lg-history-box" }, [
        el("h3", { text: t("lg_history") }), list
      ]));
    }, function () { /* the history is an extra: without an answer the details stand alone */ });
  }

  // opts.focus: opened from its row (a click or the keyboard), so focus goes to the
  // panel's heading and, when the panel closes, back to that row.
  // opts.keepForm: the edit form keeps what the user typed (a check of the stream
  // redraws the details, not the form).
  function showDetail(gbId, opts) {
    opts = opts || {};
    S.current = S.items[gbId] || null;
    var panel = $("lg-detail");
    Array.prototype.forEach.call(document.querySelectorAll("#lg-rows tr"), function (tr) {
      tr.classList.toggle("lg-selected", tr.getAttribute("data-gb") === gbId);
    });
    // The row's data first, then the camera as stored now (someone may have changed it).
    if (S.current) { renderDetail(S.current, opts.keepForm); }
    panel.hidden = false;
    if (opts.focus) {
      S.opener = gbId;
      var title = $("lg-detail-title");
      title.setAttribute("tabindex", "-1");
      title.focus();
    }
    // On a narrow screen the panel sits below the table: bring it into view.
    if (window.matchMedia && window.matchMedia("(max-width: 900px)").matches) {
      panel.scrollIntoView({ block: "start" });
    }
    var ticket = ++S.detailRequest;  // an answer for a camera opened before must not overwrite this one
    return api("GET", "/api/cameras/" + encodeURIComponent(gbId)).then(function (answer) {
      if (ticket !== S.detailRequest) { return; }
      if (answer.ok) {
        S.current = answer.data;
        // Typed into while the camera was fetched: kept when the stored camera fills
        // the form just as its row did (nothing typed is lost, nothing stale is kept).
        var keep = opts.keepForm || (editDirty() && JSON.stringify(formValues(answer.data)) === S.loaded);
        renderDetail(answer.data, keep);
        return loadHistory(gbId);
      } else {
        $("lg-detail-body").textContent = t("lg_failed", { reason: reasonOf(answer) });
      }
    }, function () {
      if (ticket !== S.detailRequest) { return; }
      // No answer at all: what the row showed stays, with a word that it may be old.
      $("lg-detail-body").appendChild(el("p", { class: "lg-status lg-bad", id: "lg-detail-failed",
        text: t("lg_failed", { reason: networkReason() }) }));
    });
  }
  // Close the details; focus goes back to the row that opened them (when it is still
  // on the page), so a keyboard user carries on where they were.
  function closeDetail() {
    var panel = $("lg-detail");
    if (panel.hidden) { return; }
    question.close();
    var hadFocus = panel.contains(document.activeElement);
    var gbId = S.opener || (hadFocus && S.current ? S.current.gb_id : null);
    panel.hidden = true;
    S.opener = null;
    var back = gbId && document.querySelector('#lg-rows button.lg-open[data-gb="' + CSS.escape(gbId) + '"]');
    if (back) { back.focus(); }
    syncLeaveGuard();
  }
  // A camera's row chosen: its details open. Another camera's, while the edit form holds
  // unsaved changes, only once the user agrees to drop them; the same camera's again
  // keeps what was typed.
  function openRow(gbId) {
    var same = S.current && S.current.gb_id === gbId && !$("lg-detail").hidden;
    if (same) { showDetail(gbId, { focus: true, keepForm: editDirty() }); return; }
    leaveEdit(function () { showDetail(gbId, { focus: true }); });
  }

  // ------------------------------------------------------------------ unsaved changes

  // A form's fields as they are now (no file inputs in these forms; a password as typed).
  function snapshot(form) {
    if (!form) { return ""; }
    return JSON.stringify(Array.prototype.filter.call(form.elements, function (f) { return f.name; })
      .map(function (f) { return [f.name, f.type === "password" ? f.value : (f.value || "").trim()]; }));
  }
  // The edit form differs from the camera it was filled with (while its details are open).
  function editDirty() {
    var form = $("lg-edit");
    return !!(form && S.current && S.baseline !== null && !$("lg-detail").hidden
              && snapshot(form) !== S.baseline);
  }
  // The new-camera form differs from how the page loaded it (or left it after registering).
  function newDirty() {
    var form = $("lg-new");
    return !!(form && S.newBaseline !== null && snapshot(form) !== S.newBaseline);
  }
  function dirty() { return editDirty() || newDirty(); }

  // The browser asks before the tab is closed or left only while something is unsaved:
  // the handler is on the window only then (an idle page stays eligible for the back cache).
  var leaveGuard = window.gridmap.leaveGuard(dirty);
  function syncLeaveGuard() { leaveGuard.sync(); }

  // The question inside the details panel (only an editor's page has it). Keep editing
  // gives focus back where it was in the panel, else to the first changed field.
  // (The script is deferred: the panel's markup is already there.)
  var question = window.gridmap.discardQuestion({
    box: $("lg-confirm"), keepButton: $("lg-confirm-keep"), discardButton: $("lg-confirm-discard"),
    returnWithin: $("lg-detail"),
    fallbackFocus: function () { var form = $("lg-edit"); return firstChanged(form) || form.elements.name; },
    // what was typed is dropped, not kept hidden
    onDiscard: function () { if (S.current) { fillForm(S.current); } }
  });
  function firstChanged(form) {
    var was = {};
    JSON.parse(S.baseline || "[]").forEach(function (pair) { was[pair[0]] = pair[1]; });
    return Array.prototype.filter.call(form.elements, function (f) {
      return f.name && was[f.name] !== (f.type === "password" ? f.value : (f.value || "").trim());
    })[0] || null;
  }
  // Run ``then`` (which leaves the edit form) now, or once the user agrees to drop its
  // unsaved changes.
  function leaveEdit(then) {
    if (editDirty()) { question.ask(then); return; }
    question.close();
    then();
  }

  // Open the stream now, as the sampler does, and say what came back: after a fix of
  // its address or login, the ledger keeper sees at once whether the camera works.
  function sampleNow(gbId) {
    var button = $("lg-sample"), out = $("lg-sample-result");
    button.disabled = true;
    out.textContent = t("lg_sampling");
    out.className = "";
    api("POST", "/api/cameras/" + encodeURIComponent(gbId) + "/sample").then(function (answer) {
      if (!answer.ok) {
        button.disabled = false;
        out.textContent = t("lg_sample_failed", { reason: reasonOf(answer) });
        out.className = "lg-bad";
        return;
      }
      var r = answer.data;
      var parts = [label("st_", r.health)];
      if (r.error) { parts.push(label("lg_probe_", r.error)); }
      if (r.width && r.height) { parts.push(t("lg_sample_size", { w: r.width, h: r.height })); }
      if (r.open_ms !== null && r.open_ms !== undefined) { parts.push(t("lg_sample_open", { ms: Math.round(r.open_ms) })); }
      var text = parts.join(" · ");
      var good = r.health === "online";
      var focused = document.activeElement === button;
      // The camera as stored now (status, picture), with the result kept in view; the
      // edit form keeps what was typed in it, and focus stays on the (redrawn) button.
      showDetail(gbId, { keepForm: true }).then(function () {
        var fresh = $("lg-sample-result");
        if (fresh) { fresh.textContent = text; fresh.className = good ? "lg-good" : "lg-bad"; }
        if (focused && $("lg-sample")) { $("lg-sample").focus(); }
        if (S.current) { refreshRow(S.current); }
      });
    }, function () {
      button.disabled = false;
      out.textContent = t("lg_sample_failed", { reason: networkReason() });
      out.className = "lg-bad";
    });
  }

  // A field's value as the form shows it: coordinates to 7 decimals (about 1 cm).
  function shown(cam, key) {
    var value = cam[key];
    if (value === null || value === undefined) { return ""; }
    return key === "lon" || key === "lat" ? String(Number(value.toFixed(7))) : String(value);
  }

  // The fields the form changed: a blank number clears it, other text is sent as typed
  // and the server says what is wrong with it.
  function changes(form, cam) {
    var out = {};
    var name = form.elements.name.value.trim();
    if (name !== cam.name) { out.name = name; }
    ["lon", "lat", "heading", "fov", "range_m"].forEach(function (key) {
      var raw = form.elements[key].value.trim();
      if (raw === shown(cam, key)) { return; }
      var number = Number(raw);
      out[key] = raw === "" ? null : (isFinite(number) ? number : raw);
    });
    var tags = tagList(form.elements.tags.value);
    if (tags.slice().sort().join(",") !== (cam.tags || []).slice().sort().join(",")) { out.tags = tags; }
    var main = form.elements.main_url.value.trim(), sub = form.elements.sub_url.value.trim();
    var login = loginOf(form);
    if (main !== (cam.main_url || "") || login) { out.main_url = withLogin(main, login); }
    if (sub !== (cam.sub_url || "")) { out.sub_url = sub || null; }
    return out;
  }
  // Tags as the reader knows them: the form shows a known tag by its name in the page's
  // language and reads back names (in any case) or codes, sending the codes the API
  // stores; any other word is a tag of its own, and the server says if it is not one.
  function tagNames(tags) {
    return (tags || []).map(function (tag) { return label("tag_", tag); }).join(C.lang === "en" ? ", " : "，");
  }
  function tagCode(word) {
    var wanted = word.toLowerCase();
    var code = (C.tags || []).filter(function (c) {
      return c === word || t("tag_" + c).toLowerCase() === wanted;
    })[0];
    return code || word;
  }
  function tagList(raw) {
    var out = [];
    raw.split(/[,，、;；]+/).forEach(function (item) {
      item = item.trim();
      if (!item) { return; }
      // A name with a space ("Key place") is one tag; other spaces separate tags.
      var code = tagCode(item);
      (code !== item ? [code] : item.split(/\s+/).map(tagCode)).forEach(function (tag) {
        if (out.indexOf(tag) < 0) { out.push(tag); }
      });
    });
    return out;
  }
  function loginOf(form) {
    var user = form.elements.login_user.value, password = form.elements.login_password.value;
    return user || password ? { user: user, password: password } : null;
  }
  // The scheme, host and port a stored login is bound to, as the server compares them
  // (default ports filled in): a stream address that points at another one without a
  // new login has the stored login removed, so it is never sent to another server.
  var DEFAULT_PORTS = { rtsp: "554", rtsps: "322", http: "80", https: "443" };
  function originOf(url) {
    var m = /^([a-z][a-z0-9+.-]*):\/\/([^/?#]*)/i.exec(url || "");
    if (!m) { return url ? "file" : ""; }
    var scheme = m[1].toLowerCase();
    var hostport = m[2].slice(m[2].lastIndexOf("@") + 1).toLowerCase();
    var port = /:(\d+)$/.exec(hostport);
    var host = (port ? hostport.slice(0, port.index) : hostport).replace(/\.$/, "");
    return scheme + "://" + host + ":" + (port ? String(Number(port[1])) : (DEFAULT_PORTS[scheme] || ""));
  }
  function hasLogin(url) {
    var m = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)@/i.exec(url);
    return !!m && m[1] !== "" && m[1] !== ":";
  }
  // Whether saving the edit form as it is would remove the camera's stored login: a
  // stream address points at another scheme, host or port and no login was typed.
  function loginWillDrop(form, cam) {
    if (!cam || !cam.has_credentials || loginOf(form)) { return false; }
    var known = [cam.main_url, cam.sub_url].filter(Boolean).map(originOf);
    return ["main_url", "sub_url"].some(function (key) {
      var url = form.elements[key].value.trim();
      return url && !hasLogin(url) && known.indexOf(originOf(url)) < 0;
    });
  }
  // Say so before the save: the stored login is kept only for the addresses it was given for.
  function syncLoginHint() {
    var hint = $("lg-login-moved"), form = $("lg-edit");
    if (hint && form) { hint.hidden = !loginWillDrop(form, S.current); }
  }
  // The stream address with the login written in (user:password@, each percent-encoded):
  // how the API takes it, and where the server splits it off again before storing.
  // Without a typed login the address goes as it is: the stored login stays only if
  // the address keeps its scheme, host and port (the server removes it otherwise and
  // says so in the answer's warnings).
  function withLogin(url, login) {
    if (!login) { return url; }
    var m = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)(.*)$/i.exec(url);
    if (!m) { throw new Error(t("lg_url_needs_scheme")); }
    var host = m[2].slice(m[2].lastIndexOf("@") + 1);  // a login already in the address is replaced
    return m[1] + encodeURIComponent(login.user) + ":" + encodeURIComponent(login.password) + "@" + host + m[3];
  }
  // The "clear login" control: shown only while the camera has a stored login (the
  // form is an editor's only). A first click asks (the button's words change), a
  // second one clears; leaving the button or refilling the form takes the question back.
  function disarmClearLogin() {
    var button = $("lg-clear-login");
    if (!button) { return; }
    delete button.dataset.armed;
    button.textContent = t("lg_clear_login");
  }
  function syncClearLogin() {
    var box = $("lg-clear-login-box");
    if (!box) { return; }
    box.hidden = !(S.current && S.current.has_credentials);
    disarmClearLogin();
  }
  function clearLogin() {
    var cam = S.current, button = $("lg-clear-login"), status = $("lg-edit-status");
    if (!cam || !button) { return; }
    if (!button.dataset.armed) {
      button.dataset.armed = "1";
      button.textContent = t("lg_clear_login_confirm");
      return;
    }
    disarmClearLogin();
    button.disabled = true;
    status.textContent = t("lg_clearing");
    status.className = "lg-status";
    api("PATCH", "/api/cameras/" + encodeURIComponent(cam.gb_id), { clear_login: true }, true).then(function (answer) {
      button.disabled = false;
      if (!answer.ok) {
        status.textContent = t("lg_not_cleared", { reason: reasonOf(answer) });
        status.className = "lg-status lg-bad";
        return;
      }
      var notes = (answer.data.warnings || []).map(function (w) { return w.message || w.reason; });
      var saved = Object.assign({}, answer.data);
      delete saved.warnings;
      S.items[cam.gb_id] = saved;
      refreshRow(saved);
      if (!S.current || S.current.gb_id !== cam.gb_id) { return; }  // another camera is open now
      var keep = editDirty();  // what was typed in the form stays (only the login went)
      S.current = saved;
      renderDetail(saved, keep);
      if (keep) { syncLoginHint(); syncClearLogin(); }
      loadHistory(cam.gb_id);
      status.textContent = notes.length ? notes.join(" ") : t("lg_login_cleared_note");
      status.className = "lg-status lg-good";
      // The control is gone: focus stays in the form, not on the hidden button.
      if (document.activeElement === button || document.activeElement === document.body) {
        $("lg-edit").elements.login_user.focus();
      }
    }, function () {
      button.disabled = false;
      status.textContent = t("lg_not_cleared", { reason: networkReason() });
      status.className = "lg-status lg-bad";
    });
  }
  function saveEdit(event) {
    event.preventDefault();
    var cam = S.current;
    if (!cam) { return; }
    var form = $("lg-edit");
    var status = $("lg-edit-status");
    var body;
    try { body = changes(form, cam); } catch (err) {
      status.textContent = t("lg_not_saved", { reason: err.message });
      status.className = "lg-status lg-bad";
      return;
    }
    if (!Object.keys(body).length) {
      // Nothing differs from the stored camera (spaces, the same tags in another order).
      status.textContent = t("lg_saved");
      S.baseline = snapshot(form);
      syncLeaveGuard();
      return;
    }
    status.textContent = t("lg_saving");
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    api("PATCH", "/api/cameras/" + encodeURIComponent(cam.gb_id), body, true).then(function (answer) {
      button.disabled = false;
      if (!answer.ok) {
        status.textContent = t("lg_not_saved", { reason: reasonOf(answer) });
        status.className = "lg-status lg-bad";
        return;
      }
      // What the save did besides (a stored login removed): the server's words, in the
      // page's language.
      var notes = (answer.data.warnings || []).map(function (w) { return w.message || w.reason; });
      var saved = Object.assign({}, answer.data);
      delete saved.warnings;
      S.current = saved;
      S.items[cam.gb_id] = saved;
      renderDetail(saved);
      loadHistory(cam.gb_id);
      status.textContent = t("lg_saved") + (notes.length ? " " + notes.join(" ") : "");
      status.className = "lg-status " + (notes.length ? "lg-bad" : "lg-good");
      refreshRow(saved);
    }, function () {
      // No answer: the form keeps what was typed, to be sent again.
      button.disabled = false;
      status.textContent = t("lg_not_saved", { reason: networkReason() });
      status.className = "lg-status lg-bad";
    });
  }

  // ------------------------------------------------------------------ register

  function registerCamera(event) {
    event.preventDefault();
    var form = $("lg-new"), status = $("lg-new-status");
    var body = { gb_id: form.elements.gb_id.value.trim(), name: form.elements.name.value.trim(),
                 source: form.elements.source.value, department: form.elements.department.value.trim(),
                 tags: tagList(form.elements.tags.value) };
    ["lon", "lat", "heading", "fov", "range_m"].forEach(function (key) {
      var raw = form.elements[key].value.trim();
      if (raw === "") { return; }  // optional ones stay unset; the server says which are required
      body[key] = isFinite(Number(raw)) ? Number(raw) : raw;
    });
    var sub = form.elements.sub_url.value.trim();
    if (sub) { body.sub_url = sub; }
    try {
      body.main_url = withLogin(form.elements.main_url.value.trim(), loginOf(form));
    } catch (err) {
      status.textContent = t("lg_not_registered", { reason: err.message });
      status.className = "lg-status lg-bad";
      return;
    }
    var button = form.querySelector("button[type=submit]");
    button.disabled = true;
    status.textContent = t("lg_saving");
    status.className = "lg-status";
    api("POST", "/api/cameras", body, true).then(function (answer) {
      button.disabled = false;
      if (!answer.ok) {
        status.textContent = t("lg_not_registered", { reason: reasonOf(answer) });
        status.className = "lg-status lg-bad";
        return;
      }
      var department = form.elements.department.value;
      form.reset();
      form.elements.department.value = department;  // the next camera is likely the same owner's
      S.newBaseline = snapshot(form);  // registered: nothing of it is unsaved any more
      syncLeaveGuard();
      status.textContent = t("lg_registered", { name: answer.data.name });
      status.className = "lg-status lg-good";
      S.items[answer.data.gb_id] = answer.data;
      // Its details replace another camera's only if that one's edit may be dropped.
      leaveEdit(function () { showDetail(answer.data.gb_id); });
      load(false);
    }, function () {
      button.disabled = false;
      status.textContent = t("lg_not_registered", { reason: networkReason() });
      status.className = "lg-status lg-bad";
    });
  }

  // ------------------------------------------------------------------ import

  function importLedger(event) {
    event.preventDefault();
    var file = $("lg-file").files[0];
    var out = $("lg-import-result");
    out.textContent = "";
    out.className = "lg-result";
    if (!file) { out.textContent = t("lg_pick_file"); return; }
    var data = new FormData();
    data.append("file", file, file.name);
    var button = $("lg-import-go");
    button.disabled = true;
    out.textContent = t("lg_importing");
    api("POST", "/api/cameras/import?datum=" + encodeURIComponent($("lg-datum").value), data)
      .then(function (answer) {
        button.disabled = false;
        out.textContent = "";
        if (answer.ok) {
          out.className = "lg-result lg-good";
          out.appendChild(el("p", { class: "lg-summary", text: t("lg_imported", answer.data) }));
          var notes = answer.data.warnings || [];
          if (notes.length) { out.appendChild(report(notes, t("lg_warnings"))); }
          load(false);
          return;
        }
        out.className = "lg-result lg-bad";
        var errors = ((answer.data || {}).details || {}).errors || [];
        out.appendChild(el("p", { class: "lg-summary", text: t("lg_rejected", { reason: reasonOf(answer) }) }));
        if (errors.length) { out.appendChild(report(errors, t("lg_rows_counted"))); }
      }, function () {
        // No answer: whether the server took the file is unknown; importing it again is
        // safe (known GB IDs are updated, not doubled).
        button.disabled = false;
        out.className = "lg-result lg-bad";
        out.textContent = t("lg_not_imported", { reason: networkReason() });
      });
  }
  function report(rows, caption) {
    var table = el("table", { class: "lg-report" }, [
      caption ? el("caption", { text: caption }) : null,
      el("thead", null, [el("tr", null, [
        el("th", { scope: "col", text: t("lg_row") }),
        el("th", { scope: "col", text: t("lg_field") }),
        el("th", { scope: "col", text: t("lg_problem") })
      ])])
    ]);
    var body = el("tbody");
    rows.forEach(function (r) {
      body.appendChild(el("tr", null, [
        el("td", { text: r.row === undefined || r.row === null ? "" : String(r.row) }),
        el("td", { text: r.field ? label("lg_field_", r.field) : "" }),
        el("td", { text: r.message || r.reason || "" })
      ]));
    });
    table.appendChild(body);
    return table;
  }

  // ------------------------------------------------------------------ wiring

  document.addEventListener("DOMContentLoaded", function () {
    fromUrl();
    $("lg-filter").addEventListener("submit", function (e) { e.preventDefault(); S.offset = 0; load(true); });
    ["lg-town", "lg-source", "lg-status", "lg-tag", "lg-sector", "lg-sort"].forEach(function (id) {
      $(id).addEventListener("change", function () { S.offset = 0; load(true); });
    });
    $("lg-reset").addEventListener("click", function (e) {
      e.preventDefault();
      FILTERS.forEach(function (name) { box(name).value = box(name).tagName === "SELECT" ? box(name).options[0].value : ""; });
      S.offset = 0;
      load(true);
    });
    $("lg-export-datum").addEventListener("change", updateExports);
    $("lg-prev").addEventListener("click", function () { S.offset = Math.max(0, S.offset - C.page_size); load(true); });
    $("lg-next").addEventListener("click", function () { S.offset += C.page_size; load(true); });
    $("lg-detail-close").addEventListener("click", function () { leaveEdit(closeDetail); });
    $("lg-detail").addEventListener("keydown", function (e) {
      // (not while an input method is composing: there Escape cancels the composition)
      if (e.key === "Escape" && !e.isComposing && !e.defaultPrevented) {
        e.preventDefault();
        // Escape while asked: keep editing (the safe answer); otherwise close, asked first
        // when the edit form holds unsaved changes.
        if (question.shown()) { question.keep(); } else { leaveEdit(closeDetail); }
      }
    });
    ["lg-edit", "lg-new"].forEach(function (id) {
      if (!$(id)) { return; }
      $(id).addEventListener("input", syncLeaveGuard);
      $(id).addEventListener("change", syncLeaveGuard);
    });
    if ($("lg-edit")) { $("lg-edit").addEventListener("input", syncLoginHint); }
    S.newBaseline = $("lg-new") ? snapshot($("lg-new")) : null;
    if ($("lg-edit")) { $("lg-edit").addEventListener("submit", saveEdit); }
    if ($("lg-clear-login")) {
      $("lg-clear-login").addEventListener("click", clearLogin);
      $("lg-clear-login").addEventListener("blur", disarmClearLogin);
    }
    if ($("lg-new")) { $("lg-new").addEventListener("submit", registerCamera); }
    if ($("lg-import")) { $("lg-import").addEventListener("submit", importLedger); }
    window.addEventListener("popstate", function () { fromUrl(); load(false); });
    load(false);
  });
})();
