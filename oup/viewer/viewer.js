// The OUP 3D viewer: every 3D collection's tiles in CesiumJS, fully offline (no Cesium
// ion, no online imagery: a plain ellipsoid), and the live sensors on top: their latest
// values as labelled points, kept current from the change events (Server-Sent Events).
// ?collection=<id> picks the tileset to fly to; ?at=<lon>,<lat>,<range m> looks at a place
// instead of framing the tileset. ?scenario=<id> shows a scenario next to the city as it
// is: the buildings it changes or removes hidden, the ones it adds or changes drawn as
// blocks (scenario()). A search box (search.js) flies to what it finds.
// window.oup reports state for people and for the headless browser tests (lastEvent: the
// last change event shown, and when it came; flown: the search hit the camera came to).
"use strict";
window.oup = { ready: false, picked: null, error: null, tiles: 0, sensors: null,
               lastEvent: null, scenario: null };

// A write to a 3D collection redoes the tiles of the changed building on the server; the
// event that says so (after the files were replaced) makes the viewer load that tileset
// again, past the browser's copies (?v=<event id>: the server ignores it, and CesiumJS
// carries it to every tile), so the change shows without a reload. window.oup.edits
// counts them.
function follow3dEdits(viewer, sets, loaded) {
  window.oup.edits = 0;
  const stream = new EventSource("/events?type=oup.tiles3d.updated");
  stream.onmessage = async (msg) => {
    const ev = JSON.parse(msg.data);
    const i = sets.findIndex((s) => s.id === ev.data.collection);
    if (i < 0) return;
    try {
      const fresh = await Cesium.Cesium3DTileset.fromUrl(`${sets[i].href}?v=${msg.lastEventId}`);
      fresh.style = loaded[i].style;  // a scenario's hidden buildings stay hidden
      viewer.scene.primitives.add(fresh);
      viewer.scene.primitives.remove(loaded[i]);
      loaded[i] = fresh;
      window.oup.edits += 1;
      window.oup.lastEdit = ev;
    } catch (err) {
      window.oup.error = `reloading ${ev.data.collection}: ${err}`;
    }
  };
}

// A search hit (search.js), looked at from above with a margin, the side under the
// panel left free; at once for those who ask for less motion. window.oup.flown: the hit
// the camera has come to.
function goTo(viewer, hit) {
  const [w, s, e, n] = hit.bbox;
  const margin = Math.max(e - w, n - s, 0.002) * 0.25;  // degrees; a point gets ~200 m
  const panel = document.getElementById("panel").getBoundingClientRect();
  const covered = Math.min(0.5, (viewer.canvas.clientWidth - panel.left + 10) / viewer.canvas.clientWidth);
  const east = e + margin + (e - w + 2 * margin) * covered / (1 - covered);
  viewer.camera.flyTo({
    destination: Cesium.Rectangle.fromDegrees(w - margin, s - margin, east, n + margin),
    duration: matchMedia("(prefers-reduced-motion: reduce)").matches ? 0 : 1.5,
    complete: () => { window.oup.flown = hit.id; },
  });
}

