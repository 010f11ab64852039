// OUP's 2D map (/map): MapLibre GL JS drawing OUP's own vector tiles in OUP's own style
// (/styles/default), every collection the caller may see a layer with a toggle and a
// legend, the live sensors with their latest value (refreshed every 15 s, as /viewer
// does), attributes on click, and a link to the same place in /viewer.
// ?at=<lon>,<lat>,<zoom> opens at a place. window.oupMap exposes the state for tests.
(function () {
  "use strict";
  const REFRESH_MS = 15000;
  const STALE_MS = 3600 * 1000;
  const state = window.oupMap = { map: null, ready: false, error: null, picked: null,
                                  sensors: null };
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

  // The sensors: a point each, labelled with its latest value, refreshed.
  async function sensors(map, collections, live) {
    const labels = {};
    for (const c of collections) {
      const doc = await json(`/collections/${c.id}/items?f=json&limit=10000`);
      const source = map.getSource(`live-${c.id}`);
      if (source) source.setData(doc);
      else {
        map.addSource(`live-${c.id}`, { type: "geojson", data: doc });
        map.addLayer({ id: `live-${c.id}`, type: "circle", source: `live-${c.id}`,
                       metadata: { "oup:live": c.id },
                       paint: { "circle-color": "#d1495b", "circle-radius": 6,
                                "circle-stroke-color": "#fff", "circle-stroke-width": 2 } });
      }
      const markers = live.get(c.id) || [];
      markers.forEach((m) => m.remove());
      markers.length = 0;
      for (const f of doc.features) {
        const p = f.properties;
        const value = p.latest_result === null || p.latest_result === undefined
          ? "no data yet" : `${p.latest_result} ${p.unit || ""}`.trim();
        const text = `${p.name || f.id}: ${value}`;
        const el = document.createElement("div");
        const fresh = p.latest_time && Date.now() - Date.parse(p.latest_time) < STALE_MS;
        el.className = "sensor-label" + (fresh ? "" : " stale");
        el.textContent = text;
        markers.push(new maplibregl.Marker({ element: el, anchor: "bottom" })
          .setLngLat(f.geometry.coordinates).addTo(map));
        labels[`${c.id}/${f.id}`] = text;
      }
      live.set(c.id, markers);
    }
    state.sensors = labels;
    status.textContent = `${Object.keys(labels).length} sensors, latest values ` +
      `(${new Date().toLocaleTimeString()})`;
  }

  function show(feature) {
    const cid = feature.layer.metadata?.["oup:collection"] || feature.layer.metadata?.["oup:live"];
    const props = feature.properties;
    state.picked = { collection: cid, id: feature.id ?? props.sensor_id ?? null, properties: props };
    const link = cid && state.picked.id !== null
      ? `<p><a href="/collections/${esc(cid)}/items/${esc(state.picked.id)}?f=html">the feature</a></p>` : "";
    attributes.innerHTML = `<b>${esc(cid)}</b>${link}<table>` + Object.entries(props).map(([k, v]) =>
      `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join("") + "</table>";
  }

  function viewerLink(map) {
    const c = map.getCenter();
    const metresPerPixel = 156543.03 * Math.cos(c.lat * Math.PI / 180) / 2 ** map.getZoom();
    const range = Math.round(metresPerPixel * map.getCanvas().clientHeight);
    document.getElementById("to-viewer").href =
      `/viewer?at=${c.lng.toFixed(6)},${c.lat.toFixed(6)},${range}`;
  }

  (async () => {
    try {
      const [style, listing] = await Promise.all([json("/styles/default"),
                                                  json("/collections?f=json")]);
      const map = state.map = new maplibregl.Map({ container: "map", style,
                                                   attributionControl: false, ...place(style) });
      map.addControl(new maplibregl.NavigationControl());
      const live = new Map();
      const streams = listing.collections.filter((c) => c.data_queries);
      streams.forEach((c) => live.set(c.id, []));
      map.on("moveend", () => viewerLink(map));
      map.on("click", (ev) => {
        const hit = map.queryRenderedFeatures(ev.point).filter((f) => f.layer.metadata);
        if (hit.length) show(hit[0]);
      });
      map.on("load", async () => {
        toggles(map, style, live);
        viewerLink(map);
        const loop = () => sensors(map, streams, live)
          .catch((err) => { state.error = `sensors: ${err}`; })
          .finally(() => setTimeout(loop, REFRESH_MS));
        await sensors(map, streams, live).catch((err) => { state.error = `sensors: ${err}`; });
        setTimeout(loop, REFRESH_MS);
        state.ready = true;
      });
    } catch (err) {
      state.error = String(err);
      status.textContent = `could not load the map: ${err}`;
    }
  })();
})();
