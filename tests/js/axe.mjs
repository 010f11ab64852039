// axe-core (WCAG 2.1 A and AA rules) on OUP's pages in headless Chromium, each page once
// its map or API document has been drawn.
// usage: node axe.mjs <server url> <path>...
// Prints {pages: {path: {status, language, violations: [{id, impact, nodes: [html]}]}}, error}.
import { AxeBuilder } from "@axe-core/playwright";
import { session } from "./browser.mjs";

const TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];
const [base, ...paths] = process.argv.slice(2);
const out = { pages: {}, pageErrors: [], error: null };
await session(out, async (page) => {
  for (const path of paths) {
    const response = await page.goto(base + path, { waitUntil: "load", timeout: 60_000 });
    if (await page.$("#oup-map")) {
      await page.waitForFunction(() => document.getElementById("oup-map").dataset.ready === "true",
                                 null, { timeout: 60_000, polling: 250 });
    } else if (path.startsWith("/openapi")) {
      await page.waitForSelector(".swagger-ui .info", { timeout: 60_000 });
    } else if (path.startsWith("/viewer")) {
      await page.waitForFunction(() => window.oup && (window.oup.ready || window.oup.error),
                                 null, { timeout: 180_000, polling: 500 });
    }
    const result = await new AxeBuilder({ page }).withTags(TAGS).analyze();
    out.pages[path] = {
      status: response.status(),
      language: await page.evaluate(() => document.documentElement.lang),
      violations: result.violations.map((v) => ({
        id: v.id, impact: v.impact, help: v.help,
        nodes: v.nodes.slice(0, 5).map((n) => n.html.slice(0, 200)),
        count: v.nodes.length })),
    };
  }
});
