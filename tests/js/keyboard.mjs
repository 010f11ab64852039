// Keyboard only, no mouse: on /map, Tab to the first layer toggle, switch it off and on
// with Space, Tab on to the map, Enter shows what is in the middle, the arrow keys move it,
// + zooms; on /viewer, Tab to the 3D view, move it with the arrow keys and +, Enter.
// usage: node keyboard.mjs <server url> <lon,lat,zoom: where /map opens>
// Prints {map: {...}, viewer: {...}, pageErrors, error}.
import { openViewer, session } from "./browser.mjs";

const [base, at] = process.argv.slice(2);
const out = { map: {}, viewer: {}, pageErrors: [], error: null };

// Tab until `test` (run in the page) holds for the focused element; how many Tabs it took
// (null: not within `most`).
async function tabTo(page, test, most = 40) {
  for (let n = 1; n <= most; n++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate(test)) return n;
  }
  return null;
}

await session(out, async (page) => {
  await page.goto(`${base}/map?at=${at}`, { waitUntil: "load", timeout: 60_000 });
  await page.waitForFunction(() => window.oupMap && (window.oupMap.ready || window.oupMap.error),
                             null, { timeout: 120_000, polling: 250 });
  const m = out.map;
  m.height = await page.evaluate(() => document.getElementById("map").clientHeight);
  m.toggleTabs = await tabTo(page, () => document.activeElement.matches("#layers input"));
  m.toggle = await page.evaluate(() => {
    const input = document.activeElement, cid = input.dataset.collection;
    const layer = window.oupMap.map.getStyle().layers.find((l) => l.metadata
      && l.metadata["oup:collection"] === cid);
    return { collection: cid, checked: input.checked,
             visibility: window.oupMap.map.getLayoutProperty(layer.id, "visibility") || "visible",
             layer: layer.id, focusVisible: getComputedStyle(input).outlineStyle };
  });
  await page.keyboard.press("Space");
  m.toggled = await page.evaluate((id) => ({
    checked: document.activeElement.checked,
    visibility: window.oupMap.map.getLayoutProperty(id, "visibility") || "visible" }),
    m.toggle.layer);
  await page.keyboard.press("Space");  // and on again
  m.again = await page.evaluate((id) => window.oupMap.map.getLayoutProperty(id, "visibility")
    || "visible", m.toggle.layer);
  m.mapTabs = await tabTo(page, () => document.activeElement.matches("#map canvas"));
  const view = () => page.evaluate(() => {
    const map = window.oupMap.map, c = map.getCenter();
    return { lng: c.lng, lat: c.lat, zoom: map.getZoom() };
  });
  // Enter: what is in the middle (the building /map opened on), in the attribute panel.
  // Only what is drawn can be picked, so first wait for the map's tiles (a busy machine
  // draws them seconds after the style is ready), then for the pick itself.
  await page.waitForFunction(() => window.oupMap.map.loaded() && window.oupMap.map.areTilesLoaded(),
                             null, { timeout: 60_000, polling: 250 }).catch(() => null);
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => window.oupMap.picked !== null, null, { timeout: 10_000 })
    .catch(() => null);
  m.picked = await page.evaluate(() => window.oupMap.picked);
  m.attributes = await page.evaluate(() => document.getElementById("attributes").textContent);
  m.before = await view();
  for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowRight");
  for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowUp");
  await page.waitForTimeout(1500);  // MapLibre eases each step
  m.moved = await view();
  await page.keyboard.press("+");
  await page.waitForTimeout(1500);
  m.zoomed = await view();

  const v = out.viewer;
  v.ready = await openViewer(page, `${base}/viewer`);
  v.viewTabs = await tabTo(page, () => document.activeElement === window.oup.viewer.scene.canvas);
  const camera = () => page.evaluate(() => {
    const c = window.oup.viewer.camera.positionCartographic;
    return { lon: Cesium.Math.toDegrees(c.longitude), lat: Cesium.Math.toDegrees(c.latitude),
             height: c.height };
  });
  v.before = await camera();
  for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowRight");
  await page.keyboard.press("ArrowUp");
  v.moved = await camera();
  await page.keyboard.press("+");
  v.zoomed = await camera();
  await page.keyboard.press("Enter");
  await page.waitForFunction(() => window.oup.picked !== null, null, { timeout: 20_000 })
    .catch(() => null);
  v.picked = await page.evaluate(() => window.oup.picked);
});
