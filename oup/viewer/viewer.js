// The OUP 3D viewer: every 3D collection's tiles in CesiumJS, fully offline (no Cesium
// ion, no online imagery: a plain ellipsoid). ?collection=<id> picks the one to fly to.
// window.oup reports state for people and for the headless browser test.
"use strict";
window.oup = { ready: false, picked: null, error: null, tiles: 0 };

(async function main() {
  const status = document.getElementById("status");
  const table = document.getElementById("attributes");
  const collection = new URLSearchParams(location.search).get("collection") || "buildings";
  const viewer = new Cesium.Viewer("map", {
    baseLayer: false, baseLayerPicker: false, geocoder: false, timeline: false,
    animation: false, homeButton: false, sceneModePicker: false, infoBox: false,
    navigationHelpButton: false, fullscreenButton: false, selectionIndicator: false,
    terrainProvider: new Cesium.EllipsoidTerrainProvider(),
  });
  viewer.scene.globe.baseColor = Cesium.Color.fromCssColorString("#d9dee3");
  viewer.scene.skyAtmosphere.show = false;
  window.oup.viewer = viewer;
  try {
    // every collection that links a 3D Tiles tileset: the buildings, the terrain, ...
    const rel = "http://www.opengis.net/def/rel/ogc/0.0/tileset-3dtiles";
    const listing = await (await fetch("/collections?f=json")).json();
    const sets = listing.collections.flatMap((c) =>
      (c.links || []).filter((l) => l.rel === rel).map((l) => ({ id: c.id, href: l.href })));
    if (!sets.length) throw new Error("no collection has 3D Tiles yet: run `oup tile`");
    let pending = sets.length, focus = null;
    for (const s of sets) {
      const tileset = await Cesium.Cesium3DTileset.fromUrl(s.href);
      viewer.scene.primitives.add(tileset);
      tileset.tileLoad.addEventListener(() => { window.oup.tiles += 1; });
      tileset.tileFailed.addEventListener((e) => { window.oup.error = `tile failed: ${e.url}`; });
      tileset.initialTilesLoaded.addEventListener(() => {
        pending -= 1;
        if (pending === 0) {
          window.oup.ready = true;
          status.textContent = `${sets.map((x) => x.id).join(", ")}: ${window.oup.tiles} tiles`;
        }
      });
      if (s.id === collection || !focus) focus = tileset;
    }
    await viewer.zoomTo(focus, new Cesium.HeadingPitchRange(0.4, -0.6,
      focus.boundingSphere.radius * 1.6));
  } catch (err) {
    window.oup.error = String(err);
    status.textContent = `could not load the 3D collections: ${err}`;
    return;
  }

  function show(feature) {
    const props = {};
    for (const name of feature.getPropertyIds()) props[name] = feature.getProperty(name);
    window.oup.picked = props;
    table.innerHTML = "<table>" + Object.entries(props).map(([k, v]) =>
      `<tr><td>${k}</td><td>${String(v).replace(/</g, "&lt;")}</td></tr>`).join("") + "</table>";
  }

  new Cesium.ScreenSpaceEventHandler(viewer.scene.canvas).setInputAction((click) => {
    const picked = viewer.scene.pick(click.position);
    if (picked instanceof Cesium.Cesium3DTileFeature) show(picked);
  }, Cesium.ScreenSpaceEventType.LEFT_CLICK);

  // For tests and curious people: a window position that shows a building, if any.
  window.oup.findBuilding = () => {
    const c = viewer.scene.canvas;
    for (let y = 0.3; y < 0.8; y += 0.05) {
      for (let x = 0.3; x < 0.8; x += 0.05) {
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
