// mcc dashboard: blobs (upload with progress, list, fetch by CID with progress, download).

import { $, API, api, el, fmtBytes, say, sayError, refreshFailed, refreshWorked, authHeaders, needToken, lines, ApiError } from "./util.js";

export async function refreshBlobs() {
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
