// mcc dashboard: plain JavaScript over the node's REST API (/api/v1/...), no framework.
//
// Data from peers (labels, messages, record values) is only ever put into the page as text
// (textContent), never as HTML. The API token, when the node has one, lives in this tab's
// sessionStorage and goes out as `Authorization: Bearer`; `#token=...` in the URL sets it.
"use strict";

const API = "/api/v1";
const POLL_MS = 2000;
const TOKEN_KEY = "mcc-api-token";
const $ = (id) => document.getElementById(id);

// ---------- helpers ----------

/** Creates an element: attributes (class, title, href, ...) and children (nodes or text). */
function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : String(c));
  }
  return e;
}

const SVG_NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function shortId(id) {
  return id && id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-6) : id || "";
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function fmtSecs(s) {
  if (s === null || s === undefined) return "";
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min";
  if (s < 86400) return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}

function fmtRtt(ms) {
  return ms === null || ms === undefined ? "–" : ms < 10 ? ms.toFixed(2) + " ms" : Math.round(ms) + " ms";
}

/** Path segments encoded one by one: record keys and route names keep their slashes. */
function segments(s) {
  return s.replace(/^\/+/, "").split("/").map(encodeURIComponent).join("/");
}

/** Shows `msg` in the output element `id` (an error in red). */
function say(id, msg, kind) {
  const o = $(id);
  delete o.dataset.refresh;
  o.textContent = msg;
  o.className = o.className.replace(/\b(error|ok)\b/g, "").trim() + (kind ? " " + kind : "");
}

function sayError(id, e) {
  say(id, e instanceof ApiError ? e.message : "Error: " + (e && e.message ? e.message : e), "error");
}

/** For background refreshes: a 401 is shown once in the banner, not in every card. */
function refreshFailed(id, e) {
  if (e instanceof ApiError && e.status === 401) return;
  sayError(id, e);
  $(id).dataset.refresh = "failed";
}

/** Clears an error of a background refresh (not a user action's) once it works again. */
function refreshWorked(id) {
  if ($(id).dataset.refresh) say(id, "");
}

// ---------- token ----------

let memoryToken = "";

function token() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return ""; }
}

function setToken(t) {
  try {
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) { /* storage disabled: the token lasts until reload */ }
  memoryToken = t;
}

function authHeaders(extra = {}) {
  const t = token() || memoryToken;
  return t ? { ...extra, Authorization: "Bearer " + t } : extra;
}

/** Takes `#token=...` from the URL into sessionStorage and out of the URL (and history). */
function takeTokenFromFragment() {
  const m = location.hash.match(/(?:^#|&)token=([^&]*)/);
  if (!m) return false;
  setToken(decodeURIComponent(m[1]));
  history.replaceState(null, "", location.pathname + location.search);
  return true;
}

// ---------- API calls ----------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** The API's `{"error": ...}` as an ApiError (401 also opens the token box). */
async function failure(res) {
  let msg = res.status + " " + res.statusText;
  try {
    const body = await res.json();
    if (body && body.error) msg = body.error;
  } catch (_) { /* not JSON */ }
  if (res.status === 401) needToken(msg);
  return new ApiError(res.status, "Error " + res.status + ": " + msg);
}

/**
 * Calls the API. `opts.json`: a body sent as JSON; `opts.body`: a raw body;
 * `opts.raw`: return the Response (for bytes and streams) instead of parsed JSON.
 */
async function api(method, path, opts = {}) {
  const init = { method, headers: authHeaders(), signal: opts.signal };
  if (opts.json !== undefined) {
    init.body = JSON.stringify(opts.json);
    init.headers["Content-Type"] = "application/json";
  } else if (opts.body !== undefined) {
    init.body = opts.body;
    init.headers["Content-Type"] = "application/octet-stream";
  }
  let res;
  try {
    res = await fetch(API + path, init);
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(0, "Error: the node does not answer (" + e.message + ")");
  }
  if (!res.ok) throw await failure(res);
  if (opts.raw) return res;
  if (res.status === 204) return null;
  return res.json();
}

/** The token box was opened by a 401 (and closes once requests work). */
let tokenAsked = false;

function needToken(msg) {
  if ($("token-box").hidden) tokenAsked = true;
  $("token-box").hidden = false;
  showBanner(msg + (token() ? " (the saved token was refused)" : ""));
}

function showBanner(msg) {
  const b = $("banner");
  b.textContent = msg;
  b.hidden = !msg;
}

/** Reads a streamed body line by line (NDJSON, SSE). */
async function* lines(res) {
  const reader = res.body.getReader();
  const dec = new TextDecoder();
  let buf = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i).replace(/\r$/, "");
      buf = buf.slice(i + 1);
    }
  }
  if (buf) yield buf;
}

