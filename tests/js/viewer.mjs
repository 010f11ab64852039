// Headless Chromium opens the OUP viewer, waits for the tileset, clicks a building, then
// follows the link to the 2D map: where it points as the viewer opens, where after the
// camera is put straight above a known place, and where /map opens when it is clicked.
// usage: node viewer.mjs <viewer url> <screenshot.png>
// Prints {ready, tiles, picked, sensors, toMap, consoleErrors, pageErrors, error}.
import { clickBuilding, openViewer, session } from "./browser.mjs";

const [url, shot] = process.argv.slice(2);
const out = { ready: false, tiles: 0, picked: null, sensors: null, toMap: null,
              consoleErrors: [], pageErrors: [], error: null };
// the link to /map, and where the camera is (degrees, metres; the canvas' height in pixels)
const toMap = (page) => page.evaluate(() => {
  const c = oup.viewer.camera.positionCartographic;
  return { href: document.getElementById("to-map").getAttribute("href"),
           camera: [Cesium.Math.toDegrees(c.longitude), Cesium.Math.toDegrees(c.latitude), c.height],
           pixels: oup.viewer.canvas.clientHeight };
});
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
  if (out.ready) {
    out.toMap = { opened: await toMap(page) };
    // straight down on a known place, 600 m up: the link follows
    await page.evaluate(() => oup.viewer.camera.setView({
      destination: Cesium.Cartesian3.fromDegrees(4.4512, 51.9087, 600),
      orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 } }));
    await page.waitForFunction((before) => document.getElementById("to-map").getAttribute("href")
      !== before, out.toMap.opened.href, { timeout: 30_000, polling: 100 });
    out.toMap.moved = await toMap(page);
    // a real click on it opens /map there
    await page.click("#to-map");
    await page.waitForURL(/\/map\?at=/, { timeout: 30_000 });
    await page.waitForFunction(() => window.oupMap && (window.oupMap.map || window.oupMap.error),
                               null, { timeout: 60_000, polling: 100 });
    out.toMap.map = await page.evaluate(() => {
      const m = oupMap.map, c = m && m.getCenter();
      return { url: location.pathname + location.search, error: oupMap.error,
               center: c && [c.lng, c.lat], zoom: m && m.getZoom() };
    });
  }
});
