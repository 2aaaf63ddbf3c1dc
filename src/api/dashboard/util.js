// mcc dashboard: helpers shared by the other modules (DOM building, formatting, the API token
// and the API calls). Plain JavaScript modules, no framework, no build step.
//
// Data from peers (labels, messages, record values) is only ever put into the page as text
// (textContent), never as HTML.

export const API = "/api/v1";
const TOKEN_KEY = "mcc-api-token";
export const $ = (id) => document.getElementById(id);

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

/** Requests work again: closes the token box if a 401 opened it. */
function tokenWorked() {
  if (tokenAsked) {
    $("token-box").hidden = true;
    tokenAsked = false;
  }
}

export {
  el, svg, shortId, fmtBytes, fmtSecs, fmtRtt, segments, say, sayError, refreshFailed,
  refreshWorked, setToken, authHeaders, takeTokenFromFragment, ApiError, api, needToken,
  showBanner, lines, tokenWorked,
};
