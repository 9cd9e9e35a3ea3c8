// Argus operator console: stream tiles (state, thumbnail with the tracked objects, zones and
// lines drawn over it, latest text, newest caption, fps, drops) refreshed from the API, a live
// feed of results from server-sent events, each camera's timeline (recorded spans, gaps,
// tracks, alerts, captions) whose items play their clip in the player, the alerts with their
// acknowledgement, and moment search. Everything shown is set with textContent or as a
// URL-encoded attribute, never as HTML.
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
const SVG = "http://www.w3.org/2000/svg";
// The overlay's width in its own units; its height follows the frame's proportions.
const OVERLAY_WIDTH = 1000;

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
  const overlay = document.createElementNS(SVG, "svg");
  overlay.setAttribute("class", "overlay");
  overlay.setAttribute("preserveAspectRatio", "xMidYMid meet");
  const view = element("div", "view");
  view.append(image, overlay);
  const facts = element("div", "facts");
  const text = element("div", "text");
  const caption = element("div", "caption");
  root.append(name, view, facts, text, caption);
  document.getElementById("grid").append(root);
  tile = { root, state, image, overlay, facts, text, caption, captionAt: 0 };
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
      refreshOverlay(stream.id, tile);
    }
    tile.text.textContent = latestText.get(stream.id) || "";
    if (Date.now() - tile.captionAt >= CAPTION_REFRESH_MS) {
      tile.captionAt = Date.now();
      refreshCaption(stream.id, tile);
    }
  }
  for (const [id, tile] of tiles) {
    if (!seen.has(id)) { tile.root.remove(); tiles.delete(id); }
  }
  document.getElementById("summary").textContent = `${answer.streams.length} streams, ${running} running`;
  updateCameraOptions(timelineCamera, [...seen], false);
  updateCameraOptions(alertsCamera, [...seen], true);
  if (!timelineLoaded && timelineCamera.value) refreshTimeline();
  if (!alertsLoaded) refreshAlerts();
}

// Captions are written a chunk at a time (10 s or more): the tile asks now and then.
const CAPTION_REFRESH_MS = 5000;

async function refreshCaption(id, tile) {
  let answer;
  try {
    answer = await getJson(`/api/v1/streams/${encodeURIComponent(id)}/captions/latest`);
  } catch {
    return;
  }
  const caption = answer.caption;
  if (!caption) {
    tile.caption.replaceChildren();
    return;
  }
  const start = new Date(caption.start);
  tile.caption.replaceChildren(timeElement(start, formatClock(start)), document.createTextNode(caption.text));
  tile.caption.title = `caption of ${formatTime(start)} → ${formatClock(new Date(caption.end))}`;
}

// Keeps a <select>'s camera options in step with the running streams; `first` options
// (e.g. "all cameras") stay, and a chosen camera stays while it is chosen.
function updateCameraOptions(select, cameras, keepFirst) {
  const fixed = keepFirst ? 1 : 0;
  const options = new Map([...select.options].slice(fixed).map((option) => [option.value, option]));
  for (const camera of [...cameras].sort()) {
    if (!options.has(camera)) {
      const option = element("option", null, camera);
      option.value = camera;
      select.append(option);
    }
    options.delete(camera);
  }
  for (const option of options.values()) {
    if (!option.selected) option.remove();
  }
}

// The overlay: the latest tracked boxes (track id, class, colour), the zones and the lines,
// in an SVG whose view box has the frame's proportions and is fitted like the thumbnail
// (object-fit: contain), so normalised coordinates land where the image shows them.

