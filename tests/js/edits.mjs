// Headless Chromium opens /map, waits until it is ready, says so on stdout
// ({"ready": true}), then waits until the page has applied a write it did not reload for:
// its vector tiles drawing the feature with <property> = <value> again. Stops at the
// timeout. (The viewer's counterpart: pickone.mjs.)
// usage: node edits.mjs <map url> <property> <value> <timeout s>
// Prints {ready, edits, found (the rendered feature's value), lastEdit, error, pageErrors}.
import { session } from "./browser.mjs";

const [url, property, value, timeoutS] = process.argv.slice(2);
const out = { ready: false, edits: 0, found: null, lastEdit: null, error: null,
              pageErrors: [] };
await session(out, async (page) => {
  await page.goto(url, { waitUntil: "load", timeout: 60_000 });
  await page.waitForFunction(() => window.oupMap && (window.oupMap.error ||
                             (window.oupMap.ready && window.oupMap.map.loaded())),
                             null, { timeout: 180_000, polling: 200 });
  out.ready = await page.evaluate(() => !window.oupMap.error);
  console.log(JSON.stringify({ ready: out.ready }));  // the test may write now
  const deadline = Date.now() + Number(timeoutS) * 1000;
  while (Date.now() < deadline) {
    const seen = await page.evaluate(([p, v]) => {
      const st = window.oupMap;
      let found = null;
      if (st.edits) {
        const hit = st.map.queryRenderedFeatures().find((f) => f.properties[p] === v);
        found = hit ? hit.properties[p] : null;
      }
      return { edits: st.edits || 0, found, lastEdit: st.lastEdit || null,
               error: st.error || null };
    }, [property, value]);
    Object.assign(out, seen);
    if (out.error || out.found === value) break;
    await new Promise((r) => setTimeout(r, 250));
  }
});
