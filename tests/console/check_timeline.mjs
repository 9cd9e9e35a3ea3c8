// Drives the Argus console's timeline, player and alerts in headless Chromium: the tile of
// CAMERA shows CAPTION (its newest caption, as text); the timeline shows the camera's
// recorded spans, gap, tracks, alerts and captions; clicking an item sets the player's source
// to the item's clip link (and the clip loads where the clips endpoint serves it), from the
// keyboard too, and a recorded span from the point clicked; the alerts
// list shows ALERT_ID and acknowledges it (where the acknowledgement endpoint exists); a
// screenshot is saved.
// Usage: node check_timeline.mjs URL TOKEN SCREENSHOT CAMERA ALERT_ID CAPTION
import { createRequire } from "node:module";

const require = createRequire(process.env.ARGUS_NODE_MODULES + "/");
const { chromium } = require("playwright-core");

const [url, token, screenshot, camera, alertId, caption] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.ARGUS_CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox"],
});
const failures = [];
const violations = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("pageerror", (error) => failures.push("page error: " + error.message));
  page.on("console", (message) => {
    if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
  });
  page.on("dialog", (dialog) => { failures.push("a dialog opened: " + dialog.message()); dialog.dismiss(); });
  await page.goto(url);
  await page.fill("#token", token);
  await page.dispatchEvent("#token", "change");

  // The newest caption on the camera's tile.
  const tileCaption = `.tile[data-stream="${camera}"] .caption`;
  try {
    await page.waitForFunction(({ tileCaption, caption }) => {
      const node = document.querySelector(tileCaption);
      return node && node.textContent.includes(caption);
    }, { tileCaption, caption }, { timeout: 20000 });
  } catch (error) {
    throw new Error(`the tile does not show the caption (${error.message})`);
  }
  console.log(`tile caption ok: ${await page.textContent(tileCaption)}`);

  // The timeline of the camera: every kind is drawn.
  await page.waitForSelector(`#timeline-camera option[value="${camera}"]`, { state: "attached", timeout: 10000 });
  await page.selectOption("#timeline-camera", camera);
  const kinds = ["recording", "gap", "object", "alert", "caption"];
  try {
    await page.waitForFunction((kinds) => kinds.every((kind) => document.querySelector(`#timeline rect[data-kind="${kind}"]`)), kinds, { timeout: 15000 });
  } catch (error) {
    const shown = await page.$eval("#timeline-section", (section) => section.innerText);
    throw new Error(`the timeline lacks a kind (${error.message}); shown:\n${shown}`);
  }
  const drawn = await page.$$eval("#timeline rect.item", (rects) => rects.map((r) => r.dataset.kind));
  const listed = await page.$$eval("#timeline-items li", (items) => items.map((i) => i.textContent));
  if (!listed.some((text) => text.includes(caption))) failures.push("the item list lacks the caption: " + listed.join(" | "));
  if (await page.$("#timeline-items li b, #timeline-items li img")) failures.push("an item label was rendered as HTML");
  console.log(`timeline ok: ${drawn.join(", ")}; ${await page.textContent("#timeline-status")}`);

  // Clicking the alert plays its clip in the player.
  const expected = await page.evaluate(async ({ camera, alertId, token }) => {
    const end = new Date();
    const start = new Date(end.getTime() - 3600 * 1000);
    const params = new URLSearchParams({ start: start.toISOString(), end: end.toISOString() });
    const answer = await (await fetch(`/api/v1/streams/${camera}/timeline?${params}`, { headers: { Authorization: "Bearer " + token } })).json();
    return answer.items.find((item) => item.id === alertId).clip;
  }, { camera, alertId, token });
  await page.click(`#timeline rect.alert.playable[data-id="${alertId}"]`);
  const player = await page.$eval("#player", (video) => ({ clip: video.dataset.clip, src: video.src }));
  const wanted = new URL(`${expected}&access_token=${encodeURIComponent(token)}`, url);
  if (player.clip !== expected || player.src !== wanted.href) {
    failures.push(`the player plays ${player.src}, not the alert's clip ${wanted.href}`);
  }
  const label = await page.textContent("#player-label");
  if (!label.includes("dock-sign")) failures.push("the player's label: " + label);
  console.log(`player src ok: ${player.clip}`);

  // A recorded span plays from where it is clicked: three quarters into a 20 s span is about
  // 15 s into its clip (the span is a few pixels wide in an hour: a pixel is seconds).
  const recording = await page.$$("#timeline rect.recording.playable");
  const box = await recording[0].boundingBox();
  await page.mouse.click(box.x + box.width * 0.75, box.y + box.height / 2);
  const seek = await page.$eval("#player", (video) => ({ clip: video.dataset.clip, src: video.src }));
  const offset = Number((seek.src.match(/#t=([\d.]+)$/) || [])[1]);
  if (!seek.clip.startsWith(`/api/v1/clips?camera=${camera}&`) || !(offset >= 8 && offset <= 20)) {
    failures.push(`clicking a recorded span 3/4 in plays ${seek.src}`);
  }
  console.log(`recorded span plays from ${offset} s into ${seek.clip}`);
  // The item list plays from the keyboard too: the caption's entry, focused, Enter.
  const entryOfCaption = page.locator("#timeline-items li.playable", { hasText: caption });
  await entryOfCaption.focus();
  await page.keyboard.press("Enter");
  const byKeyboard = await page.textContent("#player-label");
  if (!byKeyboard.includes(caption)) failures.push("Enter on the caption's entry plays: " + byKeyboard);
  await page.click(`#timeline rect.alert.playable[data-id="${alertId}"]`);

  // The alert's clip, as the server answers it (named in the failure if the player fails).
  const served = await page.evaluate(async ({ expected, token }) => {
    const response = await fetch(expected, { headers: { Authorization: "Bearer " + token } });
    return { status: response.status };
  }, { expected, token });
  try {
    await page.waitForFunction(() => document.getElementById("player").readyState >= 1, null, { timeout: 20000 });
    const size = await page.$eval("#player", (v) => `${v.videoWidth}x${v.videoHeight}, ${v.duration.toFixed(1)} s`);
    console.log(`player plays the clip (${size})`);
  } catch {
    failures.push(`the clip (answered ${served.status}) did not load in the player: ${await page.textContent("#player-error")}`);
  }

  // The alerts list: the alert, then acknowledged.
  const entry = `.alert-entry[data-id="${alertId}"]`;
  await page.waitForSelector(entry, { timeout: 15000 });
  const shown = await page.textContent(entry);
  if (!shown.includes("dock-sign") || !shown.includes(camera)) failures.push("the alert entry: " + shown);
  await page.click(`${entry} button.ack`);
  await page.waitForFunction((entry) => {
    const node = document.querySelector(entry);
    return node && (node.querySelector(".acked") || node.querySelector(".error").textContent);
  }, entry, { timeout: 10000 });
  const acked = await page.$(`${entry} .acked`);
  if (acked) {
    console.log(`alerts ok: acknowledged: ${await acked.textContent()}`);
  } else {
    failures.push("acknowledging failed: " + (await page.textContent(`${entry} .error`)));
  }

  await page.screenshot({ path: screenshot, fullPage: true });
} catch (error) {
  failures.push(error.message);
} finally {
  await browser.close();
}
if (violations.length) failures.push("CSP violations: " + violations.join("\n"));
if (failures.length) {
  console.error(failures.join("\n"));
  process.exit(1);
}
