// OUP's 2D map (/map): MapLibre GL JS drawing OUP's own vector tiles in OUP's own style
// (/styles/default), every collection the caller may see a layer with a toggle and a
// legend, the live sensors with their latest value (kept current from the change events,
// as /viewer does), attributes on click, and a link to the same place in /viewer.
// Written features show without a reload (edits). ?at=<lon>,<lat>,<zoom> opens at a
// place. ?scenario=<id> shows a scenario next to the city as it is (scenario()).
// A search box (search.js) goes to what it finds. window.oupMap exposes the state
// for tests (lastEvent: the last change event shown, and when it came; edits: the feature
// changes applied; flown: the search hit the view came to).
(function () {
  "use strict";
  const state = window.oupMap = { map: null, ready: false, error: null, picked: null,
                                  sensors: null, lastEvent: null, scenario: null };
  maplibregl.setWorkerUrl("/assets/maplibre-gl/maplibre-gl-csp-worker.js");
  const status = document.getElementById("status");
  const attributes = document.getElementById("attributes");
  const esc = (v) => String(v).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  async function json(url) {
    const r = await fetch(url);
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  }

  function place(style) {
    const at = new URLSearchParams(location.search).get("at");
    const parts = at ? at.split(",").map(Number) : [];
    if (parts.length === 3 && parts.every(Number.isFinite)) {
      return { center: [parts[0], parts[1]], zoom: parts[2] };
    }
    return { bounds: style.metadata["oup:bounds"], fitBoundsOptions: { padding: 20 } };
  }

  // ?collection=<id>: that collection drawn in its own style (a job's result, job-<id>,
  // is in no other) on top of the city, and the map framed on it.
  async function chosen(lang) {
    const cid = new URLSearchParams(location.search).get("collection");
    if (!cid) return null;
    const own = await json(`/collections/${encodeURIComponent(cid)}/styles/default?lang=${lang}`);
    state.chosen = cid;
    return own;
  }

  function withChosen(style, own) {
    const have = new Set(style.layers.map((l) => l.id));
    const added = own.layers.filter((l) => l.type !== "background" && !have.has(l.id))
      .map((l) => ({ ...l, layout: { ...l.layout, visibility: "visible" } }));
    const sources = { ...style.sources };
    for (const [name, source] of Object.entries(own.sources)) {
      if (!(name in sources)) sources[name] = source;
    }
    const layers = style.layers.map((l) => l.metadata?.["oup:collection"] === state.chosen
      ? { ...l, layout: { ...l.layout, visibility: "visible" } } : l);
    return { ...style, sources, layers: [...layers, ...added],
             metadata: { ...style.metadata, "oup:bounds": own.metadata["oup:bounds"] } };
  }

  function toggles(map, style, live) {
    const byCollection = new Map();
    for (const layer of style.layers) {
      const m = layer.metadata;
      if (!m) continue;
      if (!byCollection.has(m["oup:collection"])) byCollection.set(m["oup:collection"], { meta: m, ids: [] });
      byCollection.get(m["oup:collection"]).ids.push(layer.id);
    }
    const box = document.getElementById("layers");
    for (const [cid, { meta, ids }] of byCollection) {
      const isLive = live.has(cid);
      const shown = !isLive && style.layers.find((l) => l.id === ids[0]).layout.visibility !== "none";
      const row = document.createElement("div");
      row.innerHTML = `<label><input type="checkbox" data-collection="${esc(cid)}"` +
        `${shown || isLive ? " checked" : ""}> ${esc(meta["oup:title"])}</label>` +
        `<div class="legend">${meta["oup:legend"].map((e) =>
          `<div><span class="swatch" style="background:${esc(e.colour)}"></span>${esc(e.label)}</div>`
        ).join("")}</div>`;
      box.appendChild(row);
      const input = row.querySelector("input");
      if (isLive) ids.forEach((id) => map.setLayoutProperty(id, "visibility", "none"));
      input.onchange = () => {
        const vis = input.checked ? "visible" : "none";
        if (isLive) live.get(cid).forEach((m) => { m.getElement().style.display = input.checked ? "" : "none"; });
        else ids.forEach((id) => map.setLayoutProperty(id, "visibility", vis));
        if (isLive) map.setLayoutProperty(`live-${cid}`, "visibility", vis);
      };
    }
  }

  // The sensors: a point each, labelled with its latest value; read once, then kept
  // current from the collection's change events (oupLive, livesensors.js).
  function sensors(map, collections, live) {
    const labels = {}, states = {}, loaded = new Set();
    const render = () => {
      const trouble = Object.values(states).find((s) => s !== "live");
      status.textContent = `${oupT("{n} sensors", { n: Object.keys(labels).length })}, ` +
        (trouble || oupT("latest values, live"));
    };
    for (const c of collections) {
      const doc = { type: "FeatureCollection", features: [] }, elements = new Map();
      let pending = false;
      const draw = (f) => {
        const p = f.properties, el = elements.get(f.id);
        const value = p.latest_result === null || p.latest_result === undefined
          ? oupT("no data yet") : `${p.latest_result} ${p.unit || ""}`.trim();
        el.textContent = `${p.name || f.id}: ${value}`;
        // classList, not className: the marker element carries MapLibre's own classes
        // (maplibregl-marker: its absolute position), which must stay
        el.classList.add("sensor-label");
        el.classList.toggle("stale", !oupLive.fresh(p));
        labels[`${c.id}/${f.id}`] = el.textContent;
      };
      oupLive.follow(c.id, state, {
        load(features) {  // (again): sensors may have come, gone or moved
          doc.features = features;
          const source = map.getSource(`live-${c.id}`);
          if (source) source.setData(doc);
          else {
            map.addSource(`live-${c.id}`, { type: "geojson", data: doc });
            map.addLayer({ id: `live-${c.id}`, type: "circle", source: `live-${c.id}`,
                           metadata: { "oup:live": c.id },
                           paint: { "circle-color": "#d1495b", "circle-radius": 6,
                                    "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
          }
          const markers = live.get(c.id);
          markers.forEach((m) => m.remove());
          markers.length = 0;
          elements.clear();
          Object.keys(labels).filter((k) => k.startsWith(`${c.id}/`)).forEach((k) => delete labels[k]);
          const shown = document.querySelector(`#layers input[data-collection="${CSS.escape(c.id)}"]`);
          for (const f of features) {
            const el = document.createElement("div");
            if (shown && !shown.checked) el.style.display = "none";
            elements.set(f.id, el);
            draw(f);
            markers.push(new maplibregl.Marker({ element: el, anchor: "bottom" })
              .setLngLat(f.geometry.coordinates).addTo(map));
          }
          loaded.add(c.id);
          if (loaded.size === collections.length) {
            state.sensors = labels;
            state.ready = true;
          }
          render();
        },
        update(f) {
          draw(f);
          // the points carry the properties a click shows; one new copy a frame at most
          if (pending) return;
          pending = true;
          requestAnimationFrame(() => { pending = false; map.getSource(`live-${c.id}`).setData(doc); });
        },
        status(text) { states[c.id] = text; render(); },
      });
    }
    if (!collections.length) {
      state.sensors = labels;
      state.ready = true;
    }
  }

  // Written features (OGC API Features Part 4): on each change event the vector tiles are
  // fetched again, past the browser's copies (?v=<event id>: the tiles endpoint ignores
  // it), so an edit shows without a reload. state.edits counts the events applied.
  const EDITS = ["oup.feature.created", "oup.feature.replaced", "oup.feature.updated",
                 "oup.feature.deleted"];
  function edits(map, style) {
    state.edits = 0;
    const source = map.getSource("oup");
    const tilejson = style.sources.oup.url;
    let base = null;
    const stream = new EventSource(`/events?type=${EDITS.join(",")}`);
    stream.onmessage = async (msg) => {
      try {
        base = base || (await json(tilejson)).tiles;
        source.setTiles(base.map((t) => `${t}${t.includes("?") ? "&" : "?"}v=${msg.lastEventId}`));
        state.edits += 1;
        state.lastEdit = JSON.parse(msg.data);
      } catch (err) {
        state.error = String(err);
      }
    };
  }

  // A scenario (/scenarios/{id}/changes) over the city, kept current from its events
  // (oupScenario, scenario.js): the features it changes or removes left out of their
  // collection's layers (by the id their vector tiles give them, oup:tileId: the row
  // number, which is not the feature's id where the collection has an id field), what it
  // adds or changes drawn on top in its own colour, what it removes as a dashed outline.
  // state.scenario: the tile ids left out, by collection, as last drawn.
  function scenario(map, id) {
    let city = null, left = {}, row = null;  // left: the tile ids left out, by collection
    return oupScenario.follow(id, state, (about, changes) => {
      if (!city) {  // the first time: the city's layers as they are, the scenario's own
        city = map.getStyle().layers.filter((l) => l.metadata?.["oup:collection"])
          .map((l) => ({ id: l.id, cid: l.metadata["oup:collection"], filter: l.filter }));
        const meta = { "oup:collection": `scenario ${about.title}` };
        const kind = (k) => ["==", ["get", "oup:change"], k];
        map.addSource("scenario", { type: "geojson", data: changes });
        map.addLayer({ id: "scenario-fill", type: "fill", source: "scenario", metadata: meta,
                       filter: ["!", kind("removed")],
                       paint: { "fill-color": "#e8590c", "fill-opacity": 0.75 } });
        map.addLayer({ id: "scenario-removed", type: "line", source: "scenario", metadata: meta,
                       filter: kind("removed"),
                       paint: { "line-color": "#c92a2a", "line-width": 2, "line-dasharray": [2, 2] } });
        row = document.createElement("div");
        row.id = "scenario";
        document.getElementById("layers").before(row);
      }
      const hidden = {}, counts = { added: 0, changed: 0, removed: 0 };
      for (const f of changes.features) {
        const p = f.properties, cid = p["oup:collection"];
        counts[p["oup:change"]] += 1;
        if ("oup:tileId" in p) (hidden[cid] = hidden[cid] || []).push(p["oup:tileId"]);
      }
      for (const layer of city) {
        const ids = hidden[layer.cid];
        if (!ids && !left[layer.cid]) continue;  // none left out, before or now
        const out = ["!", ["in", ["id"], ["literal", ids || []]]];
        map.setFilter(layer.id, layer.filter ? ["all", layer.filter, out] : out);
      }
      left = hidden;
      map.getSource("scenario").setData(changes);
      row.innerHTML = `<b>scenario "${esc(about.title)}"</b>: ${counts.added} added, ` +
        `${counts.changed} changed, ${counts.removed} removed`;
      state.scenario = hidden;
    });
  }

  function show(feature) {
    const cid = feature.layer.metadata?.["oup:collection"] || feature.layer.metadata?.["oup:live"];
    const props = feature.properties;
    state.picked = { collection: cid, id: feature.id ?? props.sensor_id ?? null, properties: props };
    const link = cid && state.picked.id !== null
      ? `<p><a href="/collections/${esc(cid)}/items/${esc(state.picked.id)}?f=html">${oupT("the feature")}</a></p>` : "";
    attributes.innerHTML = `<b>${esc(cid)}</b>${link}<table>` + Object.entries(props).map(([k, v]) =>
      `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("") + "</table>";
  }

  // A search hit (search.js): framed beside the panel, at once for those who ask for
  // less motion. state.flown: the hit the view has come to.
  function goTo(map, hit) {
    const b = hit.bbox;
    const still = matchMedia("(prefers-reduced-motion: reduce)").matches;
    const panel = document.getElementById("panel");
    const padding = { top: 40, bottom: 40, right: 40,
                      left: Math.min(panel.offsetLeft + panel.offsetWidth + 20, map.getCanvas().clientWidth / 2) };
    map.once("moveend", () => { state.flown = hit.id; });
    if (b[0] === b[2] && b[1] === b[3]) {
      map.flyTo({ center: [b[0], b[1]], zoom: Math.max(map.getZoom(), 17), padding, animate: !still });
    } else {
      map.fitBounds([[b[0], b[1]], [b[2], b[3]]], { padding, maxZoom: 18, animate: !still });
    }
  }

  function viewerLink(map) {
    const c = map.getCenter();
    const metresPerPixel = 156543.03 * Math.cos(c.lat * Math.PI / 180) / 2 ** map.getZoom();
    const range = Math.round(metresPerPixel * map.getCanvas().clientHeight);
    const proposed = new URLSearchParams(location.search).get("scenario");  // kept in 3D
    document.getElementById("to-viewer").href =
      `/viewer?at=${c.lng.toFixed(6)},${c.lat.toFixed(6)},${range}` +
      (proposed ? `&scenario=${encodeURIComponent(proposed)}` : "");
  }

  (async () => {
    try {
      const lang = document.documentElement.lang;  // the page's: titles and legends in it
      const [style, listing, own] = await Promise.all([
        json(`/styles/default?lang=${lang}`), json(`/collections?f=json&lang=${lang}`), chosen(lang)]);
      const framed = own ? withChosen(style, own) : style;
      const map = state.map = new maplibregl.Map({ container: "map", style: framed,
                                                   attributionControl: false, locale: oupT.maplibre(),
                                                   ...place(framed) });
      map.addControl(new maplibregl.NavigationControl());
      const live = new Map();
      const streams = listing.collections.filter((c) => c.data_queries);
      streams.forEach((c) => live.set(c.id, []));
      map.on("moveend", () => viewerLink(map));
      map.on("click", (ev) => {
        const hit = map.queryRenderedFeatures(ev.point).filter((f) => f.layer.metadata);
        if (hit.length) show(hit[0]);
      });
      oupSearch.box(document.querySelector("#panel h2") || document.getElementById("layers"),
                    (hit) => goTo(map, hit));
      map.on("load", () => {
        toggles(map, framed, live);
        viewerLink(map);
        sensors(map, streams, live);  // ready once they are read
        edits(map, style);
        const proposed = new URLSearchParams(location.search).get("scenario");
        if (proposed) {
          scenario(map, proposed).catch((err) => { state.error = `scenario ${proposed}: ${err}`; });
        }
      });
    } catch (err) {
      state.error = String(err);
      status.textContent = oupT("could not load the map: {error}", { error: err });
    }
  })();
})();