// ---------- this node, peers, mesh (polled) ----------

let self = null;
let failures = 0;

async function refreshLive() {
  try {
    const [node, peers, book] = await Promise.all([
      api("GET", "/node"), api("GET", "/peers"), api("GET", "/addrbook"),
    ]);
    // A DID to try: this node's own.
    if (!self && !$("did-input").value) $("did-input").value = node.did;
    self = node;
    renderNode(node);
    renderPeers(peers);
    renderMesh(node, peers, book);
    setLive(true);
    if (failures > 0 || !$("banner").hidden) showBanner("");
    if (tokenAsked) { $("token-box").hidden = true; tokenAsked = false; }
    failures = 0;
  } catch (e) {
    failures++;
    setLive(false, e);
  }
}

function setLive(ok, e) {
  const b = $("live");
  b.className = "badge " + (ok ? "ok" : "off");
  b.textContent = ok ? "live" : "offline";
  if (!ok && e instanceof ApiError && e.status !== 401) showBanner(e.message);
}

function renderNode(n) {
  $("top-label").textContent = n.label;
  document.title = n.label + " · mcc";
  const c = n.certificate;
  const reach = n.reachability || "unknown";
  const addrs = (list) => list.length ? list.map((a) => el("span", { class: "mono", text: a })) : el("span", { class: "muted", text: "none" });
  const rows = [
    ["label", n.label],
    ["peer id", el("span", { class: "mono", id: "node-peer-id", text: n.peer_id })],
    ["DID", el("span", { class: "mono", text: n.did })],
    ["version", n.version],
    ["uptime", fmtSecs(n.uptime_secs)],
    ["reachability", [el("span", { class: "badge " + reach, text: reach }),
      n.public_addr ? el("span", { class: "mono", text: n.public_addr }) : null]],
    ["listening on", addrs(n.listen_addrs)],
    ["external", addrs(n.external_addrs)],
    ["relays", n.relays.length ? n.relays.map((r) => el("span", { class: "mono", text: (r.accepted ? "✓ " : "… ") + r.addr })) : el("span", { class: "muted", text: "none" })],
    ["peers", n.connected_peers + " connected, " + n.routing_table_size + " in routing table"],
    ["certificate", [
      c.label + (c.self_signed ? " (self-signed)" : " (CA " + shortId(c.issuer) + ")"),
      el("br"),
      el("span", { class: "muted", text: c.permissions.join(", ") }),
    ]],
    ["expires", [c.expires + " ", el("span", {
      class: "badge " + (c.expires_in_secs === 0 ? "bad" : c.expiring_soon ? "warn" : "ok"),
      text: c.expires_in_secs === 0 ? "expired" : "in " + fmtSecs(c.expires_in_secs),
    })]],
  ];
  if (n.http_forward) rows.push(["forward", el("a", { href: n.http_forward, text: n.http_forward })]);
  $("node-info").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", {}, v)]));
}

function peerName(p) {
  return p.label || shortId(p.peer_id);
}

function renderPeers(peers) {
  $("peer-count").textContent = String(peers.length);
  const rows = peers.map((p) => el("tr", { "data-peer": p.peer_id },
    el("td", { class: "id", title: p.peer_id },
      el("strong", { text: p.label || "" }), p.label ? " " : "",
      el("span", { class: "mono muted", text: shortId(p.peer_id) })),
    el("td", { text: fmtRtt(p.rtt_ms) }),
    el("td", {}, el("span", { class: "badge " + (p.relayed ? "relayed" : "direct"), text: p.relayed ? "relayed" : "direct" })),
    el("td", { text: p.direction }),
    el("td", { text: String(p.connections) }),
    el("td", { text: fmtSecs(p.connected_secs) }),
  ));
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "no peers connected" })));
  $("peers-body").replaceChildren(...rows);
}