(async function main() {
  const status = document.getElementById("status");
  const table = document.getElementById("attributes");
  const params = new URLSearchParams(location.search);
  const collection = params.get("collection") || "buildings";
  const at = (params.get("at") || "").split(",").map(Number);
  const viewer = new Cesium.Viewer("map", {
    baseLayer: false, baseLayerPicker: false, geocoder: false, timeline: false,
    animation: false, homeButton: false, sceneModePicker: false, infoBox: false,
    navigationHelpButton: false, fullscreenButton: false, selectionIndicator: false,
    terrainProvider: new Cesium.EllipsoidTerrainProvider(),
  });
  viewer.scene.globe.baseColor = Cesium.Color.fromCssColorString("#d9dee3");
  viewer.scene.skyAtmosphere.show = false;
  oupT.follow(viewer.container);  // CesiumJS's own texts (its credits) in the page's language
  window.oup.viewer = viewer;
  oupSearch.box(status, (hit) => goTo(viewer, hit));
  // the same place on the 2D map (/map?at=<lon>,<lat>,<zoom>), kept up to date
  viewer.camera.moveEnd.addEventListener(() => {
    const c = viewer.camera.positionCartographic;
    const lat = Cesium.Math.toDegrees(c.latitude), lon = Cesium.Math.toDegrees(c.longitude);
    const metresPerPixel = Math.max(c.height, 10) / viewer.canvas.clientHeight;
    const zoom = Math.log2(156543.03 * Math.cos(c.latitude) / metresPerPixel);
    document.getElementById("to-map").href =
      `/map?at=${lon.toFixed(6)},${lat.toFixed(6)},${Math.min(22, Math.max(0, zoom)).toFixed(1)}` +
      (params.get("scenario") ? `&scenario=${encodeURIComponent(params.get("scenario"))}` : "");
  });
  let listing = null;
  try {
    // every collection that links a 3D Tiles tileset: the buildings, the terrain, ...
    const rel = "http://www.opengis.net/def/rel/ogc/0.0/tileset-3dtiles";
    listing = await (await fetch("/collections?f=json")).json();
    const sets = listing.collections.flatMap((c) =>
      (c.links || []).filter((l) => l.rel === rel).map((l) => ({ id: c.id, href: l.href })));
    if (!sets.length) throw new Error(oupT("no collection has 3D Tiles yet: run `oup tile`"));
    let pending = sets.length, focus = null;
    // the content drawn since the camera last moved (coarse or detailed), for tests
    const loadedSets = [], drawn = new Set();
    window.oup.drawn = () => [...drawn];
    viewer.camera.changed.addEventListener(() => drawn.clear());
    window.oup.loaded = () => loadedSets.every((t) => t.tilesLoaded);  // nothing pending
    for (const s of sets) {
      const tileset = await Cesium.Cesium3DTileset.fromUrl(s.href);
      viewer.scene.primitives.add(tileset);
      loadedSets.push(tileset);
      tileset.tileLoad.addEventListener(() => { window.oup.tiles += 1; });
      tileset.tileFailed.addEventListener((e) => { window.oup.error = `tile failed: ${e.url}`; });
      tileset.tileVisible.addEventListener((tile) => { if (tile.content) drawn.add(tile.content.url); });
      tileset.initialTilesLoaded.addEventListener(() => {
        pending -= 1;
        if (pending === 0) {
          window.oup.ready = true;
          status.textContent = oupT("{sets}: {n} tiles", { sets: sets.map((x) => x.id).join(", "),
                                                             n: window.oup.tiles });
        }
      });
      if (s.id === collection || !focus) focus = tileset;
    }
    follow3dEdits(viewer, sets, loadedSets);
    const proposed = params.get("scenario");
    if (proposed) {
      scenario(viewer, proposed, sets, loadedSets, document.getElementById("scenario"))
        .catch((err) => { window.oup.error = `scenario ${proposed}: ${err}`; });
    }
    if (at.length === 3 && at.every(Number.isFinite)) {
      viewer.camera.lookAt(Cesium.Cartesian3.fromDegrees(at[0], at[1]),
                           new Cesium.HeadingPitchRange(0.4, -0.6, at[2]));
      viewer.camera.lookAtTransform(Cesium.Matrix4.IDENTITY);
    } else {
      await viewer.zoomTo(focus, new Cesium.HeadingPitchRange(0.4, -0.6,
        focus.boundingSphere.radius * 1.6));
    }
  } catch (err) {
    window.oup.error = String(err);
    status.textContent = oupT("could not load the 3D collections: {error}", { error: err });
  }
  if (listing) {  // the sensor networks (the collections with EDR queries), tiles or not
    showSensors(viewer, listing.collections.filter((c) => c.data_queries),
                document.getElementById("sensors"));
  }

  function show(props) {
    window.oup.picked = props;
    table.innerHTML = "<table>" + Object.entries(props).map(([k, v]) =>
      `<tr><td>${k}</td><td>${String(v).replace(/</g, "&lt;")}</td></tr>`).join("") + "</table>";
  }

  new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas).setInputAction((click) => {
    const picked = viewer.scene.pick(click.position);
    if (picked instanceof Cesium.Cesium3DTileFeature) {
      const props = {};
      for (const name of picked.getPropertyIds()) props[name] = picked.getProperty(name);
      show(props);
    } else if (picked && picked.id instanceof Cesium.Entity && picked.id.properties) {
      show(picked.id.properties.getValue(viewer.clock.currentTime));  // a sensor
    }
  }, Cesium.ScreenSpaceEventType.LEFT_CLICK);

  // For tests and curious people: a window position that shows a building, if any
  // (searched in the window less `margin` at the top and left, in steps of `step`).
  window.oup.findBuilding = (step = 0.05, margin = 0.3) => {
    const c = viewer.scene.canvas;
    for (let y = margin; y < 1 - margin + 0.1; y += step) {
      for (let x = margin; x < 1 - margin + 0.1; x += step) {
        const p = new Cesium.Cartesian2(Math.round(c.clientWidth * x), Math.round(c.clientHeight * y));
        const f = viewer.scene.pick(p);
        if (f instanceof Cesium.Cesium3DTileFeature && f.getProperty("type") === "Building") {
          return { x: p.x, y: p.y };
        }
      }
    }
    return null;
  };
})();

