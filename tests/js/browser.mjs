// What the browser scripts share: headless Debian Chromium as these machines run it, and
// a real click on a building of the OUP viewer.
import { chromium } from "playwright-core";

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-background-networking", "--disable-component-update",
           "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--no-first-run"],
  });
}

// Find a building on screen (window.oup.findBuilding), click it through Cesium's own
// handler, and return the properties the viewer shows (null if none is on screen).
export async function clickBuilding(page, step = 0.05, margin = 0.3) {
  const spot = await page.evaluate(([s, m]) => window.oup.findBuilding(s, m), [step, margin]);
  if (!spot) return null;
  await page.mouse.click(spot.x, spot.y);
  await page.waitForFunction(() => window.oup.picked !== null, null, { timeout: 30_000 });
  return page.evaluate(() => window.oup.picked);
}