/** This node in the middle, connected peers around it, known but unconnected ones further out. */
function renderMesh(node, peers, book) {
  const g = $("mesh");
  const W = 400, H = 300, cx = W / 2, cy = H / 2;
  const connected = new Set(peers.map((p) => p.peer_id));
  const known = book.filter((b) => !connected.has(b.peer_id) && b.peer_id !== node.peer_id).slice(0, 16);
  const shown = peers.slice(0, 16);
  const items = [];
  const place = (list, r, offset) => list.map((p, i) => {
    const a = offset + (2 * Math.PI * i) / Math.max(list.length, 1) - Math.PI / 2;
    return { p, x: cx + r * Math.cos(a), y: cy + r * 0.8 * Math.sin(a) };
  });
  const inner = place(shown, 95, 0);
  const outer = place(known, 135, Math.PI / Math.max(known.length, 1));
  for (const k of outer) {
    items.push(svg("line", { x1: cx, y1: cy, x2: k.x, y2: k.y, class: "known" }));
  }
  for (const q of inner) {
    items.push(svg("line", { x1: cx, y1: cy, x2: q.x, y2: q.y, class: q.p.relayed ? "relayed" : "direct" }));
    items.push(svg("text", { x: (cx + q.x) / 2, y: (cy + q.y) / 2 - 3, class: "rtt" }, fmtRtt(q.p.rtt_ms)));
  }
  const dot = (x, y, r, cls, name, title) => {
    const grp = svg("g", { class: "peer" });
    grp.append(svg("title", {}, title), svg("circle", { cx: x, cy: y, r, class: cls }),
      svg("text", { x, y: y + r + 11 }, name));
    return grp;
  };
  for (const k of outer) {
    items.push(dot(k.x, k.y, 7, "known", shortId(k.p.peer_id), k.p.peer_id + " (known: " + k.p.sources.join(", ") + ")"));
  }
  for (const q of inner) {
    items.push(dot(q.x, q.y, 10, q.p.relayed ? "relayed" : "direct", peerName(q.p), q.p.peer_id));
  }
  items.push(dot(cx, cy, 14, "self", node.label + " (this node)", node.peer_id));
  const more = peers.length - shown.length + Math.max(0, book.length - connected.size - known.length);
  if (more > 0) items.push(svg("text", { x: W - 40, y: H - 8, class: "rtt" }, "+" + more + " more"));
  g.replaceChildren(...items);
}

$("dial-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  say("dial-out", "dialing…");
  try {
    const r = await api("POST", "/peers", { json: { addr: $("dial-addr").value.trim() } });
    say("dial-out", "connected to " + r.peer_id, "ok");
    refreshLive();
  } catch (e) { sayError("dial-out", e); }
});

// ---------- services, providers, listeners ----------

function emptyItem(text) {
  return el("li", { class: "empty", text });
}

async function refreshServices() {
  try {
    const list = await api("GET", "/services");
    $("svc-list").replaceChildren(...(list.length ? list.map((s) => el("li", { "data-service": s.name },
      el("span", { class: "grow" }, el("strong", { text: s.name }), " ", el("span", { class: "mono muted", text: s.address }),
        s.from_config ? el("span", { class: "muted", text: " (config)" }) : null),
      el("button", { class: "danger", type: "button", text: "remove", onclick: () => removeService(s.name) }),
    )) : [emptyItem("no services offered")]));
    refreshWorked("svc-out");
  } catch (e) { refreshFailed("svc-out", e); }
}

async function removeService(name) {
  try {
    await api("DELETE", "/services/" + encodeURIComponent(name));
    say("svc-out", "removed " + name, "ok");
  } catch (e) { sayError("svc-out", e); }
  refreshServices();
}

$("svc-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const s = await api("POST", "/services", { json: { name: $("svc-name").value.trim(), address: $("svc-addr").value.trim() } });
    say("svc-out", "added " + s.name + " → " + s.address, "ok");
    $("svc-name").value = "";
    $("svc-addr").value = "";
  } catch (e) { sayError("svc-out", e); }
  refreshServices();
});

