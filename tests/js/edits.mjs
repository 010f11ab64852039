// Headless Chromium opens /map or /viewer, waits until it is ready, says so on stdout
// ({"ready": true}), then waits until the page has applied a write it did not reload for:
// /map's vector tiles drawing the feature with <property> = <value> again, or /viewer's
// tileset loaded again after the server redid the 3D tiles. Stops at the timeout.
// usage: node edits.mjs <page url> <map|viewer> <property> <value> <timeout s>
// Prints {ready, edits, found (map: the rendered feature's value), lastEdit, error,
// pageErrors}.
import { openViewer, session } from "./browser.mjs";

const [url, kind, property, value, timeoutS] = process.argv.slice(2);
const out = { ready: false, edits: 0, found: null, lastEdit: null, error: null,
              pageErrors: [] };
await session(out, async (page) => {
  if (kind === "viewer") {
    out.ready = await openViewer(page, url);
  } else {
    await page.goto(url, { waitUntil: "load", timeout: 60_000 });
    await page.waitForFunction(() => window.oupMap && (window.oupMap.error ||
                               (window.oupMap.ready && window.oupMap.map.loaded())),
                               null, { timeout: 180_000, polling: 200 });
    out.ready = await page.evaluate(() => !window.oupMap.error);
  }
  console.log(JSON.stringify({ ready: out.ready }));  // the test may write now
  const deadline = Date.now() + Number(timeoutS) * 1000;
  while (Date.now() < deadline) {
    const seen = await page.evaluate(([k, p, v]) => {
      const st = k === "map" ? window.oupMap : window.oup;
      let found = null;
      if (k === "map" && st.edits) {
        const hit = st.map.queryRenderedFeatures().find((f) => f.properties[p] === v);
        found = hit ? hit.properties[p] : null;
      }
      return { edits: st.edits || 0, found, lastEdit: st.lastEdit || null,
               error: st.error || null };
    }, [kind, property, value]);
    Object.assign(out, seen);
    if (out.error || (kind === "map" ? out.found === value : out.edits > 0)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
});
