// What the browser scripts share: headless Debian Chromium as these machines run it, the
// OUP viewer opened at 1024x768 until it is ready, and a real click on a building.
import { chromium } from "playwright-core";

// Run `work(page)` in a fresh browser; whatever it throws becomes out.error. Prints out.
// `headers`: sent with every request (who is asking, as a signing-in proxy would say).
export async function session(out, work, headers = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
           "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run"],
  });
  try {
    // a context of its own (not browser.newPage): axe-core's Playwright driver needs one
    const context = await browser.newContext({ viewport: { width: 1024, height: 768 },
                                               extraHTTPHeaders: headers });
    const page = await context.newPage();
    page.on("pageerror", (e) => out.pageErrors.push(String(e)));
    await work(page);
  } catch (e) {
    out.error = String(e);
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
}

// Open the viewer and wait until its tilesets are ready (or it says what went wrong).
export async function openViewer(page, url, timeout = 180_000) {
  await page.goto(url, { waitUntil: "load", timeout: 60_000 });
  await page.waitForFunction(() => window.oup && (window.oup.ready || window.oup.error),
                             null, { timeout, polling: 500 });
  return page.evaluate(() => window.oup.ready);
}

// Find a building on screen (window.oup.findBuilding), click it through Cesium's own
// handler, and return the properties the viewer shows (null if none is on screen). The
// live sensors' labels move when they refresh: a click that lands on one is tried again.
export async function clickBuilding(page, step = 0.05, margin = 0.3) {
  for (let attempt = 0; attempt < 3; attempt++) {
    const spot = await page.evaluate(([s, m]) => window.oup.findBuilding(s, m), [step, margin]);
    if (!spot) return null;
    await page.evaluate(() => { window.oup.picked = null; });
    await page.mouse.click(spot.x, spot.y);
    await page.waitForFunction(() => window.oup.picked !== null, null, { timeout: 30_000 });
    const picked = await page.evaluate(() => window.oup.picked);
    if (picked.type === "Building") return picked;
  }
  return page.evaluate(() => window.oup.picked);
}

// Refuse (and record in sink.foreign) every request that would leave `origin`: the page
// must work on an intranet with no internet. Console errors go to sink.consoleErrors.
// `sink` is read at each event, so a caller may swap it per page with holder.sink.
export async function offline(page, origin, holder) {
  await page.route("**/*", (route) => {
    const url = route.request().url();
    if (url.startsWith(origin + "/") || url.startsWith("data:") || url.startsWith("blob:")) {
      return route.continue();
    }
    holder.sink.foreign.push(url);
    return route.abort();
  });
  page.on("console", (m) => { if (m.type() === "error") holder.sink.consoleErrors.push(m.text()); });
  page.on("pageerror", (e) => holder.sink.pageErrors.push(String(e)));
}
