// Headless Chromium opens OUP's HTML pages with every request to another origin refused
// (and recorded), as on a city intranet without internet.
// usage: node pages.mjs <server url> <screenshot folder> <path>...
// Prints {pages: {path: {status, foreign, consoleErrors, pageErrors, map}}, pageErrors, error}.
import { offline, session } from "./browser.mjs";

const [base, shots, ...paths] = process.argv.slice(2);
const origin = new URL(base).origin;
const out = { pages: {}, pageErrors: [], error: null };
await session(out, async (page) => {
  const holder = { sink: null };
  await offline(page, origin, holder);
  for (const [i, path] of paths.entries()) {
    const current = holder.sink = { status: null, foreign: [], consoleErrors: [],
                                    pageErrors: [], map: null };
    out.pages[path] = current;
    const response = await page.goto(base + path, { waitUntil: "load", timeout: 60_000 });
    current.status = response.status();
    if (await page.$("#oup-map")) {
      // the map is done when its style, the city's tiles and the page's features are drawn
      await page.waitForFunction(() => {
        const m = window.oupMap;
        return m && document.getElementById("oup-map").dataset.ready === "true"
          && m.loaded() && m.areTilesLoaded();
      }, null, { timeout: 60_000, polling: 250 });
      current.map = await page.evaluate(() => {
        const m = window.oupMap;
        const own = ["features-fill", "features-line", "features-point"].filter((id) => m.getLayer(id));
        return { features: own.length ? m.queryRenderedFeatures({ layers: own }).length : 0,
                 city: m.queryRenderedFeatures().filter((f) => f.source === "city").length };
      });
    } else if (path.startsWith("/openapi")) {
      await page.waitForSelector(".swagger-ui .info", { timeout: 60_000 });
    } else if (path.startsWith("/viewer")) {
      await page.waitForFunction(() => window.oup && (window.oup.ready || window.oup.error),
                                 null, { timeout: 180_000, polling: 500 });
    }
    await page.screenshot({ path: `${shots}/page-${i}.png` });
  }
});
