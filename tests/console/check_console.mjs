// Drives the Argus console in headless Chromium: enters the API token, adds a stream through
// the form, waits for its tile to go live with a thumbnail and for the live feed to show its
// results and the zone and line drawn through the API over its thumbnail (and tracked boxes
// over the sample street camera's), checks that a hostile stream id is shown as text (not markup), searches the moment
// index of CAMERA for QUERY (a result card quoting the words of EXPECTED, with a loaded thumbnail; its clip
// plays inline if the server offers one), and saves a screenshot.
// Usage: node check_console.mjs URL TOKEN SCREENSHOT [CAMERA QUERY EXPECTED]
import { createRequire } from "node:module";

const require = createRequire(process.env.ARGUS_NODE_MODULES + "/");
const { chromium } = require("playwright-core");

const [url, token, screenshot, camera, query, expected] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.ARGUS_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const failures = [];
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  page.on("pageerror", (error) => failures.push("page error: " + error.message));
  page.on("dialog", (dialog) => { failures.push("a dialog opened: " + dialog.message()); dialog.dismiss(); });
  await page.goto(url);
  await page.fill("#token", token);
  await page.dispatchEvent("#token", "change");

  // A zone and a line on the camera about to be added, drawn through the API.
  const drawn = await page.evaluate(async (token) => {
    const put = (path, body) => fetch(path, {
      method: "PUT",
      headers: { "Content-Type": "application/json", Authorization: "Bearer " + token },
      body: JSON.stringify(body),
    }).then((response) => response.status);
    return [
      await put("/api/v1/streams/door/zones/doorway", { points: [[0.1, 0.2], [0.5, 0.2], [0.5, 0.9], [0.1, 0.9]] }),
      await put("/api/v1/streams/door/lines/threshold", { from: [0.6, 0.1], to: [0.6, 0.9] }),
    ];
  }, token);
  if (drawn.join() !== "200,200") failures.push("drawing a zone and a line answered " + drawn.join());

  await page.fill("#new-id", "door");
  await page.fill("#new-uri", "test:ball?width=320&height=180&fps=5");
  await page.fill("#new-fps", "2");
  await page.click("#add-stream button");
  await page.waitForSelector("#add-result:has-text('added door')", { timeout: 10000 });

  // The tile goes live and shows a decoded thumbnail.
  await page.waitForSelector('.tile[data-stream="door"][data-state="running"]', { timeout: 30000 });
  await page.waitForFunction(() => {
    const image = document.querySelector('.tile[data-stream="door"] img');
    return image && image.complete && image.naturalWidth === 320;
  }, null, { timeout: 30000 });
  // The zone and the line are drawn over the thumbnail, where the frame shows them.
  await page.waitForSelector('.tile[data-stream="door"] .overlay .zone[data-zone="doorway"] polygon', { state: "attached", timeout: 10000 });
  await page.waitForSelector('.tile[data-stream="door"] .overlay .line[data-line="threshold"] line', { state: "attached", timeout: 10000 });
  const placed = await page.evaluate(() => {
    const overlay = document.querySelector('.tile[data-stream="door"] .overlay');
    const image = document.querySelector('.tile[data-stream="door"] img').getBoundingClientRect();
    const zone = overlay.querySelector(".zone polygon").getBoundingClientRect();
    // The zone spans x 0.1-0.5 of the frame, which fills the image's width (320x180 in 16:9).
    return { left: (zone.left - image.left) / image.width, right: (zone.right - image.left) / image.width };
  });
  if (Math.abs(placed.left - 0.1) > 0.02 || Math.abs(placed.right - 0.5) > 0.02) {
    failures.push(`the zone is drawn at ${JSON.stringify(placed)} of the thumbnail's width, not 0.1-0.5`);
  }
  console.log(`overlay ok: zone at ${placed.left.toFixed(2)}-${placed.right.toFixed(2)} of the width`);

  // With objects on, the people on the sample street camera are boxed with their track id,
  // class and colour.
  await page.waitForSelector(".tile .overlay .track rect", { state: "attached", timeout: 30000 });
  const labels = await page.$$eval(".tile .overlay .track text", (texts) => texts.map((t) => t.textContent));
  if (!labels.some((label) => /^#\d+ person\b/.test(label))) failures.push("track labels: " + labels.join(", "));
  console.log(`tracks ok: ${labels.join(", ")}`);

  // Results arrive on the live feed (server-sent events from Redis).
  await page.waitForFunction(
    () => [...document.querySelectorAll("#feed li .camera")].filter((c) => c.textContent === "door").length >= 2,
    null,
    { timeout: 30000 },
  );

  // Markup in user input stays text.
  await page.fill("#new-id", "x");
  await page.fill("#new-uri", "<img src=x onerror=alert(1)>");
  await page.click("#add-stream button");
  await page.waitForSelector("#add-result.error", { timeout: 10000 });
  const shown = await page.textContent("#add-result");
  if (!shown.includes("400")) failures.push("a bad URI answers 400, shown: " + shown);
  if (await page.$("#add-result img")) failures.push("the error text was rendered as HTML");

  if (camera) await searchMoments(page);

  await page.screenshot({ path: screenshot, fullPage: true });
  const summary = await page.textContent("#summary");
  console.log("console ok: " + summary);
} catch (error) {
  failures.push(error.message);
} finally {
  await browser.close();
}
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}

