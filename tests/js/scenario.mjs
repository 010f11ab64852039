// Headless Chromium opens /viewer and /map, each with ?scenario=<id> and without, as a
// planner (X-API-Key), and says what is drawn at given places: in 3D, what a pick straight
// down onto each place's roof hits (a scenario's block, a building of the tiles, the
// terrain's ground, or nothing); on the map, which layers hold a feature there.
// Then, live: /viewer and /map open side by side with ?scenario=<live id>; it prints
// {"ready": true} and waits (up to 2 minutes) until both pages have applied <events>
// events of that scenario, which the caller sends by writing into it, without a reload;
// then what the map draws at the live places, and the viewer's blocks and hidden ids.
// usage: node scenario.mjs <server> <api key> <scenario id> <places as JSON>
//          <live scenario id> <live places as JSON> <events>
//   places: [{name, lon, lat, top}] (top: metres above the ellipsoid); live places:
//   [{name, lon, lat}]
// Prints {viewer: {with, without}, map: {with, without}, scenario, live: {before, map,
// viewer, events}, error, pageErrors}.
import { openViewer, session } from "./browser.mjs";

const [server, key, id, placesJson, liveId, livePlacesJson, events] = process.argv.slice(2);
const places = JSON.parse(placesJson), livePlaces = JSON.parse(livePlacesJson);
const out = { viewer: {}, map: {}, scenario: null, live: {}, error: null, pageErrors: [] };
const step = (what) => console.error(`${new Date().toISOString()} ${what}`);  // (timed, to stderr)

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
    step(`viewer ${name} open`);
    if (name === "with") {
      await page.waitForFunction(() => oup.scenario !== null || oup.error, null,
                                 { timeout: 60_000, polling: 200 });
      out.scenario = await page.evaluate(() => ({ ...oup.scenario, error: oup.error,
        status: document.getElementById("scenario").textContent }));
    }
    out.viewer[name] = {};
    for (const p of places) {
      out.viewer[name][p.name] = await pickDown(page, p);
      step(`viewer ${name}: ${p.name} picked`);
    }
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
    step(`map ${name} read`);
  }
  // live: both pages open on the live scenario, then the caller writes into it. The map
  // first, in a browser context of its own (a context has six connections to a host,
  // HTTP/1.1, and each page holds three event streams), and what it draws at the live
  // places read before the viewer opens: the viewer draws all the time, and in software
  // that takes the machine
  const context = await page.context().browser().newContext({
    viewport: { width: 1024, height: 768 }, extraHTTPHeaders: { "X-API-Key": key } });
  const map = await context.newPage();
  map.on("pageerror", (e) => out.pageErrors.push(String(e)));
  await map.goto(`${server}/map?scenario=${liveId}`, { waitUntil: "load", timeout: 60_000 });
  await map.waitForFunction(() => window.oupMap && (oupMap.error || (oupMap.ready &&
    oupMap.scenario !== null)), null, { timeout: 120_000, polling: 200 });
  step("map open");
  out.live.before = {};
  for (const p of livePlaces) out.live.before[p.name] = await layersAt(map, p);
  step("map read");
  // (its blocks and hidden ids are what is looked at here: not its tiles, left loading)
  await page.goto(`${server}/viewer?scenario=${liveId}`, { waitUntil: "load", timeout: 60_000 });
  await page.waitForFunction(() => window.oup && (oup.error || oup.scenario !== null), null,
                             { timeout: 120_000, polling: 200 });
  step("viewer open");
  const errors = await Promise.all([page.evaluate(() => oup.error), map.evaluate(() => oupMap.error)]);
  if (errors.some(Boolean)) throw new Error(errors.join("; "));
  console.log(JSON.stringify({ ready: true }));  // the caller may write now
  const applied = ([st, n]) => window[st].error || window[st].scenarioEvents >= n;
  await page.waitForFunction(applied, ["oup", Number(events)], { timeout: 120_000, polling: 200 });
  step("viewer applied");
  out.live.viewer = await page.evaluate(() => ({ ...oup.scenario, error: oup.error }));
  out.live.events = { viewer: await page.evaluate(() => oup.scenarioEvents) };
  await page.goto("about:blank");  // (the viewer stops drawing)
  await map.waitForFunction(applied, ["oupMap", Number(events)], { timeout: 120_000, polling: 200 });
  step("map applied");
  out.live.events.map = await map.evaluate(() => oupMap.scenarioEvents);
  out.live.map = {};
  for (const p of livePlaces) out.live.map[p.name] = await layersAt(map, p);
  out.live.mapError = await map.evaluate(() => oupMap.error);
}, { "X-API-Key": key });
