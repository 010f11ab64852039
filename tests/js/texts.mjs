// What a person reads on OUP's pages, in each language: headless Chromium opens each page
// with ?lang=<language>, waits until its map, 3D view or API document is drawn, does what
// a visitor does (a search that finds something and one that finds nothing; on the API
// page an operation opened and "Try it out"), then collects every visible text and the
// labels a screen reader reads (aria-label, title, placeholder, alt). `data`: the texts
// that are the data shown (attribute tables, search hits, sensor labels, the API's paths,
// names and types), which are in no language of the page's.
// usage: node texts.mjs <server url> <language> <path>...
// Prints {pages: {path: {status, language, texts: [...], data: [...]}}, catalogue (the
// scripts' English texts with their Dutch: texts.js), pageErrors, error}.
import { session } from "./browser.mjs";

const [base, language, ...paths] = process.argv.slice(2);
const out = { pages: {}, catalogue: null, pageErrors: [], error: null };

const DATA = ["#attributes table", "#search-hits", ".sensor-label", ".opblock-summary-path",
              ".opblock-tag a", ".parameter__name", ".parameter__type", ".parameter__in",
              ".response-col_status", ".model-box", ".microlight", ".prop-type", ".nostyle span",
              ".opblock-summary-method", ".version", ".servers", ".url"].join(", ");

const collect = (page) => page.evaluate((DATA) => {
  const texts = new Set(), data = new Set();
  const shown = (el) => el && el.checkVisibility({ visibilityProperty: true, opacityProperty: true });
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.nodeValue.replace(/\s+/g, " ").trim();
    const parent = node.parentElement;
    if (text && shown(parent) && !parent.closest("script, style, noscript")) {
      (parent.closest(DATA) ? data : texts).add(text);
    }
  }
  for (const el of document.querySelectorAll("[aria-label], [title], [placeholder], [alt]")) {
    for (const name of ["aria-label", "title", "placeholder", "alt"]) {
      const v = el.getAttribute(name);
      if (v && v.trim()) texts.add(v.trim());
    }
  }
  texts.add(document.title);
  return { texts: [...texts], data: [...data] };
}, DATA);

async function search(page, words) {
  const box = page.locator("#search-q");
  await box.fill(words);
  await box.press("Enter");
  await page.waitForFunction(() => {
    const s = document.getElementById("search-status").textContent;
    return s && !s.endsWith("…");
  }, null, { timeout: 60_000, polling: 200 });
}

await session(out, async (page) => {
  const texts = new Set(), data = new Set();
  for (const path of paths) {
    texts.clear();
    data.clear();
    const url = `${base}${path}${path.includes("?") ? "&" : "?"}lang=${language}`;
    const response = await page.goto(url, { waitUntil: "load", timeout: 60_000 });
    const add = async () => {
      const seen = await collect(page);
      seen.texts.forEach((t) => texts.add(t));
      seen.data.forEach((t) => data.add(t));
    };
    if (await page.$("#oup-map")) {
      await page.waitForFunction(() => document.getElementById("oup-map").dataset.ready === "true",
                                 null, { timeout: 60_000, polling: 250 });
    } else if (path.startsWith("/openapi")) {
      await page.waitForSelector(".swagger-ui .info", { timeout: 60_000 });
      await add();
      await page.locator(".opblock-summary-control").first().click();
      await page.locator(".try-out__btn").first().click();
      await page.waitForSelector(".execute", { timeout: 30_000 });
    } else if (path.startsWith("/map") || path.startsWith("/viewer")) {
      const st = path.startsWith("/map") ? "oupMap" : "oup";
      await page.waitForFunction((s) => window[s] && (window[s].ready || window[s].error) &&
                                 window[s].sensors, st, { timeout: 240_000, polling: 500 });
      await add();
      await search(page, "zzzqqq");  // nothing found
      await add();
      await search(page, "Spangen");
      await add();
      if (st === "oupMap") {  // Enter on the map: the attributes of what is in the middle
        await page.locator("#map canvas").focus();
        await page.keyboard.press("Enter");
      }
    }
    await add();
    out.catalogue = out.catalogue || await page.evaluate(() => window.oupT && oupT.catalogue);
    out.pages[path] = { status: response.status(),
                        language: await page.evaluate(() => document.documentElement.lang),
                        texts: [...texts], data: [...data] };
  }
});
