// mcc dashboard: routes (subscribe and watch over Server-Sent Events, publish, the table).

import { $, api, el, shortId, say, sayError, refreshFailed, refreshWorked, segments, lines } from "./util.js";

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

export async function refreshRoutes() {
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