function svgElement(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

async function refreshOverlay(id, tile) {
  let answer;
  try {
    const response = await fetch(withToken(`/api/v1/streams/${encodeURIComponent(id)}/objects`), { headers: authHeaders() });
    if (!response.ok) return;
    answer = await response.json();
  } catch {
    return;
  }
  drawOverlay(tile, answer);
}

function drawOverlay(tile, { objects, zones, lines }) {
  const frame = objects && objects.width && objects.height
    ? { width: objects.width, height: objects.height }
    : { width: tile.image.naturalWidth || 16, height: tile.image.naturalHeight || 9 };
  const w = OVERLAY_WIDTH;
  const h = (OVERLAY_WIDTH * frame.height) / frame.width;
  const overlay = tile.overlay;
  overlay.setAttribute("viewBox", `0 0 ${w} ${h}`);
  overlay.replaceChildren();
  const at = ([x, y]) => `${(x * w).toFixed(1)},${(y * h).toFixed(1)}`;
  for (const zone of zones || []) {
    const group = svgElement("g", { class: "zone", "data-zone": zone.id });
    group.append(
      svgElement("polygon", { points: zone.points.map(at).join(" ") }),
      svgElement("text", { x: zone.points[0][0] * w + 4, y: zone.points[0][1] * h + 40 }, zone.id),
    );
    overlay.append(group);
  }
  for (const line of lines || []) {
    const group = svgElement("g", { class: "line", "data-line": line.id });
    group.append(
      svgElement("line", { x1: line.from[0] * w, y1: line.from[1] * h, x2: line.to[0] * w, y2: line.to[1] * h }),
      svgElement("text", { x: line.to[0] * w + 4, y: line.to[1] * h - 4 }, line.id),
    );
    overlay.append(group);
  }
  for (const object of (objects && objects.objects) || []) {
    const [x1, y1, x2, y2] = object.bbox;
    const label = `#${object.track_id} ${object.class}` + (object.colour ? ` ${object.colour}` : "");
    const group = svgElement("g", { class: "track", "data-track": object.track_id });
    group.append(
      svgElement("rect", { x: x1 * w, y: y1 * h, width: (x2 - x1) * w, height: (y2 - y1) * h }),
      svgElement("text", { x: x1 * w + 2, y: Math.max(y1 * h - 4, 40) }, label),
    );
    overlay.append(group);
  }
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

// Moment search: recorded moments found by a text query or an example image, as cards with
// the thumbnail, time span, score, the on-screen text that matched (query words in <mark>)
// and, where the server can cut one, a playable clip.

const MOMENT_LIMIT = 12;
const cameraSelect = document.getElementById("moment-camera");
const momentStatus = document.getElementById("moment-status");
const momentList = document.getElementById("moments");

async function getJson(url) {
  const response = await fetch(withToken(url), { headers: authHeaders() });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(`${response.status}: ${answer.error || response.statusText}`);
  return answer;
}

async function refreshMomentCameras() {
  let answer;
  try {
    answer = await getJson("/api/v1/moments/cameras");
  } catch {
    return; // the search itself reports what is wrong
  }
  const options = new Map([...cameraSelect.options].slice(1).map((option) => [option.value, option]));
  for (const camera of answer.cameras) {
    let option = options.get(camera.camera_id);
    if (!option) {
      option = element("option");
      option.value = camera.camera_id;
      cameraSelect.append(option);
    }
    options.delete(camera.camera_id);
    option.textContent = `${camera.camera_id} (${camera.windows} windows)`;
    option.title = `${formatTime(new Date(camera.first_ms))} → ${formatTime(new Date(camera.last_end_ms))}`;
  }
  // Cameras no longer indexed go, unless chosen (the search then says it is unknown).
  for (const option of options.values()) {
    if (!option.selected) option.remove();
  }
}

const pad = (n) => String(n).padStart(2, "0");

function formatDate(date) {
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

function formatClock(date) {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

// Local time, e.g. 2026-01-01 09:15:26.
function formatTime(date) {
  return formatDate(date) + " " + formatClock(date);
}

function formatDuration(ms) {
  const seconds = Math.round(ms / 1000);
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  return `${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
}

function timeElement(date, text) {
  const node = element("time", null, text);
  node.dateTime = date.toISOString();
  node.title = date.toISOString();
  return node;
}

// `text` with every word in `words` (lower case) wrapped in <mark>, as DOM nodes.
function highlighted(tag, className, text, words) {
  const node = element(tag, className);
  let at = 0;
  for (const match of text.matchAll(/[\p{L}\p{N}]+/gu)) {
    if (!words.has(match[0].toLowerCase())) continue;
    if (match.index > at) node.append(document.createTextNode(text.slice(at, match.index)));
    node.append(element("mark", null, match[0]));
    at = match.index + match[0].length;
  }
  if (at < text.length) node.append(document.createTextNode(text.slice(at)));
  return node;
}

// Why a clip did not play: the server's answer if it refused, else the browser's.
async function clipProblem(url) {
  const controller = new AbortController();
  try {
    const response = await fetch(withToken(url), { headers: authHeaders(), signal: controller.signal });
    if (response.ok) {
      controller.abort();
      return "this browser cannot play the clip";
    }
    const answer = await response.json().catch(() => ({}));
    return `clip: ${response.status}: ${answer.error || response.statusText}`;
  } catch (error) {
    return "clip: " + error.message;
  }
}

function momentCard(moment) {
  const start = new Date(moment.start);
  const end = new Date(moment.end);
  const card = element("li", "moment");
  card.dataset.camera = moment.camera_id;
  card.dataset.start = moment.start;

  const media = element("div", "media");
  const image = element("img");
  image.alt = `${moment.camera_id} at ${formatTime(start)}`;
  image.src = withToken(moment.thumbnail);
  media.append(image);

  const head = element("div", "name");
  head.append(element("span", "score", moment.score.toFixed(2)), element("span", "camera", moment.camera_id));
  head.firstChild.title = "score";

  const span = element("div", "span");
  const sameDay = formatDate(start) === formatDate(end);
  span.append(
    timeElement(start, formatTime(start)),
    document.createTextNode(" → "),
    timeElement(end, sameDay ? formatClock(end) : formatTime(end)),
    element("span", "facts", ` (${formatDuration(end - start)}, ${moment.windows} window${moment.windows === 1 ? "" : "s"})`),
  );

  const evidence = element("div", "evidence");
  const words = new Set((moment.evidence.words || []).map((word) => word.toLowerCase()));
  for (const line of moment.evidence.ocr || []) evidence.append(highlighted("div", "ocr", line, words));
  if (moment.evidence.caption) evidence.append(highlighted("div", "caption", moment.evidence.caption, words));
  if (moment.evidence.tags && moment.evidence.tags.length) {
    const tags = element("div", "tags");
    for (const tag of moment.evidence.tags) tags.append(element("span", "tag", tag));
    evidence.append(tags);
  }
  if (words.size) evidence.append(element("div", "facts", "matched: " + [...words].join(", ")));
  // Scores from the image-text encoder and the LLM rerank, when the query used them.
  const judged = [];
  if (typeof moment.evidence.visual === "number") judged.push(`looks like it: ${moment.evidence.visual.toFixed(2)}`);
  if (typeof moment.evidence.rerank === "number") judged.push(`LLM relevance: ${moment.evidence.rerank.toFixed(2)}`);
  if (judged.length) evidence.append(element("div", "facts", judged.join(" · ")));

  card.append(media, head, span, evidence);
  if (moment.clip) {
    // The clip plays inline: the thumbnail is its poster until it plays, and nothing is
    // fetched before the user asks for it.
    const video = element("video");
    video.controls = true;
    video.muted = true;
    video.playsInline = true;
    video.preload = "none";
    video.poster = withToken(moment.thumbnail);
    video.src = withToken(moment.clip);
    video.addEventListener("error", async () => {
      video.remove();
      image.hidden = false;
      media.after(element("div", "error", await clipProblem(moment.clip)));
    });
    image.hidden = true;
    media.append(video);
  }
  return card;
}

let searchNumber = 0;

// Runs one search (`request` returns the fetch promise) and shows its answer; a later search
// supersedes one still running.
async function showMoments(what, request) {
  const number = ++searchNumber;
  momentStatus.className = "";
  momentStatus.textContent = `searching ${what}…`;
  let answer;
  try {
    const response = await request();
    answer = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`${response.status}: ${answer.error || response.statusText}`);
  } catch (error) {
    if (number !== searchNumber) return;
    momentList.replaceChildren();
    momentStatus.className = "error";
    momentStatus.textContent = error.message;
    return;
  }
  if (number !== searchNumber) return;
  momentList.replaceChildren(...answer.moments.map(momentCard));
  momentStatus.replaceChildren(
    document.createTextNode(
      answer.moments.length ? `${answer.moments.length} moment${answer.moments.length === 1 ? "" : "s"} ${what}` : `no matching moments ${what}`,
    ),
    element("small", "facts", ` · ${answer.method} search over ${answer.candidates} candidates · ${answer.took_ms.toFixed(1)} ms`),
  );
}

// The filters of the form as query parameters.
function momentParams() {
  const params = new URLSearchParams({ limit: String(MOMENT_LIMIT) });
  if (cameraSelect.value) params.set("camera", cameraSelect.value);
  const since = document.getElementById("moment-since").value.trim();
  if (since) params.set("since", since);
  return params;
}

document.getElementById("moment-search").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = document.getElementById("moment-q").value.trim();
  if (!text) {
    momentStatus.className = "error";
    momentStatus.textContent = "type what to look for, or choose an image";
    return;
  }
  const params = momentParams();
  params.set("q", text);
  if (document.getElementById("moment-rerank").checked) params.set("rerank", "true");
  showMoments(`for “${text}”`, () => fetch(withToken("/api/v1/moments?" + params), { headers: authHeaders() }));
  refreshMomentCameras();
});

document.getElementById("moment-image").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (!file) return;
  // A POST sends its token in the header only.
  showMoments(`like ${file.name}`, () =>
    fetch("/api/v1/moments/by-image?" + momentParams(), {
      method: "POST",
      headers: { "Content-Type": file.type || "application/octet-stream", ...authHeaders() },
      body: file,
    }),
  );
  event.target.value = "";
});

// The timeline of one camera over a recent range: lanes of recorded spans and gaps, tracks,
// alerts and captions in an SVG strip, and the same items as a list, newest first. An item
// with a clip plays it in the player.

const timelineCamera = document.getElementById("timeline-camera");
const timelineRange = document.getElementById("timeline-range");
const timelineStatus = document.getElementById("timeline-status");
const timelineSvg = document.getElementById("timeline");
const timelineList = document.getElementById("timeline-items");
const TIMELINE_WIDTH = 1000;
const LANE_LABEL_WIDTH = 70;
const LANE_HEIGHT = 28;
const LANES = [
  { name: "video", kinds: ["recording", "gap"] },
  { name: "objects", kinds: ["object"] },
  { name: "alerts", kinds: ["alert"] },
  { name: "captions", kinds: ["caption"] },
];
// Listed items, at most (the strip shows them all).
const TIMELINE_LIST_LIMIT = 200;
let timelineLoaded = false;
let timelineNumber = 0;

async function refreshTimeline() {
  const camera = timelineCamera.value;
  if (!camera) return;
  const number = ++timelineNumber;
  const end = new Date();
  const start = new Date(end.getTime() - Number(timelineRange.value) * 1000);
  const params = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
  let answer;
  try {
    answer = await getJson(`/api/v1/streams/${encodeURIComponent(camera)}/timeline?${params}`);
  } catch (error) {
    if (number !== timelineNumber) return;
    timelineStatus.className = "error";
    timelineStatus.textContent = error.message;
    return;
  }
  if (number !== timelineNumber) return;
  timelineLoaded = true;
  drawTimeline(answer);
}

function drawTimeline(answer) {
  const start = new Date(answer.start).getTime();
  const end = new Date(answer.end).getTime();
  const height = LANES.length * LANE_HEIGHT + 18;
  const x = (ms) => LANE_LABEL_WIDTH + ((Math.min(Math.max(ms, start), end) - start) / (end - start)) * (TIMELINE_WIDTH - LANE_LABEL_WIDTH);
  timelineSvg.setAttribute("viewBox", `0 0 ${TIMELINE_WIDTH} ${height}`);
  timelineSvg.replaceChildren();
  LANES.forEach((lane, row) => {
    timelineSvg.append(
      svgElement("text", { class: "lane-label", x: 4, y: row * LANE_HEIGHT + 18 }, lane.name),
      svgElement("line", { class: "grid", x1: LANE_LABEL_WIDTH, x2: TIMELINE_WIDTH, y1: (row + 1) * LANE_HEIGHT, y2: (row + 1) * LANE_HEIGHT }),
    );
  });
  // Five ticks with local clock times.
  for (let i = 0; i <= 4; i += 1) {
    const at = start + ((end - start) * i) / 4;
    const tx = x(at);
    timelineSvg.append(
      svgElement("line", { class: "grid", x1: tx, x2: tx, y1: 0, y2: LANES.length * LANE_HEIGHT }),
      svgElement("text", { class: "axis", x: Math.min(tx + 2, TIMELINE_WIDTH - 48), y: height - 4 }, formatClock(new Date(at))),
    );
  }
  const counts = {};
  for (const item of answer.items) {
    counts[item.kind] = (counts[item.kind] || 0) + 1;
    const row = LANES.findIndex((lane) => lane.kinds.includes(item.kind));
    if (row < 0) continue;
    const x1 = x(new Date(item.start).getTime());
    const x2 = x(new Date(item.end).getTime());
    const rect = svgElement("rect", {
      class: `item ${item.kind}` + (item.clip ? " playable" : ""),
      "data-kind": item.kind,
      x: x1,
      y: row * LANE_HEIGHT + 4,
      // An instant is still a mark one can see and click.
      width: Math.max(x2 - x1, 3),
      height: LANE_HEIGHT - 8,
    });
    if (item.id) rect.dataset.id = item.id;
    rect.append(svgElement("title", {}, itemText(item)));
    // A recorded span plays from where it was clicked; anything else from its start.
    if (item.clip) rect.addEventListener("click", (event) => playItem(item, rect, item.kind === "recording" ? clickedOffset(event, rect, item) : 0));
    timelineSvg.append(rect);
  }

  const newest = [...answer.items].reverse().slice(0, TIMELINE_LIST_LIMIT);
  timelineList.replaceChildren(...newest.map((item) => {
    const entry = element("li", item.clip ? "playable" : null);
    entry.dataset.kind = item.kind;
    const when = new Date(item.start);
    entry.append(element("span", `kind ${item.kind}`, item.kind), timeElement(when, formatClock(when)), document.createTextNode(item.label));
    if (item.clip) {
      entry.title = "play its clip";
      entry.tabIndex = 0;
      entry.setAttribute("role", "button");
      entry.addEventListener("click", () => playItem(item, null));
      entry.addEventListener("keydown", (event) => {
        if (event.key !== "Enter" && event.key !== " ") return;
        event.preventDefault();
        playItem(item, null);
      });
    }
    return entry;
  }));
  const summary = Object.entries(counts).map(([kind, n]) => `${n} ${kind}${n === 1 ? "" : "s"}`).join(", ");
  timelineStatus.className = "";
  const sameDay = formatDate(new Date(start)) === formatDate(new Date(end));
  timelineStatus.textContent = `${answer.camera}: ${summary || "nothing"} from ${formatTime(new Date(start))} to `
    + (sameDay ? formatClock(new Date(end)) : formatTime(new Date(end)))
    + (answer.truncated ? " (only the newest of each kind)" : "");
}

function itemText(item) {
  const start = new Date(item.start);
  const end = new Date(item.end);
  const span = end - start >= 1000 ? ` → ${formatClock(end)} (${formatDuration(end - start)})` : "";
  return `${item.kind} at ${formatTime(start)}${span}: ${item.label}`;
}

// The player: the clip of a timeline item.
const player = document.getElementById("player");
const playerLabel = document.getElementById("player-label");
const playerError = document.getElementById("player-error");
let playing;

// Seconds into the item's clip at the point clicked.
function clickedOffset(event, rect, item) {
  const box = rect.getBoundingClientRect();
  const clip = new URL(item.clip, location.href).searchParams;
  const length = (new Date(clip.get("end")) - new Date(clip.get("start"))) / 1000;
  const fraction = box.width > 0 ? (event.clientX - box.left) / box.width : 0;
  return Math.min(Math.max(fraction, 0), 1) * (length || 0);
}

// Plays the item's clip in the player, `offset` seconds in (a media fragment, so the clip
// itself stays the item's).
function playItem(item, rect, offset = 0) {
  for (const selected of timelineSvg.querySelectorAll(".selected")) selected.classList.remove("selected");
  if (rect) rect.classList.add("selected");
  playing = item;
  playerError.textContent = "";
  const from = offset >= 1 ? ` (from ${formatClock(new Date(new Date(item.start).getTime() + offset * 1000))})` : "";
  playerLabel.textContent = itemText(item) + from;
  player.dataset.clip = item.clip;
  player.src = withToken(item.clip) + (offset >= 1 ? `#t=${offset.toFixed(1)}` : "");
  player.play().catch(() => {}); // a refused play is reported by the error event
}

player.addEventListener("error", async () => {
  const item = playing;
  if (!item || !player.getAttribute("src")) return;
  const problem = await clipProblem(item.clip);
  if (playing === item) playerError.textContent = problem;
});

document.getElementById("timeline-form").addEventListener("submit", (event) => {
  event.preventDefault();
  refreshTimeline();
});
timelineCamera.addEventListener("change", refreshTimeline);
timelineRange.addEventListener("change", refreshTimeline);

// Alerts: the newest of one camera or of all, newest first, with their acknowledgement.

const alertsCamera = document.getElementById("alerts-camera");
const alertsStatus = document.getElementById("alerts-status");
const alertsList = document.getElementById("alerts");
const ALERTS_LIMIT = 50;
let alertsLoaded = false;

async function refreshAlerts() {
  const cameras = alertsCamera.value ? [alertsCamera.value] : [...tiles.keys()];
  if (!cameras.length) return;
  let answers;
  try {
    answers = await Promise.all(cameras.map((camera) =>
      getJson(`/api/v1/alerts?${new URLSearchParams({ camera, limit: String(ALERTS_LIMIT) })}`)));
  } catch (error) {
    alertsStatus.className = "error";
    alertsStatus.textContent = error.message;
    return;
  }
  const alerts = answers.flatMap((answer) => answer.alerts)
    .sort((a, b) => new Date(b.start) - new Date(a.start))
    .slice(0, ALERTS_LIMIT);
  alertsLoaded = true;
  alertsList.replaceChildren(...alerts.map(alertEntry));
  const open = alerts.filter((alert) => !alert.acknowledged).length;
  alertsStatus.className = "";
  alertsStatus.textContent = `${alerts.length} alert${alerts.length === 1 ? "" : "s"}, ${open} not acknowledged`;
}

function alertEntry(alert) {
  const entry = element("li", "alert-entry" + (alert.acknowledged ? " acknowledged" : ""));
  entry.dataset.id = alert.message_id;
  entry.dataset.camera = alert.camera_id;
  const start = new Date(alert.start);
  const head = element("div");
  head.append(timeElement(start, formatTime(start)), element("span", "rule", alert.rule_id), element("span", "camera", alert.camera_id));
  const why = alert.reason || (alert.evidence && alert.evidence.length ? alert.evidence[0].text : alert.kind);
  entry.append(head, element("div", "reason", why));
  if (alert.acknowledged) {
    const acked = alert.acknowledged;
    const at = new Date(acked.at);
    entry.append(element("div", "acked",
      `acknowledged ${formatTime(at)}` + (acked.by ? ` by ${acked.by}` : "") + (acked.note ? `: ${acked.note}` : "")));
  } else {
    const button = element("button", "ack", "Acknowledge");
    button.type = "button";
    const problem = element("div", "error");
    button.addEventListener("click", async () => {
      button.disabled = true;
      problem.textContent = "";
      // A change: the token goes in the header only, as for adding a stream.
      const response = await fetch(`/api/v1/alerts/${encodeURIComponent(alert.message_id)}/ack`, {
        method: "POST",
        headers: { "Content-Type": "application/json", ...authHeaders() },
        body: JSON.stringify({ by: "console" }),
      }).catch((error) => ({ ok: false, status: 0, statusText: error.message, json: async () => ({}) }));
      if (!response.ok) {
        const answer = await response.json().catch(() => ({}));
        problem.textContent = `acknowledge: ${response.status}: ${answer.error || response.statusText}`;
        button.disabled = false;
        return;
      }
      refreshAlerts();
    });
    entry.append(button, problem);
  }
  if (alert.clip) {
    const play = element("button", "play", "▶ play clip");
    play.type = "button";
    play.addEventListener("click", () => playItem({ kind: "alert", start: alert.start, end: alert.end, label: `${alert.rule_id}: ${why}`, clip: alert.clip }, null));
    entry.append(play);
  }
  return entry;
}

alertsCamera.addEventListener("change", refreshAlerts);

tokenInput.addEventListener("change", refreshMomentCameras);

connectFeed();
refreshStreams();
setInterval(refreshStreams, 2000);
refreshMomentCameras();
setInterval(refreshMomentCameras, 15000);
setInterval(refreshTimeline, 15000);
setInterval(refreshAlerts, 5000);
