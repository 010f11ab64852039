// The search box of /map and /viewer: free text over every collection the caller may see
// (/search), the best hit gone to at once, the others listed to choose from.
// oupSearch.box(before, go) puts it before the element before; go(hit) moves the page's view to a
// hit (a GeoJSON feature of /search; its bbox: [w, s, e, n]).
// Keyboard: Enter searches; ArrowDown moves from the box into the hits, ArrowUp/ArrowDown
// through them, Enter or Space goes to one, Escape back to the box. The number of hits
// is announced (a polite live region).
window.oupSearch = (function () {
  "use strict";
  const esc = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  function box(before, go) {
    const form = document.createElement("form");
    form.id = "search";
    form.setAttribute("role", "search");
    form.innerHTML =
      `<label for="search-q">${oupT("Search places and features")}</label> ` +
      '<input id="search-q" type="search" name="q" autocomplete="off" ' +
      'aria-describedby="search-status" aria-controls="search-hits" maxlength="200"> ' +
      `<button type="submit">${oupT("Find")}</button>` +
      '<div id="search-status" role="status" aria-live="polite"></div>' +
      `<ul id="search-hits" aria-label="${oupT("Search results")}"></ul>`;
    before.parentNode.insertBefore(form, before);
    const input = form.querySelector("input"), list = form.querySelector("ul");
    const status = form.querySelector("#search-status");
    const state = window.oupSearch.state = { hits: [], picked: null, error: null };
    let asked = 0;

    function pick(i) {
      const hit = state.hits[i];
      if (!hit || !hit.bbox) return;
      list.querySelectorAll("button").forEach((b, j) => b.setAttribute("aria-current", String(i === j)));
      state.picked = hit;
      go(hit);
    }

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const q = input.value.trim();
      if (!q) return;
      const mine = ++asked;
      status.textContent = oupT("searching…");
      try {
        const r = await fetch(`/search?q=${encodeURIComponent(q)}&limit=10` +
                              `&lang=${document.documentElement.lang}`);
        const doc = await r.json();
        if (mine !== asked) return;  // a newer search is under way
        if (!r.ok) throw new Error(doc.detail || r.status);
        state.hits = doc.features;
        list.innerHTML = state.hits.map((h, i) => {
          const p = h.properties;
          // a feature without a geometry has nowhere to go to
          return `<li><button type="button" data-hit="${i}"${h.bbox ? "" : " disabled"}>` +
            `${esc(p.title ?? p.id)}` +
            ` <small>${esc(p.collection_title || p.collection)}</small></button></li>`;
        }).join("");
        const n = state.hits.length;
        status.textContent = n === 1 ? oupT("1 found; it is shown")
          : n ? oupT("{n} found; the first is shown", { n }) : oupT("nothing found for “{q}”", { q });
        pick(0);
      } catch (err) {
        state.error = String(err);
        status.textContent = oupT("search failed: {error}", { error: err.message || err });
      }
    });
    list.addEventListener("click", (ev) => {
      const b = ev.target.closest("button[data-hit]");
      if (b) pick(Number(b.dataset.hit));
    });
    // arrows move between the box and the hits (Tab does too; Enter and Space are the
    // buttons' own)
    form.addEventListener("keydown", (ev) => {
      const buttons = [...list.querySelectorAll("button")];
      const at = buttons.indexOf(document.activeElement);
      if (ev.key === "ArrowDown" && buttons.length) {
        buttons[Math.min(at + 1, buttons.length - 1)].focus();
        ev.preventDefault();
      } else if (ev.key === "ArrowUp" && at >= 0) {
        (at === 0 ? input : buttons[at - 1]).focus();
        ev.preventDefault();
      } else if (ev.key === "Escape" && at >= 0) {
        input.focus();
        ev.preventDefault();
      }
    });
    return form;
  }

  return { box, state: null };
})();
