// Headless Chromium opens /viewer or /map, waits until the page has loaded (the sensors
// shown, and the viewer's tilesets: while CesiumJS loads them under software rendering on
// a small machine it holds the page's thread for seconds at a time, so no script of the
// page runs then, whatever brings the data), says so on stdout ({"shown": ...}), then
// records each value one sensor's label shows, and when: the wall clock (Date.now(), the
// clock the publisher reads on this machine) at the moment the page sets it. It stops
// when the label shows <last value>, or at the timeout.
// usage: node live.mjs <page url> <viewer|map> <collection/sensor id> <last value> <timeout s>
// Prints {shown, seen: [[value, ms since the epoch, the event's time in ms since the epoch
// (when the ingester wrote the batch)], ...], statuses (the page's status
// texts, in turn), last, lastEvent, status, stale, labels (on /map: each label's box width
// and its text's width, after the updates), consoleErrors, failedRequests ([url, why]),
// pageErrors, error}.
import { session } from "./browser.mjs";

const [url, kind, key, last, timeoutS] = process.argv.slice(2);
const out = { shown: null, seen: [], statuses: [], last: null, lastEvent: null, status: null,
              consoleErrors: [], failedRequests: [], pageErrors: [], error: null };
await session(out, async (page) => {
  page.on("console", (m) => { if (m.type() === "error") out.consoleErrors.push(m.text()); });
  page.on("requestfailed", (r) => out.failedRequests.push([r.url(), r.failure()?.errorText]));
  await page.goto(url, { waitUntil: "load", timeout: 60_000 });
  // the page's state: window.oup (the viewer), window.oupMap (the map)
  const st = kind === "map" ? "oupMap" : "oup";
  await page.waitForFunction((s) => window[s] && (window[s].error || (window[s].sensors &&
                             window[s].ready && (!window[s].loaded || window[s].loaded()))),
                             st, { timeout: 240_000, polling: 100 });
  out.shown = await page.evaluate(([s, k]) => window[s].sensors && window[s].sensors[k], [st, key]);
  if (!out.shown) throw new Error(`no label for ${key}`);
  // Every text the label gets, when it gets it (the page sets window[s].sensors[k] as it
  // changes the label), and every status the page shows.
  await page.evaluate(([s, k]) => {
    window.__seen = [];
    window.__statuses = [];
    let text = window[s].sensors[k];
    Object.defineProperty(window[s].sensors, k, {
      get: () => text, enumerable: true, configurable: true,
      set: (t) => {
        text = t;
        const ev = window[s].lastEvent;  // the event that brings it
        window.__seen.push([t.split(": ").pop().split(" ")[0], Date.now(),
                            ev && ev.sensor === k ? Date.parse(ev.time) : null]);
      },
    });
    const status = document.getElementById(s === "oupMap" ? "status" : "sensors");
    new MutationObserver(() => window.__statuses.push(status.textContent))
      .observe(status, { childList: true, characterData: true, subtree: true });
  }, [st, key]);
  console.log(JSON.stringify({ shown: out.shown }));  // the publisher may start
  const deadline = Date.now() + Number(timeoutS) * 1000;
  while (Date.now() < deadline) {
    if (await page.evaluate((v) => window.__seen.some(([s]) => s === v), last)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  Object.assign(out, await page.evaluate(([s, k]) => ({
    seen: window.__seen, statuses: window.__statuses,
    last: window[s].sensors[k], lastEvent: window[s].lastEvent, error: window[s].error,
    status: document.getElementById(s === "oupMap" ? "status" : "sensors").textContent,
    stale: s === "oupMap" ? [...document.querySelectorAll(".sensor-label")]
      .filter((el) => el.textContent === window[s].sensors[k])
      .map((el) => el.classList.contains("stale")) : null,
    // each shown label's box on screen and the width of its text alone, after the updates
    labels: s === "oupMap" ? [...document.querySelectorAll(".sensor-label")]
      .filter((el) => el.style.display !== "none").map((el) => {
        const text = document.createRange();
        text.selectNodeContents(el);
        return { text: el.textContent, width: el.getBoundingClientRect().width,
                 textWidth: text.getBoundingClientRect().width,
                 position: getComputedStyle(el).position };
      }) : null,
  }), [st, key]));
});
