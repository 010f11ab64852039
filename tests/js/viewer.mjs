// Headless Chromium opens the OUP viewer, waits for the tileset, clicks a building.
// usage: node viewer.mjs <viewer url> <screenshot.png>
// Prints {ready, tiles, picked, sensors, consoleErrors, pageErrors, error}.
import { clickBuilding, openViewer, session } from "./browser.mjs";

const [url, shot] = process.argv.slice(2);
const out = { ready: false, tiles: 0, picked: null, sensors: null, consoleErrors: [],
              pageErrors: [], error: null };
await session(out, async (page) => {
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  await openViewer(page, url);
  Object.assign(out, await page.evaluate(() => ({ ready: oup.ready, tiles: oup.tiles, error: oup.error })));
  if (out.ready) {
    out.picked = await clickBuilding(page);
    // the live sensors' labels, once the first refresh is done
    await page.waitForFunction(() => window.oup.sensors !== null || window.oup.error,
                               null, { timeout: 60_000, polling: 500 });
    Object.assign(out, await page.evaluate(() => ({ sensors: oup.sensors, error: oup.error })));
  }
  await page.screenshot({ path: shot });
});
