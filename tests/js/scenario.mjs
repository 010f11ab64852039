// Headless Chromium opens /viewer and /map, each with ?scenario=<id> and without, as a
// planner (X-API-Key), and says what is drawn at given places: in 3D, what a pick straight
// down onto each place's roof hits (a scenario's block, a building of the tiles, the
// terrain's ground, or nothing); on the map, which layers hold a feature there.
// usage: node scenario.mjs <server> <api key> <scenario id> <places as JSON>
//   places: [{name, lon, lat, top}] (top: metres above the ellipsoid)
// Prints {viewer: {with, without}, map: {with, without}, scenario, error, pageErrors}.
import { openViewer, session } from "./browser.mjs";

const [server, key, id, placesJson] = process.argv.slice(2);
const places = JSON.parse(placesJson);
const out = { viewer: {}, map: {}, scenario: null, error: null, pageErrors: [] };

// what a pick straight down onto (lon, lat, top - 0.5 m) hits, with the camera 250 m above
const pickDown = (page, p) => page.evaluate(async (p) => {
  const v = oup.viewer;
  v.camera.setView({ destination: Cesium.Cartesian3.fromDegrees(p.lon, p.lat, p.top + 250),
                     orientation: { heading: 0, pitch: -Cesium.Math.PI_OVER_TWO, roll: 0 } });
  for (let i = 0; i < 600 && !oup.loaded(); i++) {  // the tiles seen from there (<= 60 s)
    v.scene.render();
    await new Promise((r) => setTimeout(r, 100));
  }
  v.scene.render();
  const at = Cesium.SceneTransforms.worldToWindowCoordinates(
    v.scene, Cesium.Cartesian3.fromDegrees(p.lon, p.lat, p.top - 0.5));
  const hit = v.scene.pick(at);
  if (hit instanceof Cesium.Cesium3DTileFeature) {  // a building, or the terrain's ground
    return hit.getProperty("type") === "Building" ? { building: String(hit.getProperty("id")) }
      : { ground: String(hit.getProperty("id")) };
  }
  if (hit && hit.id instanceof Cesium.Entity) return { entity: hit.id.id };
  return null;
}, p);

// the map's layers with a feature at each place, at zoom 18 centred on it
const layersAt = (page, p) => page.evaluate(async (p) => {
  const m = oupMap.map;
  m.jumpTo({ center: [p.lon, p.lat], zoom: 18 });
  for (let i = 0; i < 600 && !(m.loaded() && m.areTilesLoaded()); i++) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const hits = m.queryRenderedFeatures(m.project([p.lon, p.lat]));
  return hits.map((f) => ({ layer: f.layer.id, id: f.id ?? null }));
}, p);

await session(out, async (page) => {
  for (const [name, url] of [["with", `${server}/viewer?scenario=${id}`],
                             ["without", `${server}/viewer`]]) {
    if (!(await openViewer(page, url))) throw new Error(await page.evaluate(() => oup.error));
    if (name === "with") {
      await page.waitForFunction(() => oup.scenario !== null || oup.error, null,
                                 { timeout: 60_000, polling: 200 });
      out.scenario = await page.evaluate(() => ({ ...oup.scenario, error: oup.error,
        status: document.getElementById("scenario").textContent }));
    }
    out.viewer[name] = {};
    for (const p of places) out.viewer[name][p.name] = await pickDown(page, p);
  }
  for (const [name, url] of [["with", `${server}/map?scenario=${id}`], ["without", `${server}/map`]]) {
    await page.goto(url, { waitUntil: "load", timeout: 60_000 });
    await page.waitForFunction(() => window.oupMap && (oupMap.error || (oupMap.ready &&
      (!location.search.includes("scenario") || oupMap.scenario !== null))),
      null, { timeout: 120_000, polling: 200 });
    const error = await page.evaluate(() => oupMap.error);
    if (error) throw new Error(error);
    out.map[name] = {};
    for (const p of places) out.map[name][p.name] = await layersAt(page, p);
  }
}, { "X-API-Key": key });
