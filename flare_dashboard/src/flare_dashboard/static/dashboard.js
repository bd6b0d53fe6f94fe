// The Flare dashboard's script: fills the page from the JSON API.
//
// Every value shown comes from captured requests and is attacker-controlled,
// so the DOM is built with createElement/createElementNS and textContent
// only. No stored value becomes an href or a src, except a group's
// fingerprint, percent-encoded into the query of a same-page link.
(function () {
  "use strict";

  const SVG_NS = "http://www.w3.org/2000/svg";
  const AUTO_REFRESH_KEY = "flare.autoRefresh";
  const PAGE_SIZE = 50;
  const MAX_PAGE_SIZE = 500;
  const ENTRY_FILTERS = ["level", "event", "status", "endpoint", "fingerprint", "q", "since", "until"];
  const GROUP_FILTERS = ["status", "level", "q", "sort"];
  const NEXT_STATUSES = {
    unresolved: [["resolved", "Resolve"], ["ignored", "Ignore"]],
    resolved: [["unresolved", "Reopen"], ["ignored", "Ignore"]],
    ignored: [["unresolved", "Reopen"]],
  };

  const body = document.body;
  const base = body.dataset.base;
  const refreshSeconds = Number(body.dataset.refresh) || 30;

  const state = {
    view: body.dataset.view === "entries" ? "entries" : "groups",
    entryFilters: {},
    groupFilters: {},
    entries: [],
    entryIds: new Set(),
    entryCursor: null,
    groupCount: 0,
    groupCursor: null,
    entryId: null,
    timer: null,
    loadToken: 0,
    timeline: null,
  };

  const byId = (id) => document.getElementById(id);

  // DOM helpers ------------------------------------------------------------

  // Bidirectional controls make stored text display differently from what it
  // is ("\u202Eexe.txt" shows as "txt.exe"), so they are shown as code points.
  const BIDI_CONTROLS = /[\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;

  function visible(text) {
    return String(text).replace(
      BIDI_CONTROLS,
      (char) => "<U+" + char.codePointAt(0).toString(16).toUpperCase() + ">"
    );
  }

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = visible(text);
    return node;
  }

  function svgElement(tag, attributes) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes || {})) {
      node.setAttribute(name, String(value));
    }
    return node;
  }

  function levelBadge(level) {
    const known = level === "ERROR" || level === "WARNING";
    const kind = level === "ERROR" ? "error" : "warning";
    return element("span", "badge badge-" + (known ? kind : "other"), level);
  }

  // Times ------------------------------------------------------------------

  function absoluteTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  }

  function relativeTime(iso) {
    const seconds = Math.round((Date.now() - new Date(iso).getTime()) / 1000);
    if (!Number.isFinite(seconds)) return String(iso);
    if (seconds < 10) return "just now";
    if (seconds < 60) return seconds + " s ago";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min ago";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h ago";
    return Math.floor(seconds / 86400) + " d ago";
  }

  function timeElement(iso) {
    const node = element("time", "reltime", relativeTime(iso));
    node.setAttribute("datetime", iso);
    node.title = absoluteTime(iso);
    return node;
  }

  function updateRelativeTimes() {
    for (const node of document.querySelectorAll("time.reltime")) {
      node.textContent = relativeTime(node.getAttribute("datetime"));
    }
  }

  // Conversions between the API's UTC times and datetime-local inputs.
  function isoToLocalInput(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return "";
    const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return local.toISOString().slice(0, 16);
  }

  function localInputToIso(value) {
    if (!value) return "";
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? "" : date.toISOString();
  }

  // API --------------------------------------------------------------------

  async function api(path, params, options) {
    const query = params ? new URLSearchParams(params).toString() : "";
    const url = base + "/api/" + path + (query ? "?" + query : "");
    const init = Object.assign({ credentials: "same-origin", cache: "no-store" }, options || {});
    init.headers = Object.assign({ Accept: "application/json" }, init.headers || {});
    let response;
    try {
      response = await fetch(url, init);
    } catch (error) {
      throw new Error("The dashboard could not reach the server: " + error.message);
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    if (!response.ok) {
      const detail = data && typeof data.detail === "string" ? data.detail : response.statusText;
      throw new Error(detail + " (HTTP " + response.status + ")");
    }
    return data;
  }

  // Errors by source ("list", "refresh", "status"), so that one request that
  // succeeds does not hide the error of another that failed.
  const errors = new Map();

  function renderErrors() {
    const banner = byId("error-banner");
    banner.textContent = Array.from(errors.values()).join(" ");
    banner.hidden = errors.size === 0;
  }

  function showError(message, source = "list") {
    errors.set(source, message);
    renderErrors();
  }

  function clearError(source = "list") {
    errors.delete(source);
    renderErrors();
  }

  // URL state --------------------------------------------------------------

  function activeFilters() {
    return state.view === "entries" ? state.entryFilters : state.groupFilters;
  }

  function pageUrl() {
    const current = new URLSearchParams(location.search);
    const params = new URLSearchParams();
    if (state.view !== "groups") params.set("view", state.view);
    for (const [name, value] of Object.entries(activeFilters())) {
      if (value) params.set(name, value);
    }
    if (state.entryId) params.set("entry", state.entryId);
    if (current.get("refresh")) params.set("refresh", current.get("refresh"));
    const query = params.toString();
    return location.pathname + (query ? "?" + query : "");
  }

  function writeUrl(push) {
    const url = pageUrl();
    if (url === location.pathname + location.search) return;
    if (push) history.pushState(null, "", url);
    else history.replaceState(null, "", url);
  }

  function readUrl() {
    const params = new URLSearchParams(location.search);
    state.view = params.get("view") === "entries" ? "entries" : "groups";
    const names = state.view === "entries" ? ENTRY_FILTERS : GROUP_FILTERS;
    const filters = {};
    for (const name of names) {
      const value = params.get(name);
      if (value) filters[name] = value;
    }
    if (state.view === "entries") state.entryFilters = filters;
    else state.groupFilters = filters;
    state.entryId = params.get("entry");
  }

  // Filters ----------------------------------------------------------------

  function fillForm(form, filters) {
    for (const field of form.elements) {
      if (!field.name) continue;
      const value = filters[field.name] || "";
      field.value = field.type === "datetime-local" ? isoToLocalInput(value) : value;
    }
    if (form.elements.sort && !form.elements.sort.value) form.elements.sort.value = "last_seen";
  }

  function readForm(form, keep) {
    const filters = {};
    for (const field of form.elements) {
      if (!field.name || !field.value.trim()) continue;
      filters[field.name] = field.type === "datetime-local" ? localInputToIso(field.value) : field.value;
    }
    for (const name of keep) {
      if (activeFilters()[name]) filters[name] = activeFilters()[name];
    }
    if (filters.sort === "last_seen") delete filters.sort;
    return filters;
  }

  function applyFilters(push) {
    if (state.view === "entries") {
      state.entryFilters = readForm(byId("entry-filters"), ["fingerprint"]);
    } else {
      state.groupFilters = readForm(byId("group-filters"), []);
    }
    writeUrl(push);
    loadView();
  }

  function watchForm(form) {
    let pending = null;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(pending);
      applyFilters(true);
    });
    form.addEventListener("change", (event) => {
      if (event.target.tagName === "SELECT" || event.target.type === "datetime-local") {
        applyFilters(false);
      }
    });
    form.addEventListener("input", (event) => {
      const field = event.target;
      if (field.tagName !== "INPUT" || field.type === "datetime-local") return;
      clearTimeout(pending);
      // Wait for a whole HTTP status: the API rejects "5" or "50" with a 422.
      if (field.name === "status" && field.value && !/^\d{3}$/.test(field.value)) return;
      pending = setTimeout(() => applyFilters(false), 400);
    });
  }

  // Stats and chart --------------------------------------------------------

  function renderStats(stats) {
    byId("stat-errors").textContent = stats.errors_24h;
    byId("stat-warnings").textContent = stats.warnings_24h;
    byId("stat-total").textContent = stats.total;
    const latest = byId("stat-latest");
    latest.replaceChildren(stats.latest_error_at ? timeElement(stats.latest_error_at) : "none");
    byId("stat-dropped").textContent = stats.dropped;
    byId("card-dropped").hidden = !stats.dropped;
  }

  // The SVG is drawn at the container's width in pixels, so that text is
  // never stretched, and drawn again when the window is resized.
  function renderChart(buckets) {
    state.timeline = buckets;
    const width = Math.max(byId("chart").clientWidth, 320);
    const height = 150;
    const top = 12;
    const bottom = 22;
    const left = 34;
    const plot = height - top - bottom;
    const slot = (width - left) / Math.max(buckets.length, 1);
    const peak = Math.max(1, ...buckets.map((bucket) => bucket.errors + bucket.warnings));
    const labelEvery = Math.max(1, Math.ceil(64 / slot));

    const chart = svgElement("svg", {
      viewBox: "0 0 " + width + " " + height,
      class: "chart-svg",
    });
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plot - plot * fraction;
      chart.append(svgElement("line", { x1: left, x2: width, y1: y, y2: y, class: "grid" }));
      const label = svgElement("text", { x: left - 6, y: y + 4, class: "axis", "text-anchor": "end" });
      label.textContent = String(Math.round(peak * fraction));
      chart.append(label);
    }

    buckets.forEach((bucket, index) => {
      const x = left + index * slot + 2;
      const barWidth = Math.max(slot - 4, 1);
      const errorHeight = (bucket.errors / peak) * plot;
      const warningHeight = (bucket.warnings / peak) * plot;

      const group = svgElement("g", { class: "bar" });
      const tip = svgElement("title");
      const hour = new Date(bucket.start);
      tip.textContent =
        hour.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) + ": " +
        bucket.errors + " errors, " + bucket.warnings + " warnings";
      group.append(tip);
      group.append(svgElement("rect", { x, width: barWidth, y: top, height: plot, class: "bar-hit" }));
      group.append(svgElement("rect", {
        x, width: barWidth, y: top + plot - warningHeight, height: warningHeight, class: "bar-warning",
      }));
      group.append(svgElement("rect", {
        x, width: barWidth, y: top + plot - warningHeight - errorHeight, height: errorHeight,
        class: "bar-error",
      }));
      chart.append(group);

      if (index % labelEvery === 0) {
        const label = svgElement("text", { x: x + barWidth / 2, y: height - 6, class: "axis", "text-anchor": "middle" });
        label.textContent = hour.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        chart.append(label);
      }
    });

    byId("chart").replaceChildren(chart);
  }

  function sparkline(values) {
    const width = 96;
    const height = 24;
    const peak = Math.max(1, ...values);
    const step = width / Math.max(values.length - 1, 1);
    const points = values
      .map((value, index) => (index * step).toFixed(1) + "," + (height - 2 - (value / peak) * (height - 4)).toFixed(1))
      .join(" ");
    const line = svgElement("svg", { viewBox: "0 0 " + width + " " + height, class: "sparkline" });
    const tip = svgElement("title");
    tip.textContent = values.reduce((sum, value) => sum + value, 0) + " in the last 24 h";
    line.append(tip);
    line.append(svgElement("polyline", { points, class: "sparkline-line" }));
    return line;
  }

  // Entries ----------------------------------------------------------------

  function entryRow(entry) {
    const row = element("tr", "entry-row");
    row.dataset.id = entry.id;
    row.tabIndex = 0;
    row.append(element("td", "cell-time"));
    row.lastChild.append(timeElement(entry.timestamp));
    row.append(element("td"));
    row.lastChild.append(levelBadge(entry.level));
    row.append(element("td", "cell-event", entry.event));
    const message = element("td", "cell-message", entry.message || entry.error || "");
    message.title = entry.message || "";
    row.append(message);
    const where = [entry.http_method, entry.endpoint].filter(Boolean).join(" ");
    const endpoint = element("td", "cell-endpoint", where);
    endpoint.title = where;
    row.append(endpoint);
    row.append(element("td", "num", entry.http_status === null ? "" : entry.http_status));
    row.addEventListener("click", () => openEntry(entry.id, true));
    row.addEventListener("keydown", (event) => {
      if (event.key === "Enter") openEntry(entry.id, true);
    });
    return row;
  }

  function renderEntries(newIds) {
    const rows = state.entries.map((entry) => {
      const row = entryRow(entry);
      if (newIds && newIds.has(entry.id)) row.classList.add("is-new");
      return row;
    });
    byId("entries-body").replaceChildren(...rows);
    byId("entries-more").hidden = !state.entryCursor;
    const empty = byId("entries-empty");
    empty.hidden = state.entries.length > 0;
    const filtered = Object.keys(state.entryFilters).length > 0;
    empty.textContent = filtered
      ? "No entries match these filters. Clear a filter to see more."
      : "No entries yet. Errors and warnings your app captures appear here within seconds.";
    const fingerprint = state.entryFilters.fingerprint;
    byId("fingerprint-filter").hidden = !fingerprint;
    byId("fingerprint-value").textContent = fingerprint || "";
  }

  function setEntries(items, cursor) {
    state.entries = items;
    state.entryIds = new Set(items.map((entry) => entry.id));
    state.entryCursor = cursor;
  }

  async function loadEntries(append) {
    const token = ++state.loadToken;
    const params = Object.assign({ limit: PAGE_SIZE }, state.entryFilters);
    if (append) params.cursor = state.entryCursor;
    const page = await api("logs", params);
    if (token !== state.loadToken) return;
    if (append) {
      const fresh = page.items.filter((entry) => !state.entryIds.has(entry.id));
      setEntries(state.entries.concat(fresh), page.next_cursor);
    } else {
      setEntries(page.items, page.next_cursor);
    }
    byId("new-entries").hidden = true;
    renderEntries(null);
  }

  // Fetch the first page again and put what is new on top. The cursor of
  // the loaded tail stays valid because it points at a stored entry. When
  // none of the first page is known, the gap is unknown, so the list starts
  // over from the first page.
  async function refreshEntries() {
    const token = state.loadToken;
    const page = await api("logs", Object.assign({ limit: PAGE_SIZE }, state.entryFilters));
    if (token !== state.loadToken) return;
    const fresh = page.items.filter((entry) => !state.entryIds.has(entry.id));
    if (!fresh.length) {
      renderEntries(null);
      return;
    }
    if (fresh.length === page.items.length) {
      setEntries(page.items, page.next_cursor);
    } else {
      setEntries(fresh.concat(state.entries), state.entryCursor);
    }
    const notice = byId("new-entries");
    notice.textContent = fresh.length + (fresh.length === 1 ? " new entry" : " new entries") + " since the last refresh.";
    notice.hidden = false;
    renderEntries(new Set(fresh.map((entry) => entry.id)));
  }

  // Groups -----------------------------------------------------------------

  function statusCell(group) {
    const cell = element("td", "cell-status");
    cell.append(element("span", "status status-" + (NEXT_STATUSES[group.status] ? group.status : "other"), group.status));
    if (group.regression) cell.append(element("span", "badge badge-regression", "regression"));
    return cell;
  }

  function actionsCell(group) {
    const cell = element("td", "cell-actions");
    for (const [status, label] of NEXT_STATUSES[group.status] || []) {
      const button = element("button", "button button-small", label);
      button.type = "button";
      button.dataset.status = status;
      button.addEventListener("click", () => setGroupStatus(group.fingerprint, status, button));
      cell.append(button);
    }
    const link = element("a", "button button-small button-quiet", "Entries");
    link.href = base + "?" + new URLSearchParams({ view: "entries", fingerprint: group.fingerprint });
    link.addEventListener("click", (event) => {
      event.preventDefault();
      showView("entries", { fingerprint: group.fingerprint });
    });
    cell.append(link);
    return cell;
  }

  function groupRow(group) {
    const row = element("tr", "group-row");
    row.dataset.fingerprint = group.fingerprint;
    const title = element("td", "cell-title");
    const heading = element("button", "link group-title", group.title);
    heading.type = "button";
    heading.title = group.title;
    if (group.latest_entry_id) {
      heading.addEventListener("click", () => openEntry(group.latest_entry_id, true));
    } else {
      heading.disabled = true;
    }
    title.append(heading);
    const where = element("div", "group-where muted");
    where.append(element("span", "group-event", group.event));
    if (group.endpoint) where.append(element("span", "group-endpoint", group.endpoint));
    title.append(where);
    row.append(title);
    row.append(element("td"));
    row.lastChild.append(levelBadge(group.level));
    row.append(element("td", "num", group.count));
    row.append(element("td"));
    row.lastChild.append(timeElement(group.first_seen));
    row.append(element("td"));
    row.lastChild.append(timeElement(group.last_seen));
    row.append(element("td"));
    row.lastChild.append(sparkline(group.sparkline || []));
    row.append(statusCell(group));
    row.append(actionsCell(group));
    return row;
  }

  function renderGroups(groups, append) {
    const body = byId("groups-body");
    const rows = groups.map(groupRow);
    if (append) body.append(...rows);
    else body.replaceChildren(...rows);
    state.groupCount = body.children.length;
    byId("groups-more").hidden = !state.groupCursor;
    const empty = byId("groups-empty");
    empty.hidden = state.groupCount > 0;
    const filtered = Object.keys(state.groupFilters).length > 0;
    empty.textContent = filtered
      ? "No groups match these filters. Ignored groups show only with Status: Ignored."
      : "No error groups yet. Flare groups errors that share a fingerprint as your app captures them.";
  }

  // A refresh loads as many groups as are shown, so "Load more" survives it.
  async function loadGroups(append, keepCount) {
    const token = ++state.loadToken;
    // A refresh keeps as many rows as were shown, in pages the API allows.
    const wanted = keepCount ? Math.max(state.groupCount, PAGE_SIZE) : PAGE_SIZE;
    let items = [];
    let cursor = append ? state.groupCursor : null;
    do {
      const limit = Math.min(wanted - items.length, MAX_PAGE_SIZE);
      const params = Object.assign({ limit }, state.groupFilters);
      if (cursor) params.cursor = cursor;
      const page = await api("groups", params);
      if (token !== state.loadToken) return;
      items = items.concat(page.items);
      cursor = page.next_cursor;
    } while (keepCount && cursor && items.length < wanted);
    state.groupCursor = cursor;
    renderGroups(items, append);
  }

  async function setGroupStatus(fingerprint, status, button) {
    button.disabled = true;
    try {
      await api("groups/" + encodeURIComponent(fingerprint) + "/status", null, {
        method: "POST",
        headers: { "Content-Type": "application/json", "X-Flare-CSRF": "1" },
        body: JSON.stringify({ status }),
      });
      clearError("status");
      await loadGroups(false, true);
    } catch (error) {
      button.disabled = false;
      showError("Changing the group's status failed: " + error.message, "status");
    }
  }

  // Entry modal ------------------------------------------------------------

  function metaRow(list, label, value) {
    if (value === null || value === undefined || value === "") return;
    list.append(element("dt", null, label), element("dd", null, value));
  }

  function fillModal(entry) {
    byId("modal-level").replaceWith(Object.assign(levelBadge(entry.level), { id: "modal-level" }));
    byId("modal-title").textContent = visible(entry.error || entry.event);
    byId("modal-message").textContent = visible(entry.message || "(no message)");
    byId("modal-error").textContent = visible(entry.error || "");
    byId("modal-error-section").hidden = !entry.error;
    byId("modal-stack").textContent = entry.stack_trace || "";
    byId("modal-stack-section").hidden = !entry.stack_trace;
    byId("modal-copy").textContent = "Copy";
    const meta = byId("modal-meta");
    meta.replaceChildren();
    metaRow(meta, "Time", absoluteTime(entry.timestamp));
    metaRow(meta, "Event", entry.event);
    metaRow(meta, "Request ID", entry.request_id);
    metaRow(meta, "Method", entry.http_method);
    metaRow(meta, "Endpoint", entry.endpoint);
    metaRow(meta, "Route", entry.route);
    metaRow(meta, "HTTP status", entry.http_status);
    metaRow(meta, "IP address", entry.ip_address);
    metaRow(meta, "Duration", entry.duration_ms === null ? null : entry.duration_ms.toFixed(1) + " ms");
    metaRow(meta, "Exception", entry.exception_type);
    metaRow(meta, "Fingerprint", entry.fingerprint);
    metaRow(meta, "Entry ID", entry.id);
    byId("modal-context").textContent = JSON.stringify(entry.context || {}, null, 2);
  }

  async function openEntry(id, push) {
    const modal = byId("entry-modal");
    const status = byId("modal-status");
    state.entryId = String(id);
    writeUrl(push);
    try {
      const entry = await api("logs/" + encodeURIComponent(id));
      fillModal(entry);
      status.hidden = true;
      byId("modal-entry").hidden = false;
    } catch (error) {
      status.textContent = "This entry could not be loaded: " + error.message;
      status.hidden = false;
      byId("modal-entry").hidden = true;
      byId("modal-title").textContent = "Entry " + id;
    }
    if (!modal.open) modal.showModal();
  }

  function closeEntry() {
    const modal = byId("entry-modal");
    if (modal.open) modal.close();
  }

  async function copyStack() {
    const button = byId("modal-copy");
    try {
      await navigator.clipboard.writeText(byId("modal-stack").textContent);
      button.textContent = "Copied";
    } catch (error) {
      button.textContent = "Copy failed";
    }
  }

  // Views and refresh ------------------------------------------------------

  async function loadView() {
    try {
      if (state.view === "entries") {
        fillForm(byId("entry-filters"), state.entryFilters);
        await loadEntries(false);
      } else {
        fillForm(byId("group-filters"), state.groupFilters);
        await loadGroups(false, false);
      }
      clearError();
    } catch (error) {
      showError(error.message);
      const empty = byId(state.view === "entries" ? "entries-empty" : "groups-empty");
      empty.textContent = "The list could not be loaded. The message above says why.";
      empty.hidden = false;
    }
  }

  function renderView() {
    byId("groups-view").hidden = state.view !== "groups";
    byId("entries-view").hidden = state.view !== "entries";
    byId("tab-groups").classList.toggle("active", state.view === "groups");
    byId("tab-entries").classList.toggle("active", state.view === "entries");
  }

  function showView(view, filters) {
    state.view = view;
    if (filters) {
      if (view === "entries") state.entryFilters = filters;
      else state.groupFilters = filters;
    }
    renderView();
    writeUrl(true);
    loadView();
  }

  async function refreshAll(listToo) {
    try {
      const [stats, timeline] = await Promise.all([api("stats"), api("timeline", { hours: 24 })]);
      renderStats(stats);
      renderChart(timeline);
      if (listToo) {
        if (state.view === "entries") await refreshEntries();
        else await loadGroups(false, true);
      }
      clearError("refresh");
      if (listToo) clearError("list");
      byId("updated-at").textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (error) {
      const stale = byId("updated-at").textContent;
      showError(
        error.message + (stale ? " The page shows the data of the last successful update." : ""),
        "refresh"
      );
    }
    updateRelativeTimes();
  }

  function setAutoRefresh(enabled) {
    clearInterval(state.timer);
    state.timer = enabled ? setInterval(() => refreshAll(true), refreshSeconds * 1000) : null;
    try {
      localStorage.setItem(AUTO_REFRESH_KEY, enabled ? "on" : "off");
    } catch (error) {
      // When localStorage is disabled, the toggle lasts for this page only.
    }
  }

  function autoRefreshWanted() {
    try {
      return localStorage.getItem(AUTO_REFRESH_KEY) !== "off";
    } catch (error) {
      return true;
    }
  }

  function syncModalWithUrl() {
    if (state.entryId) openEntry(state.entryId, false);
    else closeEntry();
  }

  function start() {
    readUrl();
    renderView();
    watchForm(byId("entry-filters"));
    watchForm(byId("group-filters"));
    for (const tab of document.querySelectorAll(".tab")) {
      tab.addEventListener("click", (event) => {
        event.preventDefault();
        if (tab.dataset.view !== state.view) showView(tab.dataset.view, null);
      });
    }
    byId("entries-more").addEventListener("click", () => loadEntries(true).catch((error) => showError(error.message)));
    byId("groups-more").addEventListener("click", () => loadGroups(true, false).catch((error) => showError(error.message)));
    byId("entry-filters-clear").addEventListener("click", () => showView("entries", {}));
    byId("fingerprint-clear").addEventListener("click", () => {
      const filters = Object.assign({}, state.entryFilters);
      delete filters.fingerprint;
      showView("entries", filters);
    });
    byId("refresh-now").addEventListener("click", () => refreshAll(true));
    byId("modal-close").addEventListener("click", closeEntry);
    byId("modal-copy").addEventListener("click", copyStack);
    byId("entry-modal").addEventListener("close", () => {
      state.entryId = null;
      writeUrl(false);
    });
    window.addEventListener("popstate", () => {
      readUrl();
      renderView();
      loadView();
      syncModalWithUrl();
    });
    let resizing = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => state.timeline && renderChart(state.timeline), 150);
    });
    const toggle = byId("auto-refresh");
    toggle.checked = autoRefreshWanted();
    toggle.addEventListener("change", () => setAutoRefresh(toggle.checked));
    setAutoRefresh(toggle.checked);

    refreshAll(false);
    loadView();
    syncModalWithUrl();
  }

  start();
})();
