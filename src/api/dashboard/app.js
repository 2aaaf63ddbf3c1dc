// mcc dashboard: the entry module. Services, listeners, records and DIDs, the token box, and
// the polling that keeps the page current; the other panels are in live.js, blobs.js and
// routes.js, shared helpers in util.js.
//
// The API token, when the node has one, lives in this tab's sessionStorage and goes out as
// `Authorization: Bearer`; `#token=...` in the URL sets it.

import { $, api, el, shortId, fmtRtt, say, sayError, refreshFailed, refreshWorked, segments, setToken, showBanner, takeTokenFromFragment } from "./util.js";
import { refreshLive } from "./live.js";
import { refreshBlobs } from "./blobs.js";
import { refreshRoutes } from "./routes.js";

const POLL_MS = 2000;

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
    // Nobody provides it: the API answers 404 (an empty list here).
    const list = await api("GET", "/services/" + encodeURIComponent(name) + "/providers")
      .catch((e) => { if (e.status === 404) return []; throw e; });
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
