// mcc dashboard: this node, its peers and the mesh graph, polled every few seconds.

import { $, api, el, svg, shortId, fmtSecs, fmtRtt, say, sayError, showBanner, tokenWorked, ApiError } from "./util.js";

let self = null;
let failures = 0;

export async function refreshLive() {
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
    if (failures > 0 || !$("banner").hidden) showBanner("");
    tokenWorked();
    failures = 0;
  } catch (e) {
    failures++;
    setLive(false, e);
    if (!self) $("node-info").replaceChildren(el("dt", { text: "status" }), el("dd", { class: "error-text", text: e.message }));
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
