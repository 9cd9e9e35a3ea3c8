// Drives the Argus console in headless Chromium: enters the API token, adds a stream through
// the form, waits for its tile to go live with a thumbnail and for the live feed to show its
// results, checks that a hostile stream id is shown as text (not markup), and saves a
// screenshot. Usage: node check_console.mjs URL TOKEN SCREENSHOT
import { createRequire } from "node:module";

const require = createRequire(process.env.ARGUS_NODE_MODULES + "/");
const { chromium } = require("playwright-core");

const [url, token, screenshot] = process.argv.slice(2);
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