$("prov-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const name = $("prov-name").value.trim();
  say("prov-out", "looking up " + name + "…");
  $("prov-list").replaceChildren();
  try {
    const list = await api("GET", "/services/" + encodeURIComponent(name) + "/providers");
    $("prov-list").replaceChildren(...(list.length ? list.map((p) => el("li", { "data-peer": p.peer_id },
      el("span", { class: "grow", title: p.peer_id }, el("strong", { text: p.label || shortId(p.peer_id) }),
        p.local ? " (this node)" : "", " ", el("span", { class: "mono muted", text: shortId(p.peer_id) })),
      el("span", { class: "muted", text: p.local ? "" : p.connected ? fmtRtt(p.rtt_ms) : "not connected" }),
    )) : [emptyItem("no providers found")]));
    say("prov-out", list.length + " provider" + (list.length === 1 ? "" : "s") + " of " + name, "ok");
  } catch (e) { sayError("prov-out", e); }
});

async function refreshListeners() {
  try {
    const list = await api("GET", "/listeners");
    $("lst-list").replaceChildren(...(list.length ? list.map((l) => el("li", {},
      el("span", { class: "grow" }, el("span", { class: "mono", text: l.address }), " → ", el("strong", { text: l.service }),
        l.peer ? el("span", { class: "muted", text: " via " + shortId(l.peer) }) : null),
      el("button", { class: "danger", type: "button", text: "remove", onclick: () => removeListener(l.id) }),
    )) : [emptyItem("no listeners")]));
    refreshWorked("lst-out");
  } catch (e) { refreshFailed("lst-out", e); }
}

async function removeListener(id) {
  try {
    await api("DELETE", "/listeners/" + encodeURIComponent(id));
    say("lst-out", "removed", "ok");
  } catch (e) { sayError("lst-out", e); }
  refreshListeners();
}

$("lst-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const body = { service: $("lst-service").value.trim(), address: $("lst-addr").value.trim() };
  const peer = $("lst-peer").value.trim();
  if (peer) body.peer = peer;
  try {
    const l = await api("POST", "/listeners", { json: body });
    say("lst-out", "listening on " + l.address + " for " + l.service, "ok");
  } catch (e) { sayError("lst-out", e); }
  refreshListeners();
});

// ---------- blobs ----------

async function refreshBlobs() {
  try {
    const list = await api("GET", "/blobs");
    list.sort((a, b) => b.added_unix_ms - a.added_unix_ms);
    const rows = list.map((b) => el("tr", { "data-cid": b.cid },
      el("td", { class: "id mono", title: b.cid, text: b.cid }),
      el("td", { text: fmtBytes(b.size) }),
      el("td", { text: String(b.blocks) }),
      el("td", { text: new Date(b.added_unix_ms).toLocaleString() }),
      el("td", {}, downloadButton(b.cid)),
    ));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "no blobs stored" })));
    $("blob-list").replaceChildren(...rows);
    refreshWorked("fetch-out");
  } catch (e) { refreshFailed("fetch-out", e); }
}

/**
 * Without a token a plain link streams the blob to disk; a link cannot carry the token
 * header, so with one the page gets the bytes itself and saves them.
 */
function downloadButton(cid) {
  if (!authHeaders().Authorization) {
    return el("a", { class: "button small", href: API + "/blobs/" + encodeURIComponent(cid), download: cid, text: "download" });
  }
  return el("button", { class: "small", type: "button", text: "download", onclick: () => download(cid, "fetch-out") });
}

// Upload through XHR: its upload events give the progress bar.
$("upload-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const file = $("blob-file").files[0];
  if (!file) return;
  const bar = $("upload-progress");
  bar.hidden = false;
  bar.value = 0;
  $("blob-upload").disabled = true;
  say("upload-out", "uploading " + file.name + " (" + fmtBytes(file.size) + ")…");
  const xhr = new XMLHttpRequest();
  xhr.open("POST", API + "/blobs");
  for (const [k, v] of Object.entries(authHeaders({ "Content-Type": "application/octet-stream" }))) xhr.setRequestHeader(k, v);
  xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) bar.value = e.loaded / e.total; });
  xhr.addEventListener("load", () => {
    $("blob-upload").disabled = false;
    let body = null;
    try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
    if (xhr.status >= 200 && xhr.status < 300 && body) {
      bar.value = 1;
      const o = $("upload-out");
      o.replaceChildren("stored " + fmtBytes(body.size) + " as ", el("span", { class: "mono", id: "uploaded-cid", text: body.cid }));
      o.className = "out ok";
      $("fetch-cid").value ||= body.cid;
      refreshBlobs();
    } else {
      if (xhr.status === 401) needToken(body && body.error ? body.error : "unauthorized");
      say("upload-out", "Error " + xhr.status + ": " + (body && body.error ? body.error : xhr.statusText), "error");
    }
  });
  xhr.addEventListener("error", () => {
    $("blob-upload").disabled = false;
    say("upload-out", "Error: the upload failed (the node does not answer)", "error");
  });
  xhr.send(file);
});

