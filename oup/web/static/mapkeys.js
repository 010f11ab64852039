// /map by keyboard: with the map focused (Tab), MapLibre moves it with the arrow keys and
// zooms with + and -; Enter shows the attributes of what is in the middle, as a click
// there would (mappage.js's click handler), or says that nothing is there.
(function () {
  "use strict";
  const nothing = oupT("Nothing in the middle of the map.");
  let tries = 0;
  const wait = setInterval(() => {  // mappage.js makes the map once its style is read
    const map = window.oupMap && window.oupMap.map;
    if (!map && ++tries < 600) return;
    clearInterval(wait);
    if (!map) return;
    map.getCanvas().addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      const point = map.project(map.getCenter());
      if (map.queryRenderedFeatures(point).some((f) => f.layer.metadata)) {
        map.fire("click", { point, lngLat: map.getCenter(), originalEvent: e });
      } else {
        document.getElementById("attributes").textContent = nothing;
      }
    });
  }, 100);
})();
