// Headless Chromium opens the OUP viewer, waits for the tileset, clicks a building.
// usage: node viewer.mjs <viewer url> <screenshot.png>
// Prints {ready, tiles, picked, sensors, consoleErrors, pageErrors, error}.
import { clickBuilding, launch } from "./browser.mjs";

const [url, shot] = process.argv.slice(2);
const browser = await launch();
const out = { ready: false, tiles: 0, picked: null, sensors: null, consoleErrors: [],
              pageErrors: [], error: null };
try {
  const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => out.pageErrors.push(String(e)));
  await page.goto(url, { waitUntil: "load", timeout: 60_000 });
  await page.waitForFunction(() => window.oup && (window.oup.ready || window.oup.error),
                             null, { timeout: 180_000, polling: 500 });
  Object.assign(out, await page.evaluate(() => ({ ready: oup.ready, tiles: oup.tiles, error: oup.error })));
  if (out.ready) {
    out.picked = await clickBuilding(page);
    // the live sensors' labels, once the first refresh is done
    await page.waitForFunction(() => window.oup.sensors !== null || window.oup.error,
                               null, { timeout: 60_000, polling: 500 });
    Object.assign(out, await page.evaluate(() => ({ sensors: oup.sensors, error: oup.error })));
  }
  await page.screenshot({ path: shot });
} catch (e) {
  out.error = String(e);
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
