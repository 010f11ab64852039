// Headless Chromium opens the OUP viewer on a city-sized tileset and counts what it costs.
// usage: node city.mjs <viewer url> <screenshot.png> [search step] [search margin]
// Waits until the tileset has settled (everything the view needs is loaded and no tile
// has been asked for in 3 s), then clicks a building. Prints {ready, error, tileBytes,
// totalBytes, tileRequests, visible, picked}: the bytes the browser received (encoded, as
// sent over the wire) for the tileset and for everything, and the content drawn.
import { clickBuilding, openViewer, session } from "./browser.mjs";

const [url, shot, step, margin] = process.argv.slice(2);
const out = { ready: false, error: null, tileBytes: 0, totalBytes: 0, tileRequests: [],
              visible: [], picked: null, pageErrors: [] };
let lastTileRequest = Date.now();
await session(out, async (page) => {
  page.on("request", (r) => { if (r.url().includes("/3dtiles/")) lastTileRequest = Date.now(); });
  page.on("requestfinished", async (r) => {
    const sizes = await r.sizes();
    const bytes = sizes.responseBodySize + sizes.responseHeadersSize;
    out.totalBytes += bytes;
    if (r.url().includes("/3dtiles/")) {
      out.tileBytes += bytes;
      out.tileRequests.push(new URL(r.url()).pathname);
    }
  });
  out.ready = await openViewer(page, url, 240_000);
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {  // settled: all loaded, and quiet for 3 s
    const loaded = await page.evaluate(() => window.oup.loaded());
    if (loaded && Date.now() - lastTileRequest > 3000) break;
    await page.waitForTimeout(500);
  }
  out.visible = await page.evaluate(() => window.oup.drawn());
  out.picked = await clickBuilding(page, Number(step || 0.05), Number(margin || 0.3));
  out.error = await page.evaluate(() => window.oup.error);
  await page.screenshot({ path: shot });
});