// Fetch by CID: progress from POST /blobs/{cid}/fetch (JSON lines), then the bytes.
$("fetch-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const cid = $("fetch-cid").value.trim();
  const bar = $("fetch-progress");
  bar.hidden = false;
  bar.value = 0;
  $("fetch-go").disabled = true;
  say("fetch-out", "fetching " + cid + "…");
  try {
    const res = await api("POST", "/blobs/" + encodeURIComponent(cid) + "/fetch", { raw: true });
    let summary = null;
    for await (const line of lines(res)) {
      if (!line.trim()) continue;
      const m = JSON.parse(line);
      if (m.error) throw new ApiError(502, "Error: " + m.error);
      if (m.total_bytes) bar.value = m.bytes_done / m.total_bytes;
      if (m.blocks_done === undefined) summary = m;
      else say("fetch-out", "fetching: " + fmtBytes(m.bytes_done) + " of " + fmtBytes(m.total_bytes) + " from " + m.seeders + " seeder(s)");
    }
    bar.value = 1;
    if (!summary) throw new ApiError(502, "Error: the fetch ended without a summary");
    await download(cid, "fetch-out", false);
    refreshBlobs();
  } catch (e) { sayError("fetch-out", e); }
  $("fetch-go").disabled = false;
});

/** Gets a blob's bytes and shows size, SHA-256 and a save link; `save`: also start the download. */
async function download(cid, outId, save = true) {
  try {
    const res = await api("GET", "/blobs/" + encodeURIComponent(cid), { raw: true });
    const blob = await res.blob();
    const url = URL.createObjectURL(blob);
    let digest = "unavailable (needs https or localhost)";
    if (window.crypto && crypto.subtle) {
      const d = await crypto.subtle.digest("SHA-256", await blob.arrayBuffer());
      digest = Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
    }
    const link = el("a", { href: url, download: cid, id: "fetched-link", text: "save" });
    const o = $(outId);
    o.className = "out ok";
    o.replaceChildren(
      el("span", { id: "fetched", "data-cid": cid, "data-size": String(blob.size), "data-sha256": digest },
        "got " + fmtBytes(blob.size) + " (" + blob.size + " bytes) of ", el("span", { class: "mono", text: cid })),
      el("br"), "sha-256 ", el("span", { class: "mono", text: digest }), " · ", link);
    if (save) link.click();
  } catch (e) { sayError(outId, e); }
}

// ---------- routes: subscriptions over Server-Sent Events ----------

const subs = new Map();

/** Follows ROUTE: GET /routes/{route}/events read as a stream (fetch, so the token header goes too). */
function subscribe(route) {
  if (subs.has(route)) return;
  const ctl = new AbortController();
  const log = el("ol", { class: "messages" });
  const state = el("span", { class: "badge", text: "connecting" });
  const box = el("div", { class: "sub", "data-route": route },
    el("header", {}, el("span", { class: "grow", text: route }), state,
      el("button", { class: "danger", type: "button", text: "unsubscribe", onclick: () => { ctl.abort(); } })),
    log);
  $("subs").prepend(box);
  subs.set(route, ctl);
  const add = (text, cls) => {
    log.prepend(el("li", { class: cls, text }));
    while (log.children.length > 200) log.lastChild.remove();
  };
  (async () => {
    try {
      const res = await api("GET", "/routes/" + segments(route) + "/events", { raw: true, signal: ctl.signal });
      state.className = "badge ok";
      state.textContent = "live";
      let event = "message", data = [];
      for await (const line of lines(res)) {
        if (line === "") {
          if (data.length && event === "message") {
            const m = JSON.parse(data.join("\n"));
            const text = m.payload !== undefined ? m.payload : "0x" + m.payload_hex;
            add("#" + m.seq + " " + new Date(m.time_unix_ms).toLocaleTimeString() + " from " + shortId(m.from) + ": " + text, "msg");
          }
          event = "message";
          data = [];
        } else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        else if (line.startsWith("event:")) event = line.slice(6).trim();
      }
      add("the node closed the stream", "error-text");
    } catch (e) {
      if (e.name !== "AbortError") add(e.message, "error-text");
    }
    subs.delete(route);
    state.className = "badge off";
    state.textContent = "closed";
    if (ctl.signal.aborted) box.remove();
    refreshRoutes();
  })();
  setTimeout(refreshRoutes, 300);
}

