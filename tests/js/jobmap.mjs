// Headless Chromium opens /map?collection=<id> as a signed-in caller (their API key on
// every request the page makes), waits for the style and tiles, and reads what the map
// shows of that collection: its toggle and legend, and the features drawn on the canvas.
// usage: node jobmap.mjs <server url> <collection id> <API key>
// Prints {ready, layers, legend, areas, bounds, foreign, consoleErrors, pageErrors, error}.
import { offline, session } from "./browser.mjs";

const [base, cid, key] = process.argv.slice(2);
const out = { ready: false, layers: [], legend: null, areas: null, bounds: null,
              foreign: [], consoleErrors: [], pageErrors: [], error: null };
await session(out, async (page) => {
  await page.setExtraHTTPHeaders({ "X-API-Key": key });
  await offline(page, new URL(base).origin, { sink: out });
  await page.goto(`${base}/map?collection=${encodeURIComponent(cid)}`,
                  { waitUntil: "load", timeout: 60_000 });
  await page.waitForFunction(() => window.oupMap && (window.oupMap.error ||
      (window.oupMap.ready && window.oupMap.map.loaded() && window.oupMap.map.areTilesLoaded())),
    null, { timeout: 120_000, polling: 250 });
  Object.assign(out, await page.evaluate(async (cid) => {
    const m = oupMap.map;
    await new Promise((done) => { m.once("idle", done); m.triggerRepaint(); });
    const ids = m.getStyle().layers.filter((l) => l.metadata?.["oup:collection"] === cid)
      .map((l) => l.id);
    const row = document.querySelector(`#layers input[data-collection="${CSS.escape(cid)}"]`)
      ?.closest("#layers > div");
    const b = m.getBounds();
    return {
      ready: oupMap.ready, error: oupMap.error,
      layers: [...document.querySelectorAll("#layers input")].map((i) => i.dataset.collection),
      legend: row ? [...row.querySelectorAll(".legend > div")].map((e) => e.textContent.trim()) : null,
      areas: [...new Set(m.queryRenderedFeatures({ layers: ids.filter((id) => id.endsWith("-fill")) })
        .map((f) => f.properties.area))],
      bounds: [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()],
    };
  }, cid));
});
