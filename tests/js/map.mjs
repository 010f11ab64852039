// Headless Chromium opens OUP's /map offline (every other origin refused), waits for the
// style, the tiles and the live sensors, clicks a building where one is drawn, and
// screenshots the attributes shown.
// usage: node map.mjs <server url> <screenshot.png>
// Prints {ready, layers, sensors, picked, viewerLink, foreign, consoleErrors, pageErrors, error}.
import { offline, session } from "./browser.mjs";

const [base, shot] = process.argv.slice(2);
const out = { ready: false, layers: [], sensors: null, picked: null, viewerLink: null,
              foreign: [], consoleErrors: [], pageErrors: [], error: null };
await session(out, async (page) => {
  await offline(page, new URL(base).origin, { sink: out });
  await page.goto(`${base}/map?at=4.4535,51.9065,17`, { waitUntil: "load", timeout: 60_000 });
  await page.waitForFunction(() => window.oupMap && (window.oupMap.error ||
      (window.oupMap.ready && window.oupMap.map.loaded() && window.oupMap.map.areTilesLoaded())),
    null, { timeout: 120_000, polling: 250 });
  Object.assign(out, await page.evaluate(() => ({
    ready: oupMap.ready, error: oupMap.error, sensors: oupMap.sensors,
    layers: [...document.querySelectorAll("#layers input")].map((i) => i.dataset.collection),
    viewerLink: document.getElementById("to-viewer").getAttribute("href"),
  })));
  // a spot where a building is drawn, on a coarse grid over the canvas
  const spot = await page.evaluate(() => {
    const m = oupMap.map, c = m.getCanvas().getBoundingClientRect();
    for (let y = 0.3; y < 0.8; y += 0.05) {
      for (let x = 0.35; x < 0.9; x += 0.05) {
        const p = [c.width * x, c.height * y];
        if (m.queryRenderedFeatures(p, { layers: ["buildings-fill"] }).length) {
          return { x: c.left + p[0], y: c.top + p[1] };
        }
      }
    }
    return null;
  });
  if (spot) {
    await page.mouse.click(spot.x, spot.y);
    await page.waitForFunction(() => window.oupMap.picked !== null, null, { timeout: 30_000 });
    out.picked = await page.evaluate(() => window.oupMap.picked);
  }
  await page.screenshot({ path: shot });
});