$("sub-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const route = $("sub-route").value.trim();
  if (route) subscribe(route);
  $("pub-route").value ||= route;
});

$("pub-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const route = $("pub-route").value.trim();
  try {
    const r = await api("POST", "/routes/" + segments(route), { body: $("pub-msg").value });
    say("pub-out", "sent #" + r.seq + " to " + r.peers + " peer(s)" + (r.dropped ? ", dropped for " + r.dropped : ""), "ok");
  } catch (e) { sayError("pub-out", e); }
  refreshRoutes();
});

async function refreshRoutes() {
  try {
    const list = await api("GET", "/routes");
    const rows = list.map((r) => el("tr", {},
      el("td", { class: "mono", text: r.route + (r.tag ? " [" + r.tag + "]" : "") }),
      el("td", { text: String(r.subscribers) }),
      el("td", { title: r.interested.join("\n"), text: String(r.interested.length) }),
      el("td", { text: String(r.sent) }),
      el("td", { text: String(r.received) }),
    ));
    if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "no routes" })));
    $("route-list").replaceChildren(...rows);
    refreshWorked("pub-out");
  } catch (e) { refreshFailed("pub-out", e); }
}

// ---------- records and DIDs ----------

$("rec-get-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("rec-get-key").value.trim();
  say("rec-out", "looking up " + key + "…");
  try {
    const res = await api("GET", "/records/" + segments(key), { raw: true });
    const bytes = new Uint8Array(await res.arrayBuffer());
    let text;
    try { text = new TextDecoder("utf-8", { fatal: true }).decode(bytes); }
    catch (_) { text = "0x" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""); }
    const publisher = res.headers.get("x-mcc-publisher");
    say("rec-out", text + "\n— " + bytes.length + " bytes" + (publisher ? ", published by " + shortId(publisher) : "") +
      ", " + (res.headers.get("x-mcc-versions") || "?") + " version(s) seen", "ok");
  } catch (e) { sayError("rec-out", e); }
});

$("rec-put-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const key = $("rec-put-key").value.trim();
  const ttl = $("rec-put-ttl").value.trim();
  try {
    const r = await api("PUT", "/records/" + segments(key) + (ttl ? "?ttl=" + encodeURIComponent(ttl) : ""), { body: $("rec-put-value").value });
    say("rec-out", "stored " + key + (r.stored_locally ? " here" : "") + (r.replicated ? " and on peers" : " (not replicated yet)"), "ok");
  } catch (e) { sayError("rec-out", e); }
});

$("did-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const did = $("did-input").value.trim();
  say("did-out", "resolving…");
  try {
    const doc = await api("GET", "/dids/" + encodeURIComponent(did));
    say("did-out", JSON.stringify(doc, null, 2), "ok");
  } catch (e) { sayError("did-out", e); }
});

// ---------- token box, start, polling ----------

$("token-toggle").addEventListener("click", () => { $("token-box").hidden = !$("token-box").hidden; });
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  setToken($("token-input").value.trim());
  $("token-input").value = "";
  $("token-box").hidden = true;
  showBanner("");
  refreshAll();
});
$("token-forget").addEventListener("click", () => { setToken(""); refreshAll(); });

function refreshAll() {
  refreshLive();
  refreshServices();
  refreshListeners();
  refreshBlobs();
  refreshRoutes();
}

takeTokenFromFragment();
refreshAll();
// A link with the token opened in a tab that shows the page already.
window.addEventListener("hashchange", () => {
  if (takeTokenFromFragment()) { showBanner(""); refreshAll(); }
});
let ticks = 0;
setInterval(() => {
  if (document.hidden) return;
  refreshLive();
  // The lists change mostly through this page (refreshed right away) or the CLI.
  if (++ticks % 5 === 0) {
    refreshServices();
    refreshListeners();
    refreshBlobs();
    refreshRoutes();
  }
}, POLL_MS);
document.addEventListener("visibilitychange", () => { if (!document.hidden) refreshLive(); });
