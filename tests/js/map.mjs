// Headless Chromium opens OUP's /map offline (every other origin refused), waits for the
// style, the tiles and the live sensors, reads the toggles and legends, clicks a building
// where one is drawn, screenshots the attributes shown, then works the toggles: unticks
// the buildings and the sensors, ticks the (initially hidden) kerncijfers.
// usage: node map.mjs <server url> <screenshot.png>
// Prints {ready, layers, legend, sensors, picked, attributes, toggled, viewerLink, foreign,
// consoleErrors, pageErrors, error}.
import { offline, session } from "./browser.mjs";

const [base, shot] = process.argv.slice(2);
const out = { ready: false, layers: [], legend: null, sensors: null, picked: null,
              attributes: null, toggled: null, viewerLink: null,
              foreign: [], consoleErrors: [], pageErrors: [], error: null };

// What the map draws of collection `cid` now (after the next frame): the visibility of its
// style layers, and how many of its features are rendered on the canvas.
const drawn = (page, cid) => page.evaluate(async (cid) => {
  const m = oupMap.map;
  await new Promise((done) => { m.once("idle", done); m.triggerRepaint(); });
  const ids = m.getStyle().layers.filter((l) => l.metadata &&
    (l.metadata["oup:collection"] === cid || l.metadata["oup:live"] === cid)).map((l) => l.id);
  return { visibility: Object.fromEntries(ids.map((id) => [id, m.getLayoutProperty(id, "visibility") ?? "visible"])),
           rendered: m.queryRenderedFeatures({ layers: ids }).length,
           markers: [...document.querySelectorAll(".sensor-label")]
             .filter((el) => el.checkVisibility()).length };
}, cid);
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
    // each toggle's row as the page shows it: title, ticked or not, and its legend
    legend: Object.fromEntries([...document.querySelectorAll("#layers input")].map((i) => {
      const row = i.closest("#layers > div");
      return [i.dataset.collection, {
        title: i.parentElement.textContent.trim(), checked: i.checked,
        shown: row.querySelector(".legend").checkVisibility(),
        entries: [...row.querySelectorAll(".legend > div")].map((e) => ({
          label: e.textContent.trim(), shown: e.checkVisibility(),
          colour: getComputedStyle(e.querySelector(".swatch")).backgroundColor })) }];
    })),
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
    // what the attributes panel shows, as text
    out.attributes = await page.evaluate(() => {
      const panel = document.getElementById("attributes");
      return { shown: panel.checkVisibility(), heading: panel.querySelector("b")?.textContent ?? null,
               link: panel.querySelector("a")?.getAttribute("href") ?? null,
               rows: Object.fromEntries([...panel.querySelectorAll("tr")].map((tr) =>
                 [...tr.querySelectorAll("td")].map((td) => td.textContent))) };
    });
  }
  await page.screenshot({ path: shot });
  // the toggles, ticked and unticked by real clicks: before and after
  out.toggled = {};
  for (const [cid, tick] of [["buildings", false], ["sensors", false], ["kerncijfers", true]]) {
    const before = await drawn(page, cid);
    const box = page.locator(`#layers input[data-collection="${cid}"]`);
    await (tick ? box.check() : box.uncheck());
    out.toggled[cid] = { before, after: await drawn(page, cid) };
  }
});