// A scenario (/scenarios/{id}/changes), kept current from its events (oupScenario,
// scenario.js): in each 3D collection, the buildings it changes or removes hidden (a
// style on their ids), and the ones it adds or changes drawn as blocks from their ground
// to their top (heights above the ellipsoid, which the server gives: RDNAPTRANS(TM)2018,
// as the tiles are placed). window.oup.scenario: the blocks' entity ids and the hidden
// ids, as last drawn.
function scenario(viewer, id, sets, loaded, status) {
  const colour = Cesium.Color.fromCssColorString("#e8590c").withAlpha(0.9);
  let shown = [], left = {};  // left: the ids hidden, by collection, as last drawn
  return oupScenario.follow(id, window.oup, (about, changes) => {
    shown.forEach((e) => viewer.entities.removeById(e));
    const hidden = {};
    shown = [];
    for (const f of changes.features) {
      const p = f.properties, cid = p["oup:collection"];
      if (!sets.some((s) => s.id === cid)) continue;  // not a 3D collection
      if (p["oup:change"] !== "added") {
        (hidden[cid] = hidden[cid] || []).push(String(p.cityobject_id ?? f.id));
      }
      if (p["oup:change"] === "removed" || !f.geometry || !("oup:top" in p)) continue;
      const polygons = f.geometry.type === "Polygon" ? [f.geometry.coordinates]
        : f.geometry.type === "MultiPolygon" ? f.geometry.coordinates : [];
      polygons.forEach((rings, n) => {
        const ring = (r) => Cesium.Cartesian3.fromDegreesArray(r.flatMap((c) => [c[0], c[1]]));
        const entity = viewer.entities.add({
          id: `scenario/${cid}/${f.id}` + (n ? `/${n}` : ""),
          polygon: {
            hierarchy: new Cesium.PolygonHierarchy(ring(rings[0]),
              rings.slice(1).map((h) => new Cesium.PolygonHierarchy(ring(h)))),
            height: p["oup:base"], extrudedHeight: p["oup:top"], material: colour,
          },
          properties: new Cesium.PropertyBag(p),
        });
        shown.push(entity.id);
      });
    }
    sets.forEach((s, i) => {
      const ids = hidden[s.id];
      if (!ids && !left[s.id]) return;  // none hidden, before or now
      loaded[i].style = !ids ? undefined : new Cesium.Cesium3DTileStyle({ show: { conditions: [
        ...ids.map((x) => [`\${id} === ${JSON.stringify(x)}`, "false"]), ["true", "true"]] } });
    });
    left = hidden;
    const removed = changes.features.filter((f) => f.properties["oup:change"] === "removed").length;
    status.textContent = `scenario "${about.title}": ${shown.length} proposed, ${removed} removed`;
    window.oup.scenario = { shown: [...shown], hidden };
  });
}

