// Headless Chromium opens /viewer, waits until it is ready, says so on stdout
// ({"ready": true}), then, once the viewer has loaded the tileset again after a write
// (window.oup.edits), clicks where CesiumJS draws a given place: a vertical line of points
// (longitude, latitude, heights above the ellipsoid from h0 to h1), each projected to the
// window and picked, until a building with <id> is picked there. Stops at the timeout.
// usage: node pickone.mjs <viewer url> <lon> <lat> <h0> <h1> <id> <timeout s>
// Prints {ready, edits, lastEdit (the event of the last reload), picked (its properties),
// error, pageErrors}.
import { openViewer, session } from "./browser.mjs";

const [url, lon, lat, h0, h1, id, timeoutS] = process.argv.slice(2);
const out = { ready: false, edits: 0, lastEdit: null, picked: null, error: null,
              pageErrors: [] };
await session(out, async (page) => {
  out.ready = await openViewer(page, url);
  console.log(JSON.stringify({ ready: out.ready }));  // the test may write now
  const deadline = Date.now() + Number(timeoutS) * 1000;
  while (Date.now() < deadline && !out.picked) {
    Object.assign(out, await page.evaluate(([x, y, lo, hi, wanted]) => {
      const { viewer } = window.oup;
      let picked = null;
      for (let k = 0; k <= 20 && window.oup.edits && !picked; k++) {
        const at = Cesium.SceneTransforms.worldToWindowCoordinates(viewer.scene,
          Cesium.Cartesian3.fromDegrees(x, y, lo + (hi - lo) * k / 20));
        const f = at && viewer.scene.pick(at);
        if (f instanceof Cesium.Cesium3DTileFeature && f.getProperty("id") === wanted) {
          picked = Object.fromEntries(f.getPropertyIds().map((p) => [p, f.getProperty(p)]));
        }
      }
      return { edits: window.oup.edits, lastEdit: window.oup.lastEdit || null, picked,
               error: window.oup.error };
    }, [Number(lon), Number(lat), Number(h0), Number(h1), id]));
    if (out.error) break;
    await new Promise((r) => setTimeout(r, 500));
  }
});
