// The map on OUP's HTML pages: MapLibre GL JS and the platform's own vector tiles, so a
// page asks nothing of any other host. The page puts what to draw in #oup-map-data:
// {"base": the service URL, "features": GeoJSON, "bbox": [w, s, e, n] (optional)}.
(function () {
  "use strict";
  const el = document.getElementById("oup-map");
  const dataEl = document.getElementById("oup-map-data");
  if (!el || !dataEl || typeof maplibregl === "undefined") return;
  const cfg = JSON.parse(dataEl.textContent);
  // the CSP build: its worker is a file of the platform, not a blob
  maplibregl.setWorkerUrl(cfg.base + "/assets/maplibre-gl/maplibre-gl-csp-worker.js");

  function bounds(geojson) {
    const b = [Infinity, Infinity, -Infinity, -Infinity];
    const walk = (c) => {
      if (typeof c[0] === "number") {
        b[0] = Math.min(b[0], c[0]); b[1] = Math.min(b[1], c[1]);
        b[2] = Math.max(b[2], c[0]); b[3] = Math.max(b[3], c[1]);
      } else c.forEach(walk);
    };
    const feats = geojson.type === "FeatureCollection" ? geojson.features : [geojson];
    feats.forEach((f) => f && f.geometry && f.geometry.coordinates && walk(f.geometry.coordinates));
    return b[0] <= b[2] ? b : null;
  }

  const box = cfg.bbox || (cfg.features && bounds(cfg.features)) || [4.44, 51.90, 4.47, 51.92];
  const map = new maplibregl.Map({
    container: el, attributionControl: false, locale: oupT.maplibre(),
    style: {version: 8, sources: {}, layers: [
      {id: "background", type: "background", paint: {"background-color": "#f4f2ee"}}]},
    bounds: box, fitBoundsOptions: {padding: 30, maxZoom: 18},
  });
  map.addControl(new maplibregl.NavigationControl({showCompass: false}));
  window.oupMap = map;

  const kinds = (prefix, source, extra, colour, width) => [
    {id: prefix + "-fill", type: "fill", source, ...extra,
     filter: ["==", ["geometry-type"], "Polygon"],
     paint: {"fill-color": colour, "fill-opacity": width > 1 ? 0.5 : 0.25}},
    {id: prefix + "-line", type: "line", source, ...extra,
     filter: ["!=", ["geometry-type"], "Point"],
     paint: {"line-color": colour, "line-width": width}},
    {id: prefix + "-point", type: "circle", source, ...extra,
     filter: ["==", ["geometry-type"], "Point"],
     paint: {"circle-color": colour, "circle-radius": 2 + 2 * width,
             "circle-stroke-color": "#fff", "circle-stroke-width": 1}},
  ];

  map.on("load", async () => {
    // the city around it: every collection the caller may see, from the dataset tiles
    try {
      const r = await fetch(cfg.base + "/tiles/WebMercatorQuad?f=tilejson");
      if (r.ok) {
        const tilejson = await r.json();
        map.addSource("city", {type: "vector", tiles: tilejson.tiles,
                               minzoom: tilejson.minzoom, maxzoom: tilejson.maxzoom});
        for (const layer of tilejson.vector_layers) {
          kinds("city-" + layer.id, "city", {"source-layer": layer.id}, "#8a8f98", 1)
            .forEach((l) => map.addLayer(l));
        }
      }
    } catch (e) { /* the page's own features still show */ }
    if (cfg.features) {
      map.addSource("features", {type: "geojson", data: cfg.features});
      kinds("features", "features", {}, "#d1495b", 2).forEach((l) => map.addLayer(l));
    }
    el.dataset.ready = "true";
  });
})();
