// Argus operator console: stream tiles (state, thumbnail, latest text, fps, drops) refreshed
// from the API, and a live feed of results from server-sent events. Everything shown is set
// with textContent or as a URL-encoded attribute, never as HTML.
"use strict";

const tokenInput = document.getElementById("token");
tokenInput.value = sessionStorage.getItem("argus-token") || "";
tokenInput.addEventListener("change", () => {
  sessionStorage.setItem("argus-token", tokenInput.value);
  connectFeed();
});

function authHeaders() {
  return tokenInput.value ? { Authorization: "Bearer " + tokenInput.value } : {};
}

// EventSource and <img> cannot send headers: reads take the token as a query parameter.
function withToken(url) {
  if (!tokenInput.value) return url;
  return url + (url.includes("?") ? "&" : "?") + "access_token=" + encodeURIComponent(tokenInput.value);
}

const latestText = new Map();
const tiles = new Map();

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function tileFor(id) {
  let tile = tiles.get(id);
  if (tile) return tile;
  const root = element("div", "tile");
  root.dataset.stream = id;
  const state = element("span", "state");
  const name = element("div", "name", id);
  name.prepend(state);
  const image = element("img");
  image.alt = "latest frame of " + id;
  const facts = element("div", "facts");
  const text = element("div", "text");
  root.append(name, image, facts, text);
  document.getElementById("grid").append(root);
  tile = { root, state, image, facts, text };
  tiles.set(id, tile);
  return tile;
}

async function refreshStreams() {
  let answer;
  try {
    const response = await fetch(withToken("/api/v1/streams"), { headers: authHeaders() });
    answer = await response.json();
    if (!response.ok) throw new Error(answer.error || response.statusText);
  } catch (error) {
    document.getElementById("summary").textContent = "API: " + error.message;
    return;
  }
  const seen = new Set();
  let running = 0;
  for (const stream of answer.streams) {
    seen.add(stream.id);
    const tile = tileFor(stream.id);
    tile.root.dataset.state = stream.state;
    tile.state.textContent = stream.state;
    tile.state.className = "state " + stream.state;
    if (stream.state === "running") running += 1;
    tile.facts.textContent =
      `${stream.fps_out.toFixed(1)} fps analysed · ${stream.frames_analysed} frames · ` +
      `${stream.frames_dropped} dropped · ${stream.reconnects} reconnects` +
      (stream.error ? ` · ${stream.error}` : "");
    if (stream.frames_analysed > 0) {
      tile.image.src = withToken(`/api/v1/streams/${encodeURIComponent(stream.id)}/thumbnail.jpg?n=${stream.frames_analysed}`);
    }
    tile.text.textContent = latestText.get(stream.id) || "";
  }
  for (const [id, tile] of tiles) {
    if (!seen.has(id)) { tile.root.remove(); tiles.delete(id); }
  }
  document.getElementById("summary").textContent = `${answer.streams.length} streams, ${running} running`;
}

let feed;
function connectFeed() {
  if (feed) feed.close();
  const state = document.getElementById("feed-state");
  feed = new EventSource(withToken("/api/v1/events"));
  feed.onopen = () => { state.textContent = "(live)"; };
  feed.onerror = () => { state.textContent = "(reconnecting…)"; };
  feed.addEventListener("result", (event) => {
    const result = JSON.parse(event.data);
    latestText.set(result.camera_id, result.text);
    const tile = tiles.get(result.camera_id);
    if (tile) tile.text.textContent = result.text;
    const item = element("li");
    item.append(
      element("time", null, new Date(result.frame.wall_time).toLocaleTimeString()),
      element("span", "camera", result.camera_id),
      document.createTextNode(" " + (result.text ? result.text.replaceAll("\n", " · ") : "(no text)")),
    );
    const list = document.getElementById("feed");
    list.prepend(item);
    while (list.children.length > 100) list.lastChild.remove();
  });
}

document.getElementById("add-stream").addEventListener("submit", async (event) => {
  event.preventDefault();
  const result = document.getElementById("add-result");
  const body = {
    id: document.getElementById("new-id").value,
    uri: document.getElementById("new-uri").value,
    sample_fps: Number(document.getElementById("new-fps").value),
  };
  const response = await fetch("/api/v1/streams", {
    method: "POST",
    headers: { "Content-Type": "application/json", ...authHeaders() },
    body: JSON.stringify(body),
  });
  const answer = await response.json().catch(() => ({}));
  result.className = response.ok ? "" : "error";
  result.textContent = response.ok ? `added ${body.id}` : `${response.status}: ${answer.error || response.statusText}`;
  refreshStreams();
});

connectFeed();
refreshStreams();
setInterval(refreshStreams, 2000);
