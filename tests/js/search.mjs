// Headless Chromium opens /map (or /viewer) offline, finds the search box by its
// accessible name (as a screen reader would), types <words>, presses Enter, waits until
// the view has come to the best hit, then reads where a point of the hit (<lon,lat>:
// given by the caller, from the items API) is on screen. Then the keyboard alone:
// ArrowDown into the hits, Enter on the first: the view goes there again.
// usage: node search.mjs <page url> <map|viewer> <words> <lon,lat>
// Prints {label, hits, flown, point, view, zoom, zoomBefore, status, focused, again, foreign,
// consoleErrors, pageErrors, error}.
import { offline, session } from "./browser.mjs";

const [url, kind, words, at] = process.argv.slice(2);
const [lon, lat] = at.split(",").map(Number);
const out = { label: null, hits: null, flown: null, point: null, view: null, zoom: null,
              focused: null, again: null, foreign: [], consoleErrors: [], pageErrors: [],
              error: null };
const st = kind === "map" ? "oupMap" : "oup";

// where (lon, lat) is on the page's canvas, and the part of it the panel leaves free
const where = (page) => page.evaluate(([s, x, y]) => {
  const panel = document.getElementById("panel").getBoundingClientRect();
  if (s === "oupMap") {
    const m = oupMap.map, p = m.project([x, y]), c = m.getCanvas();
    return { point: [p.x, p.y], zoom: m.getZoom(),
             view: [panel.right, 0, c.clientWidth, c.clientHeight] };
  }
  const v = oup.viewer, c = v.scene.canvas;
  const p = Cesium.SceneTransforms.worldToWindowCoordinates(v.scene,
    Cesium.Cartesian3.fromDegrees(x, y, 0));
  return { point: p ? [p.x, p.y] : null, zoom: v.camera.positionCartographic.height,
           view: [0, 0, panel.left, c.clientHeight] };
}, [st, lon, lat]);

await session(out, async (page) => {
  await offline(page, new URL(url).origin, { sink: out });
  await page.goto(url, { waitUntil: "load", timeout: 60_000 });
  await page.waitForFunction((s) => window[s] && (window[s].error || window[s].ready), st,
                             { timeout: 240_000, polling: 200 });
  const before = await where(page);
  out.zoomBefore = before.zoom;
  const box = page.getByRole("searchbox", { name: "Search places and features" });
  out.label = await box.evaluate((el) => el.labels[0].textContent);
  await box.click();
  await page.keyboard.type(words);
  await page.keyboard.press("Enter");
  await page.waitForFunction((s) => window[s].error || window.oupSearch.state.error ||
                             (window.oupSearch.state.picked &&
                              window[s].flown === window.oupSearch.state.picked.id),
                             st, { timeout: 60_000, polling: 100 });
  out.hits = await page.evaluate(() => oupSearch.state.hits.map((h) => h.properties.title));
  out.flown = await page.evaluate((s) => window[s].flown, st);
  Object.assign(out, await where(page));
  out.status = await page.locator("#search-status").textContent();
  // the keyboard alone: from the box into the hits, the first chosen again with Enter
  await box.focus();
  await page.evaluate((s) => { window[s].flown = null; }, st);
  await page.keyboard.press("ArrowDown");
  out.focused = await page.evaluate(() => document.activeElement.textContent);
  await page.keyboard.press("Enter");
  await page.waitForFunction((s) => window[s].flown === window.oupSearch.state.hits[0].id,
                             st, { timeout: 60_000, polling: 100 });
  out.again = await page.evaluate((s) => window[s].flown, st);
});