async function searchMoments(page) {
  // The camera list comes from /api/v1/moments/cameras.
  await page.waitForSelector(`#moment-camera option[value="${camera}"]`, { state: "attached", timeout: 10000 });
  await page.selectOption("#moment-camera", camera);

  // A bad filter: the server's message, shown as text.
  await page.fill("#moment-q", query);
  await page.fill("#moment-since", "<b>soon</b>");
  await page.press("#moment-q", "Enter");
  await page.waitForSelector("#moment-status.error", { timeout: 10000 });
  const refusal = await page.textContent("#moment-status");
  if (!refusal.startsWith("400: ")) failures.push("a bad `since` answers 400, shown: " + refusal);
  if (await page.$("#moment-status b")) failures.push("the error text was rendered as HTML");

  // Nothing after the recording.
  await page.fill("#moment-since", "2100-01-01T00:00:00Z");
  await page.press("#moment-q", "Enter");
  await page.waitForSelector("#moment-status:has-text('no matching moments')", { timeout: 10000 });
  if (await page.$(".moment")) failures.push("cards shown for an empty answer");

  await page.fill("#moment-since", "");
  const card = `.moment[data-camera="${camera}"]`;

  // Search by image: a frame of the recording (its moment's thumbnail) finds the recording.
  const frame = await page.evaluate(async ({ camera, query, token }) => {
    const headers = { Authorization: "Bearer " + token };
    const params = new URLSearchParams({ q: query, camera, limit: "1" });
    const answer = await (await fetch("/api/v1/moments?" + params, { headers })).json();
    const jpeg = await (await fetch(answer.moments[0].thumbnail, { headers })).arrayBuffer();
    return Array.from(new Uint8Array(jpeg));
  }, { camera, query, token });
  await page.setInputFiles("#moment-image", { name: "frame.jpg", mimeType: "image/jpeg", buffer: Buffer.from(frame) });
  try {
    await page.waitForFunction((card) => {
      const status = document.getElementById("moment-status").textContent;
      const image = document.querySelector(`${card} .media img`);
      return /moments? like frame\.jpg/.test(status) && image && image.complete && image.naturalWidth > 0;
    }, card, { timeout: 15000 });
  } catch (error) {
    const shown = await page.$eval("#moments-section", (section) => section.innerText);
    throw new Error(`no result card for the search by image (${error.message}); shown:\n${shown}`);
  }
  const byImage = await page.textContent("#moment-status");
  console.log(`moments by image ok: ${byImage}`);

  await page.click("#moment-search button[type=submit]");
  await page.waitForSelector("#moment-status:has-text('for “')", { timeout: 15000 });
  try {
    await page.waitForFunction(({ card, expected }) => {
      const found = document.querySelector(card);
      const image = found && found.querySelector(".media img");
      // OCR may read the words as separate lines.
      const evidence = found && found.querySelector(".evidence").innerText.toLowerCase().split(/\s+/);
      return found && expected.toLowerCase().split(/\s+/).every((word) => evidence.includes(word))
        && image.complete && image.naturalWidth > 0;
    }, { card, expected }, { timeout: 15000 });
  } catch (error) {
    const shown = await page.$eval("#moments-section", (section) => section.innerText);
    throw new Error(`no result card quoting "${expected}" with a thumbnail (${error.message}); shown:\n${shown}`);
  }
  const marked = await page.$$eval(`${card} .evidence mark`, (marks) => marks.map((m) => m.textContent));
  if (!marked.length) failures.push("no query word is highlighted in the evidence");
  const status = await page.textContent("#moment-status");
  if (!/\d+ moments? for .* search over \d+ candidates · [\d.]+ ms/.test(status)) failures.push("search status: " + status);

  // A moment with a clip plays it inline: a <video controls> in the card, its thumbnail as
  // the poster, fetched only when played.
  const inline = await page.$(`${card} .media video`);
  if (inline) {
    const controls = await inline.evaluate((v) => v.controls && v.preload === "none" && v.poster !== "");
    if (!controls) failures.push("the moment's inline video has no controls or poster, or preloads");
    await inline.evaluate((v) => v.play());
    try {
      await page.waitForFunction((card) => {
        const video = document.querySelector(`${card} .media video`);
        return video && video.readyState >= 2;
      }, card, { timeout: 20000 });
      const size = await page.$eval(`${card} .media video`, (v) => `${v.videoWidth}x${v.videoHeight}`);
      console.log(`moment clip plays inline (${size})`);
    } catch (error) {
      const shown = await page.$eval(card, (c) => c.textContent);
      failures.push("the moment's clip did not play inline within 20 s: " + shown);
    }
  } else {
    const clip = await page.evaluate(async ({ camera, query, token }) => {
      const params = new URLSearchParams({ q: query, camera, limit: "1" });
      const answer = await (await fetch("/api/v1/moments?" + params, { headers: { Authorization: "Bearer " + token } })).json();
      return answer.moments[0].clip;
    }, { camera, query, token });
    if (clip) failures.push(`the moment offers a clip (${clip}) but its card has no player`);
    console.log("moment clip: none offered (clip is null or absent), play not checked");
  }
  const evidence = await page.$eval(`${card} .evidence`, (e) => e.innerText.replaceAll("\n", " | "));
  console.log(`moments ok: ${status}; top evidence: ${evidence}; marked: ${marked.join(" ")}`);
}