// Each sensor a point with a label "<name> <parameter>: <latest value> <unit>", grey when
// stale; the labels of sensors at one place are stacked. Read once, then kept current from
// the collection's change events (oupLive, /assets/oup/livesensors.js). window.oup.sensors
// maps "<collection>/<sensor id>" to the label shown, once every collection is read.
function showSensors(viewer, collections, status) {
  const labels = {}, states = {}, loaded = new Set();
  if (!collections.length) window.oup.sensors = labels;
  function render() {
    const trouble = Object.values(states).find((s) => s !== "live");
    status.innerHTML = `<a href="#" id="to-sensors">${oupT("{n} sensors", { n: Object.keys(labels).length })}</a>, ` +
      (trouble ? trouble.replace(/</g, "&lt;") : oupT("latest values, live"));
    document.getElementById("to-sensors").onclick = (ev) => {
      ev.preventDefault();  // look down on all of them, with a margin
      const r = Cesium.Rectangle.fromCartographicArray(viewer.entities.values.map((e) =>
        Cesium.Cartographic.fromCartesian(e.position.getValue(viewer.clock.currentTime))));
      const pad = Math.max(r.width, r.height) * 0.2;
      viewer.camera.flyTo({ destination: new Cesium.Rectangle(
        r.west - pad, r.south - pad, r.east + pad, r.north + pad) });
    };
  }
  for (const c of collections) {
    const params = new Set(Object.keys(c.parameter_names || {}));
    const draw = (f) => {
      const p = f.properties, key = `${c.id}/${f.id}`;
      const param = Object.values(p).find((v) => params.has(v));  // what it measures
      const name = [p.name || f.id, param].filter(Boolean).join(" ");
      const text = p.latest_result === null || p.latest_result === undefined
        ? oupT("{name}: no data yet", { name }) : `${name}: ${p.latest_result} ${p.unit || ""}`.trim();
      const e = viewer.entities.getById(key);
      e.point.color = oupLive.fresh(p) ? Cesium.Color.fromCssColorString("#0a7e8c")
                                       : Cesium.Color.GRAY;
      e.label.text = text;
      e.properties = new Cesium.PropertyBag(p);
      labels[key] = text;
    };
    oupLive.follow(c.id, window.oup, {
      load(features) {  // (again): sensors may have come, gone or moved
        for (const key of Object.keys(labels).filter((k) => k.startsWith(`${c.id}/`))) {
          viewer.entities.removeById(key);
          delete labels[key];
        }
        const atPlace = {};
        for (const f of features) {
          const [lon, lat] = f.geometry.coordinates;
          const place = f.geometry.coordinates.join(",");
          const stacked = (atPlace[place] = (atPlace[place] ?? -1) + 1);
          viewer.entities.add({
            id: `${c.id}/${f.id}`, position: Cesium.Cartesian3.fromDegrees(lon, lat),
            point: { pixelSize: 9, outlineColor: Cesium.Color.WHITE, outlineWidth: 2,
                     heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
                     disableDepthTestDistance: Number.POSITIVE_INFINITY },
            label: { font: "12px system-ui, sans-serif", showBackground: true,
                     pixelOffset: new Cesium.Cartesian2(0, -16 - 18 * stacked),
                     heightReference: Cesium.HeightReference.CLAMP_TO_GROUND,
                     disableDepthTestDistance: Number.POSITIVE_INFINITY },
          });
          draw(f);
        }
        loaded.add(c.id);
        if (loaded.size === collections.length) window.oup.sensors = labels;
        render();
      },
      update: draw,
      status(text) { states[c.id] = text; render(); },
    });
  }
}
